"""The one pair encoder: `[CLS] A [SEP] B [SEP]` truncated, built and padded the same way everywhere.

The tokenizer (`AlbertTokenizer.__call__` / `encode`), the fine-tuning readers (GLUE pairs, RACE choices),
SQuAD's windows and the pretraining data all go through these three steps:

    truncate_pair   A and B lose pieces one at a time from the longer side, B on ties (BERT's
                    `_truncate_seq_pair`); from the back, or, with an `rng`, from the front or the back at
                    random (the pretraining data, as `create_pretraining_data.py`)
    pack            [CLS] A [SEP] (B [SEP]) ids, token types 0 on `[CLS] A [SEP]` and 1 on `B [SEP]`
    pad             rows right-padded to one length: input_ids, attention_mask (1 on real pieces), token_type_ids
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

Ids = TypeVar("Ids", list, np.ndarray)


def pair_cuts(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """(pieces cut from A, from B) so that the rest fits in `budget`: one at a time from the longer side, B on
    ties; in closed form (the longer is cut down to the shorter, then they alternate, B first)."""
    if budget < 0:
        raise ValueError(f"no room for any piece: {-budget} more special tokens than the maximum length allows")
    excess = len_a + len_b - budget
    if excess <= 0:
        return 0, 0
    first = min(excess, abs(len_a - len_b))
    rest = excess - first
    return (first if len_a > len_b else 0) + rest // 2, (first if len_a <= len_b else 0) + rest - rest // 2


def truncate_pair(ids_a: Ids, ids_b: Ids | None, budget: int,
                  rng: np.random.Generator | None = None) -> tuple[Ids, Ids | None]:
    """A and B (B may be None) cut to `budget` pieces together (see `pair_cuts`).

    rng None cuts from the back; with an rng each cut piece comes from the front or the back with probability
    0.5 (drawn as one binomial count per side, A first, only for a side that loses pieces)."""
    cut_a, cut_b = pair_cuts(len(ids_a), len(ids_b) if ids_b is not None else 0, budget)
    return _cut(ids_a, cut_a, rng), (_cut(ids_b, cut_b, rng) if ids_b is not None else None)


def _cut(ids: Ids, count: int, rng: np.random.Generator | None) -> Ids:
    if count == 0:
        return ids
    front = int(rng.binomial(count, 0.5)) if rng is not None else 0
    return ids[front:len(ids) - (count - front)]


def pack(ids_a: Sequence[int], ids_b: Sequence[int] | None, cls_id: int, sep_id: int
         ) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, token_type_ids), int64 (T,): `[CLS] A [SEP]` (types 0) then `B [SEP]` (types 1)."""
    parts = [[cls_id], ids_a, [sep_id]] + ([ids_b, [sep_id]] if ids_b is not None else [])
    input_ids = np.concatenate(parts).astype(np.int64)
    types = np.zeros(len(input_ids), dtype=np.int64)
    types[len(ids_a) + 2:] = 1
    return input_ids, types


def pad(rows: Sequence[tuple[Sequence[int], Sequence[int]]], length: int, pad_id: int) -> dict[str, np.ndarray]:
    """Rows of (input_ids, token_type_ids) right-padded to `length`: three int64 (N, length) arrays."""
    n = len(rows)
    out = {"input_ids": np.full((n, length), pad_id, dtype=np.int64),
           "attention_mask": np.zeros((n, length), dtype=np.int64),
           "token_type_ids": np.zeros((n, length), dtype=np.int64)}
    for i, (ids, types) in enumerate(rows):
        if len(ids) > length:
            raise ValueError(f"a row has {len(ids)} pieces, more than the padded length {length}")
        out["input_ids"][i, :len(ids)] = ids
        out["attention_mask"][i, :len(ids)] = 1
        out["token_type_ids"][i, :len(ids)] = types
    return out
