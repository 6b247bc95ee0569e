"""Documents -> training instances `[CLS] A [SEP] B [SEP]` for sentence-order prediction (SOP), next-sentence
prediction (NSP), or a single segment `[CLS] A [SEP]` (no sentence task).

The algorithm is `create_instances_from_document` of google-research/albert (itself BERT's):

1. A document is a list of segments (the lines of the input). Segments are gathered into a chunk until it
   holds `target_seq_length` pieces. We don't concatenate the whole document and cut it anywhere: A and B
   must end at segment boundaries, or the sentence task becomes a check of whether a sentence is cut.
2. `target_seq_length` is `max_seq_length - 3` (room for [CLS] [SEP] [SEP]), but with probability
   `short_seq_prob` a random length in [2, max]: fine-tuning sees short inputs, pretraining should too.
   As in the official code it is drawn once per document. It is a soft target; `max_seq_length` is hard.
3. The chunk is split at a random segment boundary into A (first segments) and B (the rest).
   - SOP (ALBERT): with probability 0.5, A and B are swapped; label 1 = swapped, 0 = in order. Both
     come from one document, so topic cannot give the answer away; only the order can.
   - NSP (BERT): with probability 0.5, B is replaced by segments from a random *other* document, taken
     from a random start until they fill the rest of the target; label 1 = random. The segments of the
     chunk that B would have used are "put back" (the next chunk starts at them), so they aren't wasted.
   - none: the whole chunk is A, label -100 (ignored by the loss).
4. The pair is truncated to `max_seq_length - 3` pieces by removing pieces from the longer of A and B,
   each time from its front or back at random, so the model does not learn that text always starts
   at a sentence boundary.

What differs from the official code, and why:
- A chunk of a single segment (a one-line document, the last line of one, or one very long line) got its
  B from a random document and was labelled 1, which under SOP means "swapped": a false label, and SOP
  then becomes topic prediction for those examples. Here such a segment is split inside itself, at a random
  word start (at a random piece if it is one word), and goes through the same 50% rule; a single piece cannot
  be split and makes no example (counted as `short_chunks`).
- NSP's random document could be the current one (ten tries, then used anyway); here it is drawn among the
  other documents of the pool. The pool is the document's `DocumentChunk` and split (train/eval) rather
  than the whole corpus, which keeps memory flat and keeps eval text out of training examples. With no
  other document in the pool, the actual next segments are used (label 0).
- Randomness comes from the `numpy.random.Generator` passed in (seeded per document by the caller), not
  a module-wide `random.Random`, so the output is independent of how documents are spread over workers.
- A line longer than an example (`max_num_tokens` pieces: a paragraph or a whole document per line) lost all
  but one example's worth of pieces to truncation. `split_long_segments` cuts such a line at word starts into
  segments that fit, before chunking, so most of its text reaches examples and its parts keep their order for SOP
  (`CreateOptions.split_long_lines`; off, the official truncation).
- The pieces truncation does remove (the official algorithm overshoots its target by the last segment of each
  chunk) are counted and reported, as `truncated_pieces`.
- Documents are not shuffled here: shards are written in corpus order and `PretrainingDataset` shuffles the
  examples per epoch, which needs no corpus in memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from litebert import pairs
from litebert.config.data import ExampleOptions

IGNORE_LABEL = -100  # sentence label without a sentence task; torch's cross-entropy ignores it by default


@dataclass
class Instance:
    """One training instance, unmasked.

    input_ids: (T,) `[CLS] A [SEP] B [SEP]`, or `[CLS] A [SEP]` without a sentence task.
    a_length: pieces of `[CLS] A [SEP]`; token type is 0 before it and 1 from it on.
    label: SOP 1 = swapped / NSP 1 = random next / 0 otherwise; IGNORE_LABEL without a sentence task.
    """

    input_ids: np.ndarray
    a_length: int
    label: int


@dataclass(frozen=True)
class SpecialIds:
    """Ids of the pieces that frame an instance."""

    cls: int
    sep: int


class DocumentInstances(NamedTuple):
    """What `create_instances` makes of one document."""

    instances: list[Instance]
    """In document order."""
    short_chunks: int
    """Chunks too short to make an instance (a single piece)."""
    truncated_pieces: int
    """The document's pieces that truncation removed (NSP's random B from another document not counted)."""


def create_instances(
    pool: list[list[np.ndarray]],
    index: int,
    options: ExampleOptions,
    special: SpecialIds,
    word_start: np.ndarray,
    rng: np.random.Generator,
) -> DocumentInstances:
    """Instances from document `pool[index]`.

    pool: documents, each a list of non-empty segments (piece id arrays); the others supply NSP's random B.
    word_start: (vocab_size,) bool, where a piece begins a word (to split one-segment chunks between words).
    """
    document = pool[index]
    target = options.max_num_tokens
    if rng.random() < options.short_seq_prob:
        target = int(rng.integers(2, options.max_num_tokens + 1))
    result = DocumentInstances([], 0, 0)
    chunk: list[np.ndarray] = []
    length = 0
    i = 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
            if options.sentence_task == "none":
                (instance, truncated), put_back = _single(chunk, options, special, rng), 0
            else:
                instance, put_back, truncated = _pair(chunk, pool, index, target, options, special, word_start, rng)
            if instance is None:
                result = result._replace(short_chunks=result.short_chunks + 1)
            else:
                result.instances.append(instance)
            result = result._replace(truncated_pieces=result.truncated_pieces + truncated)
            i -= put_back
            chunk, length = [], 0
        i += 1
    return result


def split_long_segments(document: list[np.ndarray], limit: int, word_start: np.ndarray) -> list[np.ndarray]:
    """The document with every segment longer than `limit` pieces cut into consecutive parts of at most
    `limit`, each cut at the last word start that fits (inside a word only when a word is longer than `limit`)."""
    out: list[np.ndarray] = []
    for segment in document:
        while len(segment) > limit:
            starts = np.flatnonzero(word_start[segment[1:limit + 1]]) + 1  # cut before piece `cut`, 1 <= cut <= limit
            cut = int(starts[-1]) if starts.size else limit
            out.append(segment[:cut])
            segment = segment[cut:]
        out.append(segment)
    return out


def _single(chunk: list[np.ndarray], options: ExampleOptions, special: SpecialIds, rng: np.random.Generator
            ) -> tuple[Instance, int]:
    """`[CLS] chunk [SEP]`, truncated from a random end; and the pieces truncation removed."""
    text = np.concatenate(chunk)
    tokens, _ = pairs.truncate_pair(text, None, options.max_num_tokens, rng)
    input_ids = pairs.pack(tokens, None, special.cls, special.sep)[0].astype(np.int32)
    return Instance(input_ids, len(input_ids), IGNORE_LABEL), len(text) - len(tokens)


def _pair(
    chunk: list[np.ndarray],
    pool: list[list[np.ndarray]],
    index: int,
    target: int,
    options: ExampleOptions,
    special: SpecialIds,
    word_start: np.ndarray,
    rng: np.random.Generator,
) -> tuple[Instance | None, int, int]:
    """`[CLS] A [SEP] B [SEP]` from a chunk, with its label. Returns (instance or None, segments put back,
    pieces of this document that truncation removed)."""
    if len(chunk) >= 2:
        # `a_end` is how many segments of the chunk go into A.
        a_end = int(rng.integers(1, len(chunk)))
        tokens_a, tokens_b = np.concatenate(chunk[:a_end]), np.concatenate(chunk[a_end:])
    else:
        a_end = 1
        split = _split_point(chunk[0], word_start, rng)
        if split is None:
            return None, 0, 0
        tokens_a, tokens_b = chunk[0][:split], chunk[0][split:]
    label = 0
    put_back = 0
    others = len(pool) - 1
    if options.sentence_task == "nsp" and rng.random() < 0.5 and others > 0:
        label = 1
        tokens_b = _random_next(pool, index, target - len(tokens_a), rng)
        # The segments B would have used were not used: put them back for the next chunk.
        put_back = len(chunk) - a_end
    elif options.sentence_task == "sop" and rng.random() < 0.5:
        label = 1
        tokens_a, tokens_b = tokens_b, tokens_a
    # The document's pieces this chunk uses up: all of it, or with a random B only A's segments (the others
    # were put back; a one-segment chunk's own B part is dropped, as in the official code).
    random_next = label == 1 and options.sentence_task == "nsp"
    consumed = sum(len(segment) for segment in (chunk[:a_end] if random_next else chunk))
    # BERT's truncate_seq_pair: pieces leave the longer side, from its front or back at random
    tokens_a, tokens_b = pairs.truncate_pair(tokens_a, tokens_b, options.max_num_tokens, rng)
    input_ids = pairs.pack(tokens_a, tokens_b, special.cls, special.sep)[0].astype(np.int32)
    kept = len(tokens_a) + (0 if random_next else len(tokens_b))
    return Instance(input_ids, len(tokens_a) + 2, label), put_back, consumed - kept


def _split_point(segment: np.ndarray, word_start: np.ndarray, rng: np.random.Generator) -> int | None:
    """Where a one-segment chunk is cut into A and B: a random word start after the first piece
    (a random piece when the segment is one word); None for a single piece."""
    if len(segment) < 2:
        return None
    starts = np.flatnonzero(word_start[segment[1:]]) + 1
    if starts.size:
        return int(starts[rng.integers(starts.size)])
    return int(rng.integers(1, len(segment)))


def _random_next(pool: list[list[np.ndarray]], index: int, target_b_length: int, rng: np.random.Generator) -> np.ndarray:
    """NSP's random B: segments of another document of the pool, from a random start, filling the target."""
    other = int(rng.integers(len(pool) - 1))
    other += other >= index  # skip the current document
    document = pool[other]
    start = int(rng.integers(len(document)))
    taken: list[np.ndarray] = []
    length = 0
    for segment in document[start:]:
        taken.append(segment)
        length += len(segment)
        if length >= target_b_length:
            break
    return np.concatenate(taken)
