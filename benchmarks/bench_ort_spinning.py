"""Does onnxruntime slow the PyTorch work that follows it in the same process? (Why bench_inference.py makes its
sessions with `ort_session(..., spinning=False)`.)

After a run, onnxruntime's intra-op threads busy-wait ("spin") for the next one. On a 2-core machine that takes
the cores from whatever the process computes next. This times litebert's and HF's fp32 forward pass (albert-base
8x128 by default) in three conditions, round-robin, median of `--repeats` rounds (the onnxruntime sessions exist
throughout): no onnxruntime run in between | an onnxruntime run right before each pass (its threads left spinning)
| the same with spinning off;
and onnxruntime's own pass with and without spinning (a pause before each, so neither follows the other's work).

    python benchmarks/bench_ort_spinning.py [--preset albert-base-v2] [--shape 8x128] [--repeats 5]
Writes benchmarks/results/ort_spinning.json (--output names another file there).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import export_hf_onnx, inputs_for, ort_runner, random_weights, torch_runner, warnings_off  # noqa: E402
from common import format_table, machine_info, set_threads, time_once, write_json  # noqa: E402

from litebert.export import ort_session  # noqa: E402


def medians(fns: dict, repeats: int, before=None, pause: float = 0.0) -> dict[str, float]:
    """Median seconds of each function, round-robin; `before()` runs untimed right before each timed call."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if before is not None:
                before()
            time.sleep(pause)
            times[name].append(time_once(fn))
    return {name: statistics.median(ts) for name, ts in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="albert-base-v2")
    parser.add_argument("--shape", default="8x128", help="BATCHxLENGTH")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default="ort_spinning.json", help="file name under benchmarks/results/, or a path")
    args = parser.parse_args(argv)
    threads = set_threads(None)
    batch, seq = map(int, args.shape.split("x"))
    ours = random_weights(args.preset)
    with tempfile.TemporaryDirectory() as tmp, warnings_off():
        ours.save_pretrained(Path(tmp) / "model")
        hf = transformers.AlbertModel.from_pretrained(Path(tmp) / "model").eval()
        export_hf_onnx(hf, Path(tmp) / "hf.onnx")
        inputs = inputs_for(ours.config, batch, seq)
        torch_fns = {"litebert fp32": torch_runner(ours, inputs, False), "HF fp32": torch_runner(hf, inputs, False)}
        spinning = ort_runner(ort_session(Path(tmp) / "hf.onnx", threads), inputs)
        quiet = ort_runner(ort_session(Path(tmp) / "hf.onnx", threads, spinning=False), inputs)
        for fn in (*torch_fns.values(), spinning, quiet):
            fn()  # warm-up
        conditions = {"no onnxruntime run between": None, "onnxruntime run before, spinning": spinning,
                      "onnxruntime run before, no spinning": quiet}
        torch_rows = {name: medians(torch_fns, args.repeats, before) for name, before in conditions.items()}
        ort_own = medians({"spinning": spinning, "no spinning": quiet}, args.repeats, pause=0.5)
    print(format_table(["condition", *torch_fns], [[c, *(round(t[n], 3) for n in torch_fns)]
                                                   for c, t in torch_rows.items()]))
    print(f"onnxruntime on HF's export, own pass (s): spinning {ort_own['spinning']:.3f}, "
          f"no spinning {ort_own['no spinning']:.3f}")
    path = write_json({"machine": machine_info(threads=threads, repeats=args.repeats), "preset": args.preset,
                       "shape": [batch, seq], "torch_seconds": torch_rows, "onnxruntime_seconds": ort_own},
                      args.output)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
