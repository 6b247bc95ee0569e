"""Activation checkpointing (`distributed.checkpoint_activations`, `--activation-checkpointing`): the same
gradients and the same training run, far fewer bytes kept for backward, parameter names and checkpoints unchanged.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_pretrain import records, tiny_config, train  # noqa: E402

from litebert import distributed as D  # noqa: E402
from litebert.config import AlbertConfig  # noqa: E402
from litebert.model import AlbertForPreTraining  # noqa: E402
from litebert.params import activation_bytes  # noqa: E402

SMALL = dict(vocab_size=300, embedding_size=16, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
             intermediate_size=256, max_position_embeddings=64, hidden_dropout_prob=0.1,
             attention_probs_dropout_prob=0.1)


def step(model, inputs) -> tuple[int, torch.Tensor, dict[str, torch.Tensor]]:
    """(bytes saved for backward, loss, gradients) of one training forward/backward, dropout seeded."""
    saved = 0

    def pack(t):
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    torch.manual_seed(1)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(**inputs).loss
    loss.backward()
    return saved, loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("share,blocks", [("all", 2), ("none", 8)])
def test_same_gradients_and_far_fewer_saved_bytes(share, blocks):
    torch.manual_seed(0)
    plain = AlbertForPreTraining(AlbertConfig(**SMALL, share=share)).train()
    checkpointed = AlbertForPreTraining(AlbertConfig(**SMALL, share=share)).train()
    checkpointed.load_state_dict(plain.state_dict())
    assert D.checkpoint_activations(checkpointed) == blocks
    assert D.checkpoint_activations(checkpointed) == 0  # applying it twice changes nothing
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(5, 300, (4, 64), generator=g)
    inputs = dict(input_ids=ids, labels=torch.randint(5, 300, (4, 5), generator=g),
                  masked_lm_positions=torch.randint(1, 64, (4, 5), generator=g),
                  sentence_order_label=torch.tensor([0, 1, 1, 0]))
    saved_plain, loss_plain, grads_plain = step(plain, inputs)
    saved_ckpt, loss_ckpt, grads_ckpt = step(checkpointed, inputs)
    # dropout is replayed with the same RNG state: the recomputed blocks give the very same numbers
    assert torch.equal(loss_plain, loss_ckpt)
    assert grads_plain.keys() == grads_ckpt.keys()
    assert all(torch.equal(grads_plain[n], grads_ckpt[n]) for n in grads_plain)
    # 4 layers: each keeps only its two blocks' inputs instead of ~10 activations of its size and more
    assert saved_ckpt < 0.25 * saved_plain, (saved_ckpt, saved_plain)
    assert list(checkpointed.state_dict()) == list(plain.state_dict())
    # the estimate `litebert params` prints orders the two the same way
    config = AlbertConfig(**SMALL, share=share)
    assert activation_bytes(config, 4, 64, checkpointed=True) < 0.5 * activation_bytes(config, 4, 64)


def test_pretraining_run_is_unchanged_and_resumes_either_way(tmp_path):
    train(tiny_config(tmp_path / "plain"))
    train(tiny_config(tmp_path / "ac", train={"activation_checkpointing": True}))
    plain, ac = records(tmp_path / "plain"), records(tmp_path / "ac")
    assert [r["loss"] for r in plain] == [r["loss"] for r in ac]
    # how a run computes is not what it computes: resuming without checkpointing is no configuration change
    summary = train(tiny_config(tmp_path / "ac", train={"max_steps": 10}))
    assert summary["steps"] == 10
