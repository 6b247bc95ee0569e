"""Training throughput of padding-aware batching on the real movie-review sentences.

Runs the real fine-tuning loop (`litebert.finetune.train.finetune`) for `--steps` steps in three modes and
reports training examples/s (evaluation excluded):
    fixed-512   every batch padded to 512 tokens (the official GLUE scripts' length)
    fixed-128   every batch padded to 128
    bucket      length-bucketed batches, each padded to its longest row (rounded up to 8), max 512
The modes alternate over `--rounds` rounds and each mode's best round is reported (as `timeit` advises:
on a shared machine other processes only ever slow a run down, and unevenly); every round's number and
the load averages are recorded too.
Prints a table and writes benchmarks/results/finetune_batching.json.

    PYTHONPATH=src python benchmarks/bench_finetune_batching.py --steps 200 --model albert-tiny
"""
from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np
import torch

from litebert.config import AlbertConfig
from litebert.fetch import fetch_minilm, fetch_movie_reviews
from litebert.finetune.tasks import get_task
from litebert.finetune.train import FinetuneConfig, TaskData, encode_split, finetune, load_task_data
from litebert.tokenizer import AlbertTokenizer

MODES = (("fixed-512", "fixed", 512), ("fixed-128", "fixed", 128), ("bucket", "bucket", 512))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="albert-tiny", help="preset (random init: speed does not depend on weights)")
    parser.add_argument("--steps", type=int, default=200, help="steps per mode and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--tokenizer", help="tokenizer directory (default: MiniLM's 30k WordPiece vocabulary)")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "finetune_batching.json"))
    args = parser.parse_args()

    tokenizer = AlbertTokenizer.from_pretrained(args.tokenizer or fetch_minilm())
    full = load_task_data("movie-reviews", fetch_movie_reviews().parent)
    # A small selection slice: the loop evaluates once at the end, and that time is not what is measured.
    data = TaskData(full.task, full.train, full.selection[:64], "dev", reported={})
    config = FinetuneConfig(max_seq_length=512)
    lengths = encode_split(get_task("movie-reviews"), data.train, tokenizer, 512, config).lengths
    model = AlbertConfig.preset(args.model, vocab_size=tokenizer.vocab_size)

    runs: dict[str, list[float]] = {name: [] for name, _, _ in MODES}
    load = [os.getloadavg()[0]]
    for round_index in range(args.rounds):
        for name, padding, length in MODES:
            run = FinetuneConfig(learning_rate=1e-4, batch_size=args.batch_size, max_seq_length=length,
                                 max_steps=args.steps, warmup_steps=0, eval_every=args.steps, bf16=args.bf16,
                                 padding=padding)
            result = finetune("movie-reviews", model, tokenizer, data, run, seed=round_index)
            runs[name].append(result.train_examples_per_s)
            load.append(os.getloadavg()[0])
            print(f"round {round_index}: {name:>10}: {result.train_examples_per_s:8.1f} examples/s "
                  f"({result.train_seconds:.1f} s)", flush=True)
    rows = [{"mode": name, "examples_per_s": float(np.max(runs[name])), "runs": runs[name]}
            for name, _, _ in MODES]
    base = rows[0]["examples_per_s"]
    for row in rows:
        row["speedup_vs_fixed_512"] = row["examples_per_s"] / base
        row["speedup_vs_fixed_128"] = row["examples_per_s"] / rows[1]["examples_per_s"]

    print(f"\nmovie-reviews train: {len(lengths)} sentences, tokens incl. [CLS]/[SEP]: mean {lengths.mean():.1f}, "
          f"p95 {np.percentile(lengths, 95):.0f}, max {lengths.max()}")
    print(f"model {args.model}, batch {args.batch_size}, {args.steps} steps x {args.rounds} rounds per mode "
          f"(best round shown), bf16={args.bf16}, {torch.get_num_threads()} threads, load average "
          f"{min(load):.1f}..{max(load):.1f}\n")
    print(f"{'mode':>10} | {'examples/s':>10} | {'vs fixed-512':>12} | {'vs fixed-128':>12}")
    for row in rows:
        print(f"{row['mode']:>10} | {row['examples_per_s']:10.1f} | {row['speedup_vs_fixed_512']:11.2f}x | "
              f"{row['speedup_vs_fixed_128']:11.2f}x")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "model": args.model, "steps": args.steps, "rounds": args.rounds, "batch_size": args.batch_size,
        "bf16": args.bf16, "load_average_1min": load,
        "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "tokenizer": str(args.tokenizer or "minilm wordpiece"),
        "lengths": {"mean": float(lengths.mean()), "p95": float(np.percentile(lengths, 95)), "max": int(lengths.max())},
        "results": rows,
    }, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
