"""n-gram whole-word masking for the masked-LM objective (ALBERT, Lan et al. 2020, section 4.1).

ALBERT masks spans of up to `ngram` (3) consecutive *words*, not single pieces: a span length n is
drawn with p(n) ∝ 1/n, so for n ≤ 3 the lengths are 1, 2, 3 words with probability 6/11, 3/11, 2/11.
A word is a piece that starts a word (sentencepiece's "▁" rule, and every piece in scripts written without
spaces: `tokenizer.word_start_flags()`) plus the pieces that continue it; a word is always masked whole, so the model never sees half a word and predicts
the rest from the visible half.

A sequence has a target of `round(T * masked_lm_prob)` predictions (T counts [CLS] and [SEP], as the
official code) and a hard cap of `max_predictions_per_seq`. Each chosen piece is replaced by [MASK] 80% of
the time, by a random piece 10% and kept 10%; the model must predict every chosen piece, so it cannot
learn that only [MASK] positions matter.

Spans are drawn one at a time: n ~ p(n), then a window of n free words of one segment, uniformly among
those that fit. Near the target (fewer pieces left than a mean span), masking stops with probability
1 - left/mean_span, a rule that does not look at the next span's length, so the expected count is about
the target and long spans are not dropped more often than short ones. The first span is always placed.
When the cap is below the target (ALBERT's 20 predictions at length 512) the cap is filled exactly, like
the official code: a span that does not fit is replaced by the longest shorter one that does.

How this differs from google-research/albert's `create_masked_lm_predictions`, and why:
- The official code visits word starts in a shuffled order, draws n for each, and *skips* the draw
  when any of its pieces is already covered, and it fills the target exactly by shortening the last spans.
  Long spans collide and get shortened more often, which biases the realised lengths toward 1 (the
  shortening alone gives 57/26/16% instead of 55/27/18% at length 128 with 20 predictions). Its "skip covered pieces" loop before
  that check is a no-op: its `continue` only continues the innermost loop. Here n is drawn first and then
  placed, and the stop near the target ignores n, so the realised lengths follow p(n) within half a point.
- Its n draw used `np.random.choice`, the unseeded global generator, so masks were not reproducible
  from the seed; here every draw comes from the `numpy.random.Generator` passed in.
- Its first release reversed p(n) when `favor_shorter_ngram` was set (favouring 3-grams); here p(n) ∝ 1/n
  with no flag.
- Its word grouping skipped [CLS]/[SEP] without closing the current word, so a continuation piece at the
  start of segment B (after truncation from the front) joined the last word of A across [SEP], and n-grams
  spanned the two segments. Here a special token ends a word, the first piece after it starts one, and a
  span never crosses [SEP].
- Random replacement pieces are drawn from the non-special vocabulary (the official drew from the
  whole vocabulary, [CLS] and <pad> included).
"""
from __future__ import annotations

import bisect
import functools
import itertools
import operator
from dataclasses import dataclass

import numpy as np

from litebert.config.data import MaskingOptions  # noqa: F401 (the settings this module takes)


@dataclass(frozen=True)
class MaskingVocab:
    """The pieces masking needs: [MASK], the specials that are never masked, and random replacements.

    mask_token_id: id of [MASK].
    special_ids: ids never chosen as targets nor as random replacements, shape (S,).
    replacement_ids: ids a random replacement is drawn from (the vocabulary minus specials), shape (R,).
    is_special: (vocab_size,) bool lookup table of special_ids.
    """

    mask_token_id: int
    special_ids: np.ndarray
    replacement_ids: np.ndarray
    is_special: np.ndarray

    @classmethod
    def build(cls, vocab_size: int, mask_token_id: int, special_ids: list[int]) -> "MaskingVocab":
        specials = np.unique(np.asarray(special_ids, dtype=np.int64))
        replacements = np.setdiff1d(np.arange(vocab_size, dtype=np.int64), specials)
        is_special = np.zeros(vocab_size, dtype=bool)
        is_special[specials] = True
        return cls(mask_token_id, specials, replacements, is_special)


@dataclass(frozen=True)
class MaskedSpans:
    """The masking of one sequence.

    positions: sorted positions of the pieces to predict, shape (P,), P <= budget.
    replacement_ids: the piece the input shows at each position ([MASK], random or the original), (P,).
    ngram_lengths: words in each chosen span, in the order drawn, shape (S,); kept for statistics.
    """

    positions: np.ndarray
    replacement_ids: np.ndarray
    ngram_lengths: np.ndarray


def word_boundaries(is_word_start: np.ndarray, is_special: np.ndarray) -> tuple[list[int], list[int], list[int]]:
    """Group the non-special pieces of a sequence into words.

    is_word_start: (T,) bool, True where the piece begins a word (the tokenizer's "▁" rule).
    is_special: (T,) bool, True at [CLS]/[SEP]: never masked, and they end the current word.
    Returns (starts, ends, segment), each W ints: word w covers pieces [starts[w], ends[w]), and
    segment[w] counts the specials before it, so words of A and B never share a span.
    The masks are numpy's (a few calls whatever T); the words come back as lists, which the span drawing
    indexes one at a time (numpy's per-call cost outweighs its speed on single elements).
    """
    is_word_start = np.asarray(is_word_start, dtype=bool)
    is_special = np.asarray(is_special, dtype=bool)
    # The first piece after a special starts a word even when it continues one in the source text
    # (segment B truncated from the front); otherwise it would join the word before [SEP].
    after_special = np.concatenate(([True], is_special[:-1]))
    opens = ~is_special & (is_word_start | after_special)
    # A word runs to the next break: a word start or a special piece, whichever comes first.
    is_break = opens | is_special
    breaks = np.flatnonzero(is_break).tolist() + [len(is_special)]
    opens_at_break = opens[is_break].tolist()
    starts = [b for b, o in zip(breaks, opens_at_break) if o]
    ends = [breaks[i + 1] for i, o in enumerate(opens_at_break) if o]
    return starts, ends, np.cumsum(is_special)[opens].tolist()


@functools.lru_cache(maxsize=None)
def _span_law(ngram: int) -> tuple[tuple[float, ...], float]:
    """p(n) ∝ 1/n for n = 1..ngram, as (cumulative sums, not normalised to exactly 1; E[n])."""
    p = 1.0 / np.arange(1, ngram + 1)
    p /= p.sum()
    return tuple(np.cumsum(p).tolist()), float(p @ np.arange(1, ngram + 1))


def choose_spans(
    starts: list[int],
    ends: list[int],
    segment: list[int],
    target: int,
    cap: int,
    ngram: int,
    rng: np.random.Generator,
) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Pick non-overlapping spans of whole words: about `target` pieces in expectation, never over `cap`.

    starts, ends, segment: W ints each, from `word_boundaries`.
    target: round(T * masked_lm_prob); cap: max_predictions_per_seq.
    Returns (spans, ngram_lengths): spans as (first_word, n) pairs, and the n of each span, (S,).
    """
    windows = _Windows(segment, list(itertools.accumulate(map(operator.sub, ends, starts), initial=0)), ngram)
    cdf, mean_n = _span_law(ngram)
    budget = min(target, cap)
    # Mean pieces of a span in this sequence: E[n] words times the mean word length.
    mean_span = mean_n * windows.pieces[-1] / max(len(starts), 1)
    spans: list[tuple[int, int]] = []
    used_pieces = 0
    while used_pieces < budget:
        left = budget - used_pieces
        if spans and target <= cap and left < mean_span and rng.random() * mean_span >= left:
            # Near the target, stop with a probability that does not depend on the next span's length,
            # so the expected count stays near the target and long spans are not dropped more often
            # than short ones (the official rule, shortening the last spans to fit, biases toward n=1).
            # The first span is always placed: every example has a prediction, as in the official code.
            break
        n = bisect.bisect_right(cdf, rng.random() * cdf[-1]) + 1
        # Draw n first, then place it among windows of n free words of one segment: placing first and
        # rejecting collisions (the official order) rejects long spans more often.
        room = cap - used_pieces if target <= cap else left
        first, m = windows.place(n, room, rng)
        # When no window of n words fits (the cap binds, as with 20 predictions at length 512, or the
        # segments are short), take the longest shorter span that fits, as the official code does.
        for shorter in range(n - 1, 0, -1):
            if first >= 0:
                break
            first, m = windows.place(shorter, room, rng)
        if first < 0:
            break
        used_pieces += windows.cover(first, m)
        spans.append((first, m))
    return spans, np.array([m for _, m in spans], dtype=np.int64)


class _Windows:
    """The free windows of n consecutive words within one segment, for n = 1..ngram.

    segment: W ints, the segment of each word; pieces: W+1 prefix sums of word lengths in pieces.
    free[n]: ascending first words of the n-word windows that lie in one segment and hold no masked word.
    Covering a span deletes the windows it overlaps from each list, so a placement costs a list pick, not a
    scan of all W words (W reaches ~350 at length 512).
    """

    def __init__(self, segment: list[int], pieces: list[int], ngram: int):
        self.pieces = pieces
        # Words [a, b) of each segment (segment counts never decrease along the sequence).
        bounds = [(bisect.bisect_left(segment, s), bisect.bisect_right(segment, s)) for s in sorted(set(segment))]
        self.free = {n: list(itertools.chain.from_iterable(range(a, b - n + 1) for a, b in bounds))
                     for n in range(1, ngram + 1)}
        # Every n-word window fits a room of n times the longest word: no size check is needed then.
        self.longest_word = max(map(operator.sub, pieces[1:], pieces[:-1]), default=0)

    def place(self, n: int, room: int, rng: np.random.Generator) -> tuple[int, int]:
        """A uniformly drawn free window of n words with at most `room` pieces: (first_word, n), or (-1, n)."""
        valid, pieces = self.free[n], self.pieces
        if room < n * self.longest_word:
            valid = [w for w in valid if pieces[w + n] - pieces[w] <= room]
        if not valid:
            return -1, n
        return valid[rng.integers(len(valid))], n

    def cover(self, first: int, m: int) -> int:
        """Mark words first..first+m-1 as masked; return their number of pieces."""
        for n, windows in self.free.items():
            # The n-word windows starting at first-n+1..first+m-1 overlap the span.
            del windows[bisect.bisect_left(windows, first - n + 1):bisect.bisect_left(windows, first + m)]
        return self.pieces[first + m] - self.pieces[first]


def mask_ngrams(
    input_ids: np.ndarray,
    is_word_start: np.ndarray,
    options: MaskingOptions,
    vocab: MaskingVocab,
    rng: np.random.Generator,
) -> MaskedSpans:
    """Choose whole-word n-gram spans of one sequence and what the input shows in their place.

    input_ids: (T,) piece ids of `[CLS] A [SEP] B [SEP]` (or `[CLS] A [SEP]`), unmasked.
    is_word_start: (T,) bool, the tokenizer's word-start flag of each piece.
    Returns MaskedSpans with positions sorted ascending; the caller keeps `input_ids[positions]` as labels.
    """
    input_ids = np.asarray(input_ids)
    is_special = vocab.is_special[input_ids]
    if not options.whole_word:
        is_word_start = np.ones(len(input_ids), dtype=bool)
    starts, ends, segment = word_boundaries(is_word_start, is_special)
    spans, ngram_lengths = choose_spans(
        starts, ends, segment, options.target(len(input_ids)), options.max_predictions_per_seq, options.ngram, rng
    )
    # Spans never overlap, so the sorted pieces are unique.
    positions = np.array(sorted(t for w, n in spans for t in range(starts[w], ends[w + n - 1])), dtype=np.int64)
    # 80% [MASK], 10% a random piece, 10% the original piece, decided per piece as in BERT.
    decide = rng.random(len(positions))
    random_pieces = vocab.replacement_ids[rng.integers(len(vocab.replacement_ids), size=len(positions))]
    replacement = np.where(decide < 0.8, vocab.mask_token_id,
                           np.where(decide < 0.9, random_pieces, input_ids[positions]))
    return MaskedSpans(positions, replacement.astype(np.int64), ngram_lengths)
