"""Training memory: what activation checkpointing saves, and what it costs in time, against transformers.

Contenders, one training step each (forward + backward + AdamW, the step of bench_train.py, same weights and batch):
    litebert                   AlbertForPreTraining as it trains by default
    litebert checkpointed      the same with `--activation-checkpointing` (`distributed.checkpoint_activations`):
                               each attention and FFN block recomputes its activations in backward
    transformers               transformers' AlbertForPreTraining (its ALBERT has no activation checkpointing)

Memory is measured with each contender in a fresh process, so that one's memory cannot hide in another's:
    peak above rest   on a CPU, the process's peak resident memory during one step (VmHWM, reset before it) minus
                      its resident memory before it, with glibc told to return every large block to the system
                      at once (MALLOC_MMAP_THRESHOLD_), so that freed activations do not stay counted; on a GPU,
                      torch.cuda.max_memory_allocated minus the allocated memory at rest. "At rest" = weights,
                      AdamW state and the batch, after one warm-up step; gradients are set to None after each
                      step, so the peak holds activations and gradients.
    saved for backward  the bytes autograd keeps from the forward pass (saved-tensor hooks; a tensor saved by
                      two operations counts twice), the activation memory the model itself decides.
Step time is measured apart, in this process with the normal allocator (that setting makes every large
allocation a fresh mapping, which slows the contenders that allocate most): the three contenders' steps
interleaved round by round (`common.interleaved_medians`), the median of `--steps` rounds.
`litebert params --batch B --seq T` prints the estimate of both (bf16) beside the parameter counts.

    python benchmarks/bench_memory.py [--presets albert-base-v2 albert-large-v2] [--shapes 8x512]
        [--dtype fp32|bf16] [--steps 3] [--device cpu|cuda] [--threads N] [--output memory_<cpu>.json]
About 6 minutes on 2 CPU cores for the default (ALBERT-base 8x512); albert-large-v2 takes about 3x as long.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import hf_albert_config, hf_step, make_batch, model_config, ours_step, predictions_for, \
    to_device  # noqa: E402
from common import cpu_tag, format_table, interleaved_medians, machine_info, set_threads, time_once, \
    write_json  # noqa: E402
from litebert import distributed as D  # noqa: E402
from litebert.model import AlbertForPreTraining  # noqa: E402
from litebert.params import activation_bytes  # noqa: E402

CONTENDERS = ("litebert", "litebert checkpointed", "transformers")


def build(contender: str, preset: str, device: str):
    """(model in train mode on `device`, its step function), from the same seeded weights."""
    config = model_config(preset)
    torch.manual_seed(0)
    if contender == "transformers":
        from transformers import AlbertForPreTraining as HFAlbert

        return HFAlbert(hf_albert_config(config)).train().to(device), hf_step
    model = AlbertForPreTraining(config).train().to(device)
    if contender == "litebert checkpointed":
        D.checkpoint_activations(model)
    return model, ours_step


def resident_bytes(field: str) -> int:
    """VmRSS / VmHWM of this process, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def training_step(contender: str, preset: str, batch: int, length: int, bf16: bool, device: str):
    """(one training step as a function, the model, its optimizer, the batch, the forward)."""
    model, forward = build(contender, preset, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    b = to_device(make_batch(model_config(preset), batch, length, predictions=predictions_for(preset)), device)
    autocast = torch.autocast(device, dtype=torch.bfloat16) if bf16 else nullcontext()

    def step() -> None:
        with autocast:
            loss = forward(model, b)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step, model, optimizer, b, forward, autocast


def measure(contender: str, preset: str, batch: int, length: int, bf16: bool, device: str) -> dict:
    """Memory of one contender at one shape, in this process (run by `main` in a child of its own)."""
    step, model, optimizer, b, forward, autocast = training_step(contender, preset, batch, length, bf16, device)
    saved = 0

    def pack(t):
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
        forward(model, b).backward()  # warm-up, counting what the forward pass keeps
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        rest = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        rest = resident_bytes("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    time_once(step)
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else resident_bytes("VmHWM")
    return {"contender": contender, "preset": preset, "batch": batch, "length": length, "bf16": bf16,
            "peak_above_rest_bytes": peak - rest, "rest_bytes": rest, "saved_for_backward_bytes": saved}


def step_times(args: argparse.Namespace, preset: str, batch: int, length: int) -> dict[str, float]:
    """Median seconds per training step of each contender, interleaved, in this process."""
    steps = {c: training_step(c, preset, batch, length, args.dtype == "bf16", args.device)[0] for c in CONTENDERS}
    return interleaved_medians(steps, warmup=1, repeats=args.steps)


def run_child(args: argparse.Namespace, contender: str, preset: str, batch: int, length: int) -> dict:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    command = [sys.executable, __file__, "--child", contender, "--presets", preset, "--shapes", f"{batch}x{length}",
               "--dtype", args.dtype, "--device", args.device]
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{contender} {preset} {batch}x{length} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["albert-base-v2"])
    ap.add_argument("--shapes", nargs="+", default=["8x512"])
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--steps", type=int, default=3, help="timed rounds after the warm-up (default 3)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--output", help="results file name (default memory_<cpu>.json)")
    ap.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    threads = set_threads(args.threads) if args.device == "cpu" else None
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes]
    if args.child:
        (batch, length), = shapes
        print(json.dumps(measure(args.child, args.presets[0], batch, length, args.dtype == "bf16", args.device)))
        return 0
    rows, results = [], []
    for preset in args.presets:
        for batch, length in shapes:
            measured = {c: run_child(args, c, preset, batch, length) for c in CONTENDERS}
            for name, seconds in step_times(args, preset, batch, length).items():
                measured[name]["step_s"] = seconds
            estimate = {k: activation_bytes(model_config(preset), batch, length, 4 if args.dtype == "fp32" else 2,
                                            checkpointed=k == "litebert checkpointed")
                        for k in ("litebert", "litebert checkpointed")}
            base, hf = measured["litebert"], measured["transformers"]
            for name, m in measured.items():
                m["peak_vs_transformers"] = m["peak_above_rest_bytes"] / hf["peak_above_rest_bytes"]
                m["time_vs_litebert"] = m["step_s"] / base["step_s"]
                m["estimate_bytes"] = estimate.get(name)
                results.append(m)
                rows.append([preset, f"{batch}x{length}", name, m["peak_above_rest_bytes"] / 2**30,
                             m["saved_for_backward_bytes"] / 2**30, m["peak_vs_transformers"], m["step_s"],
                             m["time_vs_litebert"]])
            print(format_table(["preset", "shape", "contender", "peak GiB", "saved GiB", "peak x HF", "step s",
                                "time x litebert"], rows[-3:]), flush=True)
    print()
    print(format_table(["preset", "shape", "contender", "peak GiB", "saved GiB", "peak x HF", "step s",
                        "time x litebert"], rows))
    name = args.output or f"memory_{cpu_tag() if args.device == 'cpu' else 'cuda'}.json"
    path = write_json({"machine": machine_info(threads=threads, device=args.device, dtype=args.dtype),
                       "results": results}, name)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
