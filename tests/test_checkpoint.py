"""Checkpoint files: lossless round trip of every kind of state, no code on load, atomic writes, corruption
detection with fallback, retention of the last K and the best."""
from __future__ import annotations

import errno
import json
import random

import numpy as np
import pytest
import torch

from litebert import checkpoint as ckpt


def sample_state():
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    return {
        "optimizer": {"state": {0: {"exp_avg": torch.randn(3, 2), "step": torch.tensor(4.0)}},
                      "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0]}]},
        "rng": [{"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}],
        "data": [{"epoch": 1, "cursor": 17}],
        "progress": {"step": 5, "best": None, "elapsed_s": 1.5},
        "bf16": torch.randn(4).to(torch.bfloat16),
    }


def test_round_trip_restores_every_value(tmp_path):
    state = sample_state()
    model = {"w": torch.randn(5, 5), "b": torch.zeros(5)}
    path = ckpt.save_checkpoint(tmp_path, 5, model, state)
    assert path.name == "step-0000005" and sorted(p.name for p in path.iterdir()) == \
        ["model.safetensors", "state.json", "state.safetensors"]
    back = ckpt.load_checkpoint(path)
    assert back.step == 5 and all(torch.equal(back.model[k], model[k]) for k in model)
    opt = back.state["optimizer"]
    assert list(opt["state"]) == [0]
    assert torch.equal(opt["state"][0]["exp_avg"], state["optimizer"]["state"][0]["exp_avg"])
    assert opt["param_groups"][0]["betas"] == (0.9, 0.999)
    assert back.state["bf16"].dtype == torch.bfloat16 and torch.equal(back.state["bf16"], state["bf16"])
    assert back.state["data"] == state["data"] and back.state["progress"] == state["progress"]
    # the RNG states restore and continue the same streams
    rng = back.state["rng"][0]
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    draws = (random.random(), np.random.rand(), torch.rand(1).item())
    random.setstate(state["rng"][0]["python"])
    np.random.set_state(state["rng"][0]["numpy"])
    torch.set_rng_state(state["rng"][0]["torch"])
    assert draws == (random.random(), np.random.rand(), torch.rand(1).item())


def test_files_hold_no_pickle(tmp_path):
    path = ckpt.save_checkpoint(tmp_path, 1, {"w": torch.ones(2)}, sample_state())
    json.loads((path / "state.json").read_text())  # plain JSON
    for name in ("model.safetensors", "state.safetensors"):
        header_len = int.from_bytes((path / name).read_bytes()[:8], "little")
        json.loads((path / name).read_bytes()[8:8 + header_len])  # safetensors: JSON header + raw bytes
    with pytest.raises(TypeError, match="cannot store object"):
        ckpt.save_checkpoint(tmp_path, 2, {}, {"x": object()})


@pytest.mark.parametrize("damage", ["truncate", "flip", "state_json", "missing"])
def test_corrupt_newest_falls_back_to_previous(tmp_path, damage):
    ckpt.save_checkpoint(tmp_path, 1, {"w": torch.ones(8)}, {"n": 1})
    newest = ckpt.save_checkpoint(tmp_path, 2, {"w": torch.full((8,), 2.0)}, {"n": 2})
    target = newest / ("state.json" if damage == "state_json" else "model.safetensors")
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        target.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    elif damage == "state_json":
        target.write_bytes(data[:20])
    else:
        target.unlink()
    with pytest.raises(ckpt.CheckpointError, match=str(newest)):
        ckpt.load_checkpoint(newest)
    with pytest.warns(UserWarning, match="falling back"):
        back = ckpt.load_latest(tmp_path)
    assert back.step == 1 and back.state == {"n": 1}


def test_full_disk_leaves_previous_intact(tmp_path, monkeypatch):
    ckpt.save_checkpoint(tmp_path, 1, {"w": torch.ones(2)}, {"n": 1})
    real = ckpt.save_file
    calls = []

    def failing(tensors, path, *a, **k):
        calls.append(path)
        if len(calls) == 2:  # the state file of the second checkpoint
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, path, *a, **k)

    monkeypatch.setattr(ckpt, "save_file", failing)
    with pytest.raises(ckpt.CheckpointError, match=r"step-0000002: No space left on device; the previous checkpoint "
                                                   r".*step-0000001 is intact"):
        ckpt.save_checkpoint(tmp_path, 2, {"w": torch.ones(2)}, {"n": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["step-0000001"]
    assert ckpt.load_latest(tmp_path).step == 1


def test_keep_last_and_best(tmp_path):
    for step in range(1, 7):
        ckpt.save_checkpoint(tmp_path, step, {"w": torch.ones(1)}, {})
    ckpt.write_best(tmp_path, 2, "eval_mlm_acc", 0.5)
    removed = ckpt.prune(tmp_path, keep_last=2)
    assert [p.name for p in removed] == ["step-0000001", "step-0000003", "step-0000004"]
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-0000002", "step-0000005", "step-0000006"]
    assert ckpt.read_best(tmp_path) == {"step": 2, "metric": "eval_mlm_acc", "value": 0.5}


def test_saving_a_step_again_replaces_it(tmp_path):
    ckpt.save_checkpoint(tmp_path, 3, {"w": torch.ones(1)}, {"v": "old"})
    ckpt.save_checkpoint(tmp_path, 3, {"w": torch.zeros(1)}, {"v": "new"})
    assert ckpt.load_checkpoint(tmp_path / "step-0000003").state == {"v": "new"}
    assert [p.name for p in tmp_path.iterdir()] == ["step-0000003"]
