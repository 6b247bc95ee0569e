"""litebert: ALBERT (A Lite BERT, Lan et al. 2020) from scratch in PyTorch."""
from litebert.config import PRESETS, AlbertConfig
from litebert.model import (
    AlbertForMaskedLM,
    AlbertForMultipleChoice,
    AlbertForPreTraining,
    AlbertForQuestionAnswering,
    AlbertForSequenceClassification,
    AlbertForTokenClassification,
    AlbertModel,
)

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "AlbertConfig",
    "AlbertModel",
    "AlbertForPreTraining",
    "AlbertForMaskedLM",
    "AlbertForSequenceClassification",
    "AlbertForTokenClassification",
    "AlbertForQuestionAnswering",
    "AlbertForMultipleChoice",
]


def __getattr__(name: str):
    # The tokenizer pulls in sentencepiece; load it only when asked for.
    if name in ("AlbertTokenizer", "WordPieceTokenizer"):
        from litebert import tokenizer

        return getattr(tokenizer, name)
    if name == "pipeline":  # inference on raw text (litebert.pipelines)
        from litebert.pipelines import pipeline

        return pipeline
    raise AttributeError(f"module 'litebert' has no attribute {name!r}")
