"""What keeping freed memory is worth (`litebert.hardware.keep_freed_memory`, which the CLI applies at start).

glibc hands each block above its mmap threshold back to the kernel when it is freed, so every step's activations
are fresh pages that fault in and are zeroed again. The setting keeps them in the heap instead. It is
process-wide and one-way, so each (case, allocator) runs in a fresh process of its own; the two allocators
alternate, round by round, and the median over rounds of each process's median step is kept.

Cases (litebert only: the setting acts on the process, so transformers in the same process would gain alike):
    train   forward + backward + AdamW of AlbertForPreTraining on 20 masked positions (bench_memory.training_step)
    infer   AlbertModel under inference_mode
each in the precision `litebert.calibrate` picks on this machine for that shape, as runs do. Reported per case:
step seconds, the speed-up, minor page faults per step, and the process's peak resident memory.

    python benchmarks/bench_allocator.py [--cases train:albert-base-v2:8x128 ...] [--rounds 3] [--steps 5]
        [--threads N] [--output allocator_<cpu>.json]
About 6 minutes on 2 CPU cores for the default cases.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory import training_step  # noqa: E402
from bench_train import make_batch, model_config  # noqa: E402
from common import cpu_tag, format_table, machine_info, set_threads, time_once, write_json  # noqa: E402
from litebert import calibrate, hardware  # noqa: E402
from litebert.model import AlbertModel  # noqa: E402

CASES = ("train:demo:64x64", "train:albert-base-v2:8x128", "train:albert-base-v2:32x128",
         "train:albert-base-v2:8x512", "infer:demo:64x64", "infer:albert-base-v2:32x128")
ALLOCATORS = ("system", "keep")


def case_step(mode: str, preset: str, batch: int, length: int):
    """(one step of the case as a function, whether it runs in bf16), in the calibrated precision."""
    config = model_config(preset)
    bf16, choice = calibrate.resolve_bf16("cpu", None, config, batch, length, mode)
    if bf16 and choice is not None:
        choice.apply()
    if mode == "train":
        return training_step("litebert", preset, batch, length, bf16, "cpu")[0], bf16
    torch.manual_seed(0)
    b = make_batch(config, batch, length)
    encoder = AlbertModel(config).eval()

    def infer() -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            encoder(b["input_ids"], b["attention_mask"], b["token_type_ids"])
    return infer, bf16


def child(case: str, steps: int) -> dict:
    """One process's measurement: the allocator from $LITEBERT_MALLOC, one warm-up step, `steps` timed ones."""
    setting = hardware.keep_freed_memory()
    mode, preset, shape = case.split(":")
    batch, length = (int(x) for x in shape.split("x"))
    step, bf16 = case_step(mode, preset, batch, length)
    step()
    times, faults = [], []
    for _ in range(steps):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        times.append(time_once(step))
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    peak_kib = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("VmHWM:"))
    return {"setting": setting, "bf16": bf16, "step_s": statistics.median(times), "faults_per_step":
            statistics.median(faults), "peak_rss_bytes": peak_kib * 1024}


def run_child(case: str, allocator: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", case, "--steps", str(args.steps)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, env={**os.environ, hardware.MALLOC_ENV: allocator}, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{case} with {allocator} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(case: str, runs: dict[str, list[dict]]) -> dict:
    """The median over rounds of each allocator's numbers for one case."""
    med = lambda allocator, key: statistics.median(r[key] for r in runs[allocator])  # noqa: E731
    out = {"case": case, "bf16": runs["keep"][0]["bf16"], "rounds": runs,
           "speedup": med("system", "step_s") / med("keep", "step_s")}
    for allocator in ALLOCATORS:
        for key in ("step_s", "faults_per_step", "peak_rss_bytes"):
            out[f"{allocator}_{key}"] = med(allocator, key)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=list(CASES), help="MODE:PRESET:BxT (preset `demo`: the demo's model)")
    ap.add_argument("--rounds", type=int, default=3, help="processes per allocator and case, alternating")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per process, after one warm-up")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--output", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    set_threads(args.threads)
    if args.child:
        print(json.dumps(child(args.child, args.steps)))
        return 0
    results = []
    for case in args.cases:
        runs: dict[str, list[dict]] = {a: [] for a in ALLOCATORS}
        for _ in range(args.rounds):
            for allocator in ALLOCATORS:
                runs[allocator].append(run_child(case, allocator, args))
        results.append(summarise(case, runs))
    rows = [[r["case"], "bf16" if r["bf16"] else "fp32", r["system_step_s"], r["keep_step_s"], f"{r['speedup']:.2f}x",
             int(r["system_faults_per_step"]), int(r["keep_faults_per_step"]),
             f"{r['system_peak_rss_bytes'] / 2**30:.2f}", f"{r['keep_peak_rss_bytes'] / 2**30:.2f}"] for r in results]
    print(format_table(["case", "dtype", "system s", "kept s", "speed-up", "faults/step", "kept faults",
                        "peak GiB", "kept peak GiB"], rows))
    path = write_json({"machine": machine_info(), "rounds": args.rounds, "steps": args.steps, "results": results},
                      args.output or f"allocator_{cpu_tag()}.json")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
