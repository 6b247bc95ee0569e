"""What each of litebert's CPU fast paths is worth: every lever is switched OFF, one at a time and then all
together, on an otherwise current albert-base-v2 (or --preset; `demo` is the demo's CPU model), for a training
step and for inference, at B x T shapes.

The levers (in litebert/kernels.py; the fused QKV, the mask and the last layer's rows in litebert/model.py), and
how this script switches each off for the length of one call:
  - fused QKV: `AlbertAttention.forward` runs three (H, H) projections again and `projections` builds nothing
  - exact GELU in bf16: each FFN block's `act` becomes the tanh GELU (ALBERT's own, slow in bf16 on CPU)
  - matmul attention backward (training only): `CPU_FAST_PATHS.attention_backward` set to "fp32" (SDPA with the
    inputs cast up) or to "sdpa" (SDPA's own bf16 backward)
  - attention probabilities kept from a matmul forward (training only): `CPU_FAST_PATHS.attention_backward` set
    to "matmul" (SDPA's forward, the probabilities recomputed in the backward; no change where calibration did
    not choose "kept")
  - bias added by oneDNN as the output is written: `CPU_FAST_PATHS.bias_epilogues` emptied, so addmm adds it
  - the FFN's GELU applied by oneDNN as it writes the input projection's output (inference only):
    `CPU_FAST_PATHS.gelu_epilogues` emptied, so the GELU is a pass of its own after the matmul
  - projection weights packed into oneDNN's blocked layout (inference and evaluation):
    `CPU_FAST_PATHS.packed_weights` emptied, so oneDNN reorders the plain weight in every matmul; and (inference,
    which runs inside `keep_packed_weights` as the pipelines do) the packed copies made anew in every pass
  - summed shared gradients (training only): `CPU_FAST_PATHS.shared_weight_grad` off, so autograd sums the
    layers' gradients of a shared projection as separate tensors (kernels.Linear)
  - matmul row blocks: `CPU_FAST_PATHS.row_chunks` emptied, so every projection matmul runs whole
  - weight gradients with an operand transposed first (training only): `CPU_FAST_PATHS.weight_grads` emptied, so
    every projection's weight gradient is gy^T x with gy^T a strided view, as autograd computes it
  - attention backward in blocks of heads (training only): `CPU_FAST_PATHS.attention_block_heads` 0, all heads
    at once
  - no mask for an all-ones attention_mask: `extended_attention_mask` always builds the additive mask
  - the last layer at the heads' positions only (training only: inference times `AlbertModel`, which returns every
    position): `AlbertModel.forward` runs without `output_positions` and gathers them after the last layer
  - that layer's attention at those positions of batched matmuls (training and evaluation), where the switches
    send `attention` to matmuls: `attention_at` runs SDPA
  - attention without a gradient of batched matmuls (inference and evaluation): `CPU_FAST_PATHS.attention_forward`
    set to "sdpa" (no change where calibration did not choose "matmul")
The current model runs the fast paths `litebert.calibrate` measures for each shape and mode, as runs do.
Training step = bf16 autocast forward + backward + AdamW step of AlbertForPreTraining on 20 masked positions
(bench_train.ours_step). Evaluation = a training run's evaluation pass: the same model and loss in eval mode under
torch.no_grad and bf16 autocast, with the training calibration's fast paths (as pretraining's held-out evaluation
and fine-tuning's dev passes run). Inference = bf16 weights, torch.inference_mode and keep_packed_weights (as the
pipelines run), AlbertModel, all-ones attention_mask passed explicitly; also on 1 thread and, with --compile, under torch.compile (compile time reported
apart).
`--precision fp32` runs both in fp32 instead (no autocast, fp32 weights), as runs do where calibration picks fp32;
most levers are bf16's and change nothing there.
Each mode and shape times its variants round-robin (common.interleaved_medians); "x current" is a variant's
time over the current model's, so 1.25 means switching that lever off costs 25%.

    .venv/bin/python benchmarks/levers.py [--shapes 8x128 8x512] [--repeats 7] [--threads N] [--compile]
                                          [--precision bf16|fp32] [--modes training evaluation inference]
                                          [--output F]
                                          [--preset albert-base-v2|demo|...]
Writes benchmarks/results/levers.json (levers_fp32.json with --precision fp32). About 4 min on 2 quiet cores with
the defaults (--compile adds minutes).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time
from pathlib import Path
from typing import Callable
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import inputs_for, random_weights  # noqa: E402
from bench_train import make_batch, model_config, ours_step, predictions_for  # noqa: E402
from common import format_table, interleaved_medians, machine_info, set_threads, use_run_allocator, \
    write_json  # noqa: E402

import litebert.model as lm  # noqa: E402
from litebert import kernels  # noqa: E402
from litebert import AlbertConfig, calibrate  # noqa: E402



# ---------------------------------------------------------------------------------------------- levers off
def three_projection_forward(self, x, mask, projections=None, rows=None):
    """AlbertAttention.forward without the fused QKV: three (H, H) projections, their outputs concatenated as the
    attention takes them (a copy the fused one does not make); `projections` is ignored."""
    qkv = torch.cat([lin(x) for lin in (self.query, self.key, self.value)], -1)  # (B, T, 3H)
    dropout_p = self.attn_dropout if self.training else 0.0
    if rows is None:
        ctx = kernels.attention(qkv, self.num_heads, mask, dropout_p)  # (B, T, H)
    else:
        ctx = kernels.attention_at(qkv, rows, self.num_heads, mask, dropout_p)  # (B, R, H)
        x = lm.gather_positions(x, rows)  # (B, R, H)
    return self.layer_norm(x + self.dropout(self.dense(ctx)))


def every_position(model):
    """The last layer computed at every position, the heads' positions gathered after it (as before
    `output_positions`): `AlbertModel.forward` called without them."""
    forward = lm.AlbertModel.forward

    def full_forward(self, input_ids, attention_mask=None, token_type_ids=None, output_hidden_states=False,
                     output_positions=None):
        out = forward(self, input_ids, attention_mask, token_type_ids, output_hidden_states)
        if output_positions is not None:
            out.last_hidden_state = lm.gather_positions(out.last_hidden_state, output_positions)  # (B, P, H)
        return out

    return mock.patch.object(lm.AlbertModel, "forward", full_forward)


def sdpa_at_rows(model):
    """The last layer's attention at the heads' positions (`attention_at`) by SDPA, whatever the switches say."""
    at_rows = kernels.attention_at

    def sdpa_at(*args):
        with mock.patch.object(kernels.CPU_FAST_PATHS, "attention_backward", "sdpa"), \
                mock.patch.object(kernels.CPU_FAST_PATHS, "attention_forward", "sdpa"):
            return at_rows(*args)

    return mock.patch.object(kernels, "attention_at", sdpa_at)


def additive_mask(attention_mask, dtype):
    """`extended_attention_mask` without the all-ones shortcut: always the additive (B, 1, 1, T) mask."""
    if attention_mask is None:
        return None
    mask = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - mask) * torch.finfo(dtype).min


@contextlib.contextmanager
def no_fused_qkv(model):
    with mock.patch.object(lm.AlbertAttention, "forward", three_projection_forward), \
            mock.patch.object(lm.AlbertAttention, "projections", lambda self, uses=1: None):
        yield


@contextlib.contextmanager
def tanh_gelu(model):
    with contextlib.ExitStack() as stack:
        for ffn in (m for m in model.modules() if isinstance(m, lm.AlbertFFN)):
            stack.enter_context(mock.patch.object(ffn, "act", kernels.gelu_pytorch_tanh))
        yield


LEVERS_OFF = {  # variant name → (model → context manager that switches the lever off)
    "no fused QKV": no_fused_qkv,
    "tanh GELU in bf16": tanh_gelu,
    # "all off" applies these in order, so the attention backward ends as SDPA's own
    "attention probabilities recomputed":
        lambda model: mock.patch.object(kernels.CPU_FAST_PATHS, "attention_backward", "matmul"),
    "fp32 attention backward": lambda model: mock.patch.object(kernels.CPU_FAST_PATHS, "attention_backward", "fp32"),
    "SDPA attention backward": lambda model: mock.patch.object(kernels.CPU_FAST_PATHS, "attention_backward", "sdpa"),
    "bias added by addmm": lambda model: mock.patch.object(kernels.CPU_FAST_PATHS, "bias_epilogues", {}),
    "GELU after the matmul": lambda model: mock.patch.object(kernels.CPU_FAST_PATHS, "gelu_epilogues", {}),
    "weights unpacked": lambda model: mock.patch.object(kernels.CPU_FAST_PATHS, "packed_weights", {}),
    "packed weights not kept": lambda model: mock.patch.object(kernels, "keep_packed_weights", contextlib.nullcontext),
    "per-layer shared gradients": lambda model: mock.patch.object(kernels.CPU_FAST_PATHS, "shared_weight_grad", False),
    "whole matmuls": lambda model: mock.patch.object(kernels.CPU_FAST_PATHS, "row_chunks", {}),
    "autograd's weight gradients": lambda model: mock.patch.object(kernels.CPU_FAST_PATHS, "weight_grads", {}),
    "attention backward on all heads at once":
        lambda model: mock.patch.object(kernels.CPU_FAST_PATHS, "attention_block_heads", 0),
    "additive all-ones mask": lambda model: mock.patch.object(lm, "extended_attention_mask", additive_mask),
    "last layer at every position": every_position,
    "last layer's attention by SDPA": sdpa_at_rows,
    "SDPA attention forward": lambda model: mock.patch.object(kernels.CPU_FAST_PATHS, "attention_forward", "sdpa"),
}
BACKWARD_ONLY = {"fp32 attention backward", "SDPA attention backward", "attention probabilities recomputed",
                 "per-layer shared gradients", "autograd's weight gradients", "attention backward on all heads at once"}
HEADS_ONLY = {"last layer at every position", "last layer's attention by SDPA"}
"""Levers of AlbertForPreTraining's last layer at the heads' positions (inference times AlbertModel)."""
NO_GRADIENT_ONLY = {"GELU after the matmul", "SDPA attention forward", "weights unpacked"}
SKIPPED = {"training": NO_GRADIENT_ONLY | {"packed weights not kept"},
           "evaluation": BACKWARD_ONLY | {"packed weights not kept"}, "inference": BACKWARD_ONLY | HEADS_ONLY}
"""mode -> the levers that change nothing in it."""


def use_calibration(config: AlbertConfig, batch: int, length: int, mode: str) -> None:
    """The process's fast paths as a run at this shape takes them: back to their defaults, then calibrated."""
    defaults = kernels.CpuFastPaths()
    for f in dataclasses.fields(defaults):
        setattr(kernels.CPU_FAST_PATHS, f.name, getattr(defaults, f.name))
    calibrate.calibrate(config, batch, length, mode).apply()


@contextlib.contextmanager
def all_off(model, names):
    with contextlib.ExitStack() as stack:
        for name in names:
            stack.enter_context(LEVERS_OFF[name](model))
        yield


@contextlib.contextmanager
def threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def under(context: Callable[[], contextlib.AbstractContextManager], fn: Callable[[], object]):
    """A zero-argument call of `fn` inside a fresh `context()`: the lever is off for that call only."""
    def run():
        with context():
            return fn()
    return run


def variants(model, fn: Callable[[], object], mode: str) -> dict[str, Callable[[], object]]:
    """"current", each lever off alone, then "all off": the levers that act in `mode` (SKIPPED)."""
    names = [n for n in LEVERS_OFF if n not in SKIPPED[mode]]
    table = {"current": fn}
    table.update({name: under(lambda name=name: LEVERS_OFF[name](model), fn) for name in names})
    table["all off"] = under(lambda: all_off(model, names), fn)
    return table


# ---------------------------------------------------------------------------------------------- modes
def training_variants(model, optimizer, batch: dict, bf16: bool = True) -> dict[str, Callable[[], object]]:
    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = ours_step(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return variants(model, step, "training")


def evaluation_variants(model, batch: dict, bf16: bool = True) -> dict[str, Callable[[], object]]:
    """A training run's evaluation pass: `model` (AlbertForPreTraining) in eval mode, its loss without a gradient."""
    def evaluate():
        model.eval()
        try:
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return ours_step(model, batch)
        finally:
            model.train()
    return variants(model, evaluate, "evaluation")


def inference_variants(model, compiled, inputs: dict) -> dict[str, Callable[[], object]]:
    def infer(m=model):
        with torch.inference_mode(), kernels.keep_packed_weights():  # as the pipelines run their models
            return m(**inputs)
    table = variants(model, infer, "inference")
    table["1 thread"] = under(lambda: threads(1), infer)
    if compiled is not None:
        table["torch.compile"] = lambda: infer(compiled)
    return table


def compile_seconds(compiled, inputs: dict) -> float:
    """The first call of a compiled model at a new shape compiles it; its wall time, apart from the rest."""
    start = time.perf_counter()
    with torch.inference_mode():
        compiled(**inputs)
    return time.perf_counter() - start


def measure(mode: str, shape: str, fns: dict, repeats: int) -> list[dict]:
    seconds = interleaved_medians(fns, warmup=1, repeats=repeats)
    print(f"{mode} {shape} done", flush=True)
    return [dict(mode=mode, shape=shape, variant=name, seconds=s, x_current=s / seconds["current"])
            for name, s in seconds.items()]


def print_table(mode: str, results: list[dict], shapes: list[str], preset: str) -> None:
    rows: dict[str, list] = {}
    for r in (r for r in results if r["mode"] == mode):
        rows.setdefault(r["variant"], []).extend([round(r["seconds"] * 1e3), r["x_current"]])
    header = ["variant"] + [h for shape in shapes for h in (f"{shape} ms", "x current")]
    print(f"\n{preset} {mode}")
    print(format_table(header, [[name, *cells] for name, cells in rows.items()]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="albert-base-v2", help="a preset, or `demo` (the demo's CPU model)")
    parser.add_argument("--shapes", nargs="+", default=["8x128", "8x512"], help="BATCHxLENGTH")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per mode and shape, after one warm-up")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: all cores)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile for inference (slow)")
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--modes", nargs="+", choices=["training", "evaluation", "inference"],
                        default=["training", "inference"])
    parser.add_argument("--output", help="file name under benchmarks/results (default: levers.json, or "
                                         "levers_fp32.json with --precision fp32)")
    args = parser.parse_args(argv)
    bf16 = args.precision == "bf16"
    start = time.perf_counter()
    use_run_allocator()
    n_threads = set_threads(args.threads)

    torch.manual_seed(0)
    trainee = lm.AlbertForPreTraining(model_config(args.preset)).train()
    optimizer = torch.optim.AdamW(trainee.parameters(), lr=1e-5)
    encoder = random_weights(args.preset).to(torch.bfloat16 if bf16 else torch.float32)
    compiled = torch.compile(encoder, dynamic=False) if args.compile else None

    results, compile_s = [], {}
    for shape in args.shapes:
        batch, length = map(int, shape.split("x"))
        if {"training", "evaluation"} & set(args.modes):  # a training run's evaluations take its calibration
            use_calibration(trainee.config, batch, length, "train")
            data = make_batch(trainee.config, batch, length, predictions=predictions_for(args.preset))
        if "training" in args.modes:
            results += measure("training step", shape, training_variants(trainee, optimizer, data, bf16), args.repeats)
        if "evaluation" in args.modes:
            results += measure("evaluation", shape, evaluation_variants(trainee, data, bf16), args.repeats)
        if "inference" not in args.modes:
            continue
        inputs = inputs_for(encoder.config, batch, length)
        use_calibration(encoder.config, batch, length, "infer")
        if compiled is not None:
            compile_s[shape] = compile_seconds(compiled, inputs)
        results += measure("inference", shape, inference_variants(encoder, compiled, inputs), args.repeats)

    for mode in ("training step", "evaluation", "inference"):
        if any(r["mode"] == mode for r in results):
            print_table(mode, results, args.shapes, args.preset)
    if compile_s:
        print("\ntorch.compile first call (compile): " + ", ".join(f"{s} {t:.0f} s" for s, t in compile_s.items()))
    wall_s = time.perf_counter() - start
    path = write_json({"machine": machine_info(threads=n_threads, repeats=args.repeats), "preset": args.preset,
                       "precision": args.precision, "wall_s": wall_s, "compile_s": compile_s, "results": results},
                      args.output or ("levers.json" if bf16 else "levers_fp32.json"))
    print(f"\nwrote {path} in {wall_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
