"""`litebert data create`'s settings: how documents become examples, and how those are masked.

The manifest of a data directory records `CreateOptions.manifest_settings()`, so these names are also the
data format's: change them only with the format version (`data.shards.FORMAT_VERSION`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SENTENCE_TASKS = ("sop", "nsp", "none")
MASKING_MODES = ("static", "dynamic")


@dataclass(frozen=True)
class ExampleOptions:
    """How documents are cut into instances.

    max_seq_length: pieces per instance including [CLS] and [SEP]s.
    short_seq_prob: probability that a document aims at a random shorter length.
    sentence_task: "sop" (ALBERT), "nsp" (BERT) or "none" (single segment; corpora without document order).
    """

    max_seq_length: int = 512
    short_seq_prob: float = 0.1
    sentence_task: str = "sop"

    def __post_init__(self) -> None:
        if self.sentence_task not in SENTENCE_TASKS:
            raise ValueError(f"sentence_task must be one of {SENTENCE_TASKS}, got {self.sentence_task!r}")
        if self.max_seq_length < 5:
            raise ValueError(f"max_seq_length must be >= 5, got {self.max_seq_length}")
        if not 0.0 <= self.short_seq_prob <= 1.0:
            raise ValueError(f"short_seq_prob must be in [0, 1], got {self.short_seq_prob}")

    @property
    def max_num_tokens(self) -> int:
        """Text pieces per instance: max_seq_length minus [CLS] and one or two [SEP]."""
        return self.max_seq_length - (2 if self.sentence_task == "none" else 3)


@dataclass(frozen=True)
class MaskingOptions:
    """How many pieces are masked and how.

    masked_lm_prob: fraction of a sequence's pieces (specials included) to predict.
    max_predictions_per_seq: hard cap on predictions per sequence (the stored/padded prediction width).
    ngram: longest span in words; span length n is drawn with p(n) ∝ 1/n.
    whole_word: mask whole words (ALBERT); False treats every piece as a word of its own (BERT's original
        piece-level masking, where the rest of a word stays visible: an easier task that short runs learn
        from faster).
    """

    masked_lm_prob: float = 0.15
    max_predictions_per_seq: int = 20
    ngram: int = 3
    whole_word: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.masked_lm_prob < 1.0:
            raise ValueError(f"masked_lm_prob must be in [0, 1), got {self.masked_lm_prob}")
        if self.max_predictions_per_seq < 1:
            raise ValueError(f"max_predictions_per_seq must be >= 1, got {self.max_predictions_per_seq}")
        if self.ngram < 1:
            raise ValueError(f"ngram must be >= 1, got {self.ngram}")

    def ngram_probabilities(self) -> np.ndarray:
        """p(n) for n = 1..ngram, proportional to 1/n. Shape (ngram,)."""
        p = 1.0 / np.arange(1, self.ngram + 1)
        return p / p.sum()

    def target(self, length: int) -> int:
        """Pieces to predict in a sequence of `length` pieces before the cap (0 when masked_lm_prob is 0)."""
        if self.masked_lm_prob == 0.0:
            return 0
        return max(1, int(round(length * self.masked_lm_prob)))


@dataclass(frozen=True)
class CreateOptions:
    """Settings of `litebert data create` (the official flags, plus the sentence task and masking mode)."""

    max_seq_length: int = 512
    """Pieces per example, [CLS] and [SEP]s included."""
    masked_lm_prob: float = 0.15
    """Fraction of an example's pieces to predict."""
    max_predictions_per_seq: int = 20
    """Cap on predictions per example (the official 20 at length 512)."""
    ngram: int = 3
    """Longest masked span, in words; a span of n words is drawn with p(n) proportional to 1/n."""
    whole_word: bool = True
    """Mask whole words (ALBERT); false: single pieces, each its own word (BERT's original masking)."""
    dupe_factor: int | None = None
    """Times each document is cut and masked; none: 10 with static masking, 1 with dynamic."""
    short_seq_prob: float = 0.1
    """Chance that a document aims at a random shorter length."""
    split_long_lines: bool = True
    """Cut a line longer than an example at word starts into lines that fit, so a corpus with a paragraph or a
    document per line keeps most of its text; false: the official code's truncation, which keeps one example's
    worth of such a line and drops the rest (counted either way as `truncated_pieces`)."""
    seed: int = 12345
    """Seed of every random choice: the same input and seed give the same shards, whatever `workers`."""
    sentence_task: str = "sop"
    """"sop" (ALBERT's sentence order), "nsp" (BERT's next sentence) or "none" (one segment: corpora without
    document order)."""
    masking: str = "static"
    """"static": masks drawn here and stored (as the paper); "dynamic": drawn by the dataset each epoch from
    the stored word starts."""
    shard_size: int = 50_000
    """Examples per shard file."""
    eval_fraction: float = 0.0
    """Share of documents held out as the `eval` split (held-out MLM and SOP accuracy in pretraining)."""
    workers: int = 1
    """Processes that tokenize and build examples (the output does not depend on it)."""
    chunk_documents: int = 256
    """Documents per unit of work (a chunk also closes at 1 MiB of text); also the pool NSP draws random
    documents from."""

    def __post_init__(self) -> None:
        if self.masking not in MASKING_MODES:
            raise ValueError(f"masking must be one of {MASKING_MODES}, got {self.masking!r}")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if self.dupe_factor is not None and self.dupe_factor < 1:
            raise ValueError(f"dupe_factor must be >= 1, got {self.dupe_factor}")
        if self.workers < 1 or self.chunk_documents < 1 or self.seed < 0:
            raise ValueError("workers and chunk_documents must be >= 1 and seed >= 0")
        self.example_options()
        self.masking_options()

    @property
    def dupes(self) -> int:
        if self.dupe_factor is not None:
            return self.dupe_factor
        return 10 if self.masking == "static" else 1

    def example_options(self) -> ExampleOptions:
        return ExampleOptions(self.max_seq_length, self.short_seq_prob, self.sentence_task)

    def masking_options(self) -> MaskingOptions:
        return MaskingOptions(self.masked_lm_prob, self.max_predictions_per_seq, self.ngram, self.whole_word)

    def manifest_settings(self) -> dict:
        """The settings that determine the output (not `workers`, which doesn't)."""
        settings = asdict(self)
        del settings["workers"]
        settings["dupe_factor"] = self.dupes
        return settings
