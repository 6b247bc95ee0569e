"""What packed dropout is worth on this CPU: training steps of models that use dropout, with
`CPU_FAST_PATHS.packed_dropout` on (dropout masks drawn four decisions per 64-bit random word, attention under
dropout as batched matmuls: `kernels.dropout_mask`, `kernels.dropout_attention`) and off (torch's dropout, and SDPA
with its dropout), on identical copies of the model and batch, interleaved step by step, medians.

Cases (each model's own dropout, 0.1 on hidden states and attention probabilities):

    albert-base-v1 8x128, 8x512    pretraining step (AlbertForPreTraining, MLM at 20 positions + SOP), AdamW
    minilm 32x32                   fine-tuning step (sequence classification) of a MiniLM-L6-shaped BERT (H=384,
                                   6 layers, 12 heads), the shape of the demo's MiniLM arm, AdamW

Each runs in the precision `litebert.calibrate` picks for it on this machine, with its fast paths, as `litebert
pretrain` / `finetune` would.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_dropout.py [--cases base-v1-8x128 minilm-32x32] [--steps 5]
Writes benchmarks/results/dropout_<cpu kind>.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import HEADS, make_batch  # noqa: E402
from common import cpu_tag, format_table, interleaved_medians, machine_info, set_threads, use_run_allocator, \
    write_json  # noqa: E402

from litebert import calibrate  # noqa: E402
from litebert.config import AlbertConfig  # noqa: E402
from litebert.optim import OptimConfig, build_optimizer  # noqa: E402

MINILM = dict(hidden_size=384, embedding_size=384, num_hidden_layers=6, num_attention_heads=12,
              intermediate_size=1536, num_labels=2)
CASES = {  # name -> (preset, overrides, head, batch, length)
    "base-v1-8x128": ("albert-base-v1", {}, "pretraining", 8, 128),
    "base-v1-8x512": ("albert-base-v1", {}, "pretraining", 8, 512),
    "minilm-32x32": ("bert-base", MINILM, "classification", 32, 32),
}


def step_fn(config: AlbertConfig, head: str, batch: dict, bf16: bool, packed: bool):
    """One training step of a fresh copy of the model (seeded: every copy starts equal), the switch set per call."""
    torch.manual_seed(0)
    model, forward = HEADS[head].ours(config).train(), HEADS[head].ours_step
    optimizer = build_optimizer(model, OptimConfig(name="adamw"))

    def step() -> None:
        with calibrate.fast_paths(packed_dropout=packed):  # the forward draws the masks; backward replays them
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                loss = forward(model, batch)
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--steps", type=int, default=5, help="timed steps of each variant (after 1 warm-up)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--output", help="file name under benchmarks/results/, or a path (default dropout_<cpu>.json)")
    args = parser.parse_args(argv)
    use_run_allocator()
    threads = set_threads(args.threads)
    rows = []
    for name in args.cases:
        preset, overrides, head, batch, length = CASES[name]
        config = AlbertConfig.preset(preset, **overrides)
        bf16, chosen = calibrate.resolve_bf16("cpu", None, config, batch, length, "train")
        b = make_batch(config, batch, length)
        with calibrate.fast_paths():  # the calibration's fast paths for this case only
            if chosen is not None:
                chosen.apply()
            medians = interleaved_medians({packed: step_fn(config, head, b, bf16, packed) for packed in (True, False)},
                                          warmup=1, repeats=args.steps)
        rows.append({"case": name, "preset": preset, "head": head, "batch": batch, "length": length,
                     "precision": "bf16" if bf16 else "fp32", "packed_s": medians[True], "torch_s": medians[False],
                     "speedup": medians[False] / medians[True],
                     "fast_paths": chosen.describe() if chosen is not None else "defaults"})
        print(f"{name}: {rows[-1]['precision']}, packed {medians[True]:.3f} s, torch's {medians[False]:.3f} s",
              flush=True)
    print(format_table(["case", "precision", "packed s", "torch's s", "x"],
                       [[r["case"], r["precision"], round(r["packed_s"], 3), round(r["torch_s"], 3),
                         f"{r['speedup']:.2f}"] for r in rows]))
    path = write_json({"machine": machine_info(threads=threads), "steps": args.steps, "rows": rows,
                       "what": "training step (forward + backward + AdamW) with packed dropout on and off, median s"},
                      args.output or f"dropout_{cpu_tag()}.json")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
