"""Raw text in, labels out: litebert's text-classification pipeline against transformers' on the same texts.

What a user runs to label a file of sentences, end to end (tokenization, batching, the model, the softmax),
with the same weights, texts and batch size for every contender:

    transformers fp32        transformers.pipeline("text-classification", batch_size=B): batches in input order
    transformers bf16        the same with dtype=torch.bfloat16
    litebert, input order    litebert.pipeline with each batch of B texts given as its own call: the batches a
                             caller's input order makes (what litebert itself did before it sorted by length)
    litebert                 one call with every text: batches in order of length, each padded to its longest
                             row (the default backend "torch", in the precision `litebert.calibrate` picks)
    litebert torch-int8      backend="torch-int8": the encoder's matmuls in int8 in PyTorch (litebert.quantize)
    litebert onnxruntime     backend="onnxruntime": the fp32 ONNX export, run by onnxruntime
    litebert onnxruntime-int8  backend="onnxruntime-int8": the int8 export (dynamic quantisation)

transformers' pipeline loads its fast tokenizer, its quickest; for some texts that tokenizer gives other ids than
the official SentencePiece algorithm (which litebert's and transformers' slow tokenizer follow), so the script
counts those texts: scores can differ there, beyond float noise.

The model is an ALBERT-base-v2-shaped classifier (2 labels) with random weights (nothing is downloaded), over a
SentencePiece vocabulary trained here on the cached Wikipedia text (`--vocab-size`, 8,000 by default: the
vocabulary size moves only the embedding lookup). The texts are the first N snippets of the VADER movie-review
and New York Times editorial sets (`litebert.fetch`), as they come. The contenders are timed round-robin
(`common.interleaved_medians`), the onnxruntime ones from a thread of their own (`common.on_onnxruntime_thread`,
since 2026-12-04 afternoon). The table gives texts/s and the ratio to transformers' better pipeline. It also
gives the share of each contender's labels equal to litebert's, and the largest change of a score from
litebert's. With random weights the labels say little; benchmarks/bench_int8_accuracy.py measures int8 on a
trained model. The one-off ONNX exports are timed apart; they are cached, so a second pipeline of the same model
starts at once.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_pipelines.py            # 10-17 min on 2 cores
    PYTHONPATH=src .venv/bin/python benchmarks/bench_pipelines.py --texts 64 --repeats 1 --output /tmp/x.json
Writes benchmarks/results/pipelines_<cpu>.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_tag, format_table, interleaved_medians, machine_info, on_onnxruntime_thread, set_threads, \
    use_run_allocator, write_json  # noqa: E402

from litebert import AlbertConfig, AlbertForSequenceClassification  # noqa: E402
from litebert.fetch import fetch_movie_reviews, fetch_wikipedia  # noqa: E402
from litebert.pipelines import pipeline  # noqa: E402
from litebert.tokenizer import AlbertTokenizer, train_sentencepiece  # noqa: E402

SOURCES = {"movie reviews": "movieReviewSnippets_GroundTruth.txt",
           "NYT editorials": "nytEditorialSnippets_GroundTruth.txt"}
REFERENCE = "litebert"


def snippets(name: str, count: int) -> list[str]:
    """The first `count` texts of a VADER ground-truth file (id <TAB> score <TAB> text lines)."""
    lines = (fetch_movie_reviews().parent / SOURCES[name]).read_text(encoding="utf-8", errors="replace").splitlines()
    texts = [line.split("\t")[2].strip() for line in lines if line.count("\t") >= 2]
    return [t for t in texts if t][:count]


def make_model(workdir: Path, vocab_size: int, preset: str) -> Path:
    """A random-weight classifier of `preset`'s shape with a tokenizer trained on Wikipedia, saved in `workdir`."""
    train_sentencepiece([fetch_wikipedia()], workdir / "tok", vocab_size=vocab_size, num_threads=2)
    tokenizer = AlbertTokenizer.from_pretrained(workdir / "tok")
    config = AlbertConfig.preset(preset, vocab_size=tokenizer.vocab_size, num_labels=2,
                                 id2label={0: "negative", 1: "positive"})
    torch.manual_seed(0)
    model_dir = workdir / "model"
    AlbertForSequenceClassification(config).eval().save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return model_dir


def contenders(model_dir: Path, batch: int) -> tuple[dict[str, Callable[[list[str]], list]], dict[str, float], object]:
    """Each contender as texts -> [{"label", "score"}], the seconds each took to be built (exports), and
    transformers' tokenizer (its fast one, what its pipeline loads)."""
    import transformers

    built, setup = {}, {}
    for dtype in ("fp32", "bf16"):
        start = time.perf_counter()
        hf = transformers.pipeline("text-classification", model=str(model_dir), device="cpu", batch_size=batch,
                                   dtype=torch.float32 if dtype == "fp32" else torch.bfloat16)
        built[f"transformers {dtype}"], setup[f"transformers {dtype}"] = hf, time.perf_counter() - start
    ours = pipeline("text-classification", model_dir, device="cpu", batch_size=batch)
    built["litebert, input order"] = lambda texts: [r for i in range(0, len(texts), batch)
                                                    for r in ours(texts[i:i + batch])]
    built[REFERENCE] = ours
    for backend in ("torch-int8", "onnxruntime", "onnxruntime-int8"):
        start = time.perf_counter()
        made = pipeline("text-classification", model_dir, batch_size=batch, backend=backend)
        built[f"litebert {backend}"] = on_onnxruntime_thread(made) if backend.startswith("onnxruntime") else made
        setup[f"litebert {backend}"] = time.perf_counter() - start
    print(f"litebert backend torch in {'bf16' if ours.bf16 else 'fp32'} (litebert.calibrate); tokenizer of "
          f"transformers: {type(built['transformers fp32'].tokenizer).__name__}", flush=True)
    runs = {name: (lambda texts, run=run: run(list(texts))) for name, run in built.items()}
    return runs, setup, built["transformers fp32"].tokenizer


def run_source(name: str, texts: list[str], runs: dict[str, Callable], repeats: int) -> list[dict]:
    """One row per contender: texts/s (median of interleaved rounds; the first round is each one's warm-up)."""
    results = {n: run(texts) for n, run in runs.items()}
    reference = results[REFERENCE]
    seconds = interleaved_medians({n: (lambda run=run: run(texts)) for n, run in runs.items()}, warmup=0,
                                  repeats=repeats)
    best_hf = max(len(texts) / seconds[n] for n in runs if n.startswith("transformers"))
    return [{"texts": name, "contender": n, "texts_per_s": len(texts) / seconds[n],
             "x_best_transformers": len(texts) / seconds[n] / best_hf,
             "label_agreement": float(np.mean([a["label"] == b["label"] for a, b in zip(results[n], reference)])),
             "max_abs_score_diff": max(abs(a["score"] - b["score"]) for a, b in zip(results[n], reference))}
            for n in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=256, help="texts per source (default 256)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (default 3)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--preset", default="albert-base-v2")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--output", help=f"JSON path (default results/pipelines_{cpu_tag()}.json)")
    args = parser.parse_args()
    use_run_allocator()
    threads = set_threads(args.threads)
    os.environ.setdefault("LITEBERT_ONNX_DIR", tempfile.mkdtemp(prefix="bench-onnx-"))  # exports time afresh
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_model(Path(tmp), args.vocab_size, args.preset)
        runs, setup, hf_tokenizer = contenders(model_dir, args.batch_size)
        tokenizer = AlbertTokenizer.from_pretrained(model_dir)
        rows = []
        for source in SOURCES:
            texts = snippets(source, args.texts)
            ids = tokenizer(texts, padding=False, return_tensors=None)["input_ids"]
            theirs = hf_tokenizer(texts)["input_ids"]
            differ = sum(a != b for a, b in zip(ids, theirs))
            lengths = [len(x) for x in ids]
            print(f"{source}: {len(texts)} texts, {np.mean(lengths):.1f} pieces on average, longest {max(lengths)}; "
                  f"transformers' tokenizer gives other ids than litebert's (the official algorithm) for {differ}",
                  flush=True)
            rows += [{**row, "hf_ids_differ": differ} for row in run_source(source, texts, runs, args.repeats)]
    print(format_table(["texts", "contender", "texts/s", "x best transformers", "labels = litebert",
                        "max |d score|"],
                       [[r["texts"], r["contender"], f"{r['texts_per_s']:.1f}", f"{r['x_best_transformers']:.2f}",
                         f"{r['label_agreement']:.3f}", f"{r['max_abs_score_diff']:.1e}"] for r in rows]))
    print("set-up seconds (transformers: loading; litebert torch-int8: loading and quantising; onnxruntime: "
          "loading, the export and its parity check): "
          + ", ".join(f"{n} {s:.1f}" for n, s in setup.items()))
    path = write_json({"machine": machine_info(threads=threads), "settings": vars(args), "setup_seconds": setup,
                       "rows": rows}, args.output or f"pipelines_{cpu_tag()}.json")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
