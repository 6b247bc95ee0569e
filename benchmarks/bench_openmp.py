"""Whether OpenMP's thread binding or wait policy changes litebert's speed on this CPU.

torch's CPU wheel runs its intra-op threads on GNU OpenMP (libgomp), which reads OMP_PROC_BIND, OMP_PLACES and
OMP_WAIT_POLICY once, when the library loads: a setting can only be compared across processes. So each case runs
in a fresh child process per setting, the settings in turn within a round and each round starting one setting
later (as common.interleaved_medians does within a process), and a child reports the median of its timed calls.
Besides each setting's median over rounds, the table gives the median over rounds of the per-round ratio to the
default, which cancels load on the machine that lasts a round.

Cases (the precision `litebert.calibrate` picks, with its fast paths, as runs take them):
  demo-train  the demo's model (DemoConfig), a pretraining step (forward + backward + AdamW) at 64x64
  base-infer  albert-base-v2 encoder inference (inference_mode) at 8x128

    PYTHONPATH=src .venv/bin/python benchmarks/bench_openmp.py [--rounds 7] [--cases demo-train base-infer]
Writes benchmarks/results/openmp_<cpu kind>.json (--output names another file there).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETTINGS = {
    "default": {},
    "bound, close": {"OMP_PROC_BIND": "close", "OMP_PLACES": "cores"},
    "wait active": {"OMP_WAIT_POLICY": "ACTIVE"},
    "wait passive": {"OMP_WAIT_POLICY": "PASSIVE"},
}
"""name -> environment variables set for the child (on top of this process's environment)."""
CALLS = {"demo-train": 40, "base-infer": 12}
"""Timed calls per child, after three untimed ones."""


def child(case: str) -> float:
    """Median seconds of one call of `case` in this process."""
    import torch

    sys.path.insert(0, str(HERE.parent / "src"))
    sys.path.insert(0, str(HERE))
    from bench_inference import inputs_for, random_weights
    from bench_train import make_batch, model_config, ours_step, predictions_for
    from common import use_run_allocator

    from litebert import calibrate
    from litebert.model import AlbertForPreTraining

    use_run_allocator()
    torch.manual_seed(0)
    if case == "demo-train":
        config, (batch, length) = model_config("demo"), (64, 64)
        bf16, choice = calibrate.resolve_bf16("cpu", None, config, batch, length, "train")
        if choice is not None:
            choice.apply()
        model = AlbertForPreTraining(config).train()
        data = make_batch(config, batch, length, predictions=predictions_for("demo"))
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

        def call() -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = ours_step(model, data)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    else:
        config, (batch, length) = model_config("albert-base-v2"), (8, 128)
        bf16, choice = calibrate.resolve_bf16("cpu", None, config, batch, length, "infer")
        if choice is not None:
            choice.apply()
        encoder = random_weights("albert-base-v2").to(torch.bfloat16 if bf16 else torch.float32)
        inputs = inputs_for(encoder.config, batch, length)

        def call() -> None:
            with torch.inference_mode():
                encoder(**inputs)
    for _ in range(3):
        call()
    seconds = []
    for _ in range(CALLS[case]):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def run_child(case: str, setting: str) -> float:
    env = {**os.environ, **SETTINGS[setting]}
    done = subprocess.run([sys.executable, __file__, "--child", case], env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{case} under {setting!r} failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def measure(case: str, rounds: int) -> dict:
    """Each setting's child seconds per round, their medians, and the median per-round ratio to the default."""
    names = list(SETTINGS)
    runs: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            runs[name].append(run_child(case, name))
    ratios = {name: statistics.median(d / s for d, s in zip(runs["default"], runs[name])) for name in names}
    return {"runs_s": runs, "median_s": {name: statistics.median(ts) for name, ts in runs.items()},
            "speedup_over_default": ratios}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="children per setting and case")
    parser.add_argument("--cases", nargs="+", choices=list(CALLS), default=list(CALLS))
    parser.add_argument("--output", help="file name under benchmarks/results (default: openmp_<cpu kind>.json)")
    parser.add_argument("--child", choices=list(CALLS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(child(args.child))
        return 0
    sys.path.insert(0, str(HERE))
    from common import cpu_tag, format_table, machine_info, write_json

    start = time.perf_counter()
    results = {case: measure(case, args.rounds) for case in args.cases}
    rows = [[case, name, f"{r['median_s'][name] * 1e3:.1f}", f"{r['speedup_over_default'][name]:.3f}",
             " ".join(f"{t * 1e3:.0f}" for t in r["runs_s"][name])]
            for case, r in results.items() for name in SETTINGS]
    print(format_table(["case", "setting", "median ms", "x default (paired)", "per round, ms"], rows))
    wall_s = time.perf_counter() - start
    path = write_json({"machine": machine_info(repeats=args.rounds), "settings": SETTINGS, "calls": CALLS,
                       "wall_s": wall_s, "results": results}, args.output or f"openmp_{cpu_tag()}.json")
    print(f"\nwrote {path} in {wall_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
