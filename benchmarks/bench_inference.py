"""Inference throughput (tokens/s, encoder + pooler, no grad) of litebert against Hugging Face, on this CPU.

Contenders, all on the same weights (a random model of each preset, saved by litebert, loaded by HF):
  litebert fp32 | litebert bf16 autocast | litebert bf16 weights (model.to(bfloat16)) |
  HF fp32 | HF bf16 autocast | onnxruntime on HF's ONNX export | onnxruntime on litebert's ONNX export,
  fp32 and dynamically quantised to int8 | litebert int8 in PyTorch (`litebert.quantize.quantize_dynamic_int8`)
  (the two int8 contenders' outputs differ from fp32: a speed reference, not a like-for-like; their accuracy
  cost is measured by bench_int8_accuracy.py);
  with --compile also litebert fp32 and litebert bf16 weights under torch.compile (inductor, weights frozen into
  the graph), the first call at each shape (the compile) timed apart and the outputs checked against eager's.
HF's graph comes from torch's TorchScript exporter (what `optimum-cli export onnx` runs); litebert's from
`litebert.export.export_onnx`; the sessions run from a thread of their own (see common.on_onnxruntime_thread), so
that their allocations do not make the PyTorch contenders fault in fresh pages. Each shape's contenders are timed
round-robin (see common.py); the table gives tokens/s and the ratio to the better of HF bf16 autocast and
onnxruntime-on-HF. The bf16 and fp32 matmul rates of the machine are measured in the same run, for reference.
litebert's contenders run with the fast paths `litebert.calibrate` measures for inference at each shape, and keep
the packed copies of their weights from call to call (`kernels.keep_packed_weights`), as litebert's pipelines do.

    python benchmarks/bench_inference.py [--quick] [--repeats 2] [--threads N] [--presets albert-tiny] [--compile]
        [--shapes 1x16 1x64 1x128]   (batch 1: one request's latency, as a served model sees it)
Writes benchmarks/results/inference.json (--output names another file there).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import format_table, interleaved_medians, machine_info, matmul_tflops, on_onnxruntime_thread, \
    set_threads, use_run_allocator, write_json  # noqa: E402

from bench_train import model_config  # noqa: E402
from litebert import AlbertConfig, AlbertModel, calibrate  # noqa: E402
from litebert.export import export_onnx, ort_session, quantize_int8  # noqa: E402
from litebert.hardware import bf16_supported  # noqa: E402
from litebert.kernels import keep_packed_weights  # noqa: E402
from litebert.quantize import quantize_dynamic_int8  # noqa: E402

SHAPES = [(8, 128), (32, 128), (8, 512)]
QUICK_SHAPES = [(8, 128)]
REFERENCES = ("HF bf16 autocast", "ORT HF fp32")
"""The contenders whose better is the reference; FP32_REFERENCES on a CPU without native bf16."""
FP32_REFERENCES = ("HF fp32", "ORT HF fp32")
"""HF fp32 standing in for HF bf16 (HF at the precision a user there would run)."""
BF16_CONTENDERS = ("litebert bf16 autocast", "litebert bf16 weights", "HF bf16 autocast")
"""Timed only where bf16 is native (hardware.bf16_supported): elsewhere torch emulates bf16 matmuls, about 80x
slower than fp32 on an AVX2-only EPYC, and no run would choose them."""


def random_weights(preset: str, seed: int = 0) -> AlbertModel:
    """A litebert AlbertModel of `preset` (or `demo`, bench_train.model_config) with every weight random (no zero
    biases or unit LayerNorms, which an exporter could fold away and so flatter the graph)."""
    torch.manual_seed(seed)
    model = AlbertModel(model_config(preset)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model


def export_hf_onnx(hf_model, path: Path, opset: int = 18) -> None:
    """HF's AlbertModel to ONNX with the TorchScript exporter and dynamic batch/sequence axes."""
    ids = torch.ones(2, 16, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names + ["last_hidden_state"]}
    with warnings_off():
        torch.onnx.export(hf_model, (ids, ids, torch.zeros_like(ids)), str(path), dynamo=False,
                          opset_version=opset, input_names=names,
                          output_names=["last_hidden_state", "pooler_output"],
                          dynamic_axes={**axes, "pooler_output": {0: "batch"}})


@contextlib.contextmanager
def warnings_off():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def inputs_for(config: AlbertConfig, batch: int, seq: int) -> dict[str, torch.Tensor]:
    """Full-length random sequences, two segments, attention mask given explicitly (all ones)."""
    g = torch.Generator().manual_seed(batch * 1000 + seq)
    ids = torch.randint(5, config.vocab_size, (batch, seq), generator=g)
    types = torch.zeros_like(ids)
    types[:, seq // 2:] = 1
    return dict(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=types)


def torch_runner(model, inputs, autocast: bool, keep: bool = False):
    """A call of `model` on `inputs` without a gradient; `keep`: inside litebert's keep_packed_weights."""
    def run():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast), \
                keep_packed_weights() if keep else contextlib.nullcontext():
            return model(**inputs)
    return run


def ort_runner(session, inputs):
    """A call that runs `session` on `inputs`, from common.ONNXRUNTIME_THREAD (see on_onnxruntime_thread)."""
    feed = {k: v.numpy() for k, v in inputs.items()}
    return on_onnxruntime_thread(lambda: session.run(None, feed))


def compiled_runner(model, inputs) -> tuple[callable, float, float]:
    """torch.compile(model) (inductor, frozen weights, static shape) run on `inputs`: (runner, first-call seconds
    = the compile, max |compiled - eager| of the last hidden state)."""
    # freezing: the weights become constants, folded and pre-packed for the CPU GEMMs (this compile only)
    compiled = torch.compile(model, dynamic=False, options={"freezing": True})
    run = torch_runner(compiled, inputs, False)
    start = time.perf_counter()
    out = run().last_hidden_state
    compile_s = time.perf_counter() - start
    with torch.no_grad():
        diff = float((out.float() - model(**inputs).last_hidden_state.float()).abs().max())
    return run, compile_s, diff


def bench_preset(preset: str, shapes, repeats: int, threads: int, tmp: Path, compile: bool = False) -> dict:
    """Export both graphs, then time every contender at every shape; returns sizes, parity and timings."""
    import transformers

    ours = random_weights(preset)
    ours.save_pretrained(tmp / preset)
    hf = transformers.AlbertModel.from_pretrained(tmp / preset).eval()
    ours_bf16 = copy.deepcopy(ours).to(torch.bfloat16)
    ours_int8 = quantize_dynamic_int8(copy.deepcopy(ours))

    start = time.perf_counter()
    report = export_onnx(ours, tmp / f"{preset}-litebert.onnx")
    export_ours_s = time.perf_counter() - start
    start = time.perf_counter()
    export_hf_onnx(hf, tmp / f"{preset}-hf.onnx")
    export_hf_s = time.perf_counter() - start
    quantize_int8(tmp / f"{preset}-litebert.onnx", tmp / f"{preset}-litebert.int8.onnx")
    # Without spinning, so idle onnxruntime threads cannot slow the contender timed next (bench_ort_spinning.py).
    files = {"ORT HF fp32": "hf", "ORT litebert fp32": "litebert", "ORT litebert int8": "litebert.int8"}
    sessions = {name: ort_session(tmp / f"{preset}-{stem}.onnx", threads, spinning=False)
                for name, stem in files.items()}
    probe = inputs_for(ours.config, 2, 40)
    with torch.no_grad():
        ref = hf(**probe).last_hidden_state.numpy()
        int8_diff = float((ours_int8(**probe).last_hidden_state - ours(**probe).last_hidden_state).abs().max())
    probe_feed = {k: v.numpy() for k, v in probe.items()}
    hf_onnx = on_onnxruntime_thread(sessions["ORT HF fp32"].run)(None, probe_feed)[0]
    hf_onnx_diff = float(np.abs(hf_onnx - ref).max())

    results, compiled, native = [], {}, bf16_supported("cpu")
    for batch, seq in shapes:
        inputs = inputs_for(ours.config, batch, seq)
        chosen = calibrate.calibrate(ours.config, batch, seq, "infer")  # litebert's bf16 fast paths, as predict's
        chosen.apply()
        print(f"  {preset} {batch}x{seq}: {chosen.describe()}", flush=True)
        fns = {"litebert fp32": torch_runner(ours, inputs, False, keep=True),
               "litebert bf16 autocast": torch_runner(ours, inputs, True, keep=True),
               "litebert bf16 weights": torch_runner(ours_bf16, inputs, False, keep=True),
               "litebert int8 (PyTorch)": torch_runner(ours_int8, inputs, False, keep=True),
               "HF fp32": torch_runner(hf, inputs, False),
               "HF bf16 autocast": torch_runner(hf, inputs, True),
               **{name: ort_runner(s, inputs) for name, s in sessions.items()}}
        if not native:
            fns = {name: fn for name, fn in fns.items() if name not in BF16_CONTENDERS}
        if compile:  # fp32, and bf16 (what calibration picks on a CPU with fast bf16 matmuls)
            for name, model in (("litebert fp32", ours), ("litebert bf16 weights", ours_bf16)):
                if name not in fns:
                    continue
                fns[f"{name} compiled"], compile_s, diff = compiled_runner(copy.deepcopy(model), inputs)
                compiled.setdefault(f"{batch}x{seq}", {})[name] = {"compile_s": compile_s, "max_abs_diff": diff}
        seconds = interleaved_medians(fns, warmup=1, repeats=repeats)
        tokens = {name: batch * seq / s for name, s in seconds.items()}
        reference = max(tokens[r] for r in (REFERENCES if native else FP32_REFERENCES))
        for name in fns:
            results.append(dict(preset=preset, batch=batch, seq=seq, contender=name, seconds=seconds[name],
                                tokens_per_s=tokens[name], vs_best_reference=tokens[name] / reference,
                                calibrated="bf16" if chosen.bf16 else "fp32"))
        print(f"  {preset} {batch}x{seq}: done", flush=True)
    return dict(
        results=results, compiled=compiled,
        onnx={"litebert_bytes": report.onnx_bytes,
              "litebert_int8_bytes": (tmp / f"{preset}-litebert.int8.onnx").stat().st_size,
              "hf_bytes": (tmp / f"{preset}-hf.onnx").stat().st_size,
              "parameter_bytes": report.parameter_bytes, "litebert_max_abs_diff": report.max_abs_diff,
              "hf_max_abs_diff": hf_onnx_diff, "litebert_export_s": export_ours_s, "hf_export_s": export_hf_s},
        torch_int8_max_abs_diff=int8_diff)


def print_tables(by_preset: dict[str, dict], shapes) -> None:
    for preset, data in by_preset.items():
        rows = {}
        for r in data["results"]:
            rows.setdefault(r["contender"], []).extend([round(r["tokens_per_s"]), r["vs_best_reference"]])
        header = ["contender"] + [h for b, t in shapes for h in (f"{b}x{t} tok/s", "x ref")]
        print(f"\n{preset} (x ref: tokens/s over the better of {' and '.join(REFERENCES)}; HF fp32 for HF bf16 where "
              "bf16 is not native)")
        print(format_table(header, [[name, *vals] for name, vals in rows.items()]))
        o = data["onnx"]
        print(f"ONNX files: litebert {o['litebert_bytes'] / 1e6:.1f} MB "
              f"(int8 {o['litebert_int8_bytes'] / 1e6:.1f} MB), HF {o['hf_bytes'] / 1e6:.1f} MB "
              f"(parameters {o['parameter_bytes'] / 1e6:.1f} MB); max |ort - torch|: litebert "
              f"{o['litebert_max_abs_diff']:.1e}, HF {o['hf_max_abs_diff']:.1e}")
        print(f"litebert int8 in PyTorch: max |int8 - fp32| of the last hidden state "
              f"{data['torch_int8_max_abs_diff']:.1e}")
        for shape, by_name in data.get("compiled", {}).items():
            for name, c in by_name.items():
                print(f"torch.compile of {name} at {shape}: first call (compile) {c['compile_s']:.0f} s, "
                      f"max |compiled - eager| {c['max_abs_diff']:.1e}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one shape (8x128), 2 repeats")
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds per shape, after one warm-up")
    parser.add_argument("--threads", type=int, help="intra-op threads for torch and onnxruntime (default: all)")
    parser.add_argument("--presets", nargs="+", default=["albert-base-v2", "albert-tiny"])
    parser.add_argument("--output", default="inference.json", help="file name under benchmarks/results/, or a path")
    parser.add_argument("--shapes", nargs="+", metavar="BxT",
                        help="BATCHxLENGTH shapes (default 8x128 32x128 8x512; --quick: 8x128)")
    parser.add_argument("--compile", action="store_true",
                        help="also litebert fp32 and bf16 weights under torch.compile (each compiles per shape: "
                             "~20 s for base)")
    args = parser.parse_args(argv)
    use_run_allocator()
    threads = set_threads(args.threads)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    if args.shapes:
        shapes = [tuple(int(n) for n in shape.lower().split("x")) for shape in args.shapes]
    repeats = 2 if args.quick else args.repeats
    start = time.perf_counter()
    native = bf16_supported("cpu")  # else bf16 is emulated: neither timed nor its matmul rate measured
    rates = {"bf16_matmul_tflops": matmul_tflops(torch.bfloat16) if native else None,
             "fp32_matmul_tflops": matmul_tflops(torch.float32)}
    bf16 = f"{rates['bf16_matmul_tflops']:.2f} TFLOP/s" if native else "not native (not timed)"
    print(f"matmul 2048^3: bf16 {bf16}, fp32 {rates['fp32_matmul_tflops']:.2f} TFLOP/s ({threads} threads)",
          flush=True)
    by_preset = {}
    with tempfile.TemporaryDirectory() as tmp, warnings_off():
        for preset in args.presets:
            by_preset[preset] = bench_preset(preset, shapes, repeats, threads, Path(tmp), args.compile)
    print_tables(by_preset, shapes)
    path = write_json({"machine": machine_info(threads=threads, repeats=repeats), **rates,
                       "wall_s": time.perf_counter() - start, "presets": by_preset}, args.output)
    print(f"\nwrote {path} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
