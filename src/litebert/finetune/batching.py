"""Padding-aware batching: batches of similar length, each padded only to its own longest row.

Fine-tuning inputs are encoded once, padded to `max_seq_length` (the official scripts feed them so, e.g. at
512 for GLUE). Most sentences are far shorter, and attention and feed-forward cost grows with the padded
length, so a batch of 20-token sentences padded to 512 spends almost all its time on padding.

Length bucketing (`bucketed_batches`) for training: shuffle the examples, cut the shuffled order into chunks
of `chunk_batches` batches, sort each chunk by length and cut it into batches, then shuffle the batches.
A batch therefore holds examples of similar length, while the chunking keeps the composition random
(a global sort would give the same batches every epoch and an easy-to-hard curriculum). `collate` then
trims the batch to its longest row. Evaluation batches (`eval_batches`) are simply sorted by length;
predictions are put back in example order by index.

`padding="fixed"` keeps the official behaviour (random batches at the full `max_seq_length`) for comparison.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from litebert.config.finetune import Padding

SEQUENCE_KEYS = ("input_ids", "attention_mask", "token_type_ids", "p_mask")
"""Tensors whose last dimension is the sequence; they are trimmed with the batch (and token-level `labels`)."""
FILL = {"input_ids": None, "p_mask": 1, "labels": -100}
"""What padding holds: input_ids the tokenizer's pad id, no answer in p_mask, no tag in token labels, else 0."""


def sequence_keys(tensors: dict[str, torch.Tensor]) -> list[str]:
    """The keys of `tensors` laid out along the sequence: SEQUENCE_KEYS, and `labels` when they are per token."""
    keys = [k for k in SEQUENCE_KEYS if k in tensors]
    labels = tensors.get("labels")
    # per-token labels are ids shaped like the input; multi-label targets (N, L) are floats, whatever L is
    if labels is not None and labels.shape == tensors["input_ids"].shape and not labels.is_floating_point():
        keys.append("labels")
    return keys


def fill_value(key: str, pad_token_id: int) -> int:
    value = FILL.get(key, 0)
    return pad_token_id if value is None else value


def lengths_of(tensors: dict[str, torch.Tensor]) -> np.ndarray:
    """Tokens (non-padding) per row (N,): the longest choice for multiple-choice inputs (N, C, T)."""
    mask = tensors["attention_mask"]
    lengths = mask.sum(-1)
    if lengths.dim() == 2:  # (N, C): a question is as long as its longest choice
        lengths = lengths.max(-1).values
    return lengths.numpy()


def bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                     chunk_batches: int = 50) -> list[np.ndarray]:
    """One epoch of training batches (index arrays) of similar length, in random order.

    Every index appears exactly once; only the last batch of each chunk may be short.
    """
    order = rng.permutation(len(lengths))
    chunk = batch_size * chunk_batches
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def random_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of training batches in plain shuffled order (the official scripts' sampling)."""
    order = rng.permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def training_batches(lengths: np.ndarray, batch_size: int, padding: Padding,
                     rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless training batches, epoch after epoch, each epoch reshuffled with `rng`."""
    if len(lengths) == 0:
        raise ValueError("no training examples")
    while True:
        if padding == "bucket":
            yield from bucketed_batches(lengths, batch_size, rng)
        else:
            yield from random_batches(len(lengths), batch_size, rng)


def eval_batches(lengths: np.ndarray, batch_size: int, padding: Padding) -> list[np.ndarray]:
    """Evaluation batches covering every row once: sorted by length when bucketing, else in order."""
    order = np.argsort(lengths, kind="stable") if padding == "bucket" else np.arange(len(lengths))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def collate(tensors: dict[str, torch.Tensor], index: np.ndarray, padding: Padding, max_seq_length: int,
            pad_token_id: int, multiple: int = 8) -> dict[str, torch.Tensor]:
    """Rows `index` of every tensor, sequence tensors fitted to the batch's length: with "fixed" exactly
    `max_seq_length`; with "bucket" the longest row rounded up to a `multiple` of tokens (fewer distinct
    shapes for the matmul kernels). Stored tensors may be shorter than `max_seq_length` (trimmed at encoding)."""
    rows = torch.from_numpy(np.asarray(index, dtype=np.int64))
    batch = {key: value[rows] for key, value in tensors.items()}
    if padding == "fixed":
        length = max_seq_length
    else:
        length = padded_length(int(lengths_of(batch).max()), max_seq_length, multiple)
    for key in sequence_keys(batch):
        batch[key] = fit_length(batch[key], length, fill_value(key, pad_token_id))
    return batch


def padded_length(longest: int, limit: int, multiple: int = 8) -> int:
    """The length a batch whose longest row is `longest` is padded to: rounded up to a `multiple` of tokens
    (fewer distinct shapes for the matmul kernels), never beyond `limit`."""
    return min(limit, -(-longest // multiple) * multiple)


def fit_length(x: torch.Tensor, length: int, value: int) -> torch.Tensor:
    """Cut or right-pad the last dimension of `x` (..., T) to `length` with `value`."""
    if x.shape[-1] >= length:
        return x[..., :length]
    return torch.nn.functional.pad(x, (0, length - x.shape[-1]), value=value)
