"""What one optimizer step costs on this CPU, beside the training step it follows.

For the demo's model (H=128, 4 layers, V=8,000: 1.28M parameters in 30 tensors) and ALBERT-base (11.8M in 32),
each optimizer `litebert.optim.build_optimizer` makes, plus torch's AdamW in its other CPU forms, steps over
random gradients; the contenders alternate step by step and each keeps its median (common.interleaved_medians),
with freed memory kept as litebert's commands keep it:

    adamw (fused)                  build_optimizer's torch AdamW: the fused kernel, one pass per tensor, on a CPU
    adamw (for-loop)               torch's default on a CPU: a Python loop of element-wise ops per parameter
    adamw (foreach)                torch's multi-tensor ops (CUDA's default; on a CPU they loop over the tensors)
    lamb                           litebert's LAMB (the official update)
    adamweightdecay                litebert's AdamWeightDecay: torch's AdamW (fused on a CPU), bias correction off
    adamweightdecay (loop)         the same update as `Lamb` without the trust ratio (what it ran before)

    PYTHONPATH=src .venv/bin/python benchmarks/bench_optimizer.py [--presets demo albert-base-v2] [--steps 30]
Writes benchmarks/results/optimizer_<cpu kind>.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_tag, format_table, interleaved_medians, machine_info, set_threads, use_run_allocator, \
    write_json  # noqa: E402

from bench_train import model_config  # noqa: E402
from litebert.model import AlbertForPreTraining  # noqa: E402
from litebert.optim import Lamb, OptimConfig, build_optimizer, param_groups  # noqa: E402


def contenders(preset: str) -> dict[str, torch.optim.Optimizer]:
    """name → an optimizer over its own copy of `preset`'s parameters, every gradient set (random, seeded)."""
    def model() -> torch.nn.Module:
        torch.manual_seed(0)
        m = AlbertForPreTraining(model_config(preset))
        for p in m.parameters():
            p.grad = 1e-3 * torch.randn_like(p)
        return m

    def adamweightdecay_loop() -> torch.optim.Optimizer:  # `Lamb` without the trust ratio: what it ran before
        config = OptimConfig(name="adamweightdecay")
        groups = param_groups(model(), config.weight_decay, config.exclude)
        return Lamb([{**g, "adapt": False} for g in groups], lr=config.lr, eps=config.eps)

    def torch_adamw(**kind) -> torch.optim.Optimizer:
        config = OptimConfig(name="adamw")
        return torch.optim.AdamW(param_groups(model(), config.weight_decay, config.exclude), lr=config.lr,
                                 eps=config.eps, **kind)

    return {"adamw (fused)": build_optimizer(model(), OptimConfig(name="adamw")),
            "adamw (for-loop)": torch_adamw(foreach=False),
            "adamw (foreach)": torch_adamw(foreach=True),
            "lamb": build_optimizer(model(), OptimConfig(name="lamb")),
            "adamweightdecay": build_optimizer(model(), OptimConfig(name="adamweightdecay")),
            "adamweightdecay (loop)": adamweightdecay_loop()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["demo", "albert-base-v2"])
    parser.add_argument("--steps", type=int, default=30, help="timed steps of each optimizer (after 3 warm-up)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--output", help="file name under benchmarks/results/, or a path "
                                         "(default optimizer_<cpu kind>.json)")
    args = parser.parse_args(argv)
    use_run_allocator()  # as every litebert command runs (hardware.keep_freed_memory)
    threads = set_threads(args.threads)
    rows = []
    for preset in args.presets:
        optimizers = contenders(preset)
        params = optimizers["lamb"].param_groups
        n = sum(p.numel() for g in params for p in g["params"])
        tensors = sum(len(g["params"]) for g in params)
        medians = interleaved_medians({name: o.step for name, o in optimizers.items()}, warmup=3,
                                      repeats=args.steps)
        fastest = min(medians.values())
        for name, seconds in medians.items():
            rows.append({"preset": preset, "parameters": n, "tensors": tensors, "optimizer": name,
                         "step_ms": seconds * 1e3, "x_fused": seconds / medians["adamw (fused)"]})
        print(f"\n{preset}: {n / 1e6:.2f}M parameters in {tensors} tensors (fastest {fastest * 1e3:.2f} ms)")
        print(format_table(["optimizer", "ms a step", "x fused AdamW"],
                           [[r["optimizer"], round(r["step_ms"], 2), f"{r['x_fused']:.2f}"]
                            for r in rows if r["preset"] == preset]))
    path = write_json({"machine": machine_info(threads=threads, repeats=args.steps), "rows": rows},
                      args.output or f"optimizer_{cpu_tag()}.json")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
