"""`litebert tokenizer train`'s settings: ALBERT's SentencePiece recipe (unigram, 30k pieces, lower-cased)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenizerTrainConfig:
    """Arguments of `tokenizer.train_sentencepiece` besides the input files and the output directory."""

    vocab_size: int = 30000
    """Pieces in the vocabulary, the specials included (ALBERT's: 30,000)."""
    do_lower_case: bool = True
    """Lower-case before training and encoding (ALBERT's released models are uncased)."""
    keep_accents: bool = False
    """Keep accents (else they are stripped, as ALBERT's English models do); keep them for most other languages."""
    character_coverage: float = 0.99995
    """Share of characters the model must cover; the rarest others become <unk>."""
    input_sentence_size: int = 10_000_000
    """Sentences SentencePiece samples from the corpus (memory is bounded by this, not by the corpus)."""
    shuffle_input_sentence: bool = True
    """Sample the sentences at random (else take the first ones)."""
    num_threads: int | None = None
    """None: all cores."""
    seed: int = 12345
    """Seed of SentencePiece's sentence sampling: the same corpus and seed give the same model."""
