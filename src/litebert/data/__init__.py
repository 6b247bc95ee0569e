"""Pretraining data, one module per stage: documents (raw text) -> examples (SOP/NSP pairs) -> masking
(n-gram whole-word masks) -> shards (binary files + manifest) -> dataset (shuffled, resumable batches).

`create` runs the first four as `litebert data create`; see docs/data.md. Their settings (CreateOptions,
ExampleOptions, MaskingOptions) live with every other setting in `litebert.config.data`.
"""
from litebert.config.data import SENTENCE_TASKS, CreateOptions, ExampleOptions, MaskingOptions
from litebert.data.create import create_pretraining_data
from litebert.data.dataset import Collator, Example, PretrainingDataset
from litebert.data.examples import IGNORE_LABEL
from litebert.data.masking import MaskingVocab, mask_ngrams

__all__ = [
    "IGNORE_LABEL",
    "SENTENCE_TASKS",
    "Collator",
    "CreateOptions",
    "Example",
    "ExampleOptions",
    "MaskingOptions",
    "MaskingVocab",
    "PretrainingDataset",
    "create_pretraining_data",
    "mask_ngrams",
]
