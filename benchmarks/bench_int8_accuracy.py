"""What int8 dynamic quantisation of the ONNX export costs in accuracy on the movie-review sentiment task.

The classifier: by default the real pretrained MiniLM (a BERT encoder litebert loads), fine-tuned here as
`litebert demo` fine-tunes its MiniLM arm (lr 5e-5, one epoch, batch 32, length 64; dev chooses the step),
or with --model-dir a model directory written by `litebert finetune`. It is exported with
`litebert.export.export_onnx` and quantised with `quantize_int8`, the step `export_onnx(..., quantize="int8")`
runs after its fp32 export. Three runtimes then score the same tokenised dev and test sentences, in the
same length-sorted padded batches, with the task's own scoring (`finetune.train.score`: argmax, then
`metrics.compute_metrics`):

    torch fp32   the PyTorch model
    ort fp32     onnxruntime on the fp32 graph
    ort int8     onnxruntime on the int8 graph (int8 weights, activations quantised per batch at run time)
    torch int8   the PyTorch model with its encoder's matmuls in int8 (`litebert.quantize`; int8 weights per
                 output channel, activations quantised per call at run time; heads and embeddings in fp32)

Per runtime: dev and test accuracy (and F1), agreement of its predicted labels with PyTorch fp32's and the
largest |logit difference| from it, the file size (PyTorch: the fp32 parameters), and examples/s over the
whole test split (runtimes timed round-robin, median of --repeats; see common.py). The int8 graph is also
compared with the fp32 graph directly, which isolates the quantisation from the exporter.
Prints a table and writes benchmarks/results/int8_accuracy.json.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_int8_accuracy.py            # fine-tunes MiniLM first
    PYTHONPATH=src .venv/bin/python benchmarks/bench_int8_accuracy.py --model-dir OUT/seed-1/model
    PYTHONPATH=src .venv/bin/python benchmarks/bench_int8_accuracy.py --max-steps 5 --output /tmp/x.json  # smoke
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import format_table, interleaved_medians, machine_info, on_onnxruntime_thread, set_threads, \
    write_json  # noqa: E402

from litebert import metrics  # noqa: E402
from litebert.demo import REVIEWS_TASK, DemoConfig  # noqa: E402
from litebert.hardware import bf16_supported  # noqa: E402
from litebert.export import INPUT_NAMES, export_onnx, ort_session, quantize_int8  # noqa: E402
from litebert.fetch import fetch_minilm, fetch_movie_reviews  # noqa: E402
from litebert.finetune import batching  # noqa: E402
from litebert.finetune.readers import Example  # noqa: E402
from litebert.finetune.run import load_finetuned  # noqa: E402
from litebert.finetune.tasks import get_task  # noqa: E402
from litebert.finetune.train import EncodedSplit, FinetuneConfig, Scored, TaskData, encode_split, finetune, \
    load_task_data, predict, score  # noqa: E402
from litebert.model import AlbertPreTrainedModel  # noqa: E402
from litebert.quantize import quantize_dynamic_int8  # noqa: E402
from litebert.tokenizer import AlbertTokenizer  # noqa: E402

REFERENCE = "torch fp32"
Logits = Callable[[EncodedSplit], np.ndarray]


@dataclass
class RuntimeResult:
    """One runtime's outputs on every split and what they score."""

    name: str
    file_bytes: int | None
    """The .onnx file; for PyTorch fp32 the parameters; None for PyTorch int8 (it keeps the fp32 model too)."""
    logits: dict[str, np.ndarray]
    """Split -> (N, labels), in example order."""
    scored: dict[str, Scored]
    """Split -> metrics and predicted label id by example guid."""
    fp32_matrices: int | None = None
    """2-D fp32 initializers left in the ONNX graph: weight matrices that int8 quantisation did not reach."""
    examples_per_s: float | None = None
    """Over the whole test split."""


# ---------------------------------------------------------------------------------------------- the model
def finetune_minilm(data: TaskData, args: argparse.Namespace) -> tuple[AlbertPreTrainedModel, object, dict]:
    """MiniLM fine-tuned on the train split (the step chosen on dev); returns (model, tokenizer, facts)."""
    source = fetch_minilm()
    tokenizer = AlbertTokenizer.from_pretrained(source)
    config = FinetuneConfig(learning_rate=args.lr, batch_size=args.batch_size, num_epochs=args.epochs,
                            max_steps=args.max_steps, max_seq_length=args.max_seq_length, bf16=args.bf16)
    result = finetune(REVIEWS_TASK, source, tokenizer, data, config, seed=args.seed)
    facts = {"source": f"MiniLM ({source}) fine-tuned here", "seed": args.seed, "lr": args.lr,
             "batch_size": args.batch_size, "epochs": args.epochs, "max_steps": args.max_steps,
             "bf16_training": args.bf16, "best_step": result.best_step, "steps": result.steps,
             "train_seconds": result.train_seconds, "finetune_reported": result.reported}
    print(f"fine-tuned MiniLM: best step {result.best_step}/{result.steps} by dev, "
          f"{result.train_seconds:.0f} s training, test {result.reported['test']}", flush=True)
    return result.model, tokenizer, facts


def load_model_dir(model_dir: str) -> tuple[AlbertPreTrainedModel, object, int, dict]:
    """(model, tokenizer, max_seq_length, facts) of a movie-review model written by `litebert finetune`."""
    task, model, tokenizer, config, _ = load_finetuned(model_dir)
    if task.name != REVIEWS_TASK:
        raise ValueError(f"{model_dir} was fine-tuned on {task.name}, not {REVIEWS_TASK}")
    return model, tokenizer, config.max_seq_length, {"source": str(model_dir)}


# ---------------------------------------------------------------------------------------------- runtimes
def ort_logits(session, split: EncodedSplit, batch_size: int) -> np.ndarray:
    """(N, labels) logits from an onnxruntime session, over the same padded batches `predict` builds."""
    logits = None
    for index in batching.eval_batches(split.lengths, batch_size, "bucket"):
        batch = batching.collate(split.tensors, index, "bucket", split.max_seq_length, split.pad_token_id)
        (out,) = session.run(["logits"], {name: batch[name].numpy() for name in INPUT_NAMES})
        if logits is None:
            logits = np.empty((len(split.lengths), out.shape[-1]), dtype=np.float32)
        logits[index] = out
    return logits


def torch_logits(model: AlbertPreTrainedModel, split: EncodedSplit, batch_size: int) -> np.ndarray:
    """(N, labels) fp32 logits of the PyTorch model (the library's evaluation path)."""
    return predict(model, split, batch_size, "bucket", torch.device("cpu"), contextlib.nullcontext())["logits"]


def fp32_matrices(path: Path) -> int:
    """How many 2-D fp32 initializers (weight matrices) the ONNX graph at `path` holds."""
    import onnx

    graph = onnx.load(str(path)).graph
    return sum(i.data_type == onnx.TensorProto.FLOAT and len(i.dims) == 2 for i in graph.initializer)


def build_runtimes(model: AlbertPreTrainedModel, workdir: Path, batch_size: int,
                   threads: int | None) -> tuple[dict[str, Logits], dict[str, dict]]:
    """Export the fp32 and int8 graphs into `workdir`; returns a logits function per runtime and the facts
    of its file (`RuntimeResult` fields file_bytes, fp32_matrices)."""
    fp32, int8 = workdir / "model.onnx", workdir / "model.int8.onnx"
    with warnings_off():
        report = export_onnx(model, fp32)
        quantize_int8(fp32, int8)
    print(f"exported: fp32 max |ort - torch| on probes {report.max_abs_diff:.1e}", flush=True)
    runners = {REFERENCE: partial(torch_logits, model, batch_size=batch_size),
               # from a thread of their own, so as not to make the PyTorch runs fault in fresh pages
               **{name: on_onnxruntime_thread(partial(ort_logits, ort_session(path, threads), batch_size=batch_size))
                  for name, path in (("ort fp32", fp32), ("ort int8", int8))},
               "torch int8": partial(torch_logits, quantize_dynamic_int8(copy.deepcopy(model)), batch_size=batch_size)}
    files = {REFERENCE: {"file_bytes": report.parameter_bytes}, "torch int8": {"file_bytes": None},
             **{name: {"file_bytes": path.stat().st_size, "fp32_matrices": fp32_matrices(path)}
                for name, path in (("ort fp32", fp32), ("ort int8", int8))}}
    return runners, files


def compare_runtimes(model: AlbertPreTrainedModel, tokenizer, splits: dict[str, list[Example]],
                     max_seq_length: int, workdir: Path, batch_size: int = 64, threads: int | None = None,
                     repeats: int = 3) -> dict[str, RuntimeResult]:
    """Score every runtime on every split (movie-review examples; "test" is timed); keyed by runtime."""
    task = get_task(REVIEWS_TASK)
    config = FinetuneConfig(max_seq_length=max_seq_length)
    encoded = {name: encode_split(task, examples, tokenizer, max_seq_length, config)
               for name, examples in splits.items()}
    runners, files = build_runtimes(model, workdir, batch_size, threads)
    results = {}
    for name, run in runners.items():
        logits = {split: run(enc) for split, enc in encoded.items()}
        scored = {split: score(task, encoded[split], {"logits": out}, config) for split, out in logits.items()}
        results[name] = RuntimeResult(name, logits=logits, scored=scored, **files[name])
    # The scoring passes above were every runtime's warm-up.
    seconds = interleaved_medians({name: partial(run, encoded["test"]) for name, run in runners.items()},
                                  warmup=0, repeats=repeats)
    for name, s in seconds.items():
        results[name].examples_per_s = len(splits["test"]) / s
    return results


def compare(a: RuntimeResult, b: RuntimeResult) -> dict[str, dict[str, float]]:
    """Per split: the fraction of examples where a and b predict the same label, and max |logit a - logit b|."""
    return {split: {"agreement": metrics.accuracy(a.logits[split].argmax(-1), b.logits[split].argmax(-1)),
                    "max_abs_logit_diff": float(np.abs(a.logits[split] - b.logits[split]).max())}
            for split in a.logits}


# ---------------------------------------------------------------------------------------------- report
def summary_rows(results: dict[str, RuntimeResult]) -> list[dict]:
    """One JSON row per runtime: metrics per split, size, speed, and its comparison with PyTorch fp32."""
    reference = results[REFERENCE]
    return [{"runtime": name, "file_bytes": r.file_bytes, "fp32_matrices": r.fp32_matrices,
             "test_examples_per_s": r.examples_per_s,
             "metrics": {split: s.metrics for split, s in r.scored.items()}, "vs_torch_fp32": compare(r, reference)}
            for name, r in results.items()]


def print_table(rows: list[dict], int8_vs_fp32: dict[str, dict[str, float]], n_test: int) -> None:
    base = next(r for r in rows if r["runtime"] == "ort fp32")["test_examples_per_s"]
    header = ["runtime", "dev acc", "test acc", "test F1", "test agree", "test max|dlogit|", "MB", "test ex/s",
              "x ort fp32"]
    print(format_table(header, [
        [r["runtime"], f"{r['metrics']['dev']['accuracy']:.4f}", f"{r['metrics']['test']['accuracy']:.4f}",
         f"{r['metrics']['test']['f1']:.4f}", f"{r['vs_torch_fp32']['test']['agreement']:.4f}",
         f"{r['vs_torch_fp32']['test']['max_abs_logit_diff']:.2e}",
         f"{r['file_bytes'] / 1e6:.1f}" if r["file_bytes"] else "-",
         f"{r['test_examples_per_s']:.0f}", f"{r['test_examples_per_s'] / base:.2f}"] for r in rows]))
    test = int8_vs_fp32["test"]
    print(f"(agree, max|dlogit|: against torch fp32.) int8 against the fp32 graph on test: "
          f"{round((1 - test['agreement']) * n_test)} of {n_test} labels differ, "
          f"max |dlogit| {test['max_abs_logit_diff']:.3f}; dev: agreement {int8_vs_fp32['dev']['agreement']:.4f}")
    left = next(r for r in rows if r["runtime"] == "ort int8")["fp32_matrices"]
    print(f"int8 graph: {left} of its weight matrices left in fp32" if left else
          "int8 graph: every weight matrix int8")


@contextlib.contextmanager
def warnings_off():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    demo = DemoConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", help="a fine-tuned movie-review model (skips fine-tuning MiniLM)")
    parser.add_argument("--labelled", help="movie-review snippets file (default: fetch_movie_reviews)")
    parser.add_argument("--lr", type=float, default=demo.minilm_lr)
    parser.add_argument("--epochs", type=float, default=demo.minilm_epochs)
    parser.add_argument("--max-steps", type=int, help="fine-tuning steps instead of --epochs (smoke runs)")
    parser.add_argument("--batch-size", type=int, default=demo.finetune_batch)
    parser.add_argument("--max-seq-length", type=int, default=demo.finetune_max_length)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction,
                        help="bf16 autocast while fine-tuning, as the demo (default: where the CPU runs bf16 "
                             "natively); the runtimes compared here are always fp32 / int8")
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the test split per runtime")
    parser.add_argument("--threads", type=int, help="intra-op threads for torch and onnxruntime (default: all)")
    parser.add_argument("--output", default="int8_accuracy.json", help="file name under benchmarks/results/, or a path")
    args = parser.parse_args(argv)
    args.bf16 = bf16_supported() if args.bf16 is None else args.bf16
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = set_threads(args.threads)
    start = time.perf_counter()

    data = load_task_data(REVIEWS_TASK, args.labelled or fetch_movie_reviews())
    if args.model_dir:
        model, tokenizer, max_seq_length, facts = load_model_dir(args.model_dir)
    else:
        model, tokenizer, facts = finetune_minilm(data, args)
        max_seq_length = args.max_seq_length
    splits = {"dev": data.selection, "test": data.reported["test"]}
    with tempfile.TemporaryDirectory() as tmp:
        results = compare_runtimes(model, tokenizer, splits, max_seq_length, Path(tmp), args.eval_batch_size,
                                   threads, args.repeats)
    rows = summary_rows(results)
    int8_vs_fp32 = compare(results["ort int8"], results["ort fp32"])
    print()
    print_table(rows, int8_vs_fp32, len(splits["test"]))
    path = write_json({"machine": machine_info(threads=threads, repeats=args.repeats), "model": facts,
                       "max_seq_length": max_seq_length, "sizes": {k: len(v) for k, v in splits.items()},
                       "rows": rows, "int8_vs_ort_fp32": int8_vs_fp32, "wall_s": time.perf_counter() - start},
                      args.output)
    print(f"\nwrote {path} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
