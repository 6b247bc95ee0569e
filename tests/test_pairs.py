"""The one pair encoder (`litebert.pairs`): BERT's truncation rule, [CLS] A [SEP] B [SEP] layout, padding."""
from __future__ import annotations

import numpy as np
import pytest

from litebert import pairs


def bert_loop(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """The official `_truncate_seq_pair`: pop from the longer while too long (B when equal)."""
    while len_a + len_b > budget:
        if len_a > len_b:
            len_a -= 1
        else:
            len_b -= 1
    return len_a, len_b


def test_cuts_follow_the_official_loop():
    for len_a in range(12):
        for len_b in range(12):
            for budget in range(0, len_a + len_b + 2):
                cut_a, cut_b = pairs.pair_cuts(len_a, len_b, budget)
                assert (len_a - cut_a, len_b - cut_b) == bert_loop(len_a, len_b, budget)
    with pytest.raises(ValueError, match="no room"):
        pairs.pair_cuts(3, 3, -1)


def test_truncation_from_the_back_or_at_random_ends():
    a, b = list(range(10)), list(range(100, 104))
    ta, tb = pairs.truncate_pair(a, b, 8)
    assert ta == [0, 1, 2, 3] and tb == [100, 101, 102, 103]  # A (longer) loses its last 6
    assert pairs.truncate_pair(a, None, 3) == ([0, 1, 2], None)
    rng = np.random.default_rng(0)
    fronts = []
    for _ in range(400):
        ta, _ = pairs.truncate_pair(np.arange(20), np.arange(100, 104), 10, rng)
        assert len(ta) == 6 and np.all(np.diff(ta) == 1)  # a contiguous run: pieces leave only at the ends
        fronts.append(int(ta[0]))
    assert 6.5 < np.mean(fronts) < 7.5  # 14 cut pieces, each from the front with probability 1/2


def test_pack_and_pad():
    ids, types = pairs.pack([7, 8], [9], cls_id=2, sep_id=3)
    assert ids.tolist() == [2, 7, 8, 3, 9, 3] and types.tolist() == [0, 0, 0, 0, 1, 1]
    ids1, types1 = pairs.pack(np.array([5], dtype=np.int32), None, 2, 3)
    assert ids1.tolist() == [2, 5, 3] and types1.tolist() == [0, 0, 0] and ids1.dtype == np.int64
    batch = pairs.pad([(ids, types), (ids1, types1)], 7, pad_id=0)
    assert batch["input_ids"].tolist() == [[2, 7, 8, 3, 9, 3, 0], [2, 5, 3, 0, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1] * 6 + [0], [1] * 3 + [0] * 4]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0, 0, 1, 1, 0], [0] * 7]
    with pytest.raises(ValueError, match="more than the padded length 5"):
        pairs.pad([(ids, types)], 5, 0)
