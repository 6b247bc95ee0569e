"""SQuAD features and answer decoding, model-agnostic: features in, start/end logits arrays out.

The pipeline follows BERT's run_squad.py:
  1. The context is split on whitespace into words; each word is tokenized on its own, so every
     sub-token belongs to one word and gets a character span inside it (`tokenize_context`).
  2. The training span is the smallest run of sub-tokens covering the gold answer's characters. This is
     what BERT's `_improve_answer_span` aims at (a tighter span than whole words, e.g. "1990" inside
     "(1990),"); BERT finds it by re-tokenizing the answer text, which fails with SentencePiece because a
     word-initial "▁" differs from the same piece mid-word, so the character spans are used instead.
  3. A long context becomes overlapping windows of `max_seq_length - len(query) - 3` tokens, `doc_stride`
     apart; `[CLS] query [SEP] window [SEP]`. A token seen by several windows is scored only in the window
     where it has the most context on both sides (`token_is_max_context`). A window that does not hold
     the whole answer is labelled with the [CLS] position (0, 0), as is an unanswerable question.
  4. Decoding takes the `n_best_size` best start and end positions of each window, keeps valid spans
     (inside the context, start <= end, at most `max_answer_length` tokens, start at max context), and
     ranks them by start+end logit over all windows of a question. The answer text is the original
     context substring between the span's character offsets. For SQuAD 2.0 the null score is the
     smallest [CLS] start+end logit over the windows; `null_odds = null score - best span score`, and the
     question is left unanswered when the odds exceed a threshold, chosen on held-out data with the
     official script's threshold search (`choose_null_threshold`).
  5. With the answerability head (the official ALBERT SQuAD 2.0 head, `decode_beam_predictions`), the
     model proposes its top-k starts and, for each, its top-k ends; a span scores start log-prob + end
     log-prob, and the null odds are the smallest answerability logit over the windows (the official
     `score_null`). Training marks a window without the answer as impossible, labelled at [CLS].
"""
from __future__ import annotations

import math
import unicodedata
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from litebert import metrics, pairs
from litebert.config import FinetuneConfig
from litebert.finetune.readers import SquadExample, Tokenizer


@dataclass(frozen=True)
class SquadConfig:
    """Windowing and decoding options; defaults are the run_squad_v1/v2 flags of the ALBERT README."""

    max_seq_length: int = 384
    doc_stride: int = FinetuneConfig.doc_stride
    """Tokens between the starts of consecutive windows."""
    max_query_length: int = FinetuneConfig.max_query_length
    """Question tokens kept (the first ones)."""
    n_best_size: int = FinetuneConfig.n_best_size
    """Start and end candidates taken from each window, and answers kept per question."""
    max_answer_length: int = FinetuneConfig.max_answer_length
    """Longest answer, in sub-tokens."""


@dataclass(frozen=True)
class SquadFeature:
    """One window of one question, padded to `max_seq_length`; per-position lists align with `input_ids`."""

    example_index: int
    window_index: int
    input_ids: list[int]
    attention_mask: list[int]
    token_type_ids: list[int]
    token_offsets: list[tuple[int, int] | None]
    """Character span in the example's context of each context token; None for [CLS], query, [SEP], pad."""
    token_is_max_context: list[bool]
    start_position: int
    """Gold answer start in this window, or 0 ([CLS]) when the window lacks the answer or there is none."""
    end_position: int


@dataclass(frozen=True)
class Candidate:
    """A ranked answer of a question: text, logits and softmax probability within its n-best list."""

    text: str
    start_logit: float
    end_logit: float
    probability: float
    start: int = -1
    """Character offsets of `text` in the context: context[start:end] == text."""
    end: int = -1


@dataclass
class SquadPredictions:
    """Decoded answers of a set of questions, keyed by qid."""

    predictions: dict[str, str]
    """The answer to submit; "" means "no answer" (SQuAD 2.0)."""
    best_non_null: dict[str, str]
    """The best span of every question, ignoring the null option ("" only if no valid span exists)."""
    null_odds: dict[str, float]
    """SQuAD 2.0: null score - best span score (higher = more likely unanswerable; +inf with no span);
    the `na_probs` of the official evaluation. Empty for SQuAD 1.1."""
    nbest: dict[str, list[Candidate]]

    def with_threshold(self, threshold: float) -> dict[str, str]:
        """SQuAD 2.0 predictions that abstain exactly where `null_odds > threshold`."""
        if len(self.null_odds) != len(self.best_non_null):
            raise ValueError("no null odds: these predictions were decoded without version_2")
        return {qid: "" if self.null_odds[qid] > threshold else text for qid, text in self.best_non_null.items()}


# ----------------------------------------------------------------------------------------------------------
# Features


def split_words(context: str) -> list[tuple[int, int]]:
    """Character spans [start, end) of the whitespace-separated words of `context` (BERT's whitespace set)."""
    spans: list[tuple[int, int]] = []
    start = None
    for i, ch in enumerate(context):
        if ch in " \t\r\n" or ord(ch) == 0x202F:
            if start is not None:
                spans.append((start, i))
                start = None
        elif start is None:
            start = i
    if start is not None:
        spans.append((start, len(context)))
    return spans


def tokenize_context(context: str, tokenizer: Tokenizer) -> tuple[list[str], list[tuple[int, int]]]:
    """Sub-tokens of `context`, word by word, with each one's character span [start, end) in `context`."""
    tokens: list[str] = []
    offsets: list[tuple[int, int]] = []
    for start, end in split_words(context):
        pieces = tokenizer.tokenize(context[start:end])
        tokens.extend(pieces)
        offsets.extend((start + s, start + e) for s, e in align_pieces(context[start:end], pieces))
    return tokens, offsets


def align_pieces(word: str, pieces: list[str]) -> list[tuple[int, int]]:
    """Character span of each piece inside `word`, matching the pieces' text left to right.

    Word-start markers ("▁", "##") are ignored, and the word is lower-cased and stripped of accents as
    ALBERT's normaliser does, so "Café" still aligns with "▁ca", "fe". When the pieces do not spell the
    word (an unknown token, other rewrites), every piece gets the whole word: an answer then snaps to word
    boundaries, as in BERT without span improvement.
    """
    folded, origin = _fold(word)
    origin.append(len(word))  # where a zero-width piece at the very end sits
    spans: list[tuple[int, int]] = []
    cursor = 0
    for piece in pieces:
        text = _fold(piece.removeprefix("▁").removeprefix("##"))[0]
        at = folded.find(text, cursor) if text else cursor
        if at < 0:
            return [(0, len(word))] * len(pieces)
        cursor = at + len(text)
        spans.append((origin[at], origin[cursor - 1] + 1) if text else (origin[at], origin[at]))
    return spans


def _fold(text: str) -> tuple[str, list[int]]:
    """Lower-cased, accent-free `text`, and for each of its characters the index of the source character."""
    chars, origin = [], []
    for i, ch in enumerate(text):
        for c in unicodedata.normalize("NFKD", ch.lower()):
            if not unicodedata.combining(c):
                chars.append(c)
                origin.append(i)
    return "".join(chars), origin


def answer_token_span(offsets: list[tuple[int, int]], start_char: int, end_char: int) -> tuple[int, int] | None:
    """First and last token whose characters overlap [start_char, end_char): the tightest covering span."""
    overlapping = [i for i, (s, e) in enumerate(offsets) if e > s and s < end_char and e > start_char]
    return (overlapping[0], overlapping[-1]) if overlapping else None


def doc_windows(num_tokens: int, max_tokens: int, doc_stride: int) -> list[tuple[int, int]]:
    """(start, length) of the windows over `num_tokens` context tokens; the last one ends at the end."""
    windows = []
    start = 0
    while True:
        length = min(num_tokens - start, max_tokens)
        windows.append((start, length))
        if start + length >= num_tokens:
            return windows
        start += min(length, doc_stride)


def is_max_context(windows: list[tuple[int, int]], window_index: int, position: int) -> bool:
    """Whether `window_index` is the window giving token `position` the most context (BERT's rule).

    Score = min(left context, right context) + 0.01 * window length; the first best window wins ties.
    """
    best_score, best_index = -1.0, -1
    for index, (start, length) in enumerate(windows):
        end = start + length - 1
        if start <= position <= end:
            score = min(position - start, end - position) + 0.01 * length
            if score > best_score:
                best_score, best_index = score, index
    return best_index == window_index


def build_features(examples: list[SquadExample], tokenizer: Tokenizer, config: SquadConfig,
                   counts: dict[str, int] | None = None) -> list[SquadFeature]:
    """Every window of every example, in example order. Labels use the first gold answer. Questions longer
    than max_query_length keep their first pieces, counted in counts["questions"] when `counts` is given."""
    features: list[SquadFeature] = []
    for example_index, example in enumerate(examples):
        query_ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(example.question))
        if len(query_ids) > config.max_query_length and counts is not None:
            counts["questions"] = counts.get("questions", 0) + 1
        query_ids = query_ids[: config.max_query_length]
        doc_tokens, offsets = tokenize_context(example.context, tokenizer)
        doc_ids = tokenizer.convert_tokens_to_ids(doc_tokens)
        answer = None
        if example.answers and not example.is_impossible:
            text, start_char = example.answers[0]
            answer = answer_token_span(offsets, start_char, start_char + len(text))
        max_tokens = config.max_seq_length - len(query_ids) - 3
        if max_tokens <= 0:
            raise ValueError(f"max_seq_length {config.max_seq_length} leaves no room for context after the question")
        windows = doc_windows(len(doc_ids), max_tokens, config.doc_stride)
        for window_index in range(len(windows)):
            features.append(_window_feature(example_index, window_index, windows, query_ids, doc_ids, offsets,
                                            answer, tokenizer, config.max_seq_length))
    return features


def _window_feature(
    example_index: int, window_index: int, windows: list[tuple[int, int]], query_ids: list[int],
    doc_ids: list[int], offsets: list[tuple[int, int]], answer: tuple[int, int] | None,
    tokenizer: Tokenizer, max_seq_length: int,
) -> SquadFeature:
    start, length = windows[window_index]
    n_prefix = len(query_ids) + 2  # [CLS] query [SEP] before the window
    row = pairs.pack(query_ids, doc_ids[start:start + length], tokenizer.cls_token_id, tokenizer.sep_token_id)
    padded = {k: v[0].tolist() for k, v in pairs.pad([row], max_seq_length, tokenizer.pad_token_id).items()}
    token_offsets = [None] * n_prefix + offsets[start:start + length] + [None]
    max_context = ([False] * n_prefix + [is_max_context(windows, window_index, start + j) for j in range(length)]
                   + [False])
    start_position = end_position = 0
    if answer is not None and start <= answer[0] and answer[1] < start + length:
        start_position, end_position = (answer[0] - start + n_prefix, answer[1] - start + n_prefix)
    pad = max_seq_length - len(row[0])
    return SquadFeature(
        example_index=example_index, window_index=window_index, **padded,
        token_offsets=token_offsets + [None] * pad,
        token_is_max_context=max_context + [False] * pad,
        start_position=start_position, end_position=end_position,
    )


def features_to_tensors(features: list[SquadFeature]) -> dict[str, torch.Tensor]:
    """`input_ids`, `attention_mask`, `token_type_ids` (F, max_seq_length), `start_positions`, `end_positions` (F,)."""
    return {
        "input_ids": torch.tensor([f.input_ids for f in features], dtype=torch.int64),
        "attention_mask": torch.tensor([f.attention_mask for f in features], dtype=torch.int64),
        "token_type_ids": torch.tensor([f.token_type_ids for f in features], dtype=torch.int64),
        "start_positions": torch.tensor([f.start_position for f in features], dtype=torch.int64),
        "end_positions": torch.tensor([f.end_position for f in features], dtype=torch.int64),
    }


def answerability_tensors(features: list[SquadFeature]) -> dict[str, torch.Tensor]:
    """`p_mask` (F, T): 1 where no answer can start or end (query, [SEP], padding), 0 on [CLS] and the
    context, as the official run_squad_v2; `is_impossible` (F,): the window has no answer (labelled [CLS])."""
    p_mask = [[0 if offset is not None or i == 0 else 1 for i, offset in enumerate(f.token_offsets)]
              for f in features]
    return {"p_mask": torch.tensor(p_mask, dtype=torch.int64),
            "is_impossible": torch.tensor([f.start_position == 0 for f in features], dtype=torch.int64)}


# ----------------------------------------------------------------------------------------------------------
# Decoding


def _example_rows(examples: list[SquadExample], features: list[SquadFeature]):
    """Each example with the feature rows (windows) built from it; every example must have one."""
    rows: dict[int, list[int]] = defaultdict(list)
    for row, feature in enumerate(features):
        rows[feature.example_index].append(row)
    for index, example in enumerate(examples):
        if not rows[index]:
            raise ValueError(f"no feature for question {example.qid!r}: decode the features built from these examples")
        yield example, rows[index]


def decode_predictions(
    examples: list[SquadExample],
    features: list[SquadFeature],
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    config: SquadConfig,
    version_2: bool,
    null_threshold: float = 0.0,
) -> SquadPredictions:
    """Answers from the model's `start_logits`, `end_logits` (F, max_seq_length), row i for `features[i]`.

    `version_2` adds the null option: a question is answered "" when its null odds exceed `null_threshold`.
    """
    start_logits, end_logits = np.asarray(start_logits, dtype=np.float64), np.asarray(end_logits, dtype=np.float64)
    if start_logits.shape != end_logits.shape or len(start_logits) != len(features):
        raise ValueError(f"logits {start_logits.shape} / {end_logits.shape} do not match {len(features)} features")
    result = SquadPredictions({}, {}, {}, {})
    for example, rows in _example_rows(examples, features):
        spans = [span for row in rows for span in
                 _window_spans(features[row], start_logits[row], end_logits[row], example.context, config)]
        nbest = _best_distinct(spans, config.n_best_size)
        best = nbest[0] if nbest else None
        result.best_non_null[example.qid] = best.text if best else ""
        if version_2:
            # The null score is the lowest over windows (BERT's rule): a window that sees the answer should
            # not be outvoted by windows that cannot see it and rightly point at [CLS].
            null_row = min(rows, key=lambda r: start_logits[r, 0] + end_logits[r, 0])
            null = Candidate("", float(start_logits[null_row, 0]), float(end_logits[null_row, 0]), 0.0)
            nbest = sorted([*nbest, null], key=lambda c: c.start_logit + c.end_logit, reverse=True)
            best_score = best.start_logit + best.end_logit if best else -math.inf
            result.null_odds[example.qid] = null.start_logit + null.end_logit - best_score
        result.nbest[example.qid] = _with_probabilities(nbest)
    result.predictions = (result.with_threshold(null_threshold) if version_2 else dict(result.best_non_null))
    return result


def decode_beam_predictions(
    examples: list[SquadExample],
    features: list[SquadFeature],
    start_top_log_probs: np.ndarray,
    start_top_index: np.ndarray,
    end_top_log_probs: np.ndarray,
    end_top_index: np.ndarray,
    cls_logits: np.ndarray,
    config: SquadConfig,
    null_threshold: float = 0.0,
) -> SquadPredictions:
    """Answers from the answerability head's beam: start_top_* (F, k), end_top_* (F, k * k_end) where
    entry i * k_end + j is the j-th end for the i-th start, cls_logits (F,). Always SQuAD 2.0.

    Candidates keep the plain decoder's validity rules; `Candidate.start_logit` / `end_logit` hold the
    log-probabilities. `null_odds` is the smallest cls logit over the question's windows.
    """
    k = start_top_index.shape[1]
    k_end = end_top_index.shape[1] // k
    result = SquadPredictions({}, {}, {}, {})
    for example, rows in _example_rows(examples, features):
        spans = []
        for row in rows:
            feature = features[row]
            for i in range(k):
                for j in range(k_end):
                    s, e = int(start_top_index[row, i]), int(end_top_index[row, i * k_end + j])
                    span = _span(feature, s, e, example.context, config)
                    if span is not None:
                        spans.append(Candidate(example.context[span[0]:span[1]], float(start_top_log_probs[row, i]),
                                               float(end_top_log_probs[row, i * k_end + j]), 0.0, *span))
        nbest = _best_distinct(spans, config.n_best_size)
        result.best_non_null[example.qid] = nbest[0].text if nbest else ""
        # The official score_null: the window most confident that an answer exists speaks for the question.
        result.null_odds[example.qid] = float(min(cls_logits[r] for r in rows)) if nbest else math.inf
        result.nbest[example.qid] = _with_probabilities(nbest)
    result.predictions = result.with_threshold(null_threshold)
    return result


def _span(feature: SquadFeature, s: int, e: int, context: str, config: SquadConfig) -> tuple[int, int] | None:
    """The character span [start, end) in the context of tokens s..e of the window, or None when that is not a
    valid answer span."""
    if s >= len(feature.token_offsets) or e >= len(feature.token_offsets):
        return None
    first, last = feature.token_offsets[s], feature.token_offsets[e]
    if first is None or last is None or not feature.token_is_max_context[s]:
        return None
    if e < s or e - s + 1 > config.max_answer_length:
        return None
    # zero-width "▁" spans would pose as the null answer
    return (first[0], last[1]) if context[first[0]:last[1]] else None


def _window_spans(
    feature: SquadFeature, start_logits: np.ndarray, end_logits: np.ndarray, context: str, config: SquadConfig
) -> list[Candidate]:
    """Valid spans among the window's n-best starts x n-best ends, texts cut from the original context."""
    starts = np.argsort(-start_logits, kind="stable")[: config.n_best_size]
    ends = np.argsort(-end_logits, kind="stable")[: config.n_best_size]
    spans = []
    for s in starts:
        for e in ends:
            span = _span(feature, int(s), int(e), context, config)
            if span is not None:
                spans.append(Candidate(context[span[0]:span[1]], float(start_logits[s]), float(end_logits[e]), 0.0,
                                       *span))
    return spans


def _best_distinct(spans: list[Candidate], n: int) -> list[Candidate]:
    """The `n` highest-scoring spans with distinct texts (windows overlap, so texts repeat)."""
    seen: set[str] = set()
    best = []
    for span in sorted(spans, key=lambda c: c.start_logit + c.end_logit, reverse=True):
        if span.text not in seen:
            seen.add(span.text)
            best.append(span)
            if len(best) == n:
                break
    return best


def _with_probabilities(nbest: list[Candidate]) -> list[Candidate]:
    if not nbest:
        return []
    scores = np.array([c.start_logit + c.end_logit for c in nbest])
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    return [Candidate(c.text, c.start_logit, c.end_logit, float(p), c.start, c.end) for c, p in zip(nbest, probs)]


def choose_null_threshold(examples: list[SquadExample], decoded: SquadPredictions, metric: str = "f1") -> float:
    """The null-odds threshold maximising `metric` ("f1" or "exact") on these labelled examples.

    The official script's `find_best_thresh` over `null_odds`: answer a question when its odds are at most
    the threshold. Returns -inf when abstaining everywhere scores best.
    """
    gold = {example.qid: [text for text, _ in example.answers] for example in examples}
    exact, f1 = metrics.squad_raw_scores(gold, decoded.best_non_null, "2.0")
    scores = {"f1": f1, "exact": exact}[metric]
    has_answer = {qid: bool(answers) for qid, answers in gold.items()}
    _, threshold = metrics.find_best_thresh(decoded.best_non_null, scores, decoded.null_odds, has_answer,
                                            start_thresh=-math.inf)
    return threshold
