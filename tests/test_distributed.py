"""Data parallelism on CPU with gloo, launched by torchrun: 2 ranks x batch B/2 == 1 rank x batch B, checkpoints
load at another world size, FSDP (with activation checkpointing) trains like one process, and a rank that dies
fails the job fast instead of hanging.

Run as a script (`torchrun ... tests/test_distributed.py MODE OUTPUT`), this file is the worker.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_pretrain import SyntheticData, records, tiny_config, train  # noqa: E402

from litebert import checkpoint as ckpt  # noqa: E402
from litebert import distributed as D  # noqa: E402
from litebert import pretrain as P  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STEPS = 6


def job_config(output: Path, **train_changes):
    """Global batch 8 in fp32 (bf16 rounding would differ between batch shapes), dropout already 0."""
    return tiny_config(output, train={"max_steps": STEPS, "bf16": False, **train_changes},
                       checkpoint={"save_every": 3, "keep_last": 2})


def worker(mode: str, output: Path) -> None:
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    config = job_config(output)
    config.parallel = D.ParallelConfig(fsdp=mode == "fsdp", timeout_s=20)
    # the sharded run also recomputes its activations in backward: its losses must still match one process's
    config.train.activation_checkpointing = mode == "fsdp"
    hooks = None
    if mode == "resume" and rank == 1:
        # Rank 1 must restore rank 0's choice, never its own view of the directory (on separate filesystems
        # the views can differ): looking would fail here.
        def no_listing(*_):
            raise AssertionError("rank 1 listed the checkpoints itself")
        ckpt.list_checkpoints = ckpt.load_latest = no_listing
        config.train.max_steps = STEPS + 2
    elif mode == "resume":
        config.train.max_steps = STEPS + 2
    if mode == "die":
        def die(step, model):
            if step == 2 and rank == 1:
                raise RuntimeError("rank 1 died on purpose")
        hooks = P.Hooks(before_forward=die)
    data = SyntheticData(seed=config.train.seed, rank=rank, world_size=world_size)
    train(config, hooks=hooks, data=data)


def torchrun(mode: str, output: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests'}", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "--monitor-interval", "0.5", str(Path(__file__).resolve()), mode, str(output)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def test_two_ranks_equal_one_rank_with_the_global_batch(tmp_path):
    done = torchrun("ddp", tmp_path / "ddp")
    assert done.returncode == 0, done.stderr[-3000:]
    train(job_config(tmp_path / "single"))  # 1 rank: micro-batch 4 x accumulate 2 = the same 8 examples
    two, one = records(tmp_path / "ddp"), records(tmp_path / "single")
    assert [r["step"] for r in two] == [r["step"] for r in one] == list(range(1, STEPS + 1))
    for a, b in zip(two, one):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
        assert a["tokens"] == b["tokens"]
    final_two = ckpt.load_checkpoint(tmp_path / f"ddp/checkpoints/step-{STEPS:07d}").model
    final_one = ckpt.load_checkpoint(tmp_path / f"single/checkpoints/step-{STEPS:07d}").model
    for name in final_one:
        torch.testing.assert_close(final_two[name], final_one[name], atol=1e-5, rtol=1e-4)
    assert json.loads((tmp_path / "ddp/summary.json").read_text())["world_size"] == 2

    # 2 ranks resume from the step rank 0 chooses
    done = torchrun("resume", tmp_path / "ddp")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resumed from {tmp_path / 'ddp/checkpoints'}/step-{STEPS:07d} at step {STEPS}" in done.stderr
    assert [r["step"] for r in records(tmp_path / "ddp")] == list(range(1, STEPS + 3))

    # the checkpoint written by 2 ranks resumes in 1 process (state dicts are full, not sharded)
    resumed = job_config(tmp_path / "ddp", max_steps=STEPS + 4)
    summary = train(resumed, data=SyntheticData(seed=resumed.train.seed))
    assert summary["steps"] == STEPS + 4
    assert [r["step"] for r in records(tmp_path / "ddp")] == list(range(1, STEPS + 5))


def test_fsdp_trains_like_ddp(tmp_path):
    done = torchrun("fsdp", tmp_path / "fsdp")
    assert done.returncode == 0, done.stderr[-3000:]
    train(job_config(tmp_path / "single"))
    for a, b in zip(records(tmp_path / "fsdp"), records(tmp_path / "single"), strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
    # the sharded run saved full state dicts: they resume in one unsharded process
    resumed = job_config(tmp_path / "fsdp", max_steps=STEPS + 1)
    resumed.parallel.fsdp = True  # as saved; with one process there is nothing to shard
    assert train(resumed, data=SyntheticData(seed=resumed.train.seed))["steps"] == STEPS + 1


def test_a_dying_rank_fails_the_job_fast(tmp_path):
    start = time.monotonic()
    done = torchrun("die", tmp_path / "die", timeout=90)
    assert done.returncode != 0
    assert time.monotonic() - start < 60
    assert "rank 1 died on purpose" in done.stderr


def test_agree_single_process():
    world = D.World()
    d = D.agree(world, nonfinite=False, stop=False, elapsed_s=3.0, loss=2.5, budget_s=10.0)
    assert (d.skip, d.stop, d.elapsed_s, d.loss) == (False, False, 3.0, 2.5)
    assert D.agree(world, nonfinite=False, stop=False, elapsed_s=3.0, loss=float("nan")).skip
    assert D.agree(world, nonfinite=True, stop=False, elapsed_s=0.0, loss=1.0).skip
    assert D.agree(world, nonfinite=False, stop=False, elapsed_s=11.0, loss=1.0, budget_s=10.0).stop


if __name__ == "__main__":
    worker(sys.argv[1], Path(sys.argv[2]))


def test_each_rank_names_itself_when_a_signal_reaches_it(monkeypatch, capsys):
    """torchrun hands SIGTERM to every rank: each one's line says which rank it is, not the same line twice."""
    import signal

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with D.stop_on_signals([], "litebert pretrain") as flag:
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag == ["SIGTERM"]
    assert capsys.readouterr().err.strip() == ("litebert pretrain (rank 1): SIGTERM: stopping after this step with a "
                                               "checkpoint (send it again to exit at once)")
