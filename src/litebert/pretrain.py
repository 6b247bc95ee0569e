"""ALBERT pretraining: masked LM over the masked positions + sentence-order prediction, LAMB, one loop.

`run(config)` reads top to bottom, nanoGPT-style. Each optimizer step (the first four in `litebert.step`,
shared with fine-tuning):

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
import queue
import random
import statistics
import sys
import threading
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

from litebert import calibrate
from litebert import checkpoint as ckpt
from litebert import distributed as D
from litebert import hardware
from litebert import step as S
from litebert.config import AlbertConfig, fields
from litebert.config.pretrain import MLM_BIAS_INITS, Plan, PretrainConfig, config_differences, parse_duration, plan
# The sections, for callers that build a PretrainConfig from here (`pretrain.BatchConfig(...)`).
from litebert.config.pretrain import (BatchConfig, CheckpointConfig, DataConfig, GuardConfig,  # noqa: F401
                                      ModelConfig, OptimConfig, ParallelConfig, ScheduleConfig, TrainConfig)
from litebert.model import AlbertForPreTraining
from litebert.optim import build_optimizer, learning_rate, set_learning_rate
from litebert.files import write_json_atomic
from litebert.runlog import RunLog


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


class Prefetcher:
    """Micro-batches drawn `depth` ahead on a background thread, so shard reads, dynamic masking and collation
    overlap the step (benchmarks/bench_data_path.py); depth 0 draws them inline.

    `state()` (the dataset's cursor) is read on the drawing thread right after each batch, and `.state` is the
    one of the batch handed out last: what a checkpoint saves, however far ahead the thread has read. The
    thread starts at the first `next()`, so a cursor restored before that is where it begins.
    """

    _DONE = object()

    def __init__(self, batches: Iterator[dict], state: Callable[[], Any], depth: int = 2):
        self.batches, self.read_state, self.depth = batches, state, depth
        self.state: Any = None
        self._queue: queue.Queue | None = None
        self._stop = threading.Event()

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> dict:
        if self.depth == 0:
            batch = next(self.batches)
            self.state = self.read_state()
            return batch
        if self._queue is None:
            self._queue = queue.Queue(maxsize=self.depth)
            threading.Thread(target=self._draw, name="litebert-prefetch", daemon=True).start()
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        if item is self._DONE:
            raise StopIteration
        batch, self.state = item
        return batch

    def _draw(self) -> None:
        try:
            for batch in self.batches:
                item = (batch, self.read_state())
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
            self._queue.put(self._DONE)
        except BaseException as err:  # noqa: BLE001 (handed to the consumer, raised there)
            self._queue.put(err)

    def close(self) -> None:
        """Stop the drawing thread (it exits within 0.1 s; batches it holds are dropped)."""
        self._stop.set()


def model_inputs(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor | None]:
    """The forward's arguments: MLM labels are masked_lm_ids, -100 on padding predictions (weight 0).

    Whether anything is padded, and whether there is a sentence task, is decided here on the collated CPU
    batch, before it moves to the device: deciding it from device tensors would stall a GPU every micro-batch.
    No padding passes attention_mask=None (the unmasked attention kernel); no sentence task passes no SOP labels.
    """
    padded = not bool(batch["attention_mask"].all())
    has_sop = not bool((batch["sentence_order_label"] == -100).all())  # -100: the data has no sentence task
    b = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    labels = b["masked_lm_ids"].masked_fill(b["masked_lm_weights"] == 0, -100)  # (B, P)
    return dict(input_ids=b["input_ids"], attention_mask=b["attention_mask"] if padded else None,
                token_type_ids=b["token_type_ids"], masked_lm_positions=b["masked_lm_positions"], labels=labels,
                sentence_order_label=b["sentence_order_label"] if has_sop else None)


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
def step_forward(device: torch.device) -> S.Forward:
    """What one micro-batch of a training step computes (`litebert.step`): the total loss and its STATS."""
    def forward(model: nn.Module, batch: dict) -> tuple[Tensor, Tensor]:
        out = model(**model_inputs(batch, device))
        return out.loss, batch_stats(out, batch)
    return forward


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
    """Real (non-padding) tokens trained on, all ranks (counted with the step, in `optimizer_step`)."""
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
    clock: Callable[[], float] = time.perf_counter
    """The run's clock in seconds (training time, the budget, the time-based schedule). Tests replace it with a
    deterministic one to check that a budget run resumes exactly: the clock's reading is saved in checkpoints
    (progress.elapsed_s) and a resumed run continues from it."""


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


def model_config_for(config: PretrainConfig) -> AlbertConfig:
    """The preset with its overrides; vocab_size comes from the data's manifest (its tokenizer) unless the
    overrides set it, so any preset trains on any data. An explicit vocab_size that differs is refused later,
    naming both sizes. With `init_from`, that model's own configuration (and overrides)."""
    from litebert.data.shards import read_manifest

    manifest = read_manifest(Path(config.data.path)) if config.data.path else None
    if config.model.init_from:
        return init_source(config.model.init_from, manifest)[0].replace(**config.model.overrides)
    model_config = config.model.build()
    if "vocab_size" in config.model.overrides or manifest is None:
        return model_config
    vocab = manifest.get("tokenizer", {}).get("vocab_size")
    return model_config.replace(vocab_size=vocab) if vocab else model_config


def init_source(path: str, manifest: dict | None) -> tuple[AlbertConfig, Path, str]:
    """(its config, the directory holding its weights, "directory" or "checkpoint") of an --init-from model,
    refused with a one-line error when its vocabulary or tokenizer is not the data's. A litebert run directory
    stands for its final/ model."""
    source = Path(path)
    if (source / "final" / "config.json").is_file():
        source = source / "final"
    if (source / "state.json").is_file() and (source / "model.safetensors").is_file():
        config, kind = AlbertConfig.from_dict(ckpt.load_checkpoint(source).state["model_config"]), "checkpoint"
    elif (source / "config.json").is_file():
        from litebert.convert import read_config

        config, kind = read_config(source)[0], "directory"
    else:
        raise FileNotFoundError(f"--init-from {path}: not a model directory (config.json + weights), a litebert "
                                f"run directory or a checkpoint")
    if manifest is not None:
        data_vocab = manifest["tokenizer"]["vocab_size"]
        if config.vocab_size != data_vocab:
            raise ValueError(f"--init-from {path} has vocab_size {config.vocab_size}, the data's tokenizer "
                             f"{data_vocab}: make the data with the model's own tokenizer")
        from litebert.tokenizer import AlbertTokenizer, has_tokenizer

        if has_tokenizer(source):
            if AlbertTokenizer.from_pretrained(source).fingerprint() != manifest["tokenizer"]["fingerprint"]:
                raise ValueError(f"--init-from {path}: its tokenizer is not the one the data was made with "
                                 f"(the same ids would mean other pieces): make the data with {source}'s tokenizer")
    return config, source, kind


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
    plan: Plan
    """What the config means on this world: accumulation, step limit, decay horizon (`config.plan`)."""
    train_data: Any
    """Its `state_dict()` is the data cursor a checkpoint saves."""
    batches: Prefetcher
    """Endless training micro-batches drawn from train_data (ahead, on a thread); `.state` is the cursor."""
    eval_batches: Callable[[], Iterator[dict]] | None
    """The same held-out micro-batches at every call; None: no eval split."""
    autocast: Any
    hooks: Hooks
    progress: Progress
    top_piece: int | None
    """The training data's most frequent piece (evaluation reports the accuracy of always guessing it);
    None when the data cannot count its pieces."""
    guard: SpikeGuard
    skips: S.SkipGuard
    precision: dict
    """bf16 or fp32 and how it was decided (`calibrate.precision_choice`)."""
    log: RunLog | None = None
    """Opened once a resume is restored (the progress bar starts at the restored step)."""
    window: LogWindow = field(default_factory=LogWindow)
    last_record: dict | None = None
    """The newest train record (for the progress bar and the summary)."""
    last_saved: int | None = None
    """The step of the newest checkpoint of this run (or the one resumed from)."""
    stop_requested: list = field(default_factory=list)
    """Non-empty once SIGTERM / SIGINT arrived."""
    started: float = 0.0
    """hooks.clock() when this process's loop began; with elapsed_before, the run's clock."""
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
    with D.joined(config.parallel, config.train.device) as world:
        return _run(config, world, train_data, eval_data, collate, hooks)


def find_checkpoint(config: PretrainConfig, output: Path, ckpt_dir: Path,
                    world: D.World) -> ckpt.Checkpoint | None:
    """The checkpoint every rank resumes from (None: start). Rank 0 chooses it and broadcasts its name, so ranks
    whose filesystems differ (a newer or a corrupt checkpoint on one of them) cannot restore different steps;
    an error on rank 0 is raised on every rank."""
    chosen: dict[str, ckpt.Checkpoint | None] = {}

    def decide() -> str | None:
        chosen["saved"] = choose_checkpoint(config, output, ckpt_dir)
        return str(chosen["saved"].path) if chosen["saved"] is not None else None

    path = D.decided_by_rank0(world, decide)
    if world.is_main or path is None:
        return chosen.get("saved")
    return ckpt.load_checkpoint(Path(path))


def choose_checkpoint(config: PretrainConfig, output: Path, ckpt_dir: Path) -> ckpt.Checkpoint | None:
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
    try:
        with D.stop_on_signals(r.stop_requested, "litebert pretrain"):
            train_loop(r)
    finally:
        r.batches.close()
        r.log.close()
    return finish(r)


def train_loop(r: Run) -> None:
    """Optimizer steps until max_steps, the time budget or a stop signal; a checkpoint of the last one."""
    progress = r.progress
    r.started, r.elapsed_before, r.first_step = r.hooks.clock(), progress.elapsed_s, progress.step
    forward = step_forward(r.world.device)
    while r.plan.max_steps is None or progress.step < r.plan.max_steps:
        t0 = time.perf_counter()
        lr = set_scheduled_lr(r)
        result = take_step(r, forward)  # accumulate -> clip -> agree (skip? stop? the clock, the mean loss)
        decision = result.decision
        if optimizer_step(r, result) == "rollback":  # step (or skip, or roll back on a spike)
            continue  # back at a checkpoint's step, on data after the spiking batches
        r.window.time_s += time.perf_counter() - t0
        if progress.step == r.first_step + 1 and (warning := budget_warning(r, decision.elapsed_s)):
            r.log.message(warning)
        maybe_log(r, decision, lr, result.grad_norm)
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
    model_config = model_config_for(config) if train_data is None else config.model.build()
    run_plan = plan(config, world.world_size)
    manifest = None
    if train_data is None:
        train_data, eval_data, collate, manifest = open_data(config, model_config, world)

    saved = find_checkpoint(config, output, output / "checkpoints", world)
    if world.is_main:
        output.mkdir(parents=True, exist_ok=True)
        write_json_atomic(output / "config.json", fields.to_dict(config))

    # Piece frequencies: one pass over the shards serves the MLM bias init and the unigram baseline.
    counts = train_data.piece_counts() if hasattr(train_data, "piece_counts") else None
    model, model_for_step, optimizer = build_model(config, model_config, world, manifest, counts)
    precision = choose_precision(config, model_config, world, train_data)
    autocast = torch.autocast(world.device.type, dtype=torch.bfloat16) if precision["bf16"] else nullcontext()
    eval_batches = (lambda: _eval_batches(eval_data, config, collate)) if eval_data is not None else None
    r = Run(config, world, model_config, manifest, model, model_for_step, optimizer,
            params=[p for p in model.parameters() if p.requires_grad], plan=run_plan, train_data=train_data,
            batches=Prefetcher(micro_batches(train_data, config.batch.micro_batch, collate), train_data.state_dict,
                               depth=prefetch_depth(config, world)), eval_batches=eval_batches,
            autocast=autocast, hooks=hooks, progress=Progress(),
            top_piece=int(np.argmax(counts)) if counts is not None else None,
            guard=SpikeGuard(config.guard.spike_factor, config.guard.window),
            skips=S.SkipGuard(config.guard.max_consecutive_skips), precision=precision)
    if saved is not None:
        restore_checkpoint(r, saved, rollback=False)
        r.last_saved = r.progress.step
    r.log = open_log(r, saved, has_eval=eval_data is not None)
    model_for_step.train()
    return r


def prefetch_depth(config: PretrainConfig, world: D.World) -> int:
    """--data.prefetch, or by device: ahead on a GPU, inline on a CPU (see DataConfig.prefetch)."""
    if config.data.prefetch is not None:
        return config.data.prefetch
    return 2 if world.device.type == "cuda" else 0


def choose_precision(config: PretrainConfig, model_config: AlbertConfig, world: D.World, train_data) -> dict:
    """--bf16 / --no-bf16 as given; unset, rank 0 measures which pays at the run's shape (`litebert.calibrate`)
    and every rank follows it."""
    length = (config.data.seq_length or getattr(train_data, "max_seq_length", None)
              or min(128, model_config.max_position_embeddings))
    choice = D.decided_by_rank0(world, lambda: calibrate.precision_choice(
        world.device, config.train.bf16, model_config, config.batch.micro_batch, length))
    calibrate.apply_choice(choice)
    return choice


def build_model(config: PretrainConfig, model_config: AlbertConfig, world: D.World, manifest: dict | None,
                piece_counts: np.ndarray | None = None):
    """(model, model_for_step, optimizer): the same init on every rank, then per-rank randomness for dropout."""
    seed_everything(config.train.seed)
    if config.model.init_from:
        model = load_initial_model(config, model_config)
    else:
        model = AlbertForPreTraining(model_config)
    if config.model.mlm_bias_init == "unigram" and not config.model.init_from:
        if piece_counts is None:
            raise ValueError("mlm_bias_init=unigram needs training data that can count its pieces (a `litebert "
                             "data create` directory)")
        init_mlm_bias(model, piece_counts)
    no_sop = manifest is not None and manifest["settings"].get("sentence_task") == "none"
    model_for_step = D.parallelize(model, world, config.parallel, compile=config.train.compile,
                                   unused_parameters=no_sop,
                                   activation_checkpointing=config.train.activation_checkpointing)
    optimizer = build_optimizer(model, config.optim)  # after FSDP: it must see the sharded parameters
    seed_everything(config.train.seed + 1 + world.rank)
    return model, model_for_step, optimizer


def load_initial_model(config: PretrainConfig, model_config: AlbertConfig) -> AlbertForPreTraining:
    """The --init-from model as AlbertForPreTraining (heads it lacks initialised fresh, from the seed)."""
    _, source, kind = init_source(config.model.init_from, None)
    if kind == "checkpoint":
        model = AlbertForPreTraining(model_config)
        model.load_state_dict(ckpt.load_checkpoint(source).model)
        return model
    return AlbertForPreTraining.from_pretrained(source, **config.model.overrides)


def init_mlm_bias(model: AlbertForPreTraining, counts: np.ndarray) -> None:
    """Set the MLM output bias to log p(piece) (add-0.5 smoothed, centred): the logits of a model whose
    hidden state carries nothing then give the unigram distribution. counts: (V,) piece frequencies."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.shape != model.predictions.bias.shape:
        raise ValueError(f"piece counts have shape {counts.shape}, the MLM bias {tuple(model.predictions.bias.shape)}")
    log_p = np.log((counts + 0.5) / (counts + 0.5).sum())
    with torch.no_grad():
        model.predictions.bias.copy_(torch.from_numpy(log_p - log_p.mean()))


def open_log(r: Run, saved: ckpt.Checkpoint | None, has_eval: bool) -> RunLog:
    """Rank 0's log (metrics.jsonl, tb/, the bar), its records past the current step dropped; says what a resume
    changed. Other ranks get a disabled one."""
    config, world = r.config, r.world
    log = RunLog(r.output / "metrics.jsonl", tensorboard=r.output / "tb", total=r.plan.max_steps,
                 progress=config.train.progress, initial=r.progress.step, enabled=world.is_main)
    log.truncate_after(r.progress.step)
    log.message(run_shape(config, world.world_size, r.manifest))
    if warning := warmup_warning(config, world.world_size):
        log.message(warning)
    log.message(f"precision: {'bf16 autocast' if r.precision['bf16'] else 'fp32'} ({r.precision['how']}"
                + (f"; {r.precision['headline']})" if r.precision["headline"] else ")"))
    log.message(f"memory: {hardware.ALLOCATOR}")
    if config.model.init_from and saved is None:
        log.message(f"model: initialised from {config.model.init_from} (its architecture and weights; "
                    f"a fresh optimizer and schedule)")
    elif r.manifest is not None and "vocab_size" not in config.model.overrides:
        log.message(f"model: {config.model.preset} with vocab_size {r.model_config.vocab_size:,} "
                    f"(the data's tokenizer)")
    horizon_before = _saved_horizon(saved, world.world_size)
    if horizon_before is not None and r.plan.horizon is not None and horizon_before != r.plan.horizon:
        log.message(f"the decay horizon moves from step {horizon_before:,} to {r.plan.horizon:,} "
                    f"(it follows --max-steps): the learning rate continues on the "
                    f"{'longer' if r.plan.horizon > horizon_before else 'shorter'} schedule")
    if saved is not None:
        log.message(f"resumed from {saved.path} at step {r.progress.step}")
    if not has_eval and config.train.eval_every:
        from litebert.data.create import empty_eval_reason

        why = empty_eval_reason(r.manifest) if r.manifest is not None else None
        log.message(f"no eval split in {config.data.path or 'the data'}: evaluation is off "
                    f"({why or 'make the data with `litebert data create --eval-fraction F`'})")
    if world.is_main and saved is not None and len(saved.state["rng"]) != world.world_size:
        log.message(f"checkpoint saved by {len(saved.state['rng'])} ranks, running {world.world_size}: "
                    "RNG streams re-seeded and the data position mapped by examples consumed")
    return log


def _saved_horizon(saved: ckpt.Checkpoint | None, world_size: int) -> int | None:
    """The decay horizon of the run a checkpoint was saved by (None: no checkpoint, or a time budget)."""
    if saved is None:
        return None
    return plan(fields.from_dict(PretrainConfig, saved.state["config"]), world_size).horizon


def run_shape(config: PretrainConfig, world_size: int, manifest: dict | None) -> str:
    """One line with the run's shape, printed at start so a preset's paper-sized global batch (4096, reached
    by accumulation) or schedule never surprises: batch arithmetic, length, lr schedule, tokens per step."""
    p = plan(config, world_size)
    sched, optim = config.schedule, config.optim
    if sched.budget_s is not None:
        length = f"a {sched.budget_s / 60:g}-min budget" + (f" (at most {p.max_steps:,} steps)"
                                                           if p.max_steps else "")
        lr = f"warmup {sched.warmup_fraction:.1%} of the budget, then decay over time"
    else:
        length = f"{p.max_steps:,} steps"
        lr = f"warmup {p.warmup_steps:,} step{'s' * (p.warmup_steps != 1)}, then decay to 0 at step {p.horizon:,}"
    seq = manifest["settings"]["max_seq_length"] if manifest else None
    tokens = f"; up to {p.global_batch * seq:,} tokens per step ({seq} per sequence)" if seq else ""
    return (f"run: global batch {p.global_batch:,} = micro-batch {config.batch.micro_batch} x accumulation "
            f"{p.accumulate} x {world_size} rank(s); {length}; {optim.name.upper()} peak lr {optim.lr:g}, {lr} "
            f"(power {sched.power:g}){tokens}")


def warmup_warning(config: PretrainConfig, world_size: int) -> str | None:
    """A warning when warmup takes over half of a step schedule: the paper's 3125 steps under `--max-steps 1000`
    warm up for the whole run, and the learning rate never decays."""
    p = plan(config, world_size)
    if p.horizon is None or p.warmup_steps * 2 <= p.horizon:
        return None
    return (f"warning: warmup takes {p.warmup_steps:,} of the schedule's {p.horizon:,} steps "
            f"({p.warmup_steps / p.horizon:.0%}; the paper's: 2.5%), so the learning rate "
            + ("never decays" if p.warmup_steps == p.horizon else "spends little time decaying")
            + f": set --warmup-steps (2.5% is {max(1, round(0.025 * p.horizon)):,})")


FEW_BUDGET_STEPS = 100
"""Fewer optimizer steps than this in a time budget draw a warning: warmup and decay then span a handful of
updates (a preset's paper-sized global batch of 4,096 at a few seconds a micro-batch makes minutes of one)."""


def budget_warning(r: Run, elapsed_s: float) -> str | None:
    """After this process's first step: a warning when, at that step's pace, the budget left holds fewer than
    FEW_BUDGET_STEPS steps. The first step also pays for warm-up, so the count is a floor."""
    budget_s, step_s = r.config.schedule.budget_s, elapsed_s - r.elapsed_before
    if budget_s is None or step_s <= 0:
        return None
    steps = r.progress.step + int(max(budget_s - elapsed_s, 0.0) / step_s)
    if steps >= FEW_BUDGET_STEPS:
        return None
    return (f"warning: the first step took {step_s:.1f} s, so the {budget_s / 60:g}-min budget holds about "
            f"{steps:,} optimizer step{'s' * (steps != 1)} of {r.plan.global_batch:,} sequences, too few for "
            f"warmup and decay to mean much: a smaller --global-batch (or a longer --budget) gives more")


# ------------------------------------------------------------------------------------------------ one step
def set_scheduled_lr(r: Run) -> float:
    """The schedule's learning rate for the coming step (by steps, or by the clock under a budget)."""
    schedule = r.config.schedule
    lr = learning_rate(r.config.optim.lr, *schedule.progress(r.progress.step, r.progress.elapsed_s,
                                                             r.plan.max_steps), schedule.power)
    set_learning_rate(r.optimizer, lr)
    return lr


def take_step(r: Run, forward: S.Forward) -> S.StepResult:
    """This step's micro-batches through `litebert.step`: accumulate, clip, agree (on rank 0's clock)."""
    step = r.progress.step + 1
    if r.hooks.before_forward:
        r.hooks.before_forward(step, r.model)
    result = S.take_step(
        r.model_for_step, r.params, [next(r.batches) for _ in range(r.plan.accumulate)], forward,
        r.world, r.autocast, clip_norm=r.config.optim.clip_norm, stop=bool(r.stop_requested),
        clock=lambda: r.elapsed_before + r.hooks.clock() - r.started, budget_s=r.config.schedule.budget_s,
        tokens_at=STATS.index("tokens"),
        after_backward=(lambda: r.hooks.after_backward(step, r.model)) if r.hooks.after_backward else None,
        micro_batch_done=lambda fraction: r.log.advance(step - 1 + fraction))
    r.progress.elapsed_s = result.decision.elapsed_s  # the clock runs for every step, skipped or not
    return result


def optimizer_step(r: Run, result: S.StepResult) -> str:
    """Skip a non-finite step, roll back on a loss spike, else update: "skip", "rollback" or "update"."""
    decision = result.decision
    spike = not decision.skip and r.guard.is_spike(decision.loss)
    S.update(r.optimizer, decision, hold=spike)
    r.skips.record(decision.skip, r.progress.step + 1)
    if decision.skip:
        _count_skip(r, decision)
        return "skip"
    if spike:
        roll_back(r, decision.loss)
        r.window.reset()
        return "rollback"
    r.guard.record(decision.loss)
    r.progress.step += 1
    r.progress.tokens += decision.tokens
    r.window.add(result.stats)
    return "update"


def _count_skip(r: Run, decision: D.Decision) -> None:
    """Record a skipped (non-finite) step in the counts and the log."""
    progress = r.progress
    progress.skipped += 1
    r.log.message(S.skip_message(progress.step + 1, progress.skipped))
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
                         or decision.stop or step == r.plan.max_steps):
        totals = D.all_reduce_sum(r.world, window.stats)  # summed over ranks
        tokens = totals[STATS.index("tokens")].item()  # this window's, all ranks (progress.tokens: the run's)
        record = {"step": step, **summarize(totals), "lr": lr, "grad_norm": norm,
                  "tokens_per_s": tokens / max(window.time_s, 1e-9), "time_s": progress.elapsed_s,
                  "skipped": progress.skipped}
        record["tokens"] = progress.tokens  # the run's total, not the window's
        r.log.write(record)
        r.last_record = record
        window.reset()
    r.log.advance(step, _postfix(r.last_record, _eta(r, r.hooks.clock() - r.started)))


def maybe_eval(r: Run, decision: D.Decision) -> bool:
    """Evaluate every eval_every steps and at the last step; True when eval MLM accuracy is a new best."""
    config, progress, step = r.config, r.progress, r.progress.step
    last = decision.stop or step == r.plan.max_steps  # the final model is always evaluated
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
    # The cursor after the last batch trained on (the prefetching thread may have read further).
    cursors = D.all_gather_objects(world, r.batches.state if r.batches.state is not None
                                   else r.train_data.state_dict())
    path, error = None, None
    if world.is_main:
        state = {"config": fields.to_dict(r.config), "model_config": r.model_config.to_dict(),
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
               "world_size": world.world_size, "accumulate": r.plan.accumulate, "precision": r.precision,
               "stopped_by": r.stop_requested[0] if r.stop_requested else
               ("max_steps" if r.plan.max_steps is not None and progress.step >= r.plan.max_steps else "budget")}
    final_state = D.model_state_dict(r.model)  # a collective under FSDP; full tensors on rank 0
    if world.is_main:
        write_final_model(r.model_config, final_state, r.output / "final", r.config, r.manifest)
        write_json_atomic(r.output / "summary.json", summary)
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


def _postfix(record: dict | None, eta_s: float | None) -> str | None:
    """The progress bar's line: the newest train record's numbers and the time left."""
    if record is None:
        return None
    return (f"loss {record['loss']:.3f} mlm_acc {record['mlm_acc']:.3f} sop_acc {_fmt(record['sop_acc'])} "
            f"lr {record['lr']:.2e} {record['tokens_per_s']:.0f} tok/s"
            + (f" eta {eta_s / 60:.1f}m" if eta_s is not None else ""))


def _eta(r: Run, run_s: float) -> float | None:
    """Seconds left: of the budget, or at this run's pace until max_steps."""
    progress, budget_s = r.progress, r.config.schedule.budget_s
    if budget_s is not None:
        return max(budget_s - progress.elapsed_s, 0.0)
    if r.plan.max_steps is None or progress.step == r.first_step:
        return None
    return run_s / (progress.step - r.first_step) * (r.plan.max_steps - progress.step)


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
    from litebert.tokenizer import copy_tokenizer_files

    if not Path(source).is_dir():  # data made before manifests recorded it absolute, from another directory
        why = f"not found (from {Path.cwd()})"
    elif not copy_tokenizer_files(source, directory):
        why = "holds no spiece.model, vocab.txt or tokenizer.json"
    else:
        return
    warnings.warn(f"tokenizer directory {source} {why}; {directory} has no tokenizer (pass --tokenizer DIR)",
                  stacklevel=2)


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
    """Add `litebert pretrain`."""
    p = subparsers.add_parser("pretrain", help="pretrain ALBERT (MLM + SOP, LAMB); also under torchrun",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    S = argparse.SUPPRESS  # flags not given leave the config's value (default, or --config FILE's)
    p.add_argument("--output", dest="output", required=True, help="run directory (rerunning into it resumes)")
    p.add_argument("--preset", dest="model.preset", default=S, help="model preset (default albert-base-v2)")
    p.add_argument("--data", dest="data.path", default=S, help="directory made by `litebert data create`")
    p.add_argument("--model-override", dest="model.overrides", action=fields.DictItem, default=S,
                   metavar="KEY=VALUE",
                   help="change an AlbertConfig field of the preset, e.g. num_hidden_layers=4 (repeatable)")
    p.add_argument("--init-from", dest="model.init_from", default=S, metavar="DIR",
                   help="continue pretraining from this model (HF ALBERT/BERT directory, converted TF checkpoint, "
                        "litebert run or checkpoint): its architecture and weights, a fresh optimizer and schedule")
    p.add_argument("--mlm-bias-init", dest="model.mlm_bias_init", choices=MLM_BIAS_INITS, default=S,
                   help="MLM output bias at step 0: zero (official, default) or unigram (log piece frequencies)")
    p.add_argument("--max-steps", dest="train.max_steps", type=int, default=S)
    p.add_argument("--budget", dest="schedule.budget_s", type=parse_duration, default=S,
                   help="wall-clock budget (900, 15m, 2h): the schedule follows time, then stop")
    p.add_argument("--batch-size", dest="batch.micro_batch", type=int, default=S,
                   help="micro-batch: sequences per forward pass per rank")
    p.add_argument("--global-batch", dest="batch.global_batch", type=int, default=S,
                   help="sequences per optimizer step, all ranks (default 4096)")
    p.add_argument("--accumulate", dest="batch.accumulate", type=int, default=S,
                   help="micro-batches per step per rank (instead of --global-batch)")
    p.add_argument("--seq-length", dest="data.seq_length", type=int, default=S,
                   help="pad batches to this length (>= the data's max_seq_length)")
    p.add_argument("--lr", dest="optim.lr", type=float, default=S, help="peak learning rate (default 0.00176)")
    p.add_argument("--warmup-steps", dest="schedule.warmup_steps", type=int, default=S)
    p.add_argument("--warmup-fraction", dest="schedule.warmup_fraction", type=float, default=S,
                   help="with --budget: share of it spent warming up (0.025)")
    p.add_argument("--decay-steps", dest="schedule.total_steps", type=int, default=S,
                   help="steps of the linear decay (default: --max-steps, else 125000)")
    p.add_argument("--optimizer", dest="optim.name", choices=("lamb", "adamw"), default=S)
    p.add_argument("--weight-decay", dest="optim.weight_decay", type=float, default=S)
    p.add_argument("--clip-norm", dest="optim.clip_norm", type=float, default=S)
    p.add_argument("--seed", dest="train.seed", type=int, default=S)
    p.add_argument("--bf16", dest="train.bf16", action=argparse.BooleanOptionalAction, default=S,
                   help="bf16 autocast (default: where it measures faster; see litebert.calibrate)")
    p.add_argument("--compile", dest="train.compile", action=argparse.BooleanOptionalAction, default=S)
    p.add_argument("--activation-checkpointing", dest="train.activation_checkpointing",
                   action=argparse.BooleanOptionalAction, default=S,
                   help="recompute the blocks' activations in backward: far less memory, ~30%% more time")
    p.add_argument("--device", dest="train.device", choices=("cpu", "cuda"), default=S)
    p.add_argument("--fsdp", dest="parallel.fsdp", action=argparse.BooleanOptionalAction, default=S,
                   help="shard with FSDP (else DDP)")
    p.add_argument("--log-every", dest="train.log_every", type=int, default=S)
    p.add_argument("--eval-every", dest="train.eval_every", type=int, default=S)
    p.add_argument("--eval-batches", dest="train.eval_batches", type=int, default=S)
    p.add_argument("--save-every", dest="checkpoint.save_every", type=int, default=S)
    p.add_argument("--keep-last", dest="checkpoint.keep_last", type=int, default=S)
    p.add_argument("--resume", dest="checkpoint.resume", nargs="?", const="latest", metavar="CHECKPOINT",
                   default=S, help="resume from the latest checkpoint in --output (or the one given)")
    p.add_argument("--allow-config-change", dest="checkpoint.allow_config_change", action="store_true", default=S)
    p.add_argument("--spike-factor", dest="guard.spike_factor", type=float, default=S)
    p.add_argument("--tokenizer", dest="data.tokenizer", default=S,
                   help="tokenizer directory to ship in OUTPUT/final (default: the data's)")
    p.add_argument("--no-progress", dest="train.progress", action="store_false", default=S, help="no progress bar")
    fields.add_config_arguments(p, PretrainConfig)
    p.set_defaults(func=_pretrain_command)


def config_from_args(args: argparse.Namespace) -> PretrainConfig:
    """Defaults, then --config FILE (JSON or TOML), then the flags given (aliases and --SECTION.FIELD alike)."""
    return fields.config_from_args(PretrainConfig, args)


def _pretrain_command(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    try:
        run(config)
    except ckpt.CheckpointError as err:
        print(f"litebert pretrain: error: {err}", file=sys.stderr)
        return 1
    return 0
