"""Issue 12's speed targets on THIS machine, in one command: runs the benchmarks behind them, then scores them.

    PYTHONPATH=src .venv/bin/python benchmarks/scorecard.py [--quick] [--score-only] [--parts inference ...]

A session that lands on a CPU kind not measured yet runs this once (about 25 minutes for ALBERT-base on 2 cores;
--quick about half) and has every target's number for that kind, named by `cpu_tag` (which also names an
instruction-set cap such as ONEDNN_MAX_CPU_ISA, so an emulated kind never passes for a real one). It runs, each
in its own process, writing benchmarks/results/scorecard_<cpu>_{train_base,train_demo,inference}.json:

    bench_train.py     --presets albert-base-v2  (8x128, 32x128, 8x512; fp32 and bf16 autocast)
    bench_train.py     --presets demo --shapes 64x64  (the demo's pretraining step: its model, shape and 10
                                                     masked positions a sequence)
    bench_inference.py --presets albert-base-v2

and scores them into scorecard_<cpu>.json (`--parts` re-runs some of them and scores with the others' saved
results). How each target is read (litebert in the precision `litebert.calibrate`
picks at the shape, as runs that are not given --bf16/--no-bf16 do):

    training   litebert tokens/s over the better of HF fp32 and HF bf16 autocast (so never flattered by HF's
               slower precision), >= 1.6 at each shape; and litebert's MFU (against the matmul rate of its own
               precision, measured in the same run) >= 50% at 32x128
    inference  litebert's best full-precision-or-bf16 eager contender (fp32, bf16 autocast, bf16 weights; int8
               is shown apart, it changes outputs) over the better of HF bf16 autocast and onnxruntime on HF's
               fp32 export, >= 1.5 at each shape (on a CPU without native bf16 no bf16 contender is timed,
               and HF fp32 stands in for HF bf16)
    demo       litebert's demo model over HF's same-size ALBERT at its better precision, >= 2.0

Every ratio is from one run with the contenders interleaved (see common.py); a row says "missed" when short.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, cpu_tag, format_table, machine_info, write_json  # noqa: E402

HERE = Path(__file__).resolve().parent
TARGETS = {"training": 1.6, "training MFU": 0.5, "inference": 1.5, "demo": 2.0}
"""Issue 12's targets: ratios to the reference, and MFU at ALBERT-base 32x128."""
MFU_SHAPE = (32, 128)
FULL_PRECISION = ("litebert fp32", "litebert bf16 autocast", "litebert bf16 weights")
"""litebert's inference contenders that count for the target (int8 changes the outputs: reported apart)."""
INFERENCE_REFERENCES = ("HF bf16 autocast", "ORT HF fp32")
"""The issue's references; FP32_REFERENCES where bench_inference timed no bf16 contender (no native bf16)."""
FP32_REFERENCES = ("HF fp32", "ORT HF fp32")
"""HF fp32 standing in for HF bf16 (HF at the precision a user there would run), as bench_inference reads it."""


def runs(tag: str, quick: bool) -> dict[str, list[str]]:
    """part -> the benchmark command line (script and arguments) that measures it."""
    steps, repeats = ("3", "2") if quick else ("5", "3")
    return {
        "train_base": ["bench_train.py", "--presets", "albert-base-v2", "--steps", steps,
                       "--output", f"scorecard_{tag}_train_base.json"],
        "train_demo": ["bench_train.py", "--presets", "demo", "--shapes", "64x64", "--steps", "10",
                       "--output", f"scorecard_{tag}_train_demo.json"],
        "inference": ["bench_inference.py", "--presets", "albert-base-v2", "--repeats", repeats,
                      "--output", f"scorecard_{tag}_inference.json"],
    }


def run_all(commands: dict[str, list[str]]) -> None:
    """Each benchmark in a fresh process (fast-path switches and allocator state never carry over); a failed one
    stops the scorecard, since a target scored on part of its data would mislead."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent / "src"),
                                                                     os.environ.get("PYTHONPATH")]))}
    for part, (script, *args) in commands.items():
        print(f"== {part}: {script} {' '.join(args)}", flush=True)
        done = subprocess.run([sys.executable, str(HERE / script), *args], env=env)
        if done.returncode:
            raise SystemExit(f"scorecard: {script} {' '.join(args)} failed with exit status {done.returncode}")


def training_rows(data: dict, target: str) -> list[dict]:
    """One scored row per shape of a bench_train.py result: litebert at its calibrated precision over HF's
    better precision."""
    shapes: dict[tuple, dict[str, dict]] = {}
    for r in data["rows"]:
        shapes.setdefault((r["preset"], r["batch"], r["seq_length"]), {})[r["dtype"]] = r
    rows = []
    for (preset, batch, length), by_dtype in shapes.items():
        calibrated = next(iter(by_dtype.values())).get("calibrated")
        ours = by_dtype.get(calibrated) or max(by_dtype.values(), key=lambda r: r["litebert_tokens_per_s"])
        hf = max(by_dtype.values(), key=lambda r: r["transformers_tokens_per_s"])
        ratio = ours["litebert_tokens_per_s"] / hf["transformers_tokens_per_s"]
        rows.append(scored(target, f"{preset} {batch}x{length}", f"litebert {ours['dtype']}",
                           ours["litebert_tokens_per_s"], f"HF {hf['dtype']}", hf["transformers_tokens_per_s"],
                           ratio, TARGETS[target]))
        if target == "training" and (batch, length) == MFU_SHAPE:
            rows.append(scored("training MFU", f"{preset} {batch}x{length}", f"litebert {ours['dtype']}",
                               ours["litebert_mfu"], f"matmul rate, {ours['dtype']}", 1.0, ours["litebert_mfu"],
                               TARGETS["training MFU"]))
    return rows


def inference_rows(data: dict) -> list[dict]:
    """One scored row per preset and shape of a bench_inference.py result, plus litebert int8 unscored."""
    rows = []
    for preset, part in data["presets"].items():
        shapes: dict[tuple, dict[str, dict]] = {}
        for r in part["results"]:
            shapes.setdefault((r["batch"], r["seq"]), {})[r["contender"]] = r
        for (batch, seq), by_name in shapes.items():
            ours = max((by_name[n] for n in FULL_PRECISION if n in by_name), key=lambda r: r["tokens_per_s"])
            refs = INFERENCE_REFERENCES if "HF bf16 autocast" in by_name else FP32_REFERENCES
            ref = max((by_name[n] for n in refs), key=lambda r: r["tokens_per_s"])
            where = f"{preset} {batch}x{seq}"
            rows.append(scored("inference", where, ours["contender"], ours["tokens_per_s"], ref["contender"],
                               ref["tokens_per_s"], ours["tokens_per_s"] / ref["tokens_per_s"],
                               TARGETS["inference"]))
            int8 = by_name.get("litebert int8 (PyTorch)")
            if int8 is not None:
                rows.append(scored("inference, int8 (outputs differ)", where, int8["contender"],
                                   int8["tokens_per_s"], ref["contender"], ref["tokens_per_s"],
                                   int8["tokens_per_s"] / ref["tokens_per_s"], None))
    return rows


def scored(target: str, where: str, ours: str, ours_value: float, reference: str, reference_value: float,
           ratio: float, goal: float | None) -> dict:
    """One row of the scorecard: "met" or "missed" against `goal` (none: shown, not scored)."""
    verdict = "" if goal is None else "met" if ratio >= goal else "missed"
    return {"target": target, "where": where, "litebert": ours, "litebert_value": ours_value,
            "reference": reference, "reference_value": reference_value, "ratio": ratio, "goal": goal,
            "verdict": verdict}


def score(train_base: dict, train_demo: dict, inference: dict) -> list[dict]:
    """Every scored row, from the three benchmarks' results."""
    return training_rows(train_base, "training") + training_rows(train_demo, "demo") + inference_rows(inference)


def print_rows(rows: list[dict]) -> None:
    """The scored rows as a table: tokens/s (MFU as a percentage), ratio, goal, verdict."""
    def value(r: dict, v: float) -> str:
        return f"{v:.1%}" if r["target"] == "training MFU" else f"{v:,.0f} tok/s"
    header = ["target", "where", "litebert", "", "reference", "", "ratio", "goal", "verdict"]
    print(format_table(header, [[r["target"], r["where"], r["litebert"], value(r, r["litebert_value"]),
                                 r["reference"], "" if "MFU" in r["target"] else value(r, r["reference_value"]),
                                 f"{r['ratio']:.2f}", r["goal"] or "-", r["verdict"]] for r in rows]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer timed steps and rounds (about half the time)")
    parser.add_argument("--score-only", action="store_true",
                        help="score this CPU kind's scorecard_<cpu>_*.json already in results/, running nothing")
    parser.add_argument("--parts", nargs="+", choices=list(runs("", False)),
                        help="run only these parts, then score them with the others' saved results")
    args = parser.parse_args(argv)
    tag = cpu_tag()
    commands = runs(tag, args.quick)
    if not args.score_only:
        run_all({part: command for part, command in commands.items() if part in (args.parts or commands)})
    files = {part: RESULTS / command[command.index("--output") + 1] for part, command in commands.items()}
    missing = [str(path) for path in files.values() if not path.exists()]
    if missing:
        raise SystemExit(f"scorecard: no result {', '.join(missing)}; run without --score-only first")
    data = {part: json.loads(path.read_text()) for part, path in files.items()}
    rows = score(data["train_base"], data["train_demo"], data["inference"])
    print(f"\nissue 12 targets on {tag} ({data['train_base']['machine']['cpu']})")
    print_rows(rows)
    path = write_json({"machine": machine_info(), "cpu_tag": tag, "sources": {k: p.name for k, p in files.items()},
                       "targets": TARGETS, "rows": rows}, f"scorecard_{tag}.json")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
