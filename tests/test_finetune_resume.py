"""Fine-tuning survives kill -9: a child `litebert finetune` dies by SIGKILL (at a step, or inside a checkpoint
write); rerunning the same command resumes (finished seeds kept, the unfinished one from its newest resumable
checkpoint) and ends with the same log records, selection history, reported metrics and final weights as an
uninterrupted run, bit for bit. Dropout is on, so the RNG state must come back too.

Run as a script (`python tests/test_finetune_resume.py DATA OUT KILL`), this file is the worker.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]


def command(data: Path, out: Path) -> list[str]:
    return ["finetune", "--task", "sst-2", "--data-dir", str(data / "glue"), "--model", str(data / "model"),
            "--tokenizer", str(data / "tok"), "--output", str(out), "--seeds", "1,2", "--optimizer", "adamw",
            "--lr", "2e-3", "--batch-size", "16", "--max-steps", "24", "--eval-every", "8", "--save-every", "4",
            "--max-seq-length", "32", "--log-every", "1", "--no-progress", "--no-bf16",
            "--model_overrides", "hidden_dropout_prob=0.1", "--model_overrides", "classifier_dropout_prob=0.1"]


def worker(data: Path, out: Path, kill: str) -> None:
    """`kill`: none, `step:S:K` (SIGKILL as seed S begins step K) or `save:N` (at the N-th checkpoint file flush)."""
    from litebert import checkpoint as ckpt
    from litebert.cli import main
    from litebert.finetune import train

    torch.set_num_threads(1)
    what, *at = kill.split(":")
    if what == "step":
        calls, real = [0], train.set_learning_rate
        seed_dir = out / f"seed-{at[0]}"

        def dying(optimizer, lr):  # called once per step, before its forward passes
            if (seed_dir / "log.jsonl").exists():
                calls[0] += 1
                if calls[0] == int(at[1]):
                    os.kill(os.getpid(), signal.SIGKILL)
            real(optimizer, lr)
        train.set_learning_rate = dying
    elif what == "save":
        flushes, real_fsync = [0], ckpt.fsync

        def dying_fsync(path):
            flushes[0] += 1
            if flushes[0] == int(at[0]):
                os.kill(os.getpid(), signal.SIGKILL)
            real_fsync(path)
        ckpt.fsync = dying_fsync
    sys.exit(main(command(data, out)))


def launch(data: Path, out: Path, kill: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests'}", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(Path(__file__).resolve()), str(data), str(out), kill], env=env,
                          capture_output=True, text=True, timeout=300)


def outcome(out: Path) -> dict:
    """What must not depend on the interruption: every seed's logged numbers, metrics and final weights."""
    result = {"metrics": {k: v for k, v in json.loads((out / "metrics.json").read_text()).items()}}
    for seed in ("1", "2"):
        records = [json.loads(x) for x in (out / f"seed-{seed}/log.jsonl").read_text().splitlines()]
        result[f"log-{seed}"] = [{k: v for k, v in r.items() if k not in ("time", "examples_per_s")}
                                 for r in records if "event" not in r]
        result[f"model-{seed}"] = load_file(str(out / f"seed-{seed}/model/model.safetensors"))
    for run in result["metrics"]["seeds"].values():
        for key in ("train_seconds", "total_seconds", "train_examples_per_s"):
            run.pop(key)
    return result


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from learnable_tasks import all_text, write_all
    from litebert.config import AlbertConfig
    from litebert.model import AlbertForPreTraining
    from litebert.tokenizer import AlbertTokenizer, train_sentencepiece

    root = write_all(tmp_path_factory.mktemp("resume"))
    (root / "text.txt").write_text("\n".join(all_text(root)), encoding="utf-8")
    train_sentencepiece([root / "text.txt"], root / "tok", vocab_size=150, num_threads=2)
    torch.manual_seed(0)
    AlbertForPreTraining(AlbertConfig(vocab_size=AlbertTokenizer.from_pretrained(root / "tok").vocab_size,
                                      embedding_size=32, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=128, max_position_embeddings=64)).save_pretrained(root / "model")
    done = launch(root, root / "reference", "none")
    assert done.returncode == 0, done.stderr[-3000:]
    return root


@pytest.mark.parametrize("kill", ["step:1:11", "step:2:7", "save:9"])
def test_kill_9_then_rerun_equals_the_uninterrupted_run(setup, tmp_path, kill):
    out = tmp_path / "run"
    killed = launch(setup, out, kill)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (out / "metrics.json").exists()
    resumed = launch(setup, out, "none")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    if kill == "step:2:7":
        assert "seed 1: done earlier" in resumed.stderr
    assert "resumed from" in resumed.stderr
    got, want = outcome(out), outcome(setup / "reference")
    assert got["metrics"] == want["metrics"]
    for seed in ("1", "2"):
        assert got[f"log-{seed}"] == want[f"log-{seed}"]
        for name, tensor in want[f"model-{seed}"].items():
            assert torch.equal(got[f"model-{seed}"][name], tensor), (seed, name)
        assert not (out / f"seed-{seed}/resume").exists()  # a finished seed keeps no resumable state


def test_a_changed_command_does_not_resume_silently(setup, tmp_path):
    from litebert.cli import main

    out = tmp_path / "run"
    killed = launch(setup, out, "step:1:11")
    assert killed.returncode == -signal.SIGKILL
    changed = [a if a != "2e-3" else "1e-3" for a in command(setup, out)]
    assert main(changed) == 2  # the learning rate differs from the checkpoint's run
    assert main([*changed, "--overwrite"]) == 0  # starting over is explicit


if __name__ == "__main__":
    worker(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])


def test_two_gloo_ranks_fine_tune_like_one_process(setup, tmp_path):
    """torchrun with 2 ranks, each taking half of every batch (DDP averages the gradients), trains like one
    process with the whole batch: the same losses, selection scores and weights (fp32, no dropout)."""
    no_dropout = ["--model_overrides", "hidden_dropout_prob=0.0", "--model_overrides", "classifier_dropout_prob=0.0",
                  "--seeds", "1", "--save-every", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "litebert.cli", *command(setup, tmp_path / "one"), *no_dropout],
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "--monitor-interval", "0.5", "-m", "litebert.cli", *command(setup, tmp_path / "two"),
                          *no_dropout], env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]

    def logged(out):
        records = [json.loads(x) for x in (out / "seed-1/log.jsonl").read_text().splitlines()]
        return [r for r in records if "event" not in r and ("loss" in r or "selection" in r)]
    a, b = logged(tmp_path / "one"), logged(tmp_path / "two")
    assert [r["step"] for r in a] == [r["step"] for r in b] and len(a) > 24
    for x, y in zip(a, b):
        if "loss" in x:
            assert y["loss"] == pytest.approx(x["loss"], abs=1e-5)
        else:
            assert y["selection"] == pytest.approx(x["selection"], abs=1e-6)
    wa = load_file(str(tmp_path / "one/seed-1/model/model.safetensors"))
    wb = load_file(str(tmp_path / "two/seed-1/model/model.safetensors"))
    for name in wa:
        torch.testing.assert_close(wb[name], wa[name], atol=1e-4, rtol=1e-4)
    assert not (tmp_path / "two/seed-1/resume").exists()


def test_sigterm_stops_cleanly_and_the_rerun_finishes_the_same(setup, tmp_path):
    """Pre-emption: SIGTERM ends the current step, writes a resumable checkpoint, exits 0; the rerun resumes."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests'}", "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), str(setup), str(out), "none"], env=env,
                             stderr=subprocess.PIPE, text=True)
    log = out / "seed-1/log.jsonl"
    while not (log.exists() and log.read_text().count('"loss"') >= 5):
        assert child.poll() is None, child.stderr.read()
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    err = child.communicate(timeout=120)[1]
    assert child.returncode == 0, err
    assert "SIGTERM: stopping after this step" in err and "rerun the same command to resume" in err
    assert list((out / "seed-1/resume").iterdir()) and not (out / "metrics.json").exists()
    resumed = launch(setup, out, "none")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got, want = outcome(out), outcome(setup / "reference")
    assert got["metrics"] == want["metrics"] and got["log-1"] == want["log-1"]
