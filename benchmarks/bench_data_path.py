"""Does the pretraining data path keep up with the step? The demo's training step with and without its loader.

Builds the demo's data once (Wikipedia lead paragraphs of DATA.md, 8k SentencePiece, seq 64, whole-word 3-gram
dynamic masking: `litebert.demo`'s own data options; cached under --work), then times, round-robin:
  - data only: drawing one micro-batch (64 examples: shard read, dynamic masks, collation);
  - step only: forward + backward + AdamW on one batch drawn in advance (the demo's model, the measured precision);
  - step + data: drawing the batch inline, as `pretrain.micro_batches` does without prefetching;
  - step + prefetched data: the batch drawn by `pretrain.Prefetcher`'s background thread while the step runs.
"share" is the data's time over the inline step's.

With --loop-seconds S it also runs the real loop (`pretrain.run` with the demo's pretraining config, an
S-second budget) with --data.prefetch 0 and 2, alternating, --loop-rounds times each, and reports steps/s:
the thread's worth with everything else the loop does (logging, evaluation, the optimizer) in place.

    .venv/bin/python benchmarks/bench_data_path.py [--steps 30] [--work /tmp/litebert-bench-data]
        [--loop-seconds 45 --loop-rounds 2]
Writes benchmarks/results/data_path_<cpu kind>.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_tag, format_table, machine_info, set_threads, use_run_allocator, write_json  # noqa: E402
from litebert import calibrate  # noqa: E402
from litebert import pretrain as P  # noqa: E402
from litebert.config import AlbertConfig, DemoConfig  # noqa: E402
from litebert.data.dataset import PretrainingDataset  # noqa: E402
from litebert.demo import data_options, model_overrides  # noqa: E402
from litebert.fetch import fetch_wikipedia  # noqa: E402
from litebert.model import AlbertForPreTraining  # noqa: E402


def demo_data(work: Path, cfg: DemoConfig) -> Path:
    """The demo's tokenizer and data on the Wikipedia text (made once)."""
    from litebert.data.create import create_pretraining_data
    from litebert.tokenizer import train_sentencepiece

    data = work / "data"
    if (data / "manifest.json").exists():
        return data
    text = Path(fetch_wikipedia())
    text_dir = text if text.is_dir() else text.parent
    train_sentencepiece([text_dir], work / "tok", vocab_size=cfg.vocab_size, num_threads=2)
    create_pretraining_data([text_dir], work / "tok", data, dataclasses.replace(data_options(cfg), workers=2))
    return data


def loop_rates(work: Path, cfg: DemoConfig, seconds: float, rounds: int) -> dict[str, list[float]]:
    """Steps/s of the demo's pretraining loop, prefetch 0 and 2 alternating, `rounds` runs of `seconds` each."""
    import shutil

    from litebert.demo import pretrain_config

    rates: dict[str, list[float]] = {"inline": [], "prefetch 2": []}
    for _ in range(rounds):
        for name, depth in (("inline", 0), ("prefetch 2", 2)):
            out = work / "loop" / name.replace(" ", "-")
            shutil.rmtree(out, ignore_errors=True)
            config = pretrain_config(cfg, work / "data", work / "tok", None, out)
            config.schedule.budget_s, config.train.progress, config.data.prefetch = seconds, False, depth
            summary = P.run(config)
            rates[name].append(summary["steps"] / summary["time_s"])
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--work", default="/tmp/litebert-bench-data")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--loop-seconds", type=float, help="also time the real pretraining loop (see above)")
    parser.add_argument("--loop-rounds", type=int, default=2)
    args = parser.parse_args(argv)
    use_run_allocator()
    n_threads = set_threads(args.threads)
    cfg = DemoConfig()
    data_dir = demo_data(Path(args.work), cfg)
    dataset = PretrainingDataset(data_dir, "train", seed=1)
    collate = dataset.collator()
    config = AlbertConfig.preset(cfg.preset, **model_overrides(cfg))
    precision = calibrate.precision_choice("cpu", cfg.bf16, config, cfg.micro_batch, cfg.seq_length)
    calibrate.apply_choice(precision)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision["bf16"] else nullcontext()
    torch.manual_seed(0)
    model = AlbertForPreTraining(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    forward = P.step_forward(torch.device("cpu"))

    def step(batch: dict) -> None:
        with autocast:
            loss, _ = forward(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    inline = P.micro_batches(dataset, cfg.micro_batch, collate)
    other = PretrainingDataset(data_dir, "train", seed=2)
    prefetched = P.Prefetcher(P.micro_batches(other, cfg.micro_batch, collate), other.state_dict)
    fixed = next(inline)
    fns = {"data only": lambda: next(inline), "step only": lambda: step(fixed),
           "step + data": lambda: step(next(inline)), "step + prefetched data": lambda: step(next(prefetched))}
    times = {name: [] for name in fns}
    for name, fn in fns.items():  # warm-up
        fn()
    for _ in range(args.steps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    prefetched.close()
    med = {name: statistics.median(ts) for name, ts in times.items()}
    rows = [[name, round(s * 1e3, 1), f"{s / med['step + data']:.0%}"] for name, s in med.items()]
    print(f"demo step, {cfg.micro_batch}x{cfg.seq_length}, {'bf16' if precision['bf16'] else 'fp32'}, "
          f"{n_threads} threads")
    print(format_table(["what", "ms (median)", "of step + data"], rows))
    loop = loop_rates(Path(args.work), cfg, args.loop_seconds, args.loop_rounds) if args.loop_seconds else {}
    for name, rates in loop.items():
        print(f"pretraining loop, {name}: " + ", ".join(f"{r:.2f}" for r in rates) + " steps/s")
    path = write_json({"machine": machine_info(threads=n_threads, repeats=args.steps), "precision": precision,
                       "median_ms": {k: v * 1e3 for k, v in med.items()}, "loop_steps_per_s": loop},
                      f"data_path_{cpu_tag()}.json")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
