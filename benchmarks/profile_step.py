"""Where a training step's and an inference pass's time goes on this CPU: torch.profiler, ops grouped by kind.

Each case runs litebert's AlbertForPreTraining training step (forward + backward + AdamW, the recipe's masked
positions) or AlbertModel inference (inference_mode) a few times under the profiler, after warm-up, in the
precision `litebert.calibrate` measures best for that case on this machine (bf16 autocast or fp32; --dtype
forces one). Self CPU time of every op goes to one group: matmul (linear/mm/bmm/addmm and their
backward), attention (SDPA / flash kernels), gelu, layer_norm, softmax/dropout, embedding, loss, optimizer
(the AdamW foreach kernels), copies/casts (`to`, `copy_`, `_to_copy`: bf16 <-> fp32), and other. "python" is the
step's wall time not covered by any op: framework overhead between ops.

Cases: albert-base-v2 at 8x128, 32x128, 8x512, and the demo's small model (`DemoConfig`: H=128, 4 layers,
64x64, 10 predictions) where framework overhead may dominate.

    .venv/bin/python benchmarks/profile_step.py [--cases base-8x128 demo-64x64] [--steps 3] [--threads N]
        [--dtype auto|bf16|fp32]
Writes benchmarks/results/profile_<cpu kind>.json; prints a table per case.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import make_batch, model_config, ours_step, predictions_for  # noqa: E402
from common import cpu_tag, format_table, machine_info, set_threads, use_run_allocator, write_json  # noqa: E402
from litebert import calibrate  # noqa: E402
from litebert.model import AlbertForPreTraining, AlbertModel  # noqa: E402

GROUPS = [  # (group, substrings of the op name), first match wins
    ("attention", ("scaled_dot_product", "flash_attention", "_efficient_attention", "attention_math")),
    ("matmul", ("linear", "addmm", "::mm", "bmm", "matmul", "::baddbmm")),
    ("gelu", ("gelu", "tanh")),
    ("layer_norm", ("layer_norm",)),
    ("softmax/dropout", ("softmax", "dropout", "bernoulli")),
    ("embedding", ("embedding",)),
    ("loss", ("cross_entropy", "nll_loss", "log_softmax")),
    ("optimizer", ("_foreach", "adam", "lerp", "addcdiv")),
    ("copies/casts", ("::to", "copy_", "_to_copy", "contiguous", "clone")),
]


def group_of(name: str) -> str:
    lowered = name.lower()
    return next((g for g, keys in GROUPS if any(k in lowered for k in keys)), "other")


def case_setup(case: str, mode: str, dtype: str):
    """(callable running one step or pass, tokens per call, bf16 or not)."""
    name, shape = case.split("-")
    batch, length = map(int, shape.split("x"))
    preset = "demo" if name == "demo" else "albert-base-v2"
    config = model_config(preset)
    torch.manual_seed(0)
    b = make_batch(config, batch, length, predictions=predictions_for(preset))
    asked = None if dtype == "auto" else dtype == "bf16"
    choice = calibrate.precision_choice("cpu", asked, config, batch, length, mode)
    calibrate.apply_choice(choice)
    bf16 = choice["bf16"]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    if mode == "train":
        model = AlbertForPreTraining(config).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

        def run():
            with autocast:
                loss = ours_step(model, b)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return run, batch * length, bf16
    model = AlbertModel(config).eval()

    def infer():
        with torch.inference_mode(), autocast:
            model(b["input_ids"], b["attention_mask"], b["token_type_ids"])
    return infer, batch * length, bf16


WARMUP = 4
"""Calls before profiling: the heap that keeps freed memory grows for a few calls until every buffer finds a free
block (unprofiled, a base 32x128 step faulted 399k, 96k, 5, 5k pages in its first four, then ~2). An op whose
output lands on fresh pages is charged for faulting them in: the profiler's own allocations keep the largest
buffers of that step, the (640, 30000) MLM log-softmax and its gradient, faulting (~25k faults per step), which
charges them ~0.5 s where they take ~30 ms unprofiled. The faults per call are in the JSON."""


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def profile_case(case: str, mode: str, steps: int, dtype: str) -> dict:
    run, tokens, bf16 = case_setup(case, mode, dtype)
    for _ in range(WARMUP):
        run()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        faults, t0 = minor_faults(), time.perf_counter()
        for _ in range(steps):
            run()
        wall = (time.perf_counter() - t0) / steps
        faults = (minor_faults() - faults) / steps
    groups: dict[str, float] = {}
    top: dict[str, float] = {}
    for e in prof.key_averages():
        seconds = e.self_cpu_time_total / 1e6 / steps
        groups[group_of(e.key)] = groups.get(group_of(e.key), 0.0) + seconds
        top[e.key] = seconds
    # The profiler's own overhead inflates wall; ops' self time is what the kernels took.
    groups["python"] = max(0.0, wall - sum(groups.values()))
    return {"case": case, "mode": mode, "dtype": "bf16" if bf16 else "fp32", "step_s": wall, "tokens_per_s": tokens / wall,
            "minor_faults_per_step": faults,
            "groups_s": dict(sorted(groups.items(), key=lambda kv: -kv[1])),
            "top_ops_s": dict(sorted(top.items(), key=lambda kv: -kv[1])[:12])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=["base-8x128", "base-32x128", "base-8x512", "demo-64x64"])
    parser.add_argument("--modes", nargs="+", default=["train", "infer"], choices=["train", "infer"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto",
                        help="auto: what litebert.calibrate measures faster here")
    args = parser.parse_args(argv)
    use_run_allocator()
    n_threads = set_threads(args.threads)
    results = []
    for case in args.cases:
        for mode in args.modes:
            r = profile_case(case, mode, args.steps, args.dtype)
            results.append(r)
            total = r["step_s"]
            print(f"\n{case} {mode} ({r['dtype']}): {total * 1e3:.0f} ms per call, {r['tokens_per_s']:.0f} tokens/s, "
                  f"{r['minor_faults_per_step']:.0f} page faults per call")
            print(format_table(["group", "ms", "share"],
                               [[g, round(s * 1e3, 1), f"{s / total:.0%}"] for g, s in r["groups_s"].items()]))
    path = write_json({"machine": machine_info(threads=n_threads, repeats=args.steps), "results": results},
                      f"profile_{cpu_tag()}_{args.dtype}.json")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
