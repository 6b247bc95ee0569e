"""Metrics against scikit-learn / scipy on random inputs, and SQuAD scoring on hand-worked cases."""
import math
import warnings

import numpy as np
import pytest
import scipy.stats
import sklearn.metrics

from litebert import metrics
from litebert.finetune.tasks import TASKS


@pytest.mark.parametrize("seed", range(20))
def test_classification_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n, classes = int(rng.integers(1, 60)), int(rng.integers(2, 5))
    labels, preds = rng.integers(0, classes, n), rng.integers(0, classes, n)
    if seed % 4 == 0:
        preds[:] = preds[0]  # constant predictions: MCC undefined -> 0
    assert metrics.accuracy(preds, labels) == pytest.approx(sklearn.metrics.accuracy_score(labels, preds))
    assert metrics.matthews_corrcoef(preds, labels) == pytest.approx(
        sklearn.metrics.matthews_corrcoef(labels, preds), abs=1e-12)
    assert metrics.f1_macro(preds, labels) == pytest.approx(
        sklearn.metrics.f1_score(labels, preds, average="macro", zero_division=0.0))
    multi_l, multi_p = rng.integers(0, 2, (n, classes)), rng.integers(0, 2, (n, classes))  # multi-hot
    for ours, average in ((metrics.f1_macro, "macro"), (metrics.f1_micro, "micro")):
        assert ours(multi_p, multi_l) == pytest.approx(
            sklearn.metrics.f1_score(multi_l, multi_p, average=average, zero_division=0.0))
    assert metrics.subset_accuracy(multi_p, multi_l) == pytest.approx(sklearn.metrics.accuracy_score(multi_l, multi_p))
    binary_l, binary_p = labels % 2, preds % 2
    assert metrics.f1_binary(binary_p, binary_l) == pytest.approx(
        sklearn.metrics.f1_score(binary_l, binary_p, zero_division=0.0))
    assert metrics.matthews_corrcoef(binary_p, binary_l) == pytest.approx(
        sklearn.metrics.matthews_corrcoef(binary_l, binary_p), abs=1e-12)


def test_degenerate_classification_cases():
    zeros = np.zeros(7, dtype=int)
    # No positive anywhere: sklearn's F1 is 0 (zero_division), MCC is 0, accuracy is 1.
    assert metrics.f1_binary(zeros, zeros) == 0.0
    assert metrics.matthews_corrcoef(zeros, zeros) == 0.0
    assert metrics.accuracy(zeros, zeros) == 1.0
    labels = np.array([0, 1, 1, 0, 1])
    assert metrics.matthews_corrcoef(labels, labels) == pytest.approx(1.0)
    assert metrics.matthews_corrcoef(1 - labels, labels) == pytest.approx(-1.0)
    constant = np.ones(5, dtype=int)
    assert metrics.matthews_corrcoef(constant, labels) == sklearn.metrics.matthews_corrcoef(labels, constant) == 0.0
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        metrics.accuracy(np.zeros(3), np.zeros(2))


@pytest.mark.parametrize("seed", range(20))
def test_correlations_match_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 50))
    if seed % 2:
        # Small integer ranges force many ties (average ranks matter).
        x, y = rng.integers(0, 4, n).astype(float), rng.integers(0, 3, n).astype(float)
    else:
        x = rng.normal(size=n)
        y = 0.7 * x + rng.normal(size=n)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        x[0] += 1.0  # keep the correlation defined; the constant case is tested apart
        y[-1] += 1.0
    assert metrics.pearson(x, y) == pytest.approx(scipy.stats.pearsonr(x, y)[0], abs=1e-12)
    assert metrics.spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y)[0], abs=1e-12)
    np.testing.assert_array_equal(metrics.average_ranks(y), scipy.stats.rankdata(y, method="average"))


def test_constant_input_correlation_is_nan_like_scipy():
    x, y = np.ones(6), np.arange(6.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(scipy.stats.pearsonr(x, y)[0]) and math.isnan(scipy.stats.spearmanr(x, y)[0])
    assert math.isnan(metrics.pearson(x, y)) and math.isnan(metrics.spearman(x, y))


def test_compute_metrics_follows_the_task_row():
    from litebert.finetune.tasks import task_metrics

    labels, preds = np.array([1, 0, 1, 1]), np.array([1, 0, 0, 1])
    assert metrics.compute_metrics(("accuracy",), preds, labels) == {"accuracy": 0.75}
    mrpc = task_metrics("mrpc", preds, labels)
    # tp=2, fp=0, fn=1 -> F1 = 4/5; 3 of 4 right.
    assert mrpc == {"f1": pytest.approx(0.8), "accuracy": 0.75}
    assert list(task_metrics("cola", preds, labels)) == ["mcc"]
    stsb = task_metrics("sts-b", np.array([0.1, 2.0, 3.5]), np.array([0.0, 2.5, 3.0]))
    assert list(stsb) == ["pearson", "spearman"]
    assert list(task_metrics("race", np.array([2, 1]), np.array([2, 3]))) == ["accuracy"]
    for name, task in TASKS.items():
        if task.kind == "token_classification":  # scored from tag sequences
            assert set(task.metrics) <= set(metrics.evaluate_entities([["O"]], [["O"]])), name
        elif task.kind != "span":
            assert set(task.metrics) <= set(metrics.METRIC_FUNCTIONS), name
    with pytest.raises(ValueError, match="evaluate_squad"):
        task_metrics("squad1.1", preds, labels)
    with pytest.raises(ValueError, match="exact cannot be computed from label ids"):
        metrics.compute_metrics(("exact",), preds, labels)


# ----------------------------------------------------------------------------------------------------------
# SQuAD


def test_normalize_answer_official_steps():
    assert metrics.normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert metrics.normalize_answer("an apple, a pear") == "apple pear"
    # Articles go only as whole words, after punctuation removal: "the-ater" -> "theater" stays.
    assert metrics.normalize_answer("the-ater") == "theater"
    assert metrics.normalize_answer("(1990).") == "1990"
    assert metrics.normalize_answer("A") == ""


def _dataset(*questions):
    """An official-format SQuAD dataset; questions are (qid, [gold texts])."""
    qas = [{"id": qid, "question": "?", "answers": [{"text": t, "answer_start": 0} for t in golds]}
           for qid, golds in questions]
    return {"version": "v2.0", "data": [{"title": "t", "paragraphs": [{"context": "c", "qas": qas}]}]}


def test_squad_v1_exact_and_f1_by_hand():
    data = _dataset(("q1", ["the Eiffel Tower", "Eiffel Tower, Paris"]), ("q2", ["Denver Broncos"]))
    preds = {"q1": "Eiffel Tower.", "q2": "Broncos of Denver"}
    # q1: "eiffel tower" equals the first gold after normalisation: EM 1, F1 1.
    # q2: pred tokens {broncos, of, denver}, gold {denver, broncos}: 2 shared, P = 2/3, R = 1,
    #     F1 = 2 * (2/3) / (5/3) = 0.8; EM 0.  Totals: EM 50, F1 (1 + 0.8) / 2 = 90.
    result = metrics.evaluate_squad(data, preds, version="1.1")
    assert result == {"exact_match": pytest.approx(50.0), "f1": pytest.approx(90.0)}


def test_squad_versions_differ_only_on_empty_normalisations():
    # Gold "The" and prediction "a" both normalise to "". v1.1: EM 1 (equal strings), F1 0 (nothing shared).
    # v2.0 drops the empty gold, leaving [""]: EM 1 and F1 1 (both empty agree).
    data = _dataset(("q", ["The"]))
    assert metrics.evaluate_squad(data, {"q": "a"}, version="1.1") == {"exact_match": 100.0, "f1": 0.0}
    v2 = metrics.evaluate_squad(data, {"q": "a"}, version="2.0")
    assert (v2["exact"], v2["f1"]) == (100.0, 100.0)


V2_DATA = _dataset(("q1", ["Denver Broncos", "The Denver Broncos"]), ("q2", ["1990"]), ("q3", []), ("q4", []))
V2_PREDS = {"q1": "the broncos", "q2": "(1990).", "q3": "", "q4": "France"}
V2_NA = {"q1": 0.3, "q2": 0.1, "q3": 0.9, "q4": 0.6}


def test_squad_v2_breakdown_and_threshold_search_by_hand():
    # Raw scores: q1 "broncos" vs "denver broncos": EM 0, F1 = 2*(1/1)*(1/2)/(3/2) = 2/3 (both golds alike);
    # q2 "1990": EM 1, F1 1; q3 "" vs no answer: 1, 1; q4 "France" vs no answer: 0, 0.
    result = metrics.evaluate_squad(V2_DATA, V2_PREDS, V2_NA, version="2.0")
    expected = {
        "exact": 50.0, "f1": 100 * (2 / 3 + 2) / 4, "total": 4,
        "HasAns_exact": 50.0, "HasAns_f1": 100 * (2 / 3 + 1) / 2, "HasAns_total": 2,
        "NoAns_exact": 50.0, "NoAns_f1": 50.0, "NoAns_total": 2,
        # Threshold search, questions by na_prob: q2 .1, q1 .3, q4 .6, q3 .9; start = 2 (both no-answers right).
        # EM: +1 (q2) -> 3 at .1; +0 (q1) 3; -1 (q4 answers "France") 2; +0 (q3 empty) 2 -> 3/4 at .1.
        # F1: +1 -> 3 at .1; +2/3 -> 11/3 at .3; -1; +0 -> (11/3)/4 at .3.
        "best_exact": 75.0, "best_exact_thresh": 0.1,
        "best_f1": 100 * (11 / 3) / 4, "best_f1_thresh": 0.3,
    }
    assert result.keys() == expected.keys()
    for key, value in expected.items():
        assert result[key] == pytest.approx(value), key


def test_squad_v2_na_prob_threshold_abstains():
    # With na_prob_thresh .5, q3 (.9) and q4 (.6) abstain: both have no answer, so both score 1.
    result = metrics.evaluate_squad(V2_DATA, V2_PREDS, V2_NA, version="2.0", na_prob_thresh=0.5)
    assert result["exact"] == pytest.approx(75.0)
    assert result["f1"] == pytest.approx(100 * (2 / 3 + 3) / 4)
    no_probs = metrics.evaluate_squad(V2_DATA, V2_PREDS, version="2.0")
    assert "best_f1" not in no_probs and no_probs["exact"] == 50.0


def test_squad_missing_prediction_is_named():
    with pytest.raises(ValueError, match="'q4'"):
        metrics.evaluate_squad(V2_DATA, {k: v for k, v in V2_PREDS.items() if k != "q4"}, version="2.0")
    with pytest.raises(ValueError, match="no-answer probability for question id 'q2'"):
        metrics.evaluate_squad(V2_DATA, V2_PREDS, {"q1": 0.1, "q3": 0.1, "q4": 0.1}, version="2.0")
    # The official v1.1 behaviour on request: an unanswered question scores 0 but still counts.
    data = _dataset(("a", ["x"]), ("b", ["y"]))
    assert metrics.evaluate_squad(data, {"a": "x"}, version="1.1", allow_missing=True)["exact_match"] == 50.0


def test_find_best_thresh_abstain_everywhere_keeps_start():
    # Answering only loses here, so the best is to abstain on all: score 1/1, threshold = start value.
    score, thresh = metrics.find_best_thresh({"q": "x"}, {"q": 0.0}, {"q": 0.4}, {"q": False}, start_thresh=-1.0)
    assert (score, thresh) == (100.0, -1.0)


# ----------------------------------------------------------------------------------------------------------
# Named entities, against seqeval


@pytest.mark.filterwarnings("ignore::UserWarning")  # seqeval (via scikit-learn) on sentences without entities
@pytest.mark.parametrize("scheme", ["IOB1", "IOB2", "IOBES"])
def test_entity_scores_match_seqeval(scheme):
    seqeval = pytest.importorskip("seqeval.metrics")
    rng = np.random.default_rng({"IOB1": 1, "IOB2": 2, "IOBES": 3}[scheme])
    prefixes = {"IOB1": "IB", "IOB2": "BI", "IOBES": "BIES"}[scheme]
    tags = ["O"] + [f"{p}-{t}" for p in prefixes for t in ("PER", "LOC", "ORG", "MISC")]

    def sentence(n):
        return [tags[i] if rng.random() < 0.6 else "O" for i in rng.integers(0, len(tags), n)]

    for _ in range(30):
        gold = [sentence(int(rng.integers(1, 15))) for _ in range(int(rng.integers(1, 8)))]
        # predictions: gold with some tags replaced, so that many (not all) entities agree
        pred = [[t if rng.random() < 0.8 else tags[rng.integers(len(tags))] for t in s] for s in gold]
        ours = metrics.evaluate_entities(gold, pred)
        assert ours["f1"] == pytest.approx(seqeval.f1_score(gold, pred), abs=1e-12)
        assert ours["precision"] == pytest.approx(seqeval.precision_score(gold, pred), abs=1e-12)
        assert ours["recall"] == pytest.approx(seqeval.recall_score(gold, pred), abs=1e-12)
        assert ours["accuracy"] == pytest.approx(seqeval.accuracy_score(gold, pred), abs=1e-12)
    from seqeval.metrics.sequence_labeling import get_entities

    for _ in range(200):
        s = sentence(int(rng.integers(1, 20)))
        assert metrics.entities(s) == [tuple(c) for c in get_entities(s)]


def test_entities_read_iob1_and_iob2_alike():
    assert metrics.entities(["I-PER", "I-PER", "O", "I-LOC", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3),
                                                                          ("LOC", 4, 4)]
    assert metrics.entities(["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3),
                                                                          ("LOC", 4, 4)]
    perfect = metrics.evaluate_entities([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]])
    assert perfect == {"f1": 1.0, "precision": 1.0, "recall": 1.0, "accuracy": 1.0}
    with pytest.raises(ValueError, match="differ"):
        metrics.evaluate_entities([["O"]], [["O", "O"]])


def test_scores_read_in_a_log_line():
    """Fine-tuning's step and seed lines print scores at 4 significant digits, counts whole (they were Python
    reprs: {'accuracy': 0.6458333333333334})."""
    assert metrics.describe({"accuracy": 0.6458333333333334, "f1": 0.7}) == "accuracy 0.6458, f1 0.7"
    assert metrics.describe({"exact": 88.33333333333333, "total": 1200}) == "exact 88.33, total 1,200"
    assert metrics.describe({"dev_matched": {"accuracy": 0.81234}, "dev_mismatched": {"accuracy": 0.8}}) == \
        "dev_matched: accuracy 0.8123; dev_mismatched: accuracy 0.8"
