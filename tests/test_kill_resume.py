"""Resume after a real kill -9: a child process dies by SIGKILL (at a step, or in the middle of writing a
checkpoint), the rerun resumes from what is on disk, and the result equals the uninterrupted run bit for bit:
the same losses at every step and the same final weights. Dropout is on, so the RNG state must come back too.

Both schedules are covered: by steps, and by a time budget, whose clock is saved in checkpoints and continued
on resume (a deterministic clock stands in for the wall clock here). One process, and 2 gloo ranks.

Run as a script (`python tests/test_kill_resume.py MODE OUTPUT KILL`, or under torchrun), this file is the worker.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from test_pretrain import SyntheticData, tiny_config, train  # noqa: E402

from litebert import checkpoint as ckpt  # noqa: E402
from litebert import pretrain as P  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STEPS = 10
COMPARED = ("step", "loss", "mlm_loss", "sop_loss", "mlm_acc", "lr", "grad_norm", "time_s", "tokens")


def kill_config(output: Path, mode: str) -> P.PretrainConfig:
    """The tiny recipe with dropout 0.1 in fp32; `step`: 10 steps, `budget`: a 10-second budget (one clock
    second per step), checkpoints every 2 steps."""
    config = tiny_config(output, train={"max_steps": STEPS if mode == "step" else None, "bf16": False},
                         checkpoint={"save_every": 2, "keep_last": 2})
    config.model.overrides.update(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    if mode == "budget":
        config.schedule.budget_s, config.schedule.warmup_fraction = float(STEPS), 0.2
    return config


def worker(mode: str, output: Path, kill: str) -> None:
    """Train; `kill` is `none`, `step:K` (SIGKILL before step K's forward) or `save:K` (SIGKILL at the K-th
    file flush of checkpoint writing: inside a checkpoint, before its rename)."""
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    config = kill_config(output, mode)
    if world_size > 1:
        config.parallel.timeout_s = 30
    now = [0.0]
    what, _, at = kill.partition(":")

    def before_forward(step: int, model) -> None:
        now[0] += 1.0  # the deterministic clock: one second per step
        if what == "step" and step == int(at):
            os.kill(os.getpid(), signal.SIGKILL)

    if what == "save":
        flushes, real_fsync = [0], ckpt.fsync

        def dying_fsync(path):
            flushes[0] += 1
            if flushes[0] == int(at):
                os.kill(os.getpid(), signal.SIGKILL)
            real_fsync(path)
        ckpt.fsync = dying_fsync
    hooks = P.Hooks(before_forward=before_forward, clock=lambda: now[0])
    train(config, hooks=hooks, data=SyntheticData(seed=config.train.seed, rank=rank, world_size=world_size))


def launch(mode: str, output: Path, kill: str, ranks: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests'}", "OMP_NUM_THREADS": "1"}
    script = [str(Path(__file__).resolve()), mode, str(output), kill]
    if ranks == 1:
        command = [sys.executable, *script]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
                   "--monitor-interval", "0.5", *script]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def outcome(output: Path) -> tuple[list[dict], dict]:
    lines = [json.loads(x) for x in (output / "metrics.jsonl").read_text().splitlines()]
    steps = [{k: r[k] for k in COMPARED if k in r} for r in lines if r.get("split", "train") == "train"]
    return steps, load_file(str(output / "final/model.safetensors"))


def assert_same_run(resumed: Path, reference: Path) -> None:
    (steps, weights), (ref_steps, ref_weights) = outcome(resumed), outcome(reference)
    assert [s["step"] for s in steps] == list(range(1, STEPS + 1))
    assert steps == ref_steps  # every logged number, exactly
    assert weights.keys() == ref_weights.keys()
    for name, tensor in ref_weights.items():
        assert tensor.equal(weights[name]), name


# Five kills on one process: three by steps (one inside a checkpoint write), two under a time budget.
TRIALS = [("step", "save:5"), ("budget", "save:3")] + [
    (mode, f"step:{k}") for mode, k in zip(("step", "step", "budget"), np.random.default_rng(15).integers(2, STEPS, 3))]


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    for mode in ("step", "budget"):
        done = launch(mode, root / mode, "none", 1)
        assert done.returncode == 0, done.stderr[-3000:]
    return root


@pytest.mark.parametrize("mode,kill", TRIALS)
def test_kill_9_then_resume_equals_the_uninterrupted_run(references, tmp_path, mode, kill):
    out = tmp_path / "run"
    killed = launch(mode, out, kill, 1)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (out / "final").exists()
    if kill.startswith("save"):  # died inside a checkpoint: its temporary directory is left, and ignored
        assert [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".tmp-")]
    resumed = launch(mode, out, "none", 1)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr
    assert_same_run(out, references / mode)


@pytest.mark.parametrize("mode", ["step", "budget"])
def test_kill_9_on_two_gloo_ranks(tmp_path, mode):
    reference = launch(mode, tmp_path / "reference", "none", 2)
    assert reference.returncode == 0, reference.stderr[-3000:]
    out = tmp_path / "run"
    killed = launch(mode, out, "step:7", 2)  # both ranks die before step 7; the checkpoint of step 6 is whole
    assert killed.returncode != 0
    resumed = launch(mode, out, "none", 2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(out, tmp_path / "reference")


if __name__ == "__main__":
    worker(sys.argv[1], Path(sys.argv[2]), sys.argv[3])
