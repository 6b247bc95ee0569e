"""ALBERT pretraining: masked LM over the masked positions + sentence-order prediction, LAMB, one loop.

`run(config)` reads top to bottom, nanoGPT-style. Each optimizer step:

    accumulate   forward/backward over `accumulate` micro-batches (gradients all-reduced on the last one)
    clip         global gradient norm to 1.0
    agree        one cross-rank decision: skip (non-finite), stop (budget, interrupt), rank 0's clock, mean loss
    step         optimizer update, unless skipped; a loss spike rolls back to the last checkpoint instead
    log          rank 0: metrics.jsonl, progress bar, TensorBoard
    eval         held-out split every `eval_every` steps: MLM loss/accuracy, SOP accuracy
    checkpoint   every `save_every` steps, when eval improves the best MLM accuracy, and at the end

The recipe's defaults are the paper's: LAMB lr 0.00176, warmup 3125 steps, linear decay to 0 at 125k steps,
global batch 4096 (micro-batch x accumulation x world size), bf16 autocast with fp32 master weights.
Parallelism (DDP / FSDP via torchrun) and torch.compile wrap the model from outside (`litebert.distributed`).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import re
import shutil
import signal
import statistics
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from litebert import checkpoint as ckpt
from litebert import distributed as D
from litebert.config import AlbertConfig
from litebert.model import AlbertForPreTraining
from litebert.optim import OptimConfig, ScheduleConfig, build_optimizer, learning_rate, set_learning_rate


# ================================================================================================ config
MLM_BIAS_INITS = ("zero", "unigram")


@dataclass
class ModelConfig:
    """Which ALBERT to train."""

    preset: str = "albert-base-v2"
    """A name from `litebert.config.PRESETS`."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """AlbertConfig fields changed from the preset, e.g. {"vocab_size": 8000, "hidden_dropout_prob": 0.1}."""
    mlm_bias_init: str = "zero"
    """The MLM decoder's output bias at step 0: `zero` (the official code) or `unigram`, the log-frequency of
    each piece in the training data. With `unigram` the model predicts the unigram distribution from the first
    step, so its layers are not first bent into producing it from a constant hidden state (measured: that is
    how short, high-learning-rate runs collapse to the unigram plateau; benchmarks/pretrain_sweep.py)."""

    def __post_init__(self) -> None:
        if self.mlm_bias_init not in MLM_BIAS_INITS:
            raise ValueError(f"mlm_bias_init must be one of {', '.join(MLM_BIAS_INITS)}, got {self.mlm_bias_init!r}")

    def build(self) -> AlbertConfig:
        return AlbertConfig.preset(self.preset, **self.overrides)


@dataclass
class DataConfig:
    """Where the examples come from (a `litebert data create` directory)."""

    path: str = ""
    """The data directory; its manifest records the tokenizer and vocab_size."""
    seq_length: int | None = None
    """Pad every batch to this length (fixed shapes, e.g. for compile); None pads to the longest in the batch.
    Must be at least the data's max_seq_length."""
    tokenizer: str | None = None
    """Tokenizer directory copied into the final model; None takes the one the manifest names."""
    verify_shards: bool = True
    """Check each shard's sha256 when opening it."""


@dataclass
class BatchConfig:
    """How many sequences make one optimizer step."""

    micro_batch: int = 32
    """Sequences per forward pass on each rank (what fits in memory)."""
    global_batch: int | None = 4096
    """Sequences per optimizer step over all ranks; must be micro_batch x world size x accumulate."""
    accumulate: int | None = None
    """Micro-batches per step per rank; None derives it from global_batch."""

    def steps_to_accumulate(self, world_size: int) -> int:
        """Micro-batches per optimizer step on each rank; ValueError if global_batch does not divide."""
        per_pass = self.micro_batch * world_size
        if self.accumulate is not None:
            if self.global_batch is not None and self.global_batch != per_pass * self.accumulate:
                raise ValueError(f"global batch {self.global_batch} != micro-batch {self.micro_batch} x world size "
                                 f"{world_size} x accumulate {self.accumulate}")
            return self.accumulate
        if self.global_batch is None:
            return 1
        if self.global_batch % per_pass:
            raise ValueError(f"global batch {self.global_batch} is not a multiple of micro-batch {self.micro_batch} "
                             f"x world size {world_size}")
        return self.global_batch // per_pass


@dataclass
class TrainConfig:
    """The loop."""

    max_steps: int | None = None
    """Optimizer steps to run; None = schedule.total_steps (or unlimited with a time budget)."""
    seed: int = 12345
    """Seeds model init (identical on all ranks), dropout (per rank) and the data order."""
    bf16: bool = True
    """bf16 autocast for the forward pass (fp32 master weights and optimizer state)."""
    compile: bool = False
    """torch.compile the model."""
    device: str | None = None
    """`cpu` or `cuda`; None picks cuda when available."""
    log_every: int = 10
    """Steps between metrics.jsonl records (averages over the steps since the last one)."""
    eval_every: int = 1000
    """Steps between evaluations on the eval split; 0 turns evaluation off."""
    eval_batches: int = 50
    """Micro-batches per rank in each evaluation."""
    progress: bool = True
    """Show a tqdm progress bar on rank 0."""


@dataclass
class CheckpointConfig:
    """Saving and resuming."""

    save_every: int = 1000
    """Steps between checkpoints (one is always written at the end)."""
    keep_last: int = 3
    """Checkpoints kept besides the best one."""
    resume: str | None = None
    """`latest` (must find a checkpoint in OUTPUT), a checkpoint directory, or None: resume automatically
    when OUTPUT already holds a checkpoint of this configuration."""
    allow_config_change: bool = False
    """Resume even though the configuration differs from the saved one (the differences are printed)."""


@dataclass
class GuardConfig:
    """Divergence guard: skip non-finite steps, roll back on loss spikes."""

    spike_factor: float = 3.0
    """A step whose loss exceeds spike_factor x the median of the last `window` losses is a spike; 0 = off."""
    window: int = 50
    """Losses in the running median (a spike is only called once the window is full)."""
    max_rollbacks: int = 10
    """Give up (error) after this many rollbacks in one run."""
    max_consecutive_skips: int = 20
    """Give up (error) after this many non-finite steps in a row: the model itself is broken."""


@dataclass
class PretrainConfig:
    """Everything `litebert pretrain` needs; saved resolved in OUTPUT/config.json and every checkpoint."""

    output: str = ""
    """Run directory: metrics.jsonl, checkpoints/, tb/, final/, summary.json."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    parallel: D.ParallelConfig = field(default_factory=D.ParallelConfig)


# Fields a resumed run may change without --allow-config-change: they do not alter the trajectory.
RESUME_FREE = {"output", "train.max_steps", "train.log_every", "train.progress", "train.compile", "train.device",
               "train.eval_every", "train.eval_batches", "checkpoint.save_every", "checkpoint.keep_last",
               "checkpoint.resume", "checkpoint.allow_config_change", "data.path", "data.tokenizer",
               "data.verify_shards", "parallel.timeout_s", "parallel.backend"}


def config_from_dict(cls, data: dict[str, Any]):
    """A (nested) config dataclass from a dict, e.g. a --config JSON file; unknown keys are an error."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ValueError(f"unknown config key {cls.__name__}.{key} (known: {', '.join(names)})")
        default = getattr(cls(), key)
        kwargs[key] = config_from_dict(type(default), value) if dataclasses.is_dataclass(default) else value
    return cls(**kwargs)


def flat_config(config: Any, prefix: str = "") -> dict[str, Any]:
    """{"optim.lr": 0.00176, ...}: a nested config (dataclass or dict) as dotted keys."""
    items = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config
    out = {}
    for key, value in items.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and key != "overrides":
            out.update(flat_config(value, name + "."))
        else:
            out[name] = value
    return out


def config_differences(saved: dict[str, Any], current: PretrainConfig) -> list[str]:
    """'key: saved -> current' for every field that differs and matters for the trajectory."""
    old, new = flat_config(saved), flat_config(current)
    return [f"{k}: {old.get(k, '<absent>')!r} -> {new.get(k, '<absent>')!r}"
            for k in sorted(set(old) | set(new)) if k not in RESUME_FREE and old.get(k) != new.get(k)]


def parse_duration(text: str) -> float:
    """'90' / '90s' / '15m' / '2h' / '1h30m' -> seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ValueError(f"cannot read the duration {text!r}: use e.g. 900, 15m, 2h, 1h30m")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


# ================================================================================================ batches
def micro_batches(dataset: Iterable, batch_size: int, collate: Callable[[list], dict]) -> Iterator[dict]:
    """Endless micro-batches of `batch_size` examples, epoch after epoch.

    Between two yields the dataset's position is exactly after the examples yielded, so its `state_dict()`
    is the data cursor a checkpoint needs (a batch that spans an epoch end takes the rest from the next).
    A cursor restored at an epoch's very end makes the first pass empty; only an empty pass over a fresh
    epoch (two in a row) means the rank has no data.
    """
    buffer, empty_passes = [], 0
    while True:
        count = 0
        for example in dataset:
            count += 1
            buffer.append(example)
            if len(buffer) == batch_size:
                batch, buffer = collate(buffer), []
                yield batch
        empty_passes = empty_passes + 1 if count == 0 else 0
        if empty_passes == 2:
            raise ValueError(f"the training data yields no examples for this rank (batch size {batch_size})")


def model_inputs(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """The forward's arguments: MLM labels are masked_lm_ids, -100 on padding predictions (weight 0)."""
    b = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    labels = b["masked_lm_ids"].masked_fill(b["masked_lm_weights"] == 0, -100)  # (B, P)
    sop = b["sentence_order_label"]  # (B,), -100 when the data has no sentence task
    return dict(input_ids=b["input_ids"], attention_mask=b["attention_mask"], token_type_ids=b["token_type_ids"],
                masked_lm_positions=b["masked_lm_positions"], labels=labels,
                sentence_order_label=None if bool((sop == -100).all()) else sop)


# Per-step sums, kept as one float64 vector so a single all-reduce gathers them for logging.
STATS = ("loss", "mlm_loss", "sop_loss", "mlm_correct", "mlm_count", "sop_correct", "sop_count", "tokens",
         "micro_batches")


def batch_stats(out, batch: dict[str, Tensor]) -> Tensor:
    """The STATS of one micro-batch as a float64 vector on the model's device (no host sync here)."""
    device = out.sop_logits.device
    weights = batch["masked_lm_weights"].to(device)  # (B, P)
    mlm_hit = (out.prediction_logits.argmax(-1) == batch["masked_lm_ids"].to(device)).float()  # (B, P)
    sop_label = batch["sentence_order_label"].to(device)  # (B,)
    sop_valid = sop_label != -100
    sop_hit = (out.sop_logits.argmax(-1) == sop_label) & sop_valid
    sop_loss = out.sop_loss.detach() if out.sop_loss is not None else torch.zeros((), device=device)
    return torch.stack([
        out.loss.detach(), out.mlm_loss.detach(), sop_loss,
        (mlm_hit * weights).sum(), weights.sum(), sop_hit.sum(), sop_valid.sum(),
        batch["attention_mask"].to(device).sum(), torch.ones((), device=device),
    ]).double()


# ================================================================================================ step
def train_step(model: nn.Module, batches: list[dict], device: torch.device, autocast) -> Tensor:
    """Forward and backward over one optimizer step's micro-batches; gradients accumulate in `.grad`.

    Each micro-batch's loss is divided by their number, so the gradient is that of the mean loss (the
    gradient all-reduce then averages over ranks). Returns the summed STATS of the micro-batches.
    """
    stats = torch.zeros(len(STATS), dtype=torch.float64, device=device)
    for i, batch in enumerate(batches):
        with D.gradient_sync(model, enabled=i == len(batches) - 1):
            with autocast:
                out = model(**model_inputs(batch, device))
            (out.loss / len(batches)).backward()
        stats += batch_stats(out, batch)
    return stats.cpu()


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[dict], world: D.World, autocast,
             top_piece: int | None = None) -> dict[str, float]:
    """MLM loss and accuracy (over masked positions, weighted) and SOP accuracy on held-out batches.

    With `top_piece` (the training data's most frequent piece) also `unigram_mlm_acc`: the accuracy of always
    guessing it, the level a model that ignores the context stays at.
    """
    was_training = model.training
    model.eval()
    stats = torch.zeros(len(STATS) + 1, dtype=torch.float64, device=world.device)  # + unigram hits
    for batch in batches:
        with autocast:
            out = model(**model_inputs(batch, world.device))
        stats[:-1] += batch_stats(out, batch)
        if top_piece is not None:
            stats[-1] += float(((batch["masked_lm_ids"] == top_piece) * batch["masked_lm_weights"]).sum())
    model.train(was_training)
    totals = D.all_reduce_sum(world, stats)
    metrics = summarize(totals[:-1])
    if top_piece is not None:
        metrics["unigram_mlm_acc"] = totals[-1].item() / max(totals[STATS.index("mlm_count")].item(), 1.0)
    return metrics


def summarize(stats: Tensor) -> dict[str, float]:
    """Mean losses and accuracies from summed STATS (over micro-batches and ranks)."""
    s = dict(zip(STATS, stats.cpu().tolist()))
    n = max(s["micro_batches"], 1.0)
    return {"loss": s["loss"] / n, "mlm_loss": s["mlm_loss"] / n, "sop_loss": s["sop_loss"] / n,
            "mlm_acc": s["mlm_correct"] / max(s["mlm_count"], 1.0),
            "sop_acc": s["sop_correct"] / s["sop_count"] if s["sop_count"] else None,  # None: no sentence task
            "tokens": s["tokens"]}


# ================================================================================================ state
@dataclass
class Progress:
    """Counters that a checkpoint saves and a resume restores."""

    step: int = 0
    """Optimizer updates done (skipped steps do not count)."""
    tokens: float = 0.0
    """Real (non-padding) tokens trained on, all ranks."""
    elapsed_s: float = 0.0
    """Wall-clock seconds of training so far, rank 0's clock, across resumes."""
    skipped: int = 0
    rollbacks: int = 0
    best_mlm_acc: float | None = None
    best_step: int | None = None


class SpikeGuard:
    """Running median of recent losses; `is_spike(loss)` when loss > factor x median (window full)."""

    def __init__(self, factor: float, window: int):
        self.factor = factor
        self.losses: deque[float] = deque(maxlen=window)

    def is_spike(self, loss: float) -> bool:
        full = len(self.losses) == self.losses.maxlen
        return self.factor > 0 and full and loss > self.factor * statistics.median(self.losses)

    def record(self, loss: float) -> None:
        self.losses.append(loss)

    def state_dict(self) -> dict:
        return {"losses": list(self.losses)}

    def load_state_dict(self, state: dict) -> None:
        self.losses.clear()
        self.losses.extend(state["losses"])


def rng_state() -> dict[str, Any]:
    """Every RNG this process draws from: python, numpy (global), torch CPU (and CUDA)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Hooks:
    """Optional callbacks into the loop (instrumentation and fault injection, e.g. in tests)."""

    before_forward: Callable[[int, nn.Module], None] | None = None
    """Called with (step about to run, model) before its first micro-batch."""
    after_backward: Callable[[int, nn.Module], None] | None = None
    """Called with (step, model) once its gradients are accumulated, before clipping."""


# ================================================================================================ data
def open_data(config: PretrainConfig, model_config: AlbertConfig, world: D.World):
    """(train dataset, eval dataset or None, collate, manifest) for this rank; errors name the directory."""
    from litebert.data.dataset import PretrainingDataset

    if not config.data.path:
        raise ValueError("no training data: pass --data DIR (made by `litebert data create`)")
    tokenizer = None
    if config.data.tokenizer:  # the one shipped with the final model must be the one the data was made with
        from litebert.tokenizer import AlbertTokenizer

        tokenizer = AlbertTokenizer.from_pretrained(config.data.tokenizer)
    common = dict(seed=config.train.seed, rank=world.rank, world_size=world.world_size, tokenizer=tokenizer,
                  vocab_size=model_config.vocab_size, verify=config.data.verify_shards)
    train = PretrainingDataset(config.data.path, "train", **common)
    if len(train) < config.batch.micro_batch:
        raise ValueError(f"{config.data.path}: the train split has {train.num_examples} examples, too few for "
                         f"micro-batch {config.batch.micro_batch} x world size {world.world_size}")
    eval_data = None
    splits = train.manifest["splits"]
    if "eval" in splits and sum(s["examples"] for s in splits["eval"]["shards"]) >= world.world_size:
        eval_data = PretrainingDataset(config.data.path, "eval", shuffle=False, **common)
    if train.max_seq_length > model_config.max_position_embeddings:
        raise ValueError(f"{config.data.path} has max_seq_length {train.max_seq_length}, more than the model's "
                         f"max_position_embeddings {model_config.max_position_embeddings}")
    if config.data.seq_length is not None:
        if config.data.seq_length < train.max_seq_length:
            raise ValueError(f"--seq-length {config.data.seq_length} is shorter than the data's max_seq_length "
                             f"{train.max_seq_length} ({config.data.path})")
        if config.data.seq_length > model_config.max_position_embeddings:
            raise ValueError(f"--seq-length {config.data.seq_length} exceeds max_position_embeddings "
                             f"{model_config.max_position_embeddings}")
    collate = dataclasses.replace(train.collator(), pad_to=config.data.seq_length)
    return train, eval_data, collate, train.manifest


def adapt_cursor(saved: list[dict], world: D.World) -> dict:
    """This rank's data position from the positions saved by every rank, possibly at another world size.

    Same world size: this rank's own (exact resume). Otherwise the epoch and the global number of examples
    consumed are kept (each rank r of W reads every W-th example of the epoch's permutation).
    """
    if len(saved) == world.world_size:
        return saved[world.rank]
    first = saved[0]
    consumed = first["cursor"] * len(saved)
    return {**first, "cursor": consumed // world.world_size, "rank": world.rank, "world_size": world.world_size}


# ================================================================================================ run
class MetricsLog:
    """Rank 0's record of the run: metrics.jsonl (one JSON object per line), TensorBoard, the progress bar."""

    def __init__(self, output: Path, enabled: bool, total: int | None, progress: bool, initial: int):
        self.enabled = enabled
        self.path = output / "metrics.jsonl"
        self.writer = self.bar = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(output / "tb"))
        except ImportError:
            pass
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)

    def truncate_after(self, step: int) -> None:
        """Drop records past `step` (a resume or rollback repeats those steps)."""
        if not self.enabled or not self.path.exists():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        kept = [ln for ln in lines if ln.strip() and json.loads(ln).get("step", 0) <= step]
        self.path.write_text("".join(ln + "\n" for ln in kept), encoding="utf-8")

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            prefix = record.get("split", "train")
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step" and math.isfinite(value):
                    self.writer.add_scalar(f"{prefix}/{key}", value, record["step"])

    def message(self, text: str) -> None:
        if self.enabled:
            (self.bar.write if self.bar is not None else print)(text, file=sys.stderr)

    def advance(self, step: int, record: dict | None, eta_s: float | None) -> None:
        if self.bar is None:
            return
        self.bar.n = step
        if record is not None:
            self.bar.set_postfix_str(
                f"loss {record['loss']:.3f} mlm {record['mlm_acc']:.3f} sop {_fmt(record['sop_acc'])} "
                f"lr {record['lr']:.2e} {record['tokens_per_s']:.0f} tok/s"
                + (f" eta {eta_s / 60:.1f}m" if eta_s is not None else ""), refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


@dataclass
class LogWindow:
    """The STATS of the updates since the last metrics record, which averages them."""

    stats: Tensor = field(default_factory=lambda: torch.zeros(len(STATS), dtype=torch.float64))
    """Summed over the window's updates, this rank only (all-reduced when a record is written)."""
    steps: int = 0
    time_s: float = 0.0
    """Seconds spent in the window's steps (skipped ones included), for tokens/s."""

    def add(self, stats: Tensor) -> None:
        self.stats += stats
        self.steps += 1

    def reset(self) -> None:
        self.stats.zero_()
        self.steps, self.time_s = 0, 0.0


@dataclass
class Run:
    """One run's moving parts: made by `build_run_state`, advanced by `train_loop`, closed by `finish`."""

    config: PretrainConfig
    world: D.World
    model_config: AlbertConfig
    manifest: dict | None
    """The data directory's manifest; None when the data was passed in."""
    model: nn.Module
    """The plain module: state dicts, hooks and the final model read it."""
    model_for_step: nn.Module
    """The same parameters as the loop calls them: DDP / FSDP-wrapped, maybe compiled."""
    optimizer: torch.optim.Optimizer
    params: list[nn.Parameter]
    """The trainable parameters (what the gradient norm is taken over)."""
    accumulate: int
    """Micro-batches per optimizer step on each rank."""
    train_data: Any
    """Its `state_dict()` is the data cursor a checkpoint saves."""
    batches: Iterator[dict]
    """Endless training micro-batches drawn from train_data."""
    eval_batches: Callable[[], Iterator[dict]] | None
    """The same held-out micro-batches at every call; None: no eval split."""
    autocast: Any
    hooks: Hooks
    progress: Progress
    top_piece: int | None
    """The training data's most frequent piece (evaluation reports the accuracy of always guessing it);
    None when the data cannot count its pieces."""
    guard: SpikeGuard
    log: MetricsLog | None = None
    """Opened once a resume is restored (the progress bar starts at the restored step)."""
    window: LogWindow = field(default_factory=LogWindow)
    last_record: dict | None = None
    """The newest train record (for the progress bar and the summary)."""
    last_saved: int | None = None
    """The step of the newest checkpoint of this run (or the one resumed from)."""
    skipped_in_a_row: int = 0
    stop_requested: list = field(default_factory=list)
    """Non-empty once SIGTERM / SIGINT arrived."""
    started: float = 0.0
    """time.perf_counter() when this process's loop began; with elapsed_before, the run's clock."""
    elapsed_before: float = 0.0
    """Training seconds before this process (from the checkpoint resumed)."""
    first_step: int = 0
    """The step this process started at (for the ETA at this process's pace)."""

    @property
    def output(self) -> Path:
        return Path(self.config.output)

    @property
    def ckpt_dir(self) -> Path:
        return self.output / "checkpoints"


def run(config: PretrainConfig, *, train_data=None, eval_data=None, collate=None, hooks: Hooks | None = None
        ) -> dict[str, Any]:
    """Pretrain as `config` says; return the summary (also written to OUTPUT/summary.json).

    `train_data` / `eval_data` / `collate` replace the data directory (any iterables of examples with
    `state_dict()` / `load_state_dict()`, and a function batching them), e.g. for tests.
    """
    hooks = hooks or Hooks()
    world = D.init_distributed(config.parallel, config.train.device)
    try:
        return _run(config, world, train_data, eval_data, collate, hooks)
    finally:
        D.shutdown(world)


def find_checkpoint(config: PretrainConfig, output: Path, ckpt_dir: Path) -> ckpt.Checkpoint | None:
    """The checkpoint to resume from (None: start), after checking that OUTPUT holds no other configuration.

    An explicit --resume CHECKPOINT, else the newest loadable one in OUTPUT/checkpoints; a run directory
    whose saved configuration differs is refused, naming the differences, unless allow_config_change.
    """
    resume = config.checkpoint.resume
    explicit = resume not in (None, "latest")
    saved = ckpt.load_checkpoint(Path(resume)) if explicit else ckpt.load_latest(ckpt_dir)
    if resume == "latest" and saved is None:
        raise ValueError(f"--resume: no checkpoint in {ckpt_dir}")
    newer = [p.name for p in ckpt.list_checkpoints(ckpt_dir) if explicit and p.name > saved.path.name]
    if newer:  # they would be taken for this run's own on the next restart
        raise ValueError(f"--resume {resume}: {ckpt_dir} holds newer checkpoints ({', '.join(newer)}); move them "
                         "away or resume into another --output")
    reference = saved.state["config"] if saved is not None else _read_json(output / "config.json")
    if reference is not None:
        changes = config_differences(reference, config)
        if changes and not config.checkpoint.allow_config_change:
            raise ValueError(f"{output} holds a run with another configuration ("
                             + "; ".join(changes) + "): use another --output, or --allow-config-change")
    return saved


def _run(config: PretrainConfig, world: D.World, train_data, eval_data, collate, hooks: Hooks) -> dict[str, Any]:
    r = build_run_state(config, world, train_data, eval_data, collate, hooks)
    handlers = _install_stop_handlers(r.stop_requested)
    try:
        train_loop(r)
    finally:
        _restore_handlers(handlers)
        r.log.close()
    return finish(r)


def train_loop(r: Run) -> None:
    """Optimizer steps until max_steps, the time budget or a stop signal; a checkpoint of the last one."""
    config, progress = r.config, r.progress
    r.started, r.elapsed_before, r.first_step = time.perf_counter(), progress.elapsed_s, progress.step
    while config.train.max_steps is None or progress.step < config.train.max_steps:
        t0 = time.perf_counter()
        lr = set_scheduled_lr(r)
        stats = accumulate_gradients(r)           # accumulate: forward/backward over `accumulate` micro-batches
        norm = clip_gradients(r)                  # clip
        decision = agree_on_step(r, stats, norm)  # agree: skip? stop? the clock, the mean loss
        if optimizer_step(r, decision, stats) == "rollback":  # step (or skip, or roll back on a spike)
            continue  # back at a checkpoint's step, on data after the spiking batches
        r.window.time_s += time.perf_counter() - t0
        maybe_log(r, decision, lr, norm)
        improved = maybe_eval(r, decision)
        maybe_checkpoint(r, decision, improved)
        if decision.stop:
            r.log.message(f"stopping at step {progress.step}: "
                          + ("time budget used" if not r.stop_requested else "interrupted"))
            break
    if r.last_saved != progress.step:
        save_checkpoint(r, progress.step)


# ------------------------------------------------------------------------------------------------ setup
def build_run_state(config: PretrainConfig, world: D.World, train_data, eval_data, collate,
                    hooks: Hooks) -> Run:
    """Data, model, optimizer, restored from a checkpoint when resuming; OUTPUT/config.json written."""
    output = Path(config.output)
    model_config = config.model.build()
    accumulate = config.batch.steps_to_accumulate(world.world_size)
    if config.schedule.budget_s is None and config.train.max_steps is None:
        config.train.max_steps = config.schedule.total_steps
    manifest = None
    if train_data is None:
        train_data, eval_data, collate, manifest = open_data(config, model_config, world)

    saved = find_checkpoint(config, output, output / "checkpoints")
    if world.is_main:
        output.mkdir(parents=True, exist_ok=True)
        (output / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")

    # Piece frequencies: one pass over the shards serves the MLM bias init and the unigram baseline.
    counts = train_data.piece_counts() if hasattr(train_data, "piece_counts") else None
    model, model_for_step, optimizer = build_model(config, model_config, world, manifest, counts)
    autocast = torch.autocast(world.device.type, dtype=torch.bfloat16) if config.train.bf16 else nullcontext()
    eval_batches = (lambda: _eval_batches(eval_data, config, collate)) if eval_data is not None else None
    r = Run(config, world, model_config, manifest, model, model_for_step, optimizer,
            params=[p for p in model.parameters() if p.requires_grad], accumulate=accumulate, train_data=train_data,
            batches=micro_batches(train_data, config.batch.micro_batch, collate), eval_batches=eval_batches,
            autocast=autocast, hooks=hooks, progress=Progress(),
            top_piece=int(np.argmax(counts)) if counts is not None else None,
            guard=SpikeGuard(config.guard.spike_factor, config.guard.window))
    if saved is not None:
        restore_checkpoint(r, saved, rollback=False)
        r.last_saved = r.progress.step
    r.log = open_log(r, saved, has_eval=eval_data is not None)
    model_for_step.train()
    return r


def build_model(config: PretrainConfig, model_config: AlbertConfig, world: D.World, manifest: dict | None,
                piece_counts: np.ndarray | None = None):
    """(model, model_for_step, optimizer): the same init on every rank, then per-rank randomness for dropout."""
    seed_everything(config.train.seed)
    model = AlbertForPreTraining(model_config)
    if config.model.mlm_bias_init == "unigram":
        if piece_counts is None:
            raise ValueError("mlm_bias_init=unigram needs training data that can count its pieces (a `litebert "
                             "data create` directory)")
        init_mlm_bias(model, piece_counts)
    no_sop = manifest is not None and manifest["settings"].get("sentence_task") == "none"
    model_for_step = D.parallelize(model, world, config.parallel, compile=config.train.compile,
                                   unused_parameters=no_sop)
    optimizer = build_optimizer(model, config.optim)  # after FSDP: it must see the sharded parameters
    seed_everything(config.train.seed + 1 + world.rank)
    return model, model_for_step, optimizer


def init_mlm_bias(model: AlbertForPreTraining, counts: np.ndarray) -> None:
    """Set the MLM output bias to log p(piece) (add-0.5 smoothed, centred): the logits of a model whose
    hidden state carries nothing then give the unigram distribution. counts: (V,) piece frequencies."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.shape != model.predictions.bias.shape:
        raise ValueError(f"piece counts have shape {counts.shape}, the MLM bias {tuple(model.predictions.bias.shape)}")
    log_p = np.log((counts + 0.5) / (counts + 0.5).sum())
    with torch.no_grad():
        model.predictions.bias.copy_(torch.from_numpy(log_p - log_p.mean()))


def open_log(r: Run, saved: ckpt.Checkpoint | None, has_eval: bool) -> MetricsLog:
    """Rank 0's MetricsLog, its records past the current step dropped; says what a resume changed."""
    config, world = r.config, r.world
    log = MetricsLog(r.output, world.is_main, config.train.max_steps, config.train.progress, r.progress.step)
    log.truncate_after(r.progress.step)
    log.message(run_shape(config, world.world_size, r.accumulate, r.manifest))
    if saved is not None:
        log.message(f"resumed from {saved.path} at step {r.progress.step}")
    if not has_eval and config.train.eval_every:
        log.message(f"no eval split in {config.data.path or 'the data'}: evaluation is off "
                    "(make the data with `litebert data create --eval-fraction F`)")
    if world.is_main and saved is not None and len(saved.state["rng"]) != world.world_size:
        log.message(f"checkpoint saved by {len(saved.state['rng'])} ranks, running {world.world_size}: "
                    "RNG streams re-seeded and the data position mapped by examples consumed")
    return log


def run_shape(config: PretrainConfig, world_size: int, accumulate: int, manifest: dict | None) -> str:
    """One line with the run's shape, printed at start so a preset's paper-sized global batch (4096, reached
    by accumulation) or schedule never surprises: batch arithmetic, length, lr schedule, tokens per step."""
    micro = config.batch.micro_batch
    glob = micro * accumulate * world_size
    sched, optim = config.schedule, config.optim
    if sched.budget_s is not None:
        length = f"a {sched.budget_s / 60:g}-min budget" + (f" (at most {config.train.max_steps:,} steps)"
                                                           if config.train.max_steps else "")
        lr = f"warmup {sched.warmup_fraction:.1%} of the budget, then decay over time"
    else:
        length = f"{config.train.max_steps:,} steps"
        lr = f"warmup {sched.warmup_steps:,} steps, then decay to 0 at step {sched.total_steps:,}"
    seq = manifest["settings"]["max_seq_length"] if manifest else None
    tokens = f"; up to {glob * seq:,} tokens per step ({seq} per sequence)" if seq else ""
    return (f"run: global batch {glob:,} = micro-batch {micro} x accumulation {accumulate} x {world_size} rank(s); "
            f"{length}; {optim.name.upper()} peak lr {optim.lr:g}, {lr} (power {sched.power:g}){tokens}")


# ------------------------------------------------------------------------------------------------ one step
def set_scheduled_lr(r: Run) -> float:
    """The schedule's learning rate for the coming step (by steps, or by the clock under a budget)."""
    schedule = r.config.schedule
    lr = learning_rate(r.config.optim.lr, *schedule.progress(r.progress.step, r.progress.elapsed_s),
                       schedule.power)
    set_learning_rate(r.optimizer, lr)
    return lr


def accumulate_gradients(r: Run) -> Tensor:
    """Forward/backward over this step's micro-batches (gradients in `.grad`); their summed STATS."""
    step = r.progress.step + 1
    if r.hooks.before_forward:
        r.hooks.before_forward(step, r.model)
    stats = train_step(r.model_for_step, [next(r.batches) for _ in range(r.accumulate)], r.world.device,
                       r.autocast)
    if r.hooks.after_backward:
        r.hooks.after_backward(step, r.model)
    return stats


def clip_gradients(r: Run) -> float:
    """Clip to the global gradient norm; the norm before clipping (computed even when clipping is off, for
    the log)."""
    norm = torch.nn.utils.clip_grad_norm_(r.params, r.config.optim.clip_norm or float("inf"))
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # a DTensor under FSDP


def agree_on_step(r: Run, stats: Tensor, norm: float) -> D.Decision:
    """One decision for all ranks: skip (non-finite anywhere), stop (signal, budget), rank 0's clock, mean loss."""
    loss = stats[0].item() / r.accumulate  # this rank's mean over its micro-batches
    decision = D.agree(r.world, nonfinite=not (math.isfinite(loss) and math.isfinite(norm)),
                       stop=bool(r.stop_requested), elapsed_s=r.elapsed_before + time.perf_counter() - r.started,
                       loss=loss, budget_s=r.config.schedule.budget_s)
    r.progress.elapsed_s = decision.elapsed_s
    return decision


def optimizer_step(r: Run, decision: D.Decision, stats: Tensor) -> str:
    """Skip a non-finite step, roll back on a loss spike, else update: "skip", "rollback" or "update"."""
    if decision.skip:
        r.optimizer.zero_grad(set_to_none=True)
        _count_skip(r, decision)
        return "skip"
    if r.guard.is_spike(decision.loss):
        r.optimizer.zero_grad(set_to_none=True)
        roll_back(r, decision.loss)
        r.window.reset()
        return "rollback"
    r.optimizer.step()
    r.optimizer.zero_grad(set_to_none=True)
    r.guard.record(decision.loss)
    r.progress.step, r.skipped_in_a_row = r.progress.step + 1, 0
    r.window.add(stats)
    return "update"


def _count_skip(r: Run, decision: D.Decision) -> None:
    """Record a skipped (non-finite) step; give up when too many come in a row: the model itself is broken."""
    progress = r.progress
    progress.skipped, r.skipped_in_a_row = progress.skipped + 1, r.skipped_in_a_row + 1
    if r.skipped_in_a_row > r.config.guard.max_consecutive_skips:
        raise RuntimeError(f"{r.skipped_in_a_row} steps in a row had a non-finite loss or gradient "
                           f"(at step {progress.step + 1}); giving up")
    r.log.message(f"step {progress.step + 1}: non-finite loss or gradient, update skipped "
                  f"({progress.skipped} so far)")
    r.log.write({"step": progress.step + 1, "event": "skip", "loss": _finite_or_none(decision.loss),
                 "time_s": progress.elapsed_s})


def roll_back(r: Run, loss: float) -> None:
    """Return to the newest good checkpoint, keeping the data position (so the spiking batches are skipped)."""
    progress, limits = r.progress, r.config.guard
    progress.rollbacks += 1
    median = statistics.median(r.guard.losses)
    if progress.rollbacks > limits.max_rollbacks:
        raise RuntimeError(f"loss spiked {progress.rollbacks} times (last: {loss:.4f} vs median {median:.4f}); "
                           f"giving up after --max-rollbacks {limits.max_rollbacks}")
    latest = ckpt.load_latest(r.ckpt_dir)
    at = progress.step + 1
    if latest is None:
        r.log.message(f"step {at}: loss {loss:.4f} > {limits.spike_factor} x median {median:.4f}, "
                      "no checkpoint yet: update skipped")
        progress.skipped += 1
        target = progress.step
    else:
        restore_checkpoint(r, latest, rollback=True)
        target = latest.step
        r.log.message(f"step {at}: loss {loss:.4f} > {limits.spike_factor} x median {median:.4f}: rolled back "
                      f"to {latest.path.name}, skipping ahead in the data")
    r.log.truncate_after(target)
    r.log.write({"step": target, "event": "rollback", "spike_step": at, "loss": loss, "median": median,
                 "time_s": progress.elapsed_s})


# ------------------------------------------------------------------------------------------------ log, eval, save
def maybe_log(r: Run, decision: D.Decision, lr: float, norm: float) -> None:
    """Rank 0 writes the averages since the last record: every log_every steps, at checkpoints, at the end."""
    config, progress, window, step = r.config, r.progress, r.window, r.progress.step
    if window.steps and (step % config.train.log_every == 0 or step % config.checkpoint.save_every == 0
                         or decision.stop or step == config.train.max_steps):
        totals = D.all_reduce_sum(r.world, window.stats)  # summed over ranks
        tokens = totals[STATS.index("tokens")].item()
        progress.tokens += tokens
        record = {"step": step, **summarize(totals), "lr": lr, "grad_norm": norm,
                  "tokens_per_s": tokens / max(window.time_s, 1e-9), "time_s": progress.elapsed_s,
                  "skipped": progress.skipped}
        record["tokens"] = progress.tokens  # the run's total, not the window's
        r.log.write(record)
        r.last_record = record
        window.reset()
    r.log.advance(step, r.last_record, _eta(progress, config, time.perf_counter() - r.started, r.first_step))


def maybe_eval(r: Run, decision: D.Decision) -> bool:
    """Evaluate every eval_every steps and at the last step; True when eval MLM accuracy is a new best."""
    config, progress, step = r.config, r.progress, r.progress.step
    last = decision.stop or step == config.train.max_steps  # the final model is always evaluated
    if not (r.eval_batches is not None and config.train.eval_every and not decision.skip
            and (step % config.train.eval_every == 0 or last)):
        return False
    metrics = evaluate(r.model_for_step, r.eval_batches(), r.world, r.autocast, r.top_piece)
    r.log.write({"step": step, "split": "eval", "time_s": progress.elapsed_s, **metrics})
    unigram = f" (always the top piece: {metrics['unigram_mlm_acc']:.4f})" if "unigram_mlm_acc" in metrics else ""
    r.log.message(f"step {step} eval: mlm_loss {metrics['mlm_loss']:.4f} mlm_acc {metrics['mlm_acc']:.4f}{unigram} "
                  f"sop_acc {_fmt(metrics['sop_acc'], 4)}")
    if progress.best_mlm_acc is None or metrics["mlm_acc"] > progress.best_mlm_acc:
        progress.best_mlm_acc, progress.best_step = metrics["mlm_acc"], step
        return True
    return False


def maybe_checkpoint(r: Run, decision: D.Decision, improved: bool) -> None:
    """Checkpoint every save_every steps, on a new best eval (marked best), and when stopping."""
    step = r.progress.step
    if step == r.last_saved or not (improved or decision.stop or step % r.config.checkpoint.save_every == 0):
        return
    save_checkpoint(r, step)
    if improved and r.world.is_main:
        ckpt.write_best(r.ckpt_dir, step, "eval_mlm_acc", r.progress.best_mlm_acc)
    r.last_saved = step


# ------------------------------------------------------------------------------------------------ checkpoints
def save_checkpoint(r: Run, step: int) -> Path | None:
    """Checkpoint `step`: full states gathered to rank 0, which writes; every rank learns if it failed."""
    world = r.world
    model_state = D.model_state_dict(r.model)  # collectives under FSDP: every rank takes part
    optim_state = D.optimizer_state_dict(r.model, r.optimizer)
    rngs = D.all_gather_objects(world, rng_state())
    cursors = D.all_gather_objects(world, r.train_data.state_dict())
    path, error = None, None
    if world.is_main:
        state = {"config": dataclasses.asdict(r.config), "model_config": r.model_config.to_dict(),
                 "optimizer": optim_state, "progress": dataclasses.asdict(r.progress),
                 "guard": r.guard.state_dict(), "rng": rngs, "data": cursors, "world_size": world.world_size}
        try:
            path = ckpt.save_checkpoint(r.ckpt_dir, step, model_state, state)
            ckpt.prune(r.ckpt_dir, r.config.checkpoint.keep_last)
        except ckpt.CheckpointError as err:
            error = err
    failed = D.agree(world, nonfinite=False, stop=error is not None, elapsed_s=0.0, loss=0.0).stop
    if error is not None:
        raise error
    if failed:
        raise ckpt.CheckpointError("rank 0 could not write a checkpoint (see its error)")
    return path


def restore_checkpoint(r: Run, c: ckpt.Checkpoint, rollback: bool) -> None:
    """Load a checkpoint. A rollback keeps the data position (skipping the spiking batches), the clock,
    the token count and the skip/rollback counters; a resume restores everything."""
    D.load_model_state(r.model, c.model)
    D.load_optimizer_state(r.model, r.optimizer, c.state["optimizer"])
    kept = ("skipped", "rollbacks", "tokens", "elapsed_s") if rollback else ()
    for key, value in c.state["progress"].items():
        if key not in kept:
            setattr(r.progress, key, value)
    r.guard.load_state_dict(c.state["guard"])
    rngs = c.state["rng"]
    if len(rngs) == r.world.world_size:  # else (another world size) the streams stay freshly seeded
        set_rng_state(rngs[r.world.rank])
    if not rollback:
        r.train_data.load_state_dict(adapt_cursor(c.state["data"], r.world))


# ------------------------------------------------------------------------------------------------ end
def finish(r: Run) -> dict[str, Any]:
    """The summary (OUTPUT/summary.json, printed) and the final model (OUTPUT/final); returns the summary."""
    progress, world = r.progress, r.world
    summary = {"steps": progress.step, "tokens": progress.tokens, "time_s": progress.elapsed_s,
               "skipped_steps": progress.skipped, "rollbacks": progress.rollbacks,
               "final": r.last_record, "best_eval_mlm_acc": progress.best_mlm_acc, "best_step": progress.best_step,
               "world_size": world.world_size, "accumulate": r.accumulate}
    final_state = D.model_state_dict(r.model)  # a collective under FSDP; full tensors on rank 0
    if world.is_main:
        write_final_model(r.model_config, final_state, r.output / "final", r.config, r.manifest)
        (r.output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(format_summary(summary), file=sys.stderr)
    return summary


def _eval_batches(eval_data, config: PretrainConfig, collate) -> Iterator[dict]:
    """The first `eval_batches` micro-batches of the eval split (the same ones at every evaluation)."""
    eval_data.set_epoch(0)
    buffer, count = [], 0
    for example in eval_data:
        buffer.append(example)
        if len(buffer) == config.batch.micro_batch:
            yield collate(buffer)
            buffer, count = [], count + 1
            if count == config.train.eval_batches:
                return
    if buffer and count < config.train.eval_batches:
        yield collate(buffer)


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _eta(progress: Progress, config: PretrainConfig, run_s: float, first_step: int) -> float | None:
    """Seconds left: of the budget, or at this run's pace until max_steps."""
    if config.schedule.budget_s is not None:
        return max(config.schedule.budget_s - progress.elapsed_s, 0.0)
    if config.train.max_steps is None or progress.step == first_step:
        return None
    return run_s / (progress.step - first_step) * (config.train.max_steps - progress.step)


def _install_stop_handlers(flag: list) -> dict:
    """SIGTERM / SIGINT ask for a clean stop (checkpoint, then exit) at the end of the current step."""
    previous = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: flag.append(True))
    except ValueError:  # not the main thread
        pass
    return previous


def _restore_handlers(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_final_model(model_config: AlbertConfig, state: dict[str, Tensor], directory: Path,
                      config: PretrainConfig, manifest: dict | None) -> None:
    """OUTPUT/final: a Hugging Face ALBERT directory (config.json, model.safetensors, spiece.model)."""
    model = AlbertForPreTraining(model_config)
    model.load_state_dict(state)
    model.save_pretrained(directory)
    source = config.data.tokenizer or (manifest or {}).get("tokenizer", {}).get("directory")
    if source is None:
        return
    copied = False
    for name in ("spiece.model", "spiece.vocab", "vocab.txt", "tokenizer_config.json"):
        if (Path(source) / name).is_file():
            shutil.copy2(Path(source) / name, directory / name)
            copied = True
    if not copied:
        warnings.warn(f"tokenizer directory {source} holds no spiece.model or vocab.txt; {directory} has no "
                      "tokenizer (pass --tokenizer DIR)", stacklevel=2)


def format_summary(s: dict) -> str:
    final = s["final"] or {}
    lines = [f"trained {s['steps']} steps, {s['tokens']:.3g} tokens in {s['time_s'] / 60:.1f} min "
             f"({s['world_size']} rank(s), {s['accumulate']} micro-batch(es) per step)"]
    if final:
        lines.append(f"final: loss {final['loss']:.4f} mlm_acc {final['mlm_acc']:.4f} "
                     f"sop_acc {_fmt(final['sop_acc'], 4)}")
    if s["best_eval_mlm_acc"] is not None:
        lines.append(f"best eval mlm_acc {s['best_eval_mlm_acc']:.4f} at step {s['best_step']}")
    lines.append(f"skipped steps: {s['skipped_steps']}, rollbacks: {s['rollbacks']}")
    return "\n".join(lines)


# ================================================================================================ CLI
def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `litebert pretrain` and `litebert plot`."""
    p = subparsers.add_parser("pretrain", help="pretrain ALBERT (MLM + SOP, LAMB); also under torchrun",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", help="model preset (default albert-base-v2)")
    p.add_argument("--data", help="directory made by `litebert data create`")
    p.add_argument("--output", required=True, help="run directory (rerunning into it resumes)")
    p.add_argument("--config", metavar="FILE.json", help="a PretrainConfig as nested JSON; flags override it")
    p.add_argument("--model-override", action="append", default=[], metavar="KEY=VALUE",
                   help="change an AlbertConfig field of the preset, e.g. vocab_size=8000 (repeatable)")
    p.add_argument("--mlm-bias-init", choices=MLM_BIAS_INITS,
                   help="MLM output bias at step 0: zero (official, default) or unigram (log piece frequencies)")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--budget", help="wall-clock budget (900, 15m, 2h): the schedule follows time, then stop")
    p.add_argument("--batch-size", type=int, help="micro-batch: sequences per forward pass per rank")
    p.add_argument("--global-batch", type=int, help="sequences per optimizer step, all ranks (default 4096)")
    p.add_argument("--accumulate", type=int, help="micro-batches per step per rank (instead of --global-batch)")
    p.add_argument("--seq-length", type=int, help="pad batches to this length (>= the data's max_seq_length)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 0.00176)")
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--warmup-fraction", type=float, help="with --budget: share of it spent warming up (0.025)")
    p.add_argument("--decay-steps", type=int, help="steps of the linear decay (default: --max-steps or 125000)")
    p.add_argument("--optimizer", choices=("lamb", "adamw"))
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--clip-norm", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None, help="bf16 autocast (default on)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--device", choices=("cpu", "cuda"))
    p.add_argument("--fsdp", action=argparse.BooleanOptionalAction, default=None, help="shard with FSDP (else DDP)")
    p.add_argument("--log-every", type=int)
    p.add_argument("--eval-every", type=int)
    p.add_argument("--eval-batches", type=int)
    p.add_argument("--save-every", type=int)
    p.add_argument("--keep-last", type=int)
    p.add_argument("--resume", nargs="?", const="latest", metavar="CHECKPOINT",
                   help="resume from the latest checkpoint in --output (or the one given)")
    p.add_argument("--allow-config-change", action="store_true", default=None)
    p.add_argument("--spike-factor", type=float)
    p.add_argument("--tokenizer", help="tokenizer directory to ship in OUTPUT/final (default: the data's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_pretrain_command)

    q = subparsers.add_parser("plot", help="PNG curves (loss, MLM/SOP accuracy, lr) of a pretraining run")
    q.add_argument("run_dir", metavar="RUN_DIR", help="a `litebert pretrain` output directory")
    q.add_argument("--output", help="directory for the PNGs (default RUN_DIR/plots)")
    q.set_defaults(func=_plot_command)


# flag -> (config section, field)
FLAG_FIELDS = {
    "preset": ("model", "preset"), "mlm_bias_init": ("model", "mlm_bias_init"), "data": ("data", "path"),
    "max_steps": ("train", "max_steps"),
    "batch_size": ("batch", "micro_batch"), "global_batch": ("batch", "global_batch"),
    "accumulate": ("batch", "accumulate"), "seq_length": ("data", "seq_length"), "lr": ("optim", "lr"),
    "warmup_steps": ("schedule", "warmup_steps"),
    "warmup_fraction": ("schedule", "warmup_fraction"), "decay_steps": ("schedule", "total_steps"),
    "optimizer": ("optim", "name"), "weight_decay": ("optim", "weight_decay"), "clip_norm": ("optim", "clip_norm"),
    "seed": ("train", "seed"), "bf16": ("train", "bf16"), "compile": ("train", "compile"),
    "device": ("train", "device"), "fsdp": ("parallel", "fsdp"), "log_every": ("train", "log_every"),
    "eval_every": ("train", "eval_every"), "eval_batches": ("train", "eval_batches"),
    "save_every": ("checkpoint", "save_every"), "keep_last": ("checkpoint", "keep_last"),
    "resume": ("checkpoint", "resume"), "allow_config_change": ("checkpoint", "allow_config_change"),
    "spike_factor": ("guard", "spike_factor"), "tokenizer": ("data", "tokenizer"),
}


def config_from_args(args: argparse.Namespace) -> PretrainConfig:
    """Defaults, then --config FILE.json, then the flags given."""
    config = config_from_dict(PretrainConfig, _read_config_file(Path(args.config)) if args.config else {})
    config.output = args.output
    for flag, (section, name) in FLAG_FIELDS.items():
        value = getattr(args, flag)
        if value is not None:
            setattr(getattr(config, section), name, value)
    for item in args.model_override:
        key, value = _model_override(item)
        config.model.overrides[key] = value
    if args.budget is not None:
        config.schedule.budget_s = parse_duration(args.budget)
    if args.max_steps is not None and args.decay_steps is None and config.schedule.budget_s is None:
        config.schedule.total_steps = args.max_steps  # the decay ends where training does
    if config.schedule.warmup_steps > config.schedule.total_steps:
        config.schedule.warmup_steps = config.schedule.total_steps
    config.train.progress = config.train.progress and not args.no_progress
    return config


def _read_config_file(path: Path) -> dict[str, Any]:
    """The nested dict of a --config FILE.json; errors name the flag."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"--config {path}: no such file") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"--config {path}: not valid JSON ({err})") from None


def _model_override(item: str) -> tuple[str, Any]:
    """'vocab_size=8000' -> ("vocab_size", 8000): numbers, true/false/null as JSON, anything else a string."""
    key, sep, value = item.partition("=")
    if not sep:
        raise ValueError(f"--model-override {item!r}: expected KEY=VALUE")
    return key, json.loads(value) if re.fullmatch(r"[-\d.eE+]+|true|false|null", value) else value


def _pretrain_command(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    try:
        run(config)
    except ckpt.CheckpointError as err:
        print(f"litebert pretrain: error: {err}", file=sys.stderr)
        return 1
    return 0


def _plot_command(args: argparse.Namespace) -> int:
    from litebert.plot import plot_run

    for path in plot_run(Path(args.run_dir), Path(args.output) if args.output else None):
        print(f"wrote {path}")
    return 0
