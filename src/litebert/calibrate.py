"""Whether bf16 and each CPU fast path pay on THIS machine: measured at the run's shape, cached, recorded.

The CPU's flags cannot decide it. bf16 matmuls run ~5x fp32's rate on an AMX Xeon and ~2.5x on an
AVX512-BF16 EPYC, but at 0.55x on a Xeon that has AVX512-BF16 and no AMX (141 vs 254 GFLOP/s at 2048², 2
threads, torch 2.13, measured 2026-12-02): there bf16 autocast makes every step slower. So, as cuDNN's
benchmark mode does, `calibrate` times the candidates once and keeps the fastest:

    train   forward + backward of a one-layer copy of the model (same H, I, heads, E, V) on a (B, T) batch,
            the layer at every position and the MLM head at 20 masked positions per row: fp32; and bf16
            autocast with each combination of the attention backward (bf16 matmuls after SDPA's forward, or
            after a matmul forward that keeps its (T, T) probabilities; SDPA in fp32; SDPA's own in bf16) and the
            erf or the tanh GELU
    infer   forward under inference_mode: fp32; bf16 autocast with the erf or the tanh GELU, each with SDPA's
            attention or attention of batched matmuls

Before those, each bf16 matmul shape of the model's projections at the run's B*T rows (forward, and in training
the input gradients) is timed whole and in blocks of 256, 512 and 1024 rows (`kernels.matmul`): oneDNN runs some
shapes at half its rate whole and at the full one in blocks. A block size is kept where it takes at most 90% of
the whole matmul's time. Each projection's forward matmul that runs whole is also timed, in fp32 and bf16, with its
bias added by addmm (a pass copying the bias into the output first) and by oneDNN's linear (added as it writes),
and the latter is kept where it is no slower. The FFN's input projection is also timed in fp32 and bf16 with its
GELU after the matmul and with bias and GELU applied by oneDNN as it writes the output
(`kernels.Projection.activated`, for passes without a gradient: inference, and a training run's evaluations), the
latter kept where it is no slower. Each forward projection is also timed in fp32 and bf16, without a gradient,
as it runs under those plans and applied from a copy of its weight packed once into oneDNN's blocked layout
(`kernels.packed_projection`), the latter kept where it is no slower. These two plans hold at any row count, so a
run of more than PROBE_ROWS rows times them at that many (unless its row plan splits the shape). In training each
projection's weight gradient gy^T x is timed as autograd computes it (gy^T a strided view) and with gy or x
transposed first (`kernels.SharedGrad`), and the matmul attention backward on all heads at once and in blocks of 4
to 32 heads, each kept likewise at 90%. The variants above are then
timed with those plans. In training a model that shares blocks across layers, the chosen variant (bf16 or fp32)
is then timed on a copy of up to four layers sharing its blocks (SHARED_LAYERS), with the shared blocks' weight
gradients summed in place (`kernels.Linear`) and as autograd sums them; the faster is kept. A bf16 training choice
then times the one-layer copy's forward without a gradient with SDPA's attention and with batched matmuls, for the
run's evaluation passes, and keeps the faster.

On a CPU without native bf16 (neither AMX nor AVX512-BF16, e.g. an AVX2-only EPYC, where torch emulates bf16
matmuls ~80x slower than fp32) bf16 is no candidate: nothing bf16 is timed, the run is fp32, and only the fp32
plans are measured (row blocks and weight-gradient ways in fp32; oneDNN's bias and GELU epilogues and packed
weights against MKL's fp32 matmuls; the summed shared gradient), since oneDNN's fp32 linear may beat MKL's there
(1.0-1.5x on that EPYC, more packed).

Variants are timed round-robin (medians), each round starting one variant later, so load on the machine and
what one variant leaves behind for the next hit them alike. bf16 variants timed within 5% of the fastest are then
timed again, alone and for four times as long (`runoff`), and those timings pick among them. The fastest bf16
variant is kept as it was timed (two switches that each pay alone need not pay together), and bf16 only when it is
at least 5% faster than fp32 in the first pass (it costs precision). The result is cached under
~/.cache/litebert/calibration/ (or $LITEBERT_CALIBRATION_DIR) by the CPU model, flags, torch version, threads,
the variables that cap which kernels oneDNN and ATen dispatch to (`hardware.dispatch_caps`), shape and mode, so
a machine makes the same choice run after run; runs write it to their logs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from litebert import kernels
from litebert import model as lm
from litebert.config import AlbertConfig
from litebert.files import write_json_atomic
from litebert.hardware import bf16_supported, cpu_flags, cpu_model, dispatch_caps

log = logging.getLogger("litebert")

MODES = ("train", "infer")
BF16_MARGIN = 0.95
"""bf16 must take at most this fraction of fp32's time to be chosen."""
ROW_BLOCKS = (256, 512, 1024)
"""Row-block sizes tried for each matmul shape (those below its row count)."""
MATMUL_MARGIN = 0.9
"""A row-block size, a weight gradient with an operand transposed first or a head-block size of the attention
backward must take at most this fraction of the plain way's time to be kept."""
PROBE_ROWS = 1024
"""Rows at which the plans that hold at any row count (oneDNN's GELU epilogue, packed weights) are timed for a run
with more, unless the run's row plan splits that shape (see probe). Their gain is per call or a fixed share of it,
so fewer rows measure it as well, for less: ALBERT-base inference at 32x128 on an AVX2-only EPYC (2 threads, two
runs each) calibrated in 50.7 and 49.9 s timing them at its 4,096 rows, in 38.7 and 38.3 s at 1,024. Packing paid
for the same three shapes in both, and at 1,024 rows also for the fourth, whose saving the slower calls had hidden.
There the packed layout also runs a little faster per row, so the fewest layers that pay for a packing come out
higher at fewer rows (1 to 4 where 1 at 4,096): an estimate on the safe side."""
ATTENTION_BLOCKS = (4, 8, 16, 32)
"""Heads per block tried for the matmul attention backward (those below batch x heads)."""
VERSION = 15
"""Bumped when what is measured changes: older cached results are then measured again."""


NO_BF16 = "bf16 not timed (not native here), fp32's plans measured"
"""What a calibration without bf16 as a candidate says in place of the bf16 variants' timings."""


@dataclass
class Calibration:
    mode: str
    bf16: bool
    """bf16 autocast pays at this shape on this machine."""
    erf_gelu_bf16: bool
    attention_backward: str
    """kernels.ATTENTION_BACKWARDS: "matmul", "fp32" or "sdpa" (inference: "sdpa", there is no backward)."""
    length: int
    attention_forward: str = "sdpa"
    """How attention without a gradient runs (kernels.CpuFastPaths.attention_forward): "sdpa" or "matmul"; measured
    in inference, and in bf16 training for the run's evaluation passes."""
    row_chunks: dict[str, int] = field(default_factory=dict)
    """kernels.matmul_key -> rows per block (0: whole) of every bf16 projection matmul measured at this shape."""
    weight_grads: dict[str, str] = field(default_factory=dict)
    """kernels.matmul_key (forward) -> how each bf16 projection's weight gradient runs (kernels.WEIGHT_GRADS)."""
    attention_block_heads: int = 0
    """Heads per block of the matmul attention backward (0: all at once)."""
    bias_epilogues: dict[str, bool] = field(default_factory=dict)
    """kernels.matmul_key -> whether oneDNN's linear adds the bias of each bf16 projection timed whole."""
    gelu_epilogues: dict[str, bool] = field(default_factory=dict)
    """kernels.gelu_key -> whether oneDNN applies the bias and GELU of the FFN's input projection (inference)."""
    packed_weights: dict[str, int] = field(default_factory=dict)
    """kernels.weight_key -> the fewest layers a copy of each projection's weight packed for one pass must serve to
    pay for its packing (0: a packed copy is no faster; kernels.packed_projection)."""
    shared_weight_grad: bool = True
    """A shared block sums its weight gradient in place (timed on a copy of up to four layers when the model
    shares)."""
    timings_ms: dict[str, float] = field(default_factory=dict)
    """Median milliseconds per variant."""
    key: dict[str, Any] = field(default_factory=dict)
    cached: bool = False

    def apply(self) -> None:
        """Set the model's CPU fast-path switches to what was measured (process-wide, like torch.backends)."""
        kernels.CPU_FAST_PATHS.erf_gelu_bf16 = self.erf_gelu_bf16
        kernels.CPU_FAST_PATHS.attention_backward = self.attention_backward
        kernels.CPU_FAST_PATHS.attention_backward_max_len = self.length
        kernels.CPU_FAST_PATHS.attention_forward = self.attention_forward
        kernels.CPU_FAST_PATHS.row_chunks = {**kernels.CPU_FAST_PATHS.row_chunks, **self.row_chunks}
        kernels.CPU_FAST_PATHS.weight_grads = {**kernels.CPU_FAST_PATHS.weight_grads, **self.weight_grads}
        kernels.CPU_FAST_PATHS.attention_block_heads = self.attention_block_heads
        kernels.CPU_FAST_PATHS.bias_epilogues = {**kernels.CPU_FAST_PATHS.bias_epilogues, **self.bias_epilogues}
        kernels.CPU_FAST_PATHS.gelu_epilogues = {**kernels.CPU_FAST_PATHS.gelu_epilogues, **self.gelu_epilogues}
        kernels.CPU_FAST_PATHS.packed_weights = {**kernels.CPU_FAST_PATHS.packed_weights, **self.packed_weights}
        kernels.CPU_FAST_PATHS.shared_weight_grad = self.shared_weight_grad

    def headline(self) -> str:
        """The choice in one console line: the fastest bf16 variant's time against fp32's, and where the whole
        record (every timing and plan, `describe`) lies: the cache file, and a run's summary."""
        bf16 = {name: ms for name, ms in self.timings_ms.items() if name in bf16_table(self.mode)}
        fp32 = self.timings_ms.get("fp32")
        against = f" against fp32 {fp32:.1f} ms" if fp32 is not None else ""
        best = min(bf16, key=bf16.__getitem__, default=None)
        timed = f"'{best}' {bf16[best]:.1f} ms{against}" if best else NO_BF16
        return (f"{'bf16' if self.bf16 else 'fp32'} for {self.mode} at {self.key.get('batch')}x{self.length} "
                f"({'cached' if self.cached else 'measured'}: {timed}; "
                f"{len(self.timings_ms)} timings in {cache_path(self.key)})")

    def describe(self) -> str:
        times = ", ".join(f"{k} {v:.1f} ms" for k, v in self.timings_ms.items())
        times = times if self.key.get("bf16", True) else ", ".join(filter(None, (NO_BF16, times)))
        blocks = ", ".join(f"{k.split()[-1]} in {v}-row blocks" for k, v in self.row_chunks.items() if v)
        grads = ", ".join(f"{k.split()[-1]} with {v} transposed" for k, v in self.weight_grads.items() if v)
        biases = ", ".join(" ".join(k.split()[::-1]) for k, on in self.bias_epilogues.items() if on)
        gelus = ", ".join(" ".join(k.split()[i] for i in (1, 0, 3)) for k, on in self.gelu_epilogues.items() if on)
        packed = ", ".join(f"{' '.join(k.split()[::-1])} (from {n} a pass)" for k, n in self.packed_weights.items()
                           if n)
        heads = self.attention_block_heads
        heads = f"; attention backward {heads} heads at a time" if heads else ""
        if self.attention_forward == "matmul":
            heads += "; attention of batched matmuls" if self.mode == "infer" else "; evaluations' attention of matmuls"
        return (f"{'bf16' if self.bf16 else 'fp32'} for {self.mode} at {self.key.get('batch')}x{self.length} "
                f"({'cached' if self.cached else 'measured'}: {times}{'; matmuls ' + blocks if blocks else ''}"
                f"{'; bias added by oneDNN in ' + biases if biases else ''}"
                f"{'; FFN GELU applied by oneDNN in ' + gelus if gelus else ''}"
                f"{'; weights packed for oneDNN in ' + packed if packed else ''}"
                f"{'; weight gradients ' + grads if grads else ''}{heads})")


def cache_dir() -> Path:
    from litebert.fetch import DEFAULT_CACHE
    return Path(os.environ.get("LITEBERT_CALIBRATION_DIR") or DEFAULT_CACHE / "calibration")


def cache_path(key: dict[str, Any]) -> Path:
    """Where the calibration measured under `key` (calibration_key) is cached."""
    return cache_dir() / (hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16] + ".json")


def calibration_key(config: AlbertConfig, batch: int, length: int, mode: str, bf16: bool = True
                    ) -> dict[str, Any]:
    """What the measurement depends on: the machine, the software, the shape, and whether bf16 is a candidate."""
    return {"version": VERSION, "cpu": cpu_model(), "flags": cpu_flags(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "dispatch": dispatch_caps(), "mode": mode, "bf16": bf16,
            "batch": batch, "length": length,
            "hidden_size": config.hidden_size, "intermediate_size": config.intermediate_size,
            "heads": config.num_attention_heads, "embedding_size": config.embedding_size,
            "vocab_size": config.vocab_size, "hidden_act": config.hidden_act, "norm_position": config.norm_position,
            "share": config.share if shares_blocks(config) else "none"}


def calibrate(config: AlbertConfig, batch: int, length: int, mode: str = "train", *, bf16: bool | None = None,
              force: bool = False, timer: Callable[..., dict[str, float]] | None = None) -> Calibration:
    """The measured choice for `mode` at (batch, length), from the cache unless `force`; cached when measured.
    `bf16`: whether bf16 is a candidate (default: where the CPU runs it natively, hardware.bf16_supported); where
    it is not, only the fp32 plans are measured (row blocks, weight-gradient ways, oneDNN's bias and GELU
    epilogues and packed weights: on an AVX2-only EPYC its fp32 linear beat MKL's by up to 1.5x) and the run is
    fp32.
    `timer(fns, budget_s=...)`, (variant -> run) -> variant -> median seconds, replaces the clock (tests)."""
    if mode not in MODES:
        raise ValueError(f"calibration mode must be one of {', '.join(MODES)}, got {mode!r}")
    bf16 = bf16_supported("cpu") if bf16 is None else bf16
    key = calibration_key(config, batch, length, mode, bf16)
    path = cache_path(key)
    if not force and path.exists():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            if saved.get("key") == key:
                return Calibration(**{**saved, "cached": True})
        except (OSError, ValueError, TypeError) as err:
            log.warning("calibration cache %s unreadable (%s): measuring again", path, err)
    # Said before the wait: on a slow CPU the first run at a shape measures for a minute (ALBERT-base inference at
    # 32x128, fp32 plans only, AVX2-only EPYC: 38 s), where it would otherwise seem to hang.
    log.info("measuring this CPU's fast paths for %s at %dx%d, once per machine and shape (cached as %s)", mode,
             batch, length, path)
    # The one-layer copy is initialised from torch's global RNG: measuring must not move it, or a run that
    # calibrates would draw other dropout masks than the same run with the choice already cached.
    timer = timer or interleaved_medians
    with torch.random.fork_rng(devices=[]):
        train, rows, dtypes = mode == "train", batch * length, onednn_dtypes(bf16)
        run_dtype = torch.bfloat16 if bf16 else torch.float32  # the row and weight-gradient plans: the run's own
        chunks = row_chunks(config, rows, mode, run_dtype)
        biases = bias_epilogues(config, rows, chunks, dtypes)
        # The GELU plan in both modes: a training run's evaluation passes take no gradient either.
        plans = {"row_chunks": chunks, "bias_epilogues": biases,
                 "weight_grads": weight_grads(config, rows, shared_uses(config), run_dtype) if train else {},
                 "gelu_epilogues": gelu_epilogues(config, rows, chunks, biases, dtypes),
                 "packed_weights": packed_weights(config, rows, chunks, biases, dtypes),
                 "attention_block_heads": attention_blocks(config, batch, length) if train and bf16 else 0}
        with fast_paths(**plans):
            if bf16:
                fns = variants(config, batch, length, mode)
                result = decide(runoff(fns, timer(fns), mode, timer), mode, length, key)
            else:  # nothing to choose between: the attention and GELU switches act in bf16 only
                defaults = kernels.CpuFastPaths()
                result = Calibration(mode=mode, bf16=False, erf_gelu_bf16=defaults.erf_gelu_bf16,
                                     attention_backward=defaults.attention_backward, length=length, key=key)
            result = dataclasses.replace(result, **plans)
            chosen = dict(erf_gelu_bf16=result.erf_gelu_bf16, attention_backward=result.attention_backward,
                          attention_backward_max_len=length)
            if train and shares_blocks(config):
                with fast_paths(**chosen):
                    result = decide_shared(result, timer(shared_variants(config, batch, length, result.bf16)))
            if train and result.bf16:  # the run's evaluation passes: attention without a gradient
                with fast_paths(**chosen):
                    result = decide_evaluation(result, timer(evaluation_variants(config, batch, length)))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {k: v for k, v in dataclasses.asdict(result).items() if k != "cached"})
    except OSError as err:  # a read-only home must not stop a run; it only re-measures next time
        log.warning("calibration not cached (%s)", err)
    return result


SHARED_VARIANTS = {"shared layers, summed gradient": True, "shared layers, per-layer gradients": False}
"""name -> CPU_FAST_PATHS.shared_weight_grad, timed in training when the model shares blocks."""
SHARED_LAYERS = 4
"""Layers of the copy the shared variants are timed on (fewer if the model has fewer). Each layer past the first
adds one gradient to the sum, so more layers show more of the difference: on a two-layer copy the choice at
ALBERT-base 8x128 flipped between runs (summed 138 against 130 ms in one, 117 against 123 in the next; AMX Xeon)
where the twelve-layer step gains 1.10x from it (benchmarks/levers.py)."""
BF16_VARIANTS = {"bf16": (True, "matmul"), "bf16, attention probabilities kept": (True, "kept"),
                 "bf16, fp32 attention backward": (True, "fp32"), "bf16, SDPA attention backward": (True, "sdpa"),
                 "bf16, tanh GELU": (False, "matmul"), "bf16, tanh GELU, attention probabilities kept": (False, "kept"),
                 "bf16, tanh GELU, fp32 attention backward": (False, "fp32"),
                 "bf16, tanh GELU, SDPA attention backward": (False, "sdpa")}
"""name -> (erf GELU in bf16, attention backward) of each bf16 training variant; "bf16" is the model's default."""
BF16_INFER_VARIANTS = {"bf16": (True, "sdpa"), "bf16, matmul attention": (True, "matmul"),
                       "bf16, tanh GELU": (False, "sdpa"), "bf16, tanh GELU, matmul attention": (False, "matmul")}
"""name -> (erf GELU in bf16, attention forward) of each bf16 inference variant."""


def bf16_table(mode: str) -> dict[str, tuple[bool, str]]:
    """The bf16 variants timed in `mode`: BF16_VARIANTS in training, BF16_INFER_VARIANTS in inference."""
    return BF16_VARIANTS if mode == "train" else BF16_INFER_VARIANTS


def in_ms(seconds: dict[str, float]) -> dict[str, float]:
    """Timings as a calibration records them: milliseconds, to the microsecond."""
    return {k: round(v * 1e3, 3) for k, v in seconds.items()}


def decide(seconds: dict[str, float], mode: str, length: int, key: dict[str, Any]) -> Calibration:
    """The fastest timed bf16 variant's switches (bf16 itself only with its 5% margin over fp32)."""
    table = bf16_table(mode)
    best = min((name for name in seconds if name in table), key=seconds.__getitem__)
    erf, attention = table[best]
    # bf16 against fp32 as both were timed in the same rounds (a runoff times the close bf16 variants later).
    first = seconds.get(f"{best}{FIRST_TIMING}", seconds[best])
    return Calibration(mode=mode, bf16=first <= BF16_MARGIN * seconds["fp32"], erf_gelu_bf16=erf,
                       attention_backward=attention if mode == "train" else "sdpa", length=length,
                       attention_forward=attention if mode == "infer" else "sdpa",
                       timings_ms=in_ms(seconds), key=key)


RUNOFF_WITHIN = 1.05
"""bf16 variants timed within 5% of the fastest go to a runoff (see runoff): the margin bf16 itself must clear
over fp32. 3% was too narrow: the fresh demo run at ea00307 timed the kept probabilities 3.1% behind the
default (73.4 against 71.2 ms, on a noisy stretch: fp32 128 ms against the usual ~105), and kept the slower one."""
RUNOFF_BUDGET_S = 2.0
"""About how long the runoff times each of its variants (interleaved_medians' budget; 0.5 s in the first pass)."""
FIRST_TIMING = ", first timing"


def runoff(fns: dict[str, Callable[[], None]], seconds: dict[str, float], mode: str,
           timer: Callable[..., dict[str, float]]) -> dict[str, float]:
    """`seconds` with the bf16 variants timed within RUNOFF_WITHIN of the fastest timed again, those alone and
    over RUNOFF_BUDGET_S each; their new medians replace the first ones, which stay as "<name>, first timing".

    Why: the one-layer copy carries the MLM head, a cost no switch changes, so a switch worth 8-10% of a layer
    can be 1-4% of what is timed, near the noise of a few rounds on a shared machine. The demo's shape on the
    EPYC picked the slower attention backward in 4 of 22 calibrations, and a cached pick stays
    (benchmarks/README.md, the EPYC's fourth session). More rounds of the close variants alone narrow it.
    """
    table = bf16_table(mode)
    timed = {name: s for name, s in seconds.items() if name in table}
    fastest = min(timed.values(), default=0.0)
    close = [name for name, s in timed.items() if s <= RUNOFF_WITHIN * fastest]
    if len(close) < 2:
        return seconds
    again = timer({name: fns[name] for name in close}, budget_s=RUNOFF_BUDGET_S)
    return {**seconds, **{name + FIRST_TIMING: seconds[name] for name in close}, **again}


def decide_shared(result: Calibration, seconds: dict[str, float]) -> Calibration:
    """`result` with the summed shared gradient on only if it timed no slower, and its timings added."""
    summed = seconds[next(n for n, on in SHARED_VARIANTS.items() if on)]
    per_layer = seconds[next(n for n, on in SHARED_VARIANTS.items() if not on)]
    timings = {**result.timings_ms, **in_ms(seconds)}
    return dataclasses.replace(result, shared_weight_grad=summed <= per_layer, timings_ms=timings)


EVALUATION_VARIANTS = {"evaluation, SDPA attention": "sdpa", "evaluation, matmul attention": "matmul"}
"""name -> CPU_FAST_PATHS.attention_forward, timed in bf16 training for the run's evaluation passes (no gradient)."""


def evaluation_variants(config: AlbertConfig, batch: int, length: int) -> dict[str, Callable[[], None]]:
    """EVALUATION_VARIANTS: a bf16 forward without a gradient of the one-layer copy (as the run's evaluation
    passes take it, under the training choice's other switches)."""
    run = _inference(_copy(config, length, 1), batch, length)
    return {name: _switched(lambda: run(True), attention_forward=how, attention_backward_max_len=length)
            for name, how in EVALUATION_VARIANTS.items()}


def decide_evaluation(result: Calibration, seconds: dict[str, float]) -> Calibration:
    """`result` with the attention forward its evaluation passes timed fastest (no margin: both are bf16, and
    inference takes its attention forward the same way), and those timings added."""
    fastest = min(EVALUATION_VARIANTS, key=seconds.__getitem__)
    timings = {**result.timings_ms, **in_ms(seconds)}
    return dataclasses.replace(result, attention_forward=EVALUATION_VARIANTS[fastest], timings_ms=timings)


def projection_matmuls(config: AlbertConfig, rows: int, mode: str) -> list[tuple[int, int, int]]:
    """(rows, inner, out) of every matmul of the encoder's projections: Q/K/V, output, FFN in and out, and in
    training their input gradients (inner and out swapped)."""
    H, I = config.hidden_size, config.intermediate_size
    forward = [(H, 3 * H), (H, H), (H, I), (I, H)]
    both = forward + [(o, i) for i, o in forward] if mode == "train" else forward
    return sorted({(rows, i, o) for i, o in both})


def row_chunks(config: AlbertConfig, rows: int, mode: str, dtype: torch.dtype = torch.bfloat16) -> dict[str, int]:
    """kernels.matmul_key -> the fastest rows per block of each projection matmul in `dtype` (0: whole), timed."""
    plan = {}
    for n, k, m in projection_matmuls(config, rows, mode):
        key, blocks = kernels.matmul_key(dtype, n, k, m), [r for r in ROW_BLOCKS if r < n]
        if not blocks:
            continue
        a, b = torch.randn(n, k, dtype=dtype), torch.randn(k, m, dtype=dtype)
        seconds = interleaved_medians({r: _switched(lambda a=a, b=b: kernels.matmul(a, b), row_chunks={key: r})
                                       for r in (0, *blocks)}, budget_s=0.05)
        best = min(blocks, key=seconds.__getitem__)
        plan[key] = best if seconds[best] <= MATMUL_MARGIN * seconds[0] else 0
    return plan


def onednn_dtypes(bf16: bool) -> tuple[torch.dtype, ...]:
    """The dtypes whose oneDNN plans (biases, GELU, packed weights) a calibration measures: fp32, and bf16 where
    it is a candidate and oneDNN has bf16 kernels here (its bf16 linear needs AVX512 at least: on an AVX2-only CPU
    it raises, and torch's own bf16 matmul there runs ~80x slower than fp32)."""
    if not torch.backends.mkldnn.is_available():
        return ()
    return (torch.float32, torch.bfloat16) if bf16 and torch.ops.mkldnn._is_mkldnn_bf16_supported() \
        else (torch.float32,)


def bias_epilogues(config: AlbertConfig, rows: int, chunks: dict[str, int],
                   dtypes: tuple[torch.dtype, ...]) -> dict[str, bool]:
    """kernels.matmul_key -> whether each forward projection matmul in `dtypes` that runs whole (no row blocks in
    `chunks`) is no slower with its bias added by oneDNN's linear than by addmm (fp32: MKL's). No margin: the
    fused way only drops a pass over the output, so where the two time alike either choice costs nothing."""
    plan = {}
    for dtype in dtypes:
        for n, k, m in projection_matmuls(config, rows, "infer"):
            key = kernels.matmul_key(dtype, n, k, m)
            if chunks.get(key):
                continue
            a, w, bias = torch.randn(n, k, dtype=dtype), torch.randn(m, k, dtype=dtype), torch.randn(m, dtype=dtype)
            seconds = interleaved_medians({on: _switched(lambda: kernels.matmul(a, w.t(), bias),
                                                         bias_epilogues={key: on}) for on in (False, True)},
                                          budget_s=0.1)
            plan[key] = seconds[True] <= seconds[False]
    return plan


def gelu_epilogues(config: AlbertConfig, rows: int, chunks: dict[str, int], biases: dict[str, bool],
                   dtypes: tuple[torch.dtype, ...]) -> dict[str, bool]:
    """kernels.gelu_key -> whether the FFN's input projection at `rows` rows, in each of `dtypes` (bf16 with each
    GELU form the model may take there), is no slower with its bias and GELU applied by oneDNN than as
    `kernels.matmul` (under the row plan `chunks` and the bias plan `biases`) and then the GELU. No margin: the
    fused way only drops passes over the output, so the answer stands for every row count (see
    kernels.Projection.activated), and is timed at `probe`'s rows."""
    plan = {}
    H, I = config.hidden_size, config.intermediate_size
    act = lm.ACT_FNS[config.hidden_act]
    for dtype in dtypes:
        for erf in (True, False):  # the form of gelu_tanh in bf16 follows CPU_FAST_PATHS.erf_gelu_bf16
            with fast_paths(erf_gelu_bf16=erf):
                form = kernels.gelu_form(act, dtype)
            key = kernels.gelu_key(dtype, H, I, form) if form else None
            if key is None or key in plan:
                continue
            n, switches = probe(rows, chunks, biases, dtype, H, I)
            x, w, b = torch.randn(n, H, dtype=dtype), torch.randn(I, H, dtype=dtype), torch.randn(I, dtype=dtype)
            switches = dict(**switches, erf_gelu_bf16=erf)
            with torch.inference_mode(), fast_paths(**switches, gelu_epilogues={key: True}):
                projection = kernels.Projection(w, b, 1)  # through kernels.linear, as in a model with plans
                seconds = interleaved_medians(
                    {on: _switched(lambda: projection.activated(x, act), **switches, gelu_epilogues={key: on})
                     for on in (False, True)}, budget_s=0.1)
            plan[key] = seconds[True] <= seconds[False]
    return plan


def packed_weights(config: AlbertConfig, rows: int, chunks: dict[str, int], biases: dict[str, bool],
                   dtypes: tuple[torch.dtype, ...]) -> dict[str, int]:
    """kernels.weight_key -> for each forward projection at `rows` rows, in each of `dtypes`, without a gradient:
    0 where a call from a packed copy of its weight (kernels.packed_projection) is no faster than as
    kernels.projection applies it under the row plan `chunks` and the bias plan `biases`; else the fewest calls
    whose savings pay for the packing, so the fewest layers a copy made for one pass must serve (a copy kept
    across passes, kernels.keep_packed_weights, pays from the first). The answer stands for every row count:
    packing only drops the reorder oneDNN makes of a plain weight in every call. Timed at `probe`'s rows."""
    plan = {}
    if not hasattr(torch.ops.mkldnn, "_reorder_linear_weight"):
        return plan
    for dtype in dtypes:
        for _, k, m in projection_matmuls(config, rows, "infer"):
            key = kernels.weight_key(dtype, k, m)
            n, switches = probe(rows, chunks, biases, dtype, k, m)
            x, linear = torch.randn(n, k, dtype=dtype), torch.nn.Linear(k, m, dtype=dtype)
            with torch.no_grad(), kernels.keep_packed_weights():
                seconds = interleaved_medians(
                    {**{packs: _switched(lambda: kernels.projection(linear, 1)(x), **switches,
                                         packed_weights={key: packs}) for packs in (0, 1)},
                     "pack": lambda: torch.ops.mkldnn._reorder_linear_weight(linear.weight)}, budget_s=0.1)
            saved = seconds[0] - seconds[1]
            plan[key] = max(1, math.ceil(seconds["pack"] / saved)) if saved > 0 else 0
    return plan


def probe(rows: int, chunks: dict[str, int], biases: dict[str, bool], dtype: torch.dtype, inner: int, out: int
          ) -> tuple[int, dict[str, dict]]:
    """(rows at which to time a plan that holds at any row count for the (inner, out) projection in `dtype`, the
    row and bias plans `chunks` and `biases` measured at the run's `rows` as they apply at those): PROBE_ROWS where
    the run has more, with the run's bias plan for the shape; the run's rows where its row plan splits the shape,
    since the fused and packed ways run whole and their rival in blocks."""
    key = kernels.matmul_key(dtype, rows, inner, out)
    if rows <= PROBE_ROWS or chunks.get(key):
        return rows, {"row_chunks": chunks, "bias_epilogues": biases}
    return PROBE_ROWS, {"row_chunks": {},
                        "bias_epilogues": {kernels.matmul_key(dtype, PROBE_ROWS, inner, out): biases.get(key, False)}}


def weight_grads(config: AlbertConfig, rows: int, uses: int = 1, dtype: torch.dtype = torch.bfloat16
                 ) -> dict[str, str]:
    """kernels.matmul_key -> the fastest way (kernels.WEIGHT_GRADS) to compute each projection's weight and bias
    gradients in `dtype` at `rows` rows, timed per layer as `uses` layers sharing the projection need them: each layer's
    added to the sum of those before (when uses > 1), the sum turned to the weight's layout once per `uses`."""
    plan = {}
    for n, k, m in projection_matmuls(config, rows, "infer"):
        key = kernels.matmul_key(dtype, n, k, m)
        x, gy = torch.randn(n, k, dtype=dtype), torch.randn(n, m, dtype=dtype)
        adds, takes = {}, {}
        for how in kernels.WEIGHT_GRADS:
            with fast_paths(weight_grads={key: how}):
                sums = kernels.SharedGrad()
                sums.add(gy, x)
            adds[how] = _switched(lambda sums=sums: sums.add(gy, x) if uses > 1 else kernels.SharedGrad().add(gy, x),
                                  weight_grads={key: how})
            takes[how] = lambda sums=sums, filled=(sums.sum, sums.bias): _take(sums, *filled)
        seconds = interleaved_medians({**adds, **{(how, "take"): fn for how, fn in takes.items()}}, budget_s=0.05)
        cost = {how: seconds[how] + seconds[how, "take"] / uses for how in kernels.WEIGHT_GRADS}
        best = min(cost, key=cost.__getitem__)
        plan[key] = best if cost[best] <= MATMUL_MARGIN * cost[""] else ""
    return plan


def _take(sums: kernels.SharedGrad, total: torch.Tensor, bias: torch.Tensor | None) -> None:
    sums.sum, sums.bias = total, bias
    sums.take()


def attention_blocks(config: AlbertConfig, batch: int, length: int) -> int:
    """The fastest heads per block (kernels.CPU_FAST_PATHS.attention_block_heads; 0: all at once) of the bf16 matmul
    attention backward at (batch, length), timed on random fused projections (the backward only)."""
    heads = batch * config.num_attention_heads
    blocks = [h for h in ATTENTION_BLOCKS if h < heads]
    if not blocks:
        return 0
    qkv = torch.randn(batch, length, 3 * config.hidden_size, dtype=torch.bfloat16, requires_grad=True)
    out = kernels.MatmulBackwardAttention.apply(qkv, None, config.num_attention_heads)
    grad = torch.randn_like(out)

    def backward() -> None:
        out.backward(grad, retain_graph=True)
        qkv.grad = None
    seconds = interleaved_medians({h: _switched(backward, attention_block_heads=h) for h in (0, *blocks)},
                                  budget_s=0.2)
    best = min(blocks, key=seconds.__getitem__)
    return best if seconds[best] <= MATMUL_MARGIN * seconds[0] else 0


def shared_uses(config: AlbertConfig) -> int:
    """The fewest layers that any transformer block of the model serves (1: some block is not shared)."""
    layout = lm.sharing_layout(config)
    return min(min(Counter(blocks).values()) for blocks in zip(*layout))


def variants(config: AlbertConfig, batch: int, length: int, mode: str) -> dict[str, Callable[[], None]]:
    """name -> one call of that variant on a one-layer copy of the model (random weights and tokens)."""
    gelu_switch = config.hidden_act in ("gelu_new", "gelu_fast")
    run = (_inference(_copy(config, length, 1), batch, length) if mode == "infer"
           else _training_step(_copy(config, length, 1), batch, length, every_position=True))
    return _with_bf16_variants(run, mode, length, gelu_switch)


def shared_variants(config: AlbertConfig, batch: int, length: int, bf16: bool) -> dict[str, Callable[[], None]]:
    """SHARED_VARIANTS on a copy of the model with SHARED_LAYERS layers sharing its blocks as the model does."""
    step = _training_step(_copy(config, length, max(2, min(SHARED_LAYERS, config.num_hidden_layers))), batch, length)
    return {name: _switched(lambda: step(bf16), shared_weight_grad=on) for name, on in SHARED_VARIANTS.items()}


def shares_blocks(config: AlbertConfig) -> bool:
    """Whether some transformer block of the model serves more than one layer."""
    layout = lm.sharing_layout(config)
    return any(len(set(blocks)) < len(blocks) for blocks in zip(*layout))


def _copy(config: AlbertConfig, length: int, layers: int) -> AlbertConfig:
    """The model's config with `layers` layers in one group (blocks shared as config.share says), no dropout."""
    return dataclasses.replace(config, num_hidden_layers=layers, num_hidden_groups=1, inner_group_num=1,
                               max_position_embeddings=max(length, config.max_position_embeddings),
                               hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, extra={})


def _inference(config: AlbertConfig, batch: int, length: int) -> Callable[[bool], None]:
    """One forward of a random `config` model on random tokens, under inference_mode (bf16 autocast or fp32)."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, config.vocab_size, (batch, length), generator=g)
    model = lm.AlbertModel(config).eval()

    def run(bf16: bool) -> None:
        with torch.inference_mode(), _autocast(bf16):
            model(ids, torch.ones_like(ids), torch.zeros_like(ids))
    return run


def _training_step(config: AlbertConfig, batch: int, length: int, every_position: bool = False
                   ) -> Callable[[bool], None]:
    """Forward + backward of a random `config` AlbertForPreTraining with 20 masked positions per row.

    With `every_position` the last layer runs at every position and the MLM head reads the masked ones after it,
    as every layer but the last does in a run: a one-layer copy run as pretraining runs its last layer (at the
    heads' positions only, `AlbertModel(output_positions=...)`) would time the attention and FFN of 21 rows,
    and no switch measured on it would show what it is worth to the other layers.
    """
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, config.vocab_size, (batch, length), generator=g)
    ones, zeros = torch.ones_like(ids), torch.zeros_like(ids)
    model = lm.AlbertForPreTraining(config).train()
    P = min(20, length - 1)
    positions = torch.stack([torch.randperm(length - 1, generator=g)[:P] + 1 for _ in range(batch)]).sort(-1).values
    targets = torch.gather(ids, 1, positions)
    sop = torch.randint(0, 2, (batch,), generator=g)

    def loss() -> torch.Tensor:
        if not every_position:
            return model(ids, ones, zeros, labels=targets, sentence_order_label=sop,
                         masked_lm_positions=positions).loss
        h = lm.gather_positions(model.albert(ids, ones, zeros).last_hidden_state, positions)  # (B, P, H)
        logits = model.predictions(h, model.albert.embeddings.word_embeddings.weight)  # (B, P, V)
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())

    def step(bf16: bool) -> None:
        with _autocast(bf16):
            out = loss()
        out.backward()
        model.zero_grad(set_to_none=True)
    return step


def _with_bf16_variants(run: Callable[[bool], None], mode: str, length: int,
                        gelu_switch: bool) -> dict[str, Callable[[], None]]:
    """fp32 and the BF16_VARIANTS (training) or BF16_INFER_VARIANTS that apply: the tanh GELU only where the
    model's GELU has that form."""
    out = {"fp32": lambda: run(False)}
    attention = "attention_backward" if mode == "train" else "attention_forward"
    for name, (erf, how) in bf16_table(mode).items():
        if erf or gelu_switch:
            out[name] = _switched(lambda: run(True), erf_gelu_bf16=erf, **{attention: how},
                                  attention_backward_max_len=length)
    return out


def interleaved_medians(fns: dict[Any, Callable[[], None]], budget_s: float = 0.5) -> dict[Any, float]:
    """Median seconds per call of each function, called in turn (one warm-up each; 5 to 50 rounds, about
    `budget_s` of calls per function; round r starts at the r-th function, so none always follows the same)."""
    warm = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        fn()
        warm[name] = time.perf_counter() - t0
    rounds = max(5, min(50, int(budget_s / max(max(warm.values()), 1e-4))))
    times: dict[Any, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def resolve_bf16(device: torch.device | str, bf16: bool | None, config: AlbertConfig, batch: int, length: int,
                 mode: str = "train") -> tuple[bool, Calibration | None]:
    """A run's precision: `bf16` when given; else on CUDA where the GPU supports bf16; else on a CPU, what
    `calibrate` measures at the run's shape (fp32, with its fp32 plans measured, where the CPU has no native bf16:
    neither AMX nor AVX512-BF16). Apply the calibration's fast paths with `apply_choice` (on every rank, when rank
    0 decided)."""
    device = torch.device(device)
    if bf16 is not None:
        return bf16, None
    if device.type != "cpu":
        return bf16_supported(str(device)), None
    result = calibrate(config, batch, length, mode)  # bf16 a candidate where the CPU has it natively
    return result.bf16, result


def precision_choice(device: torch.device | str, bf16: bool | None, config: AlbertConfig, batch: int, length: int,
                     mode: str = "train") -> dict[str, Any]:
    """`resolve_bf16` as a JSON-like record (what runs log, and what rank 0 broadcasts)."""
    use, result = resolve_bf16(device, bf16, config, batch, length, mode)
    how = "as asked" if bf16 is not None else "calibrated" if result is not None else "by device support"
    return {"bf16": use, "how": how, "calibration": dataclasses.asdict(result) if result is not None else None,
            "description": result.describe() if result is not None else None,
            "headline": result.headline() if result is not None else None}


def apply_choice(choice: dict[str, Any]) -> None:
    """Set the model's CPU fast paths to a calibrated choice (an uncalibrated one leaves them; in fp32 only the
    summed shared gradient acts, the other switches being bf16's)."""
    if choice["calibration"] is not None:
        Calibration(**choice["calibration"]).apply()


def _autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()


@contextmanager
def fast_paths(**switches: Any) -> Iterator[None]:
    """kernels.CPU_FAST_PATHS fields set for the length of the block."""
    saved = dataclasses.asdict(kernels.CPU_FAST_PATHS)
    for name, value in switches.items():
        setattr(kernels.CPU_FAST_PATHS, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(kernels.CPU_FAST_PATHS, name, value)


def _switched(fn: Callable[[], None], **switches: Any) -> Callable[[], None]:
    """`fn` with kernels.CPU_FAST_PATHS fields set for the call only."""
    def run() -> None:
        with fast_paths(**switches):
            fn()
    return run
