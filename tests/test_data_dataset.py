"""PretrainingDataset: epoch order, rank slices, exact resume, dynamic masks, and the collate contract."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from litebert.data.create import create_pretraining_data
from litebert.data.dataset import Collator, Example, PretrainingDataset
from test_data_create import corpus_and_tokenizer, small_options  # noqa: F401  (session fixture)


@pytest.fixture(scope="module")
def static_data(corpus_and_tokenizer, tmp_path_factory):  # noqa: F811
    corpus, tokenizer = corpus_and_tokenizer
    out = tmp_path_factory.mktemp("static")
    create_pretraining_data([corpus], tokenizer, out, small_options(), progress=False)
    return out


@pytest.fixture(scope="module")
def dynamic_data(corpus_and_tokenizer, tmp_path_factory):  # noqa: F811
    corpus, tokenizer = corpus_and_tokenizer
    out = tmp_path_factory.mktemp("dynamic")
    create_pretraining_data([corpus], tokenizer, out, small_options(masking="dynamic"), progress=False)
    return out


def batches(dataset: PretrainingDataset, count: int, batch_size: int = 8) -> list[dict]:
    """The next `count` batches, continuing into the next epochs as a training loop does."""
    out = []
    while len(out) < count:
        for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=dataset.collator()):
            out.append(batch)
            if len(out) == count:
                break
    return out


def assert_same_batches(first: list[dict], second: list[dict]) -> None:
    assert len(first) == len(second)
    for a, b in zip(first, second):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("data", ["static_data", "dynamic_data"])
def test_resume_gives_the_exact_next_batches(data, request):
    directory = request.getfixturevalue(data)
    dataset = PretrainingDataset(directory, seed=3)
    per_epoch = -(-len(dataset) // 8)
    batches(dataset, per_epoch - 2)  # stop two batches before the end of epoch 0
    state = dataset.state_dict()
    expected = batches(dataset, 5)  # crosses into epoch 1
    resumed = PretrainingDataset(directory, seed=3)
    resumed.load_state_dict(state)
    assert_same_batches(batches(resumed, 5), expected)


def test_epoch_order_is_a_seeded_permutation(static_data):
    dataset = PretrainingDataset(static_data, seed=1)
    n = dataset.num_examples
    assert sorted(dataset.order(0).tolist()) == list(range(n))
    assert not np.array_equal(dataset.order(0), dataset.order(1))
    assert np.array_equal(dataset.order(0), PretrainingDataset(static_data, seed=1).order(0))
    assert not np.array_equal(dataset.order(0), PretrainingDataset(static_data, seed=2).order(0))
    assert np.array_equal(PretrainingDataset(static_data, shuffle=False).order(5), np.arange(n))


def test_ranks_take_disjoint_equal_slices(static_data):
    world = 3
    ranks = [PretrainingDataset(static_data, seed=1, rank=r, world_size=world) for r in range(world)]
    orders = [r.order(2) for r in ranks]
    n = ranks[0].num_examples
    assert all(len(o) == n // world for o in orders)
    union = np.concatenate(orders)
    assert len(set(union.tolist())) == len(union)
    resumed = PretrainingDataset(static_data, seed=1, rank=0, world_size=2)
    with pytest.raises(ValueError, match="world_size"):
        resumed.load_state_dict(ranks[0].state_dict())


def test_dynamic_masks_are_deterministic_and_change_per_epoch(dynamic_data, static_data):
    a, b = PretrainingDataset(dynamic_data, seed=5), PretrainingDataset(dynamic_data, seed=5)
    changed = 0
    for index in range(50):
        first, again, later = a.example(index, epoch=0), b.example(index, epoch=0), a.example(index, epoch=1)
        assert np.array_equal(first.input_ids, again.input_ids)
        assert np.array_equal(first.masked_lm_positions, again.masked_lm_positions)
        changed += not np.array_equal(first.masked_lm_positions, later.masked_lm_positions)
        # The unmasked text is the same in every epoch; only the masks move.
        restored = [e.input_ids.copy() for e in (first, later)]
        for r, e in zip(restored, (first, later)):
            r[e.masked_lm_positions] = e.masked_lm_ids
        assert np.array_equal(*restored)
    assert changed > 40
    fixed = PretrainingDataset(static_data)
    assert np.array_equal(fixed.example(3, epoch=0).input_ids, fixed.example(3, epoch=4).input_ids)


def test_collate_contract(static_data):
    dataset = PretrainingDataset(static_data, seed=0)
    examples = [dataset.example(i) for i in range(6)]
    batch = dataset.collator()(examples)
    lengths = [len(e.input_ids) for e in examples]
    predictions = [len(e.masked_lm_positions) for e in examples]
    b, t, p = 6, max(lengths), 10
    shapes = {k: tuple(v.shape) for k, v in batch.items()}
    assert shapes == {"input_ids": (b, t), "attention_mask": (b, t), "token_type_ids": (b, t),
                      "masked_lm_positions": (b, p), "masked_lm_ids": (b, p), "masked_lm_weights": (b, p),
                      "sentence_order_label": (b,)}
    assert batch["masked_lm_weights"].dtype == torch.float32
    assert all(v.dtype == torch.int64 for k, v in batch.items() if k != "masked_lm_weights")
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert batch["masked_lm_weights"].sum(1).tolist() == predictions
    for row, e in enumerate(examples):
        assert batch["input_ids"][row, lengths[row]:].eq(dataset.pad_token_id).all()
        assert batch["token_type_ids"][row, lengths[row]:].eq(0).all()
        assert batch["masked_lm_positions"][row, predictions[row]:].eq(0).all()
        assert batch["masked_lm_ids"][row, :predictions[row]].tolist() == e.masked_lm_ids.tolist()
    assert set(batch["sentence_order_label"].tolist()) <= {0, 1}
    fixed = dataset.collator(pad_to_max_length=True)(examples)
    assert fixed["input_ids"].shape == (6, 64)
    with pytest.raises(ValueError, match="predictions"):
        Collator(max_predictions=1)([Example(np.arange(4), np.zeros(4, np.int64), np.array([1, 2]), np.array([5, 6]), 0)])


def test_static_masks_follow_80_10_10_and_target_originals(static_data):
    dataset = PretrainingDataset(static_data, shuffle=False)
    shown, original = [], []
    for index in range(dataset.num_examples):
        e = dataset.example(index)
        shown.append(e.input_ids[e.masked_lm_positions])
        original.append(e.masked_lm_ids)
    shown, original = np.concatenate(shown), np.concatenate(original)
    assert len(shown) > 5000
    mask = dataset.masking_vocab.mask_token_id
    assert abs(np.mean(shown == mask) - 0.8) < 0.02 and abs(np.mean(shown == original) - 0.1) < 0.02
    assert not np.isin(original, dataset.masking_vocab.special_ids).any()


def test_vocabulary_checks(static_data, corpus_and_tokenizer, tmp_path):  # noqa: F811
    from litebert.tokenizer import AlbertTokenizer, train_sentencepiece

    corpus, tokenizer_dir = corpus_and_tokenizer
    PretrainingDataset(static_data, tokenizer=AlbertTokenizer.from_pretrained(tokenizer_dir), vocab_size=300)
    with pytest.raises(ValueError, match="vocab_size 300, the model has 30000"):
        PretrainingDataset(static_data, vocab_size=30000)
    train_sentencepiece([corpus], tmp_path, vocab_size=300, num_threads=1, seed=1, do_lower_case=False)
    with pytest.raises(ValueError, match="another tokenizer"):
        PretrainingDataset(static_data, tokenizer=AlbertTokenizer.from_pretrained(tmp_path))


def test_more_than_one_loader_worker_is_refused(static_data, monkeypatch):
    # As seen from inside a DataLoader worker process when num_workers=2 (real workers take seconds to stop).
    from types import SimpleNamespace

    from litebert.data import dataset as dataset_module

    monkeypatch.setattr(dataset_module, "get_worker_info", lambda: SimpleNamespace(num_workers=2, id=0))
    with pytest.raises(RuntimeError, match="num_workers"):
        next(iter(PretrainingDataset(static_data)))
