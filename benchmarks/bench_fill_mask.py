"""fill-mask's MLM head at the mask only: `AlbertForMaskedLM` with `masked_lm_positions` (what the fill-mask
pipeline runs) against the head over every position (what it ran before, and what transformers' runs), on the same
weights and batch; the logits at the mask are checked to agree. A small model spends more in the (E, V) decoder
than in its encoder, so the gain depends on the shape: ALBERT-base and the demo's model are timed.

    python benchmarks/bench_fill_mask.py [--batch 32] [--length 40] [--repeats 7] [--threads N]
About a minute on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import model_config  # noqa: E402
from common import cpu_tag, format_table, interleaved_medians, machine_info, set_threads, write_json  # noqa: E402
from litebert.model import AlbertForMaskedLM  # noqa: E402


def bench(preset: str, batch: int, length: int, repeats: int) -> dict:
    config = model_config(preset)
    torch.manual_seed(0)
    model = AlbertForMaskedLM(config).eval()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, config.vocab_size, (batch, length), generator=g)
    positions = torch.randint(1, length - 1, (batch, 1), generator=g)  # one mask per row

    def every_position():
        return model(ids).logits[torch.arange(batch), positions[:, 0]]  # (B, V) of (B, T, V)

    def mask_only():
        return model(ids, masked_lm_positions=positions).logits[:, 0]  # (B, V) of (B, 1, V)

    with torch.inference_mode():
        max_diff = (every_position() - mask_only()).abs().max().item()
        seconds = interleaved_medians({"every position": every_position, "mask only": mask_only}, repeats=repeats)
    return {"preset": preset, "batch": batch, "length": length, "max_abs_diff": max_diff,
            "every_position_s": seconds["every position"], "mask_only_s": seconds["mask only"],
            "speedup": seconds["every position"] / seconds["mask only"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["albert-base-v2", "demo"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--output", help="results file name (default fill_mask_<cpu>.json)")
    args = ap.parse_args(argv)
    threads = set_threads(args.threads)
    results = [bench(p, args.batch, args.length, args.repeats) for p in args.presets]
    print(format_table(["preset", "shape", "every position ms", "mask only ms", "speedup", "max |diff|"],
                       [[r["preset"], f"{r['batch']}x{r['length']}", 1e3 * r["every_position_s"],
                         1e3 * r["mask_only_s"], r["speedup"], r["max_abs_diff"]] for r in results]))
    path = write_json({"machine": machine_info(threads=threads), "results": results},
                      args.output or f"fill_mask_{cpu_tag()}.json")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
