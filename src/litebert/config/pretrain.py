"""Pretraining's settings: `PretrainConfig` and its sections, and what they mean on a given world (`plan`).

The dataclasses are plain data: defaults are the paper's (LAMB lr 0.00176, warmup 3125, decay to 0 at step
125k, global batch 4096). Values that follow from others (micro-batches to accumulate, the decay horizon, the
warmup clamp, the step limit) are computed by `plan(config, world_size)` and never written back, so the
config saved with a run is exactly what the user asked for, and adding steps to a finished run just works.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from litebert.config import fields
from litebert.config.model import AlbertConfig

PAPER_TOTAL_STEPS = 125_000
"""The paper's decay horizon: the learning rate reaches 0 at step 125k."""


OPTIMIZERS = ("lamb", "adamweightdecay", "adamw")


@dataclass
class OptimConfig:
    """The optimizer; the defaults are the ALBERT paper's (and `run_pretraining.py`'s)."""

    name: str = "lamb"
    """`lamb` (the paper's), `adamweightdecay` (BERT/ALBERT's AdamWeightDecayOptimizer, the official
    fine-tuning optimizer: Adam without bias correction, decay added to the update) or `adamw`
    (torch.optim.AdamW, with bias correction)."""
    lr: float = 0.00176
    """Peak learning rate, reached at the end of warmup."""
    beta1: float = 0.9
    """Adam/LAMB's first-moment decay."""
    beta2: float = 0.999
    """Adam/LAMB's second-moment decay."""
    eps: float = 1e-6
    """Adam/LAMB's epsilon (the official 1e-6)."""
    weight_decay: float = 0.01
    """Decoupled weight decay λ, applied to every parameter whose name matches none of `exclude`."""
    exclude: list[str] = field(default_factory=lambda: ["LayerNorm", "layer_norm", "bias"])
    """Regexes (re.search on the parameter name) of parameters kept out of weight decay and the trust ratio."""
    clip_norm: float = 1.0
    """Global gradient-norm clipping threshold; 0 turns clipping off."""

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.name!r}")
        if self.lr <= 0:
            raise ValueError(f"learning rate must be > 0, got {self.lr}")


@dataclass
class ScheduleConfig:
    """Linear warmup to the peak, then polynomial decay to 0 (the official `create_optimizer`).

    Progress is measured in optimizer steps, or, with `budget_s`, in wall-clock seconds (as cramming does):
    the learning rate is then a function of the fraction of the budget used.
    """

    warmup_steps: int = 3125
    """Steps of linear warmup from 0 (ignored with a budget; at most the decay horizon)."""
    total_steps: int | None = None
    """Steps over which the learning rate decays to 0 (ignored with a budget); None: train.max_steps, or the
    paper's 125k when that is unset too."""
    power: float = 1.0
    """Exponent of the decay: 1 = linear."""
    budget_s: float | None = None
    """Wall-clock budget in seconds; when set, training stops when it is used and the schedule follows time."""
    warmup_fraction: float = 0.025
    """With a budget: the fraction of it spent warming up (3125 / 125000, the paper's ratio)."""

    def horizon(self, max_steps: int | None = None) -> int:
        """The step at which the learning rate reaches 0: total_steps, else max_steps, else 125k."""
        return self.total_steps or max_steps or PAPER_TOTAL_STEPS

    def progress(self, step: int, elapsed_s: float, max_steps: int | None = None) -> tuple[float, float]:
        """(fraction of training done, fraction at which warmup ends), by steps or by time."""
        if self.budget_s is not None:
            return min(elapsed_s / self.budget_s, 1.0), self.warmup_fraction
        total = self.horizon(max_steps)
        return min(step / total, 1.0), min(self.warmup_steps, total) / total


@dataclass
class ParallelConfig:
    """How the model is spread over processes (the world itself comes from torchrun's environment)."""

    fsdp: bool = False
    """Shard parameters, gradients and optimizer state with `fully_shard` (for the large presets); else DDP."""
    timeout_s: float = 120.0
    """Seconds a collective may wait for a missing rank before the job fails (instead of hanging)."""
    backend: str | None = None
    """Process-group backend; None picks nccl on CUDA and gloo on CPU."""


MLM_BIAS_INITS = ("zero", "unigram")


@dataclass
class ModelConfig:
    """Which ALBERT to train."""

    preset: str = "albert-base-v2"
    """A name from `litebert.config.PRESETS`."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """AlbertConfig fields changed from the preset, e.g. {"vocab_size": 8000, "hidden_dropout_prob": 0.1}."""
    init_from: str | None = None
    """Continued pretraining: start from this model's weights instead of random init (a Hugging Face ALBERT or
    BERT directory, a converted TF checkpoint, a litebert run's final/ or one of its checkpoints). Its
    architecture replaces the preset's (overrides may still change dropout); the MLM and SOP heads come
    along when it has them and start fresh otherwise; optimizer and schedule start fresh. Its vocabulary must
    be the data's."""
    mlm_bias_init: str = "zero"
    """The MLM decoder's output bias at step 0: `zero` (the official code) or `unigram`, the log-frequency of
    each piece in the training data. With `unigram` the model predicts the unigram distribution from the first
    step, so its layers are not first bent into producing it from a constant hidden state (measured: that is
    how short, high-learning-rate runs collapse to the unigram plateau; benchmarks/pretrain_sweep.py)."""

    def __post_init__(self) -> None:
        if self.mlm_bias_init not in MLM_BIAS_INITS:
            raise ValueError(f"mlm_bias_init must be one of {', '.join(MLM_BIAS_INITS)}, got {self.mlm_bias_init!r}")

    def build(self) -> AlbertConfig:
        """The preset with the overrides (with `init_from`, see `pretrain.model_config_for`)."""
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
    prefetch: int | None = None
    """Micro-batches drawn ahead on a background thread while the step runs (reading, dynamic masking and
    collation overlap compute); 0 draws each when needed. The data and the saved cursor are the same either
    way. None: 2 on a GPU, whose step leaves the CPU idle; 0 on a CPU, whose step already keeps every core busy
    (`benchmarks/bench_data_path.py --loop-seconds 45`, the demo's loop on a 2-core Xeon without AMX: 4.44-4.50
    steps/s with it, 4.53-4.78 without)."""


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
    """Optimizer steps to run; None = the decay horizon (or unlimited with a time budget)."""
    seed: int = 12345
    """Seeds model init (identical on all ranks), dropout (per rank) and the data order."""
    bf16: bool | None = None
    """bf16 autocast for the forward pass (fp32 master weights and optimizer state). None: on a GPU where it
    supports bf16; on a CPU where bf16 measures faster than fp32 at the run's shape (`litebert.calibrate`: it is
    5x faster on an AMX Xeon and slower on a Xeon without AMX)."""
    compile: bool = False
    """torch.compile the model."""
    activation_checkpointing: bool = False
    """Recompute each transformer block's activations in backward instead of keeping them
    (`distributed.checkpoint_activations`): a step keeps about the blocks' inputs only, for a second forward
    through the blocks. The gradients are the same. For long sequences and large presets (`litebert params`
    estimates both)."""
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
    parallel: ParallelConfig = field(default_factory=ParallelConfig)


# Fields a resumed run may change without --allow-config-change: they do not alter the trajectory already run.
# train.max_steps is among them: adding steps to a finished run extends it (the decay horizon follows max_steps
# unless schedule.total_steps was given).
RESUME_FREE = {"output", "train.max_steps", "train.log_every", "train.progress", "train.compile", "train.device",
               "train.activation_checkpointing",
               "train.eval_every", "train.eval_batches", "checkpoint.save_every", "checkpoint.keep_last",
               "checkpoint.resume", "checkpoint.allow_config_change", "data.path", "data.tokenizer",
               "data.verify_shards", "parallel.timeout_s", "parallel.backend"}


def config_differences(saved: dict[str, Any], current: PretrainConfig) -> list[str]:
    """'key: saved -> current' for every field that differs and matters for the trajectory.

    The decay horizon is compared as derived: a current None follows max_steps (extending a run moves it, and
    the run says so), and an explicit value equal to the saved run's derived horizon is no change."""
    old, new = fields.flat(saved), fields.flat(current)
    changed = []
    for key in sorted(set(old) | set(new)):
        if key in RESUME_FREE or old.get(key) == new.get(key):
            continue
        if key == "schedule.total_steps" and new[key] in (None, _saved_horizon(old)):
            continue
        changed.append(f"{key}: {old.get(key, '<absent>')!r} -> {new.get(key, '<absent>')!r}")
    return changed


def _saved_horizon(old: dict[str, Any]) -> int:
    return old.get("schedule.total_steps") or old.get("train.max_steps") or PAPER_TOTAL_STEPS


@dataclass(frozen=True)
class Plan:
    """What a PretrainConfig means on a world of `world_size` ranks; derived by `plan`, never saved."""

    accumulate: int
    """Micro-batches per optimizer step on each rank."""
    global_batch: int
    """Sequences per optimizer step over all ranks: micro_batch x accumulate x world_size."""
    max_steps: int | None
    """The step the run stops at; None: when the time budget is used."""
    horizon: int | None
    """The step at which the learning rate reaches 0; None with a time budget (the schedule follows time)."""
    warmup_steps: int | None
    """Warmup steps, clamped to the horizon; None with a time budget."""


def plan(config: PretrainConfig, world_size: int) -> Plan:
    """The derived values of a run, in one pure function."""
    accumulate = config.batch.steps_to_accumulate(world_size)
    glob = config.batch.micro_batch * accumulate * world_size
    sched = config.schedule
    if sched.budget_s is not None:
        return Plan(accumulate, glob, config.train.max_steps, None, None)
    horizon = sched.horizon(config.train.max_steps)
    return Plan(accumulate, glob, config.train.max_steps or horizon, horizon, min(sched.warmup_steps, horizon))


def parse_duration(text: str) -> float:
    """'90' / '90s' / '15m' / '2h' / '1h30m' -> seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ValueError(f"cannot read the duration {text!r}: use e.g. 900, 15m, 2h, 1h30m")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
