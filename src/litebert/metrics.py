"""Evaluation metrics for GLUE, SQuAD, RACE and named entities, in plain numpy and the standard library.

Classification/regression metrics match scikit-learn and scipy (tests compare them on random inputs).
Entity-level precision/recall/F1 match `seqeval` (CoNLL's conlleval rules; IOB1, IOB2/BIO and IOBES tags).
The SQuAD functions reproduce the official evaluation scripts: v1.1 (`evaluate-v1.1.py`, keys
`exact_match`, `f1`) and v2.0 (`evaluate-v2.0.py`, keys `exact`, `f1`, `total`, `HasAns_*`, `NoAns_*`,
`best_*`), including their quirks, so numbers are comparable with published ones.
"""
from __future__ import annotations

import collections
import math
import re
import string
from typing import Callable, Literal, Sequence

import numpy as np

SquadVersion = Literal["1.1", "2.0"]
MetricName = Literal["accuracy", "f1", "f1_macro", "f1_micro", "subset_accuracy", "mcc", "pearson", "spearman",
                     "exact", "exact_match", "precision", "recall"]
"""What a task row may list (`finetune.tasks`); exact / f1 of span tasks come from `evaluate_squad`, and
f1 / precision / recall / accuracy of entity tasks from `evaluate_entities`."""


# ----------------------------------------------------------------------------------------------------------
# Classification and regression


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of `predictions` (N,) equal to `labels` (N,)."""
    predictions, labels = _pair(predictions, labels)
    return float(np.mean(predictions == labels))


def f1_binary(predictions: np.ndarray, labels: np.ndarray, positive: int = 1) -> float:
    """F1 of the `positive` class; 0.0 when there is no positive in either array (as scikit-learn)."""
    predictions, labels = _pair(predictions, labels)
    tp = np.sum((predictions == positive) & (labels == positive))
    fp = np.sum((predictions == positive) & (labels != positive))
    fn = np.sum((predictions != positive) & (labels == positive))
    denominator = 2 * tp + fp + fn
    return float(2 * tp / denominator) if denominator else 0.0


def f1_macro(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Unweighted mean of each class's F1 (scikit-learn's average="macro"): every class counts alike, whichever
    is "positive" and however rare. Class ids (N,): over the classes in either array; multi-hot (N, L): over
    the L labels, each a binary problem (0 where a label is in neither)."""
    if np.ndim(labels) == 2:
        return float(np.mean([f1_binary(np.asarray(predictions)[:, j], np.asarray(labels)[:, j])
                              for j in range(np.shape(labels)[1])]))
    predictions, labels = _pair(predictions, labels)
    classes = np.unique(np.concatenate([labels, predictions]))
    return float(np.mean([f1_binary(predictions, labels, positive=c) for c in classes]))


def f1_micro(predictions: np.ndarray, labels: np.ndarray) -> float:
    """F1 of all (example, label) decisions pooled, for multi-hot (N, L) arrays (scikit-learn's average="micro");
    for class ids (N,) it equals accuracy."""
    if np.ndim(labels) != 2:
        return accuracy(predictions, labels)
    predictions, labels = np.asarray(predictions).astype(bool), np.asarray(labels).astype(bool)
    if predictions.shape != labels.shape or not len(labels):
        raise ValueError(f"predictions {predictions.shape} for labels {labels.shape}")
    tp, fp, fn = np.sum(predictions & labels), np.sum(predictions & ~labels), np.sum(~predictions & labels)
    return float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0


def subset_accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of examples whose whole label set is predicted exactly, for multi-hot (N, L) arrays
    (scikit-learn's accuracy_score on them); for class ids (N,) it equals accuracy."""
    if np.ndim(labels) != 2:
        return accuracy(predictions, labels)
    return float(np.mean(np.all(np.asarray(predictions) == np.asarray(labels), axis=1)))


def matthews_corrcoef(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Matthews correlation for any number of classes (Gorodkin's R_K, the form scikit-learn uses).

    Returns 0.0 when either side is constant, where the correlation is undefined (scikit-learn does too).
    """
    predictions, labels = _pair(predictions, labels)
    classes, codes = np.unique(np.concatenate([labels, predictions]), return_inverse=True)
    true_codes, pred_codes = codes[: len(labels)], codes[len(labels):]
    confusion = np.zeros((len(classes), len(classes)), dtype=np.float64)
    np.add.at(confusion, (true_codes, pred_codes), 1.0)
    t_sum, p_sum = confusion.sum(axis=1), confusion.sum(axis=0)
    n_correct, n = np.trace(confusion), confusion.sum()
    cov_tp = n_correct * n - t_sum @ p_sum
    cov_pp = n * n - p_sum @ p_sum
    cov_tt = n * n - t_sum @ t_sum
    if cov_pp * cov_tt == 0:
        return 0.0
    return float(cov_tp / math.sqrt(cov_tt * cov_pp))


def pearson(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant (as scipy.stats.pearsonr)."""
    x, y = _pair(predictions, labels)
    x, y = x.astype(np.float64) - np.mean(x), y.astype(np.float64) - np.mean(y)
    denominator = math.sqrt(float(x @ x) * float(y @ y))
    if denominator == 0.0:
        return float("nan")
    # Clip like scipy: rounding can push |r| a hair above 1.
    return float(np.clip((x @ y) / denominator, -1.0, 1.0))


def spearman(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Spearman rank correlation: Pearson of the ranks, ties sharing their average rank."""
    x, y = _pair(predictions, labels)
    return pearson(average_ranks(x), average_ranks(y))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values` (N,); tied values get the mean of the ranks they span."""
    values = np.asarray(values)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # A new run of equal values starts wherever the sorted value changes.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    run_rank = (starts + ends + 1) / 2.0  # mean of the 1-based ranks start+1 .. end
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def _pair(predictions: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predictions, labels = np.asarray(predictions).ravel(), np.asarray(labels).ravel()
    if predictions.shape != labels.shape:
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("no predictions to score")
    return predictions, labels


METRIC_FUNCTIONS: dict[MetricName, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": accuracy,
    "f1": f1_binary,
    "f1_macro": f1_macro,
    "f1_micro": f1_micro,
    "subset_accuracy": subset_accuracy,
    "mcc": matthews_corrcoef,
    "pearson": pearson,
    "spearman": spearman,
}


def compute_metrics(names: Sequence[MetricName], predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The named metrics in order, e.g. {"f1": ..., "accuracy": ...} for MRPC's ("f1", "accuracy").

    `predictions` and `labels` are (N,) label ids for classification and multiple choice, floats for
    regression. Span answers are scored by `evaluate_squad`, which needs the texts, not ids.
    """
    unknown = [n for n in names if n not in METRIC_FUNCTIONS]
    if unknown:
        raise ValueError(f"{', '.join(unknown)} cannot be computed from label ids (span answers: use "
                         f"evaluate_squad); known: {', '.join(METRIC_FUNCTIONS)}")
    return {name: METRIC_FUNCTIONS[name](predictions, labels) for name in names}


def describe(scores: dict) -> str:
    """Scores for a log line, 4 significant digits: "accuracy 0.6458, f1 0.7" (counts stay whole); a dict of
    splits gives "dev_matched: accuracy 0.81; dev_mismatched: accuracy 0.8"."""
    def number(value) -> str:
        return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"

    if any(isinstance(v, dict) for v in scores.values()):
        return "; ".join(f"{split}: {describe(v)}" for split, v in scores.items())
    return ", ".join(f"{name} {number(value)}" for name, value in scores.items())


# ----------------------------------------------------------------------------------------------------------
# Named entities (CoNLL's conlleval, as seqeval's default mode)


def entities(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, first, last) of every chunk in one tag sequence, by conlleval's rules: a chunk starts at B-/S-,
    at I-/E- after O or after another type, and ends before O, B-, S- or a type change. So IOB1 (I-X opens a
    chunk, B-X only splits two adjacent X chunks), IOB2/BIO and IOBES read alike."""
    chunks = []
    prev_tag, prev_type, begin = "O", "", 0
    for i, label in enumerate([*tags, "O"]):
        tag, type_ = label[0], (label[1:].split("-", maxsplit=1)[-1] or "_")
        if _chunk_ends(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin, i - 1))
        if _chunk_starts(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def _chunk_ends(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return (prev_tag in "ES" or (prev_tag in "BI" and tag in "BSO")
            or (prev_tag not in "O." and prev_type != type_))


def _chunk_starts(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return tag in "BS" or (prev_tag in "ESO" and tag in "EI") or (tag not in "O." and prev_type != type_)


def evaluate_entities(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    """Micro precision, recall and F1 over entities (exact type and span), and token accuracy, of sentences
    of tags (as seqeval's precision_score / recall_score / f1_score / accuracy_score)."""
    if len(gold) != len(predicted) or any(len(g) != len(p) for g, p in zip(gold, predicted)):
        raise ValueError("gold and predicted tag sequences differ in number or length")
    true_chunks, pred_chunks = set(), set()
    for i, (g, p) in enumerate(zip(gold, predicted)):
        true_chunks.update((i, *chunk) for chunk in entities(g))
        pred_chunks.update((i, *chunk) for chunk in entities(p))
    correct = len(true_chunks & pred_chunks)
    precision = correct / len(pred_chunks) if pred_chunks else 0.0
    recall = correct / len(true_chunks) if true_chunks else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    tokens = sum(len(g) for g in gold)
    accuracy = sum(a == b for g, p in zip(gold, predicted) for a, b in zip(g, p)) / tokens if tokens else 0.0
    return {"f1": f1, "precision": precision, "recall": recall, "accuracy": accuracy}


# ----------------------------------------------------------------------------------------------------------
# SQuAD (official evaluation scripts v1.1 and v2.0)


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation, drop the articles a/an/the, collapse whitespace (official order)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


_PUNCTUATION = frozenset(string.punctuation)


def squad_exact(gold: str, prediction: str) -> int:
    """1 when the normalised strings are equal, else 0."""
    return int(normalize_answer(gold) == normalize_answer(prediction))


def squad_f1(gold: str, prediction: str, version: SquadVersion = "2.0") -> float:
    """Bag-of-tokens F1 between normalised answers.

    The two official scripts differ only when a side normalises to nothing: v2.0 scores 1.0 if both are
    empty (a correct "no answer"), v1.1 scores 0.0 whenever nothing is shared.
    """
    gold_tokens, pred_tokens = normalize_answer(gold).split(), normalize_answer(prediction).split()
    if version == "2.0" and (not gold_tokens or not pred_tokens):
        return float(gold_tokens == pred_tokens)
    num_same = sum((collections.Counter(gold_tokens) & collections.Counter(pred_tokens)).values())
    if num_same == 0:
        return 0.0
    precision, recall = num_same / len(pred_tokens), num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_gold_answers(dataset_json: dict) -> dict[str, list[str]]:
    """qid -> gold answer texts from an official SQuAD JSON (`{"data": [...]}`); [] for unanswerable."""
    gold: dict[str, list[str]] = {}
    for article in dataset_json["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                gold[qa["id"]] = [answer["text"] for answer in qa["answers"]]
    return gold


def squad_raw_scores(
    gold: dict[str, list[str]], predictions: dict[str, str], version: SquadVersion = "2.0"
) -> tuple[dict[str, float], dict[str, float]]:
    """Per-question EM and F1, each the max over gold answers (`get_raw_scores` of the official script).

    v2.0 drops gold answers that normalise to nothing and treats an empty list as the single answer "".
    Questions without a prediction are left out; callers decide whether that is an error.
    """
    exact: dict[str, float] = {}
    f1: dict[str, float] = {}
    for qid, answers in gold.items():
        if qid not in predictions:
            continue
        if version == "2.0":
            answers = [a for a in answers if normalize_answer(a)] or [""]
        prediction = predictions[qid]
        exact[qid] = float(max(squad_exact(a, prediction) for a in answers))
        f1[qid] = max(squad_f1(a, prediction, version) for a in answers)
    return exact, f1


def find_best_thresh(
    predictions: dict[str, str],
    scores: dict[str, float],
    na_probs: dict[str, float],
    qid_to_has_ans: dict[str, bool],
    start_thresh: float = 0.0,
) -> tuple[float, float]:
    """The no-answer threshold that maximises the total score, as `find_best_thresh` of evaluate-v2.0.py.

    Start from "abstain everywhere" (each unanswerable question scores 1) and lower the bar question by
    question in increasing `na_probs` order: answering question q adds its score if it has an answer,
    costs 1 if it has none and the prediction is non-empty. Returns (best score in %, threshold); a question
    is answered when its na_prob <= threshold. `start_thresh` is what is returned when abstaining everywhere
    is best: the script's 0.0 suits probabilities; callers thresholding null-score odds pass -inf.
    """
    current = best = float(sum(1 for has_ans in qid_to_has_ans.values() if not has_ans))
    best_thresh = start_thresh
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if qid_to_has_ans[qid]:
            current += scores[qid]
        elif predictions[qid]:
            current -= 1
        if current > best:
            best, best_thresh = current, na_probs[qid]
    return 100.0 * best / len(scores), best_thresh


def evaluate_squad(
    dataset_json: dict,
    predictions: dict[str, str],
    na_probs: dict[str, float] | None = None,
    version: SquadVersion = "2.0",
    na_prob_thresh: float = 1.0,
    allow_missing: bool = False,
) -> dict[str, float]:
    """Score `predictions` (qid -> answer text, "" for no answer) against an official SQuAD JSON.

    v1.1 returns {"exact_match", "f1"}; v2.0 returns {"exact", "f1", "total"}, then "HasAns_*" / "NoAns_*"
    when such questions exist and, given `na_probs` (qid -> no-answer score), "best_exact",
    "best_exact_thresh", "best_f1", "best_f1_thresh". Percentages, as the official scripts print.
    A question without a prediction raises ValueError naming it. `allow_missing=True` scores it as
    evaluate-v1.1.py does (0, still counted in the total); for v2.0 it leaves it out of every total, where
    evaluate-v2.0.py prints a warning and then fails at the HasAns/NoAns breakdown.
    """
    gold = squad_gold_answers(dataset_json)
    missing = [qid for qid in gold if qid not in predictions]
    if missing and not allow_missing:
        raise ValueError(f"no prediction for question id {missing[0]!r} ({len(missing)} of {len(gold)} missing)")
    exact_raw, f1_raw = squad_raw_scores(gold, predictions, version)
    if version == "1.1":
        # v1.1 divides by every question, answered or not.
        return {
            "exact_match": 100.0 * sum(exact_raw.values()) / len(gold),
            "f1": 100.0 * sum(f1_raw.values()) / len(gold),
        }
    if not exact_raw:
        raise ValueError("no question of the dataset has a prediction")
    qid_to_has_ans = {qid: bool(answers) for qid, answers in gold.items()}
    thresholded = na_probs if na_probs is not None else {qid: 0.0 for qid in predictions}
    lacking = [qid for qid in exact_raw if qid not in thresholded]
    if lacking:
        raise ValueError(f"no no-answer probability for question id {lacking[0]!r}")
    exact = _apply_no_answer_threshold(exact_raw, thresholded, qid_to_has_ans, na_prob_thresh)
    f1 = _apply_no_answer_threshold(f1_raw, thresholded, qid_to_has_ans, na_prob_thresh)
    result = _eval_dict(exact, f1, list(exact))
    for prefix, has_ans in (("HasAns", True), ("NoAns", False)):
        # The official script takes these lists from the dataset, so a missing prediction there fails.
        qids = [qid for qid, h in qid_to_has_ans.items() if h == has_ans and qid in exact]
        if qids:
            result.update({f"{prefix}_{k}": v for k, v in _eval_dict(exact, f1, qids).items()})
    if na_probs is not None:
        result["best_exact"], result["best_exact_thresh"] = find_best_thresh(
            predictions, exact_raw, na_probs, qid_to_has_ans)
        result["best_f1"], result["best_f1_thresh"] = find_best_thresh(
            predictions, f1_raw, na_probs, qid_to_has_ans)
    return result


def _apply_no_answer_threshold(
    scores: dict[str, float], na_probs: dict[str, float], qid_to_has_ans: dict[str, bool], thresh: float
) -> dict[str, float]:
    # Above the threshold the system abstains: right exactly when the question has no answer.
    return {
        qid: float(not qid_to_has_ans[qid]) if na_probs[qid] > thresh else score
        for qid, score in scores.items()
    }


def _eval_dict(exact: dict[str, float], f1: dict[str, float], qids: list[str]) -> dict[str, float]:
    return {
        "exact": 100.0 * sum(exact[q] for q in qids) / len(qids),
        "f1": 100.0 * sum(f1[q] for q in qids) / len(qids),
        "total": len(qids),
    }
