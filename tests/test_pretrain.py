"""The pretraining loop: exact resume, divergence guard, budget, eval/best, bad input, the CLI end to end."""
from __future__ import annotations

import argparse
import errno
import json
import math
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from litebert import checkpoint as ckpt
from litebert import pretrain as P
from litebert.config import AlbertConfig, fields
from litebert.data.dataset import Collator, Example

VOCAB, SEQ, PRED = 64, 16, 3
# The models here are tiny: extra threads only add synchronisation (and spin on a busy machine).
torch.set_num_threads(1)


class SyntheticData:
    """Examples whose tokens count up from a random start (so masked ones are predictable from neighbours),
    with the epoch / cursor / rank slicing semantics of `PretrainingDataset`."""

    def __init__(self, n: int = 256, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.n, self.seed, self.rank, self.world_size = n, seed, rank, world_size
        self.epoch, self.cursor = 0, 0

    def __len__(self) -> int:
        return self.n // self.world_size

    def example(self, i: int) -> Example:
        rng = np.random.default_rng([self.seed, 7, i])
        ids = 5 + (rng.integers(0, VOCAB - 5) + np.arange(SEQ)) % (VOCAB - 5)
        positions = np.sort(rng.choice(np.arange(1, SEQ), PRED, replace=False))
        inputs = ids.copy()
        inputs[positions] = 4
        types = (np.arange(SEQ) >= SEQ // 2).astype(np.int64)
        return Example(inputs, types, positions, ids[positions], int(rng.integers(0, 2)))

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        order = order[: len(self) * self.world_size][self.rank::self.world_size]
        while self.cursor < len(order):
            self.cursor += 1
            yield self.example(int(order[self.cursor - 1]))
        self.epoch, self.cursor = self.epoch + 1, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.cursor = epoch, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.cursor = state["epoch"], state["cursor"]


TINY = dict(vocab_size=VOCAB, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=32, classifier_dropout_prob=0.0)


def tiny_config(output: Path, **sections) -> P.PretrainConfig:
    """A tiny model and recipe; `sections` = {"train": {"max_steps": 8}, ...} changes fields."""
    config = P.PretrainConfig(output=str(output))
    config.model = P.ModelConfig("albert-tiny", dict(TINY))
    config.batch = P.BatchConfig(micro_batch=4, global_batch=8)
    config.optim.lr = 3e-3
    config.schedule.warmup_steps, config.schedule.total_steps = 2, 40
    config.train = P.TrainConfig(max_steps=8, log_every=1, eval_every=0, progress=False, device="cpu")
    config.checkpoint = P.CheckpointConfig(save_every=4, keep_last=2)
    config.guard = P.GuardConfig(spike_factor=0.0)
    for section, changes in sections.items():
        for key, value in changes.items():
            setattr(getattr(config, section), key, value)
    return config


def train(config: P.PretrainConfig, hooks=None, data=None, eval_data=None) -> dict:
    data = data or SyntheticData(seed=config.train.seed)
    return P.run(config, train_data=data, eval_data=eval_data, collate=Collator(0, PRED), hooks=hooks)


def records(output: Path, split: str = "train") -> list[dict]:
    lines = (output / "metrics.jsonl").read_text().splitlines()
    out = [json.loads(x) for x in lines]
    return [r for r in out if "event" not in r and r.get("split", "train") == split]


def events(output: Path) -> list[dict]:
    return [r for r in map(json.loads, (output / "metrics.jsonl").read_text().splitlines()) if "event" in r]


class Killed(Exception):
    pass


@pytest.mark.parametrize("prefetch", [0, 3], ids=["inline", "prefetch"])
def test_resume_is_exact(tmp_path, prefetch):
    """N steps straight == N/2 steps, a kill, and a resume: identical losses and bit-identical parameters, whether
    the batches are drawn inline or ahead on the prefetch thread (which has read past the checkpoint's batch)."""
    def tiny_config(output):
        return globals()["tiny_config"](output, data={"prefetch": prefetch})

    straight = tiny_config(tmp_path / "straight")
    train(straight)

    def kill_at(step, model):
        if step == 5:  # checkpoint 4 is on disk; step 5 never completes
            raise Killed

    interrupted = tiny_config(tmp_path / "resumed")
    with pytest.raises(Killed):
        train(interrupted, hooks=P.Hooks(before_forward=kill_at))
    assert [r["step"] for r in records(tmp_path / "resumed")] == [1, 2, 3, 4]
    summary = train(tiny_config(tmp_path / "resumed"))  # rerun into the same directory: resumes
    assert summary["steps"] == 8

    a, b = records(tmp_path / "straight"), records(tmp_path / "resumed")
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 9))
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    assert [r["mlm_acc"] for r in a] == [r["mlm_acc"] for r in b]
    final_a = ckpt.load_checkpoint(tmp_path / "straight/checkpoints/step-0000008")
    final_b = ckpt.load_checkpoint(tmp_path / "resumed/checkpoints/step-0000008")
    assert final_a.model.keys() == final_b.model.keys()
    for name in final_a.model:
        assert torch.equal(final_a.model[name], final_b.model[name]), name
    for name, state in final_a.state["optimizer"]["state"].items():
        for key in state:
            assert torch.equal(state[key], final_b.state["optimizer"]["state"][name][key]), (name, key)
    assert a[-1]["loss"] < a[0]["loss"]  # it learns


def test_resume_from_a_checkpoint_at_an_epoch_end_is_exact(tmp_path):
    """32 examples, 8 per step: checkpoint 4 holds a data cursor exactly at the end of epoch 0. The resumed run
    must start epoch 1 (it used to stop with "the training data yields no examples") and match the straight one."""
    epoch_of_4_steps = lambda seed: SyntheticData(n=32, seed=seed)  # noqa: E731
    straight = tiny_config(tmp_path / "straight")
    train(straight, data=epoch_of_4_steps(straight.train.seed))

    def kill_at(step, model):
        if step == 5:
            raise Killed

    resumed = tiny_config(tmp_path / "resumed")
    with pytest.raises(Killed):
        train(resumed, hooks=P.Hooks(before_forward=kill_at), data=epoch_of_4_steps(resumed.train.seed))
    saved = ckpt.load_checkpoint(tmp_path / "resumed/checkpoints/step-0000004").state["data"][0]  # rank 0
    assert (saved["epoch"], saved["cursor"]) == (0, 32)  # the case under test: the cursor at the epoch end
    assert train(tiny_config(tmp_path / "resumed"), data=epoch_of_4_steps(resumed.train.seed))["steps"] == 8
    a, b = records(tmp_path / "straight"), records(tmp_path / "resumed")
    assert [r["loss"] for r in a] == [r["loss"] for r in b] and len(a) == 8


def test_metrics_records_and_outputs(tmp_path):
    config = tiny_config(tmp_path, train={"max_steps": 6, "log_every": 3, "eval_every": 3, "eval_batches": 2},
                         checkpoint={"save_every": 100, "keep_last": 1})
    summary = train(config, eval_data=SyntheticData(n=16, seed=99))
    train_records, eval_records = records(tmp_path), records(tmp_path, "eval")
    assert [r["step"] for r in train_records] == [3, 6]
    for key in ("step", "loss", "mlm_loss", "sop_loss", "mlm_acc", "sop_acc", "lr", "tokens_per_s", "time_s",
                "grad_norm", "tokens"):
        assert all(isinstance(r[key], (int, float)) and math.isfinite(r[key]) for r in train_records), key
    assert train_records[0]["tokens"] == 3 * 8 * SEQ and train_records[1]["tokens"] == 6 * 8 * SEQ
    assert all(0 <= r["mlm_acc"] <= 1 and 0 <= r["sop_acc"] <= 1 for r in train_records)
    assert [r["step"] for r in eval_records] == [3, 6]
    assert all({"mlm_loss", "mlm_acc", "sop_acc"} <= set(r) for r in eval_records)
    # the best eval checkpoint survives keep_last=1
    best = ckpt.read_best(tmp_path / "checkpoints")
    kept = [p.name for p in ckpt.list_checkpoints(tmp_path / "checkpoints")]
    assert f"step-{best['step']:07d}" in kept and "step-0000006" in kept
    assert summary["best_step"] == best["step"]
    assert json.loads((tmp_path / "summary.json").read_text())["steps"] == 6
    assert (tmp_path / "final/config.json").is_file() and (tmp_path / "final/model.safetensors").is_file()
    assert (tmp_path / "tb").is_dir()
    # the final directory is Hugging Face's format: transformers loads it
    from transformers import AlbertForPreTraining as HFAlbert

    hf = HFAlbert.from_pretrained(tmp_path / "final")
    assert hf.config.hidden_size == TINY["hidden_size"]


def test_lr_schedule_in_the_log(tmp_path):
    """Warmup 2 steps to 3e-3 then linear decay to 0 at step 40: lr of the update that made step s."""
    train(tiny_config(tmp_path, train={"max_steps": 4}))
    lrs = [r["lr"] for r in records(tmp_path)]
    assert lrs == pytest.approx([0.0, 1.5e-3, 3e-3 * (1 - 2 / 40), 3e-3 * (1 - 3 / 40)])


def test_nonfinite_gradients_skip_the_update(tmp_path):
    """A NaN gradient (as from an overflow) at step 3: no update, counted, step 3 redone on the next batch."""
    snapshots = []

    def snapshot(step, model):
        if step == 3:
            snapshots.append([p.detach().clone() for p in model.parameters()])

    def poison(step, model):
        if step == 3 and len(snapshots) == 1:
            model.albert.embeddings.word_embeddings.weight.grad[5, 0] = float("nan")

    summary = train(tiny_config(tmp_path, train={"max_steps": 5}), hooks=P.Hooks(snapshot, poison))
    assert summary["skipped_steps"] == 1
    assert len(snapshots) == 2  # step 3 was attempted twice; the poisoned attempt changed no parameter
    assert all(torch.equal(a, b) for a, b in zip(*snapshots))
    skip = [e for e in events(tmp_path) if e["event"] == "skip"]
    assert len(skip) == 1 and skip[0]["step"] == 3
    assert [r["step"] for r in records(tmp_path)] == [1, 2, 3, 4, 5]
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) for r in records(tmp_path))


def test_loss_spike_rolls_back(tmp_path):
    """A spiking step restores the last checkpoint, keeps the data position, and training goes on."""
    state = {}

    def spike(step, model):
        bias = model.predictions.bias
        if step == 7 and "done" not in state:  # a corrupted update: the MLM output bias blows up
            state["done"] = True
            with torch.no_grad():
                bias[::2] += 60.0

    config = tiny_config(tmp_path, train={"max_steps": 9}, guard={"spike_factor": 2.0, "window": 3})
    summary = train(config, hooks=P.Hooks(before_forward=spike))
    assert summary["rollbacks"] == 1 and summary["steps"] == 9
    rollback = [e for e in events(tmp_path) if e["event"] == "rollback"]
    assert rollback[0]["spike_step"] == 7 and rollback[0]["step"] == 4  # back to checkpoint 4
    steps = [r["step"] for r in records(tmp_path)]
    assert steps == list(range(1, 10))  # steps 5-6 were redone (their old records replaced)
    losses = [r["loss"] for r in records(tmp_path)]
    assert max(losses) < 2 * losses[0]


def test_time_budget_stops_and_schedules_by_time(tmp_path):
    config = tiny_config(tmp_path, train={"max_steps": None}, schedule={"budget_s": 1.5, "warmup_fraction": 0.1})
    summary = train(config)
    assert summary["time_s"] >= 1.5 and summary["steps"] > 3
    lrs = [r["lr"] for r in records(tmp_path)]
    assert max(lrs) <= 3e-3 and lrs[-1] < max(lrs)  # decays with elapsed time
    assert ckpt.list_checkpoints(tmp_path / "checkpoints")[-1].name == f"step-{summary['steps']:07d}"


def test_a_budget_that_holds_few_steps_is_pointed_out_after_the_first(tmp_path, capsys):
    """A preset's global batch of 4,096 on a CPU can make a 10-minute budget a handful of steps: the run says so
    once its first step is timed, and stays quiet where the budget holds enough."""
    def clock(tick: float):  # a clock that moves `tick` seconds at every reading
        now = [0.0]

        def read() -> float:
            now[0] += tick
            return now[0]
        return read

    said = {}
    for tick in (1.0, 0.001):
        config = tiny_config(tmp_path / str(tick), train={"max_steps": 3}, schedule={"budget_s": 60.0})
        train(config, hooks=P.Hooks(clock=clock(tick)))
        said[tick] = [x for x in capsys.readouterr().err.splitlines() if x.startswith("warning: the first step")]
    assert said[0.001] == []
    [line] = said[1.0]
    found = re.fullmatch(r"warning: the first step took (\d+\.\d) s, so the 1-min budget holds about (\d+) "
                         r"optimizer steps of 8 sequences, too few for warmup and decay to mean much: a smaller "
                         r"--global-batch \(or a longer --budget\) gives more", line)
    assert found, line
    step_s, steps = float(found[1]), int(found[2])
    assert step_s >= 1 and steps == 1 + int((60 - step_s) // step_s)  # the first step, then the budget left


def test_changed_config_is_refused(tmp_path):
    train(tiny_config(tmp_path, train={"max_steps": 2}))
    changed = tiny_config(tmp_path, train={"max_steps": 4})
    changed.optim.lr = 1e-3
    with pytest.raises(ValueError, match=r"another configuration.*optim.lr: 0.003 -> 0.001"):
        train(changed)
    changed.checkpoint.allow_config_change = True
    assert train(changed)["steps"] == 4


def test_full_disk_keeps_previous_checkpoint(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, train={"max_steps": 8})
    real_save = ckpt.save_file

    def full_disk(tensors, path, *args, **kwargs):
        if "step-0000008" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(tensors, path, *args, **kwargs)

    monkeypatch.setattr(ckpt, "save_file", full_disk)
    with pytest.raises(ckpt.CheckpointError, match=r"step-0000008: No space left on device; the previous "
                                                   r"checkpoint .*step-0000004 is intact"):
        train(config)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "checkpoints")] == ["step-0000004"]
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".tmp")]
    assert ckpt.load_checkpoint(tmp_path / "checkpoints/step-0000004").step == 4


def test_corrupt_newest_checkpoint_falls_back(tmp_path):
    train(tiny_config(tmp_path, train={"max_steps": 8}))
    newest = tmp_path / "checkpoints/step-0000008/model.safetensors"
    newest.write_bytes(newest.read_bytes()[:-100])
    with pytest.warns(UserWarning, match="step-0000008/model.safetensors is corrupt"):
        summary = train(tiny_config(tmp_path, train={"max_steps": 8}))
    assert summary["steps"] == 8  # resumed from step 4 and redid 5..8


def test_padding_and_sentence_task_are_decided_on_the_cpu_batch():
    """model_inputs reads the collated CPU batch (no device sync) to drop an all-ones mask and all -100 SOP labels."""
    collate = Collator(pad_token_id=0, max_predictions=2)
    same = [Example([2, 5, 6, 3], [0, 0, 0, 0], [1], [5], -100), Example([2, 7, 8, 3], [0, 0, 0, 0], [2], [8], -100)]
    inputs = P.model_inputs(collate(same), torch.device("cpu"))
    assert inputs["attention_mask"] is None and inputs["sentence_order_label"] is None
    mixed = [Example([2, 5, 3], [0, 0, 0], [1], [5], 1), Example([2, 7, 8, 3], [0, 0, 0, 0], [2], [8], 0)]
    inputs = P.model_inputs(collate(mixed), torch.device("cpu"))
    assert inputs["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert inputs["sentence_order_label"].tolist() == [1, 0]
    assert inputs["labels"].tolist() == [[5, -100], [8, -100]]


def test_parse_duration_and_batch_arithmetic():
    assert P.parse_duration("15m") == 900 and P.parse_duration("2h") == 7200
    assert P.parse_duration("1h30m") == 5400 and P.parse_duration("90") == 90
    with pytest.raises(ValueError, match="duration"):
        P.parse_duration("15 minutes")
    assert P.BatchConfig(micro_batch=32, global_batch=4096).steps_to_accumulate(4) == 32
    with pytest.raises(ValueError, match="not a multiple"):
        P.BatchConfig(micro_batch=48, global_batch=4096).steps_to_accumulate(1)


def test_cli_flags_and_config_file(tmp_path):
    parser = argparse.ArgumentParser()
    P.add_commands(parser.add_subparsers())
    (tmp_path / "c.json").write_text(json.dumps({"optim": {"name": "adamw"}, "train": {"log_every": 7}}))
    args = parser.parse_args(["pretrain", "--preset", "albert-tiny", "--data", "D", "--output", "O",
                              "--config", str(tmp_path / "c.json"), "--max-steps", "100", "--lr", "1e-3",
                              "--batch-size", "8", "--global-batch", "64", "--no-bf16", "--budget", "15m",
                              "--model-override", "vocab_size=500", "--resume"])
    config = P.config_from_args(args)
    assert config.optim.name == "adamw" and config.train.log_every == 7 and config.optim.lr == 1e-3
    assert config.train.max_steps == 100 and config.batch.micro_batch == 8 and config.batch.global_batch == 64
    assert config.train.bf16 is False and config.schedule.budget_s == 900
    assert config.model.overrides == {"vocab_size": 500} and config.checkpoint.resume == "latest"
    (tmp_path / "bad.json").write_text(json.dumps({"optim": {"nmae": "adamw"}}))
    with pytest.raises(ValueError, match="unknown config key OptimConfig.nmae"):
        P.config_from_args(parser.parse_args(["pretrain", "--output", "O", "--config", str(tmp_path / "bad.json")]))
    roundtrip = fields.from_dict(P.PretrainConfig, fields.to_dict(config))
    assert roundtrip == config


# ------------------------------------------------------------------------------- the CLI on real data
WORDS = "the a cat dog sat on mat ran far away quick brown fox jumps over lazy river bank house tree".split()


@pytest.fixture(scope="module")
def made_data(tmp_path_factory):
    """A SentencePiece tokenizer (40 pieces) and `litebert data create` output with an eval split."""
    from litebert.data import CreateOptions, create_pretraining_data
    from litebert.tokenizer import train_sentencepiece

    root = tmp_path_factory.mktemp("made")
    rng = np.random.default_rng(0)
    docs = ["\n".join(" ".join(rng.choice(WORDS, rng.integers(5, 12))) + "." for _ in range(rng.integers(3, 9)))
            for _ in range(60)]
    (root / "corpus.txt").write_text("\n\n".join(docs) + "\n")
    train_sentencepiece([root / "corpus.txt"], root / "tok", vocab_size=40)
    create_pretraining_data([root / "corpus.txt"], root / "tok", root / "data",
                            CreateOptions(max_seq_length=32, max_predictions_per_seq=5, eval_fraction=0.1,
                                          dupe_factor=2, shard_size=200), progress=False)
    create_pretraining_data([root / "corpus.txt"], root / "tok", root / "data-nosop",
                            CreateOptions(max_seq_length=32, max_predictions_per_seq=5, sentence_task="none",
                                          dupe_factor=1, shard_size=200), progress=False)
    small = {k: v for k, v in TINY.items() if k != "max_position_embeddings"}
    (root / "tiny.json").write_text(json.dumps({"model": {"preset": "albert-tiny",
                                                          "overrides": {**small, "vocab_size": 40}}}))
    return root


def cli(*argv: str) -> int:
    from litebert.cli import main

    return main(list(argv))


def test_a_final_model_without_its_tokenizer_says_why(tmp_path, monkeypatch):
    """The data's tokenizer directory not found (a relative path recorded by older manifests, another working
    directory) or holding no tokenizer: the final model is written, and the warning names which."""
    from litebert.model import AlbertForPreTraining

    model_config = AlbertConfig(**TINY)
    state = AlbertForPreTraining(model_config).state_dict()
    config, manifest = tiny_config(tmp_path), {"tokenizer": {"directory": "tok"}}
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match=f"tokenizer directory tok not found \\(from {re.escape(str(tmp_path))}\\)"):
        P.write_final_model(model_config, state, tmp_path / "a", config, manifest)
    (tmp_path / "tok").mkdir()
    with pytest.warns(UserWarning, match="tokenizer directory tok holds no spiece.model"):
        P.write_final_model(model_config, state, tmp_path / "b", config, manifest)
    assert (tmp_path / "a/model.safetensors").is_file() and (tmp_path / "b/model.safetensors").is_file()


def test_cli_pretrain_end_to_end(made_data, tmp_path, capsys):
    out = tmp_path / "run"
    flags = ["pretrain", "--config", str(made_data / "tiny.json"), "--data", str(made_data / "data"),
             "--output", str(out), "--batch-size", "4", "--global-batch", "8", "--save-every", "2",
             "--eval-every", "2", "--eval-batches", "2", "--log-every", "1", "--warmup-steps", "1", "--no-progress"]
    assert cli(*flags, "--max-steps", "4") == 0
    assert [r["step"] for r in records(out)] == [1, 2, 3, 4] and len(records(out, "eval")) == 2
    assert {"spiece.model", "config.json", "model.safetensors"} <= {p.name for p in (out / "final").iterdir()}
    err = capsys.readouterr().err
    assert "trained 4 steps" in err
    assert ("run: global batch 8 = micro-batch 4 x accumulation 2 x 1 rank(s); 4 steps; LAMB peak lr 0.00176, "
            "warmup 1 step, then decay to 0 at step 4 (power 1); up to 256 tokens per step (32 per sequence)"
            in err.splitlines())
    # rerun into the same directory with more steps: resumes (--decay-steps keeps the schedule it had)
    assert cli(*flags, "--max-steps", "6", "--decay-steps", "4") == 0
    assert "resumed from" in capsys.readouterr().err and [r["step"] for r in records(out)] == list(range(1, 7))
    # another recipe into the same directory is refused, naming the difference
    assert cli(*flags, "--max-steps", "6", "--decay-steps", "4", "--lr", "0.01") == 2
    assert "optim.lr: 0.00176 -> 0.01" in capsys.readouterr().err
    # more steps without --decay-steps: the horizon is derived from --max-steps, so the run extends, and says so
    assert cli(*flags, "--max-steps", "7") == 0
    assert "the decay horizon moves from step 4 to 7 (it follows --max-steps): the learning rate continues on the " \
        "longer schedule" in capsys.readouterr().err
    assert [r["step"] for r in records(out)] == list(range(1, 8)) and records(out)[-1]["lr"] > 0
    assert cli("plot", str(out)) == 0
    assert (out / "plots/curves_step.png").stat().st_size > 1000 and (out / "plots/curves_time.png").is_file()


def _start_pretraining(made_data, out: Path) -> subprocess.Popen:
    """`litebert pretrain` in a child process, far from its step limit, once it has logged a few steps."""
    cmd = [sys.executable, "-m", "litebert.cli", "pretrain", "--config", str(made_data / "tiny.json"),
           "--data", str(made_data / "data"), "--output", str(out), "--batch-size", "4", "--global-batch", "4",
           "--max-steps", "100000", "--save-every", "100000", "--eval-every", "0", "--log-every", "1",
           "--no-progress"]
    child = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ((out / "metrics.jsonl").exists() and len(records(out)) >= 3):
        assert child.poll() is None and time.monotonic() < deadline, child.stderr.read() if child.poll() else ""
        time.sleep(0.05)
    return child


def test_sigterm_saves_a_checkpoint_and_exits_0(made_data, tmp_path):
    """Cluster pre-emption: SIGTERM finishes the step, writes a checkpoint and the summary, exits 0; the run
    then resumes from that step."""
    out = tmp_path / "run"
    child = _start_pretraining(made_data, out)
    child.send_signal(signal.SIGTERM)
    err = child.communicate(timeout=120)[1]
    assert child.returncode == 0, err
    assert "SIGTERM: stopping after this step with a checkpoint" in err and "interrupted" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_by"] == "SIGTERM" and summary["steps"] >= 3
    assert ckpt.list_checkpoints(out / "checkpoints")[-1].name == f"step-{summary['steps']:07d}"
    assert cli("pretrain", "--config", str(made_data / "tiny.json"), "--data", str(made_data / "data"),
               "--output", str(out), "--batch-size", "4", "--global-batch", "4", "--max-steps",
               str(summary["steps"] + 2), "--save-every", "100000", "--eval-every", "0", "--log-every", "1",
               "--no-progress") == 0
    assert [r["step"] for r in records(out)] == list(range(1, summary["steps"] + 3))


def test_a_second_signal_exits_at_once(made_data, tmp_path):
    """Two signals pending together (the child is stopped while they arrive, so neither is lost): the first asks
    for a clean stop, the second exits at once with 128 + its number, leaving no partial checkpoint."""
    out = tmp_path / "run"
    child = _start_pretraining(made_data, out)
    child.send_signal(signal.SIGSTOP)
    child.send_signal(signal.SIGTERM)
    child.send_signal(signal.SIGINT)
    child.send_signal(signal.SIGCONT)
    err = child.communicate(timeout=120)[1]
    # Which one comes first is not fixed: the kernel hands a process's signals to any of its threads that does not
    # block them (torch's, the loader's), so Python may see SIGTERM first (CI did), and may even run the second
    # handler inside the first one before the first has printed; the exit line names both.
    first, second = ((signal.SIGINT, signal.SIGTERM) if child.returncode == 128 + signal.SIGTERM
                     else (signal.SIGTERM, signal.SIGINT))
    assert child.returncode == 128 + second, err
    assert f"second signal, {second.name} after {first.name}: exiting now" in err
    assert not (out / "summary.json").exists()
    ckpts = out / "checkpoints"
    assert not ckpts.exists() or not any(ckpts.iterdir())  # the first stop's checkpoint was never begun


def test_run_shape_shows_what_a_small_micro_batch_means_for_a_paper_preset():
    """The trap: `--batch-size 8` on a paper preset means 512 accumulated micro-batches per step."""
    config = P.PretrainConfig(batch=P.BatchConfig(micro_batch=8, global_batch=4096))
    config.train.max_steps = 125_000
    line = P.run_shape(config, 1, {"settings": {"max_seq_length": 512}})
    assert line.startswith("run: global batch 4,096 = micro-batch 8 x accumulation 512 x 1 rank(s); 125,000 steps;")
    assert line.endswith("up to 2,097,152 tokens per step (512 per sequence)")
    config.schedule.budget_s = 540
    config.batch.micro_batch = 16
    assert "a 9-min budget (at most 125,000 steps); " in P.run_shape(config, 2, None)


def test_a_warmup_longer_than_half_the_schedule_is_pointed_out():
    """The paper's 3125 warmup steps clamped to a short --max-steps leave a rate that only ever rises."""
    config = P.PretrainConfig()
    assert P.warmup_warning(config, 1) is None  # the paper's 3125 of 125k
    config.train.max_steps = 1000
    assert P.warmup_warning(config, 1) == ("warning: warmup takes 1,000 of the schedule's 1,000 steps (100%; the "
                                           "paper's: 2.5%), so the learning rate never decays: set --warmup-steps "
                                           "(2.5% is 25)")
    config.train.max_steps = 5000
    assert "3,125 of the schedule's 5,000 steps (62%" in P.warmup_warning(config, 1)
    config.schedule.warmup_steps = 125
    assert P.warmup_warning(config, 1) is None
    config.schedule.budget_s = 60.0  # a budget warms up for warmup_fraction of the time
    config.schedule.warmup_steps = 3125
    assert P.warmup_warning(config, 1) is None


def test_vocab_size_comes_from_the_data_unless_given(made_data, tmp_path, capsys):
    """A preset (V=30000) trains on 40-piece data: the vocabulary is the data's; an explicit other one is refused."""
    flags = ["pretrain", "--preset", "albert-tiny", "--data", str(made_data / "data"), "--max-steps", "1",
             "--batch-size", "4", "--global-batch", "4", "--eval-every", "0", "--no-progress"]
    assert cli(*flags, "--output", str(tmp_path / "o")) == 0
    assert json.loads((tmp_path / "o/final/config.json").read_text())["vocab_size"] == 40
    code = cli(*flags, "--output", str(tmp_path / "o2"), "--model-override", "vocab_size=30000")
    assert code == 2
    assert f"{made_data / 'data'} has vocab_size 40, the model has 30000" in capsys.readouterr().err


def test_cli_reports_a_corrupt_shard(made_data, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(made_data / "data", data)
    shard = data / "train-00000.bin"
    shard.write_bytes(shard.read_bytes()[:-10])
    code = cli("pretrain", "--config", str(made_data / "tiny.json"), "--data", str(data), "--output",
               str(tmp_path / "o"), "--max-steps", "1", "--no-progress")
    assert code == 2
    assert f"shard {shard} is corrupt" in capsys.readouterr().err


def test_cli_refuses_a_tokenizer_other_than_the_datas(made_data, tmp_path, capsys):
    from litebert.tokenizer import train_sentencepiece

    train_sentencepiece([made_data / "corpus.txt"], tmp_path / "other", vocab_size=40, do_lower_case=False)
    code = cli("pretrain", "--config", str(made_data / "tiny.json"), "--data", str(made_data / "data"),
               "--tokenizer", str(tmp_path / "other"), "--output", str(tmp_path / "o"), "--max-steps", "1",
               "--no-progress")
    assert code == 2
    assert f"{made_data / 'data'} was made with another tokenizer" in capsys.readouterr().err


def test_persistent_nonfinite_gradients_stop_the_run(tmp_path):
    def poison(step, model):
        if step >= 2:
            model.predictions.dense.weight.grad.fill_(float("inf"))

    config = tiny_config(tmp_path, guard={"max_consecutive_skips": 3})
    with pytest.raises(RuntimeError, match="4 steps in a row had a non-finite loss or gradient"):
        train(config, hooks=P.Hooks(after_backward=poison))
    assert len([e for e in events(tmp_path) if e["event"] == "skip"]) == 3  # the 4th raised


def test_cli_data_without_sentence_task(made_data, tmp_path):
    """`data create --sentence-task none`: MLM loss only, SOP accuracy absent (None), no eval split."""
    out = tmp_path / "run"
    assert cli("pretrain", "--config", str(made_data / "tiny.json"), "--data", str(made_data / "data-nosop"),
               "--output", str(out), "--max-steps", "2", "--batch-size", "4", "--global-batch", "4",
               "--log-every", "1", "--no-progress") == 0
    for r in records(out):
        assert r["sop_acc"] is None and r["sop_loss"] == 0.0 and r["loss"] == pytest.approx(r["mlm_loss"])


def test_resume_from_a_named_checkpoint(tmp_path):
    train(tiny_config(tmp_path / "a"))
    branch = tiny_config(tmp_path / "b", checkpoint={"resume": str(tmp_path / "a/checkpoints/step-0000004")})
    assert train(branch)["steps"] == 8
    assert [r["loss"] for r in records(tmp_path / "b")] == [r["loss"] for r in records(tmp_path / "a")][4:]
    again = tiny_config(tmp_path / "a", checkpoint={"resume": str(tmp_path / "a/checkpoints/step-0000004")})
    with pytest.raises(ValueError, match="holds newer checkpoints \\(step-0000008\\)"):
        train(again)


def test_cli_resume_on_real_data_is_exact(made_data, tmp_path):
    """The data cursor of PretrainingDataset goes through the checkpoint: 2 + 2 steps == 4 steps, bit for bit."""
    def run_to(out: Path, steps: int) -> int:
        return cli("pretrain", "--config", str(made_data / "tiny.json"), "--data", str(made_data / "data"),
                   "--output", str(out), "--batch-size", "4", "--global-batch", "8", "--save-every", "2",
                   "--log-every", "1", "--eval-every", "0", "--decay-steps", "4", "--warmup-steps", "1",
                   "--max-steps", str(steps), "--no-progress")

    assert run_to(tmp_path / "straight", 4) == 0
    assert run_to(tmp_path / "split", 2) == 0 and run_to(tmp_path / "split", 4) == 0
    assert [r["loss"] for r in records(tmp_path / "straight")] == [r["loss"] for r in records(tmp_path / "split")]
    a = ckpt.load_checkpoint(tmp_path / "straight/checkpoints/step-0000004")
    b = ckpt.load_checkpoint(tmp_path / "split/checkpoints/step-0000004")
    assert all(torch.equal(a.model[k], b.model[k]) for k in a.model)
    assert a.state["data"] == b.state["data"]


# ------------------------------------------------------------------------------- continued pretraining
def _start_weights(made_data, out: Path, init_from: str, **overrides) -> dict[str, torch.Tensor]:
    """Run 1 step of `pretrain --init-from`; the model's weights as the first step began."""
    config = P.PretrainConfig(output=str(out))
    config.model = P.ModelConfig("albert-tiny", dict(overrides), init_from=init_from)
    config.data.path = str(made_data / "data")
    config.batch = P.BatchConfig(micro_batch=4, global_batch=4)
    config.train = P.TrainConfig(max_steps=1, eval_every=0, progress=False, device="cpu")
    seen = {}

    def capture(step, model):
        if not seen:
            seen.update({k: v.detach().clone() for k, v in model.state_dict().items()})
    P.run(config, hooks=P.Hooks(before_forward=capture))
    return seen


def test_init_from_a_run_a_checkpoint_an_mlm_model_and_bert(made_data, tmp_path, caplog):
    from safetensors.torch import load_file
    from transformers import BertConfig, BertForMaskedLM

    base = ["pretrain", "--config", str(made_data / "tiny.json"), "--data", str(made_data / "data"),
            "--batch-size", "4", "--global-batch", "4", "--eval-every", "0", "--no-progress"]
    assert cli(*base, "--output", str(tmp_path / "a"), "--max-steps", "2", "--save-every", "2") == 0
    final = load_file(str(tmp_path / "a/final/model.safetensors"))
    from litebert.model import AlbertForPreTraining

    trained = AlbertForPreTraining.from_pretrained(tmp_path / "a/final").state_dict()
    # a run directory (its final/ model): every weight, both heads, as trained
    start = _start_weights(made_data, tmp_path / "b", str(tmp_path / "a"))
    assert start.keys() == trained.keys() and all(torch.equal(start[k], trained[k]) for k in trained)
    assert final  # the HF-layout file the run wrote is what was read
    # one of its checkpoints
    step2 = ckpt.load_checkpoint(tmp_path / "a/checkpoints/step-0000002").model
    start = _start_weights(made_data, tmp_path / "c", str(tmp_path / "a/checkpoints/step-0000002"))
    assert all(torch.equal(start[k], step2[k]) for k in step2)

    # an MLM-only model: the encoder and MLM head load, the SOP classifier starts fresh
    from litebert.model import AlbertForMaskedLM

    mlm = AlbertForMaskedLM.from_pretrained(tmp_path / "a/final")
    mlm.save_pretrained(tmp_path / "mlm")
    start = _start_weights(made_data, tmp_path / "d", str(tmp_path / "mlm"))
    assert torch.equal(start["predictions.bias"], trained["predictions.bias"])
    assert torch.equal(start["albert.embeddings.word_embeddings.weight"],
                       trained["albert.embeddings.word_embeddings.weight"])
    assert not torch.equal(start["sop_classifier.weight"], trained["sop_classifier.weight"])
    assert "newly initialised head weights: albert.pooler.weight, albert.pooler.bias, sop_classifier" in caplog.text

    # a Hugging Face BERT directory (share=none, E=H): its architecture replaces the preset's
    torch.manual_seed(0)
    bert = BertForMaskedLM(BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=64, max_position_embeddings=64))
    bert.save_pretrained(tmp_path / "bert", safe_serialization=True)
    start = _start_weights(made_data, tmp_path / "e", str(tmp_path / "bert"))
    assert torch.equal(start["albert.embeddings.word_embeddings.weight"],
                       bert.bert.embeddings.word_embeddings.weight.detach())
    saved = json.loads((tmp_path / "e/final/config.json").read_text())
    assert saved["hidden_size"] == 32 and saved["num_hidden_layers"] == 2


def test_init_from_refuses_another_vocabulary_or_tokenizer(made_data, tmp_path, capsys):
    from litebert.model import AlbertForPreTraining
    from litebert.tokenizer import train_sentencepiece

    base = ["pretrain", "--data", str(made_data / "data"), "--output", str(tmp_path / "o"), "--max-steps", "1",
            "--batch-size", "4", "--global-batch", "4", "--no-progress"]
    AlbertForPreTraining(AlbertConfig(**{**TINY, "vocab_size": 30})).save_pretrained(tmp_path / "v30")
    assert cli(*base, "--init-from", str(tmp_path / "v30")) == 2
    assert "has vocab_size 30, the data's tokenizer 40" in capsys.readouterr().err
    AlbertForPreTraining(AlbertConfig(**{**TINY, "vocab_size": 40})).save_pretrained(tmp_path / "other")
    rng = np.random.default_rng(4)
    letters = list("zyxwvutsrqp")
    (tmp_path / "other.txt").write_text("\n".join(" ".join("".join(rng.choice(letters, rng.integers(2, 7)))
                                                             for _ in range(12)) for _ in range(300)) + "\n")
    train_sentencepiece([tmp_path / "other.txt"], tmp_path / "other", vocab_size=40, overwrite=True)
    assert cli(*base, "--init-from", str(tmp_path / "other")) == 2
    assert "its tokenizer is not the one the data was made with" in capsys.readouterr().err
    assert cli(*base, "--init-from", str(tmp_path / "nothing")) == 2
    assert "not a model directory" in capsys.readouterr().err


def test_prefetched_batches_and_cursors_equal_inline_ones():
    """The prefetching thread reads ahead, but hands out the same batches in the same order, each with the
    dataset cursor right after it (what a checkpoint saves); errors on the thread surface in the loop."""
    collate = Collator(0, PRED)
    inline_data, ahead_data = SyntheticData(n=40), SyntheticData(n=40)
    inline = P.Prefetcher(P.micro_batches(inline_data, 6, collate), inline_data.state_dict, depth=0)
    ahead = P.Prefetcher(P.micro_batches(ahead_data, 6, collate), ahead_data.state_dict, depth=3)
    for _ in range(15):  # past two epoch ends (40 examples, batches of 6)
        a, b = next(inline), next(ahead)
        assert all(torch.equal(a[k], b[k]) for k in a)
        time.sleep(0.002)  # let the thread run ahead
        assert ahead.state == inline.state == inline_data.state_dict()
    deadline = time.monotonic() + 5
    while not ahead._queue.full() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ahead_data.state_dict() != ahead.state  # the thread has read further than what was handed out
    ahead.close()

    def broken():
        yield collate([SyntheticData().example(0)])
        raise OSError("shard 3: read error")
    failing = P.Prefetcher(broken(), lambda: None)
    next(failing)
    with pytest.raises(OSError, match="shard 3: read error"):
        next(failing)


def test_the_progress_bar_names_accuracies_as_accuracies():
    """The bar's line reads as the final summary does: MLM and SOP accuracies named so, never mistaken for losses."""
    record = {"loss": 2.5, "mlm_acc": 0.25, "sop_acc": None, "lr": 1e-3, "tokens_per_s": 1234.0}
    line = P._postfix(record, 90.0)
    assert line == "loss 2.500 mlm_acc 0.250 sop_acc - lr 1.00e-03 1234 tok/s eta 1.5m"
    assert P._postfix(None, 90.0) is None
