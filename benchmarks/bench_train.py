"""Training throughput: litebert's AlbertForPreTraining vs transformers' in the same process.

One training step = forward + backward + AdamW update, same config, batch, sequence length and dtype (fp32, or
bf16 autocast over fp32 weights). The losses differ by design: Hugging Face's model takes labels over all T
positions (-100 where nothing is masked) and so builds (B, T, V) logits; litebert takes the masked positions
(B, P) and runs the MLM head on those only. That is litebert's advantage and the reason for part of the ratio.

Timings interleave the two models step by step and report the median, which blunts other load on the machine.

Model FLOP utilisation (MFU) = model FLOPs per step / step time / this machine's dense matmul rate in the
step's dtype (bf16 or fp32), measured once per run with `common.matmul_tflops`. Model FLOPs are counted
analytically, forward x 3 for forward + backward: per applied layer (config.depth of them)
2*B*T*(4*H^2 + 2*H*I) for the linear layers plus 4*B*T^2*H for attention scores and context; the embedding
projection 2*B*T*E*H when E != H; and the MLM head over the P masked positions only, 2*B*P*(H*E + E*V). Both
implementations are credited with the SAME useful FLOPs: Hugging Face's head over all T positions does work the
loss does not need, and that extra work is not counted (so its MFU is lower where it wastes time there).
Elementwise ops, layer norms, softmax, the SOP head and the optimizer are not counted.

    python benchmarks/bench_train.py [--presets albert-tiny albert-base-v2] [--shapes 8x128 2x512] [--steps 4]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import matmul_tflops  # noqa: E402
from litebert.config import AlbertConfig  # noqa: E402
from litebert.model import AlbertForPreTraining  # noqa: E402

PREDICTIONS = 20  # max_predictions_per_seq of the ALBERT recipe


def make_batch(config: AlbertConfig, batch: int, length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, config.vocab_size, (batch, length), generator=g)
    positions = torch.stack([torch.randperm(length - 1, generator=g)[:PREDICTIONS] + 1 for _ in range(batch)])
    positions = positions.sort(-1).values  # (B, P)
    targets = torch.gather(ids, 1, positions)  # (B, P)
    full = torch.full_like(ids, -100).scatter(1, positions, targets)  # (B, T): HF's labels
    return dict(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids),
                positions=positions, targets=targets, full_labels=full,
                sop=torch.randint(0, 2, (batch,), generator=g))


def ours_step(model, b):
    return model(b["input_ids"], b["attention_mask"], b["token_type_ids"], labels=b["targets"],
                 sentence_order_label=b["sop"], masked_lm_positions=b["positions"]).loss


def hf_step(model, b):
    return model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], token_type_ids=b["token_type_ids"],
                 labels=b["full_labels"], sentence_order_label=b["sop"]).loss


def train_flops(config: AlbertConfig, batch: int, length: int, predictions: int = PREDICTIONS) -> float:
    """Useful model FLOPs of one training step (3 x forward), the same for both implementations."""
    B, T, P = batch, length, predictions
    H, I, E, V = config.hidden_size, config.intermediate_size, config.embedding_size, config.vocab_size
    layer = 2 * B * T * (4 * H * H + 2 * H * I) + 4 * B * T * T * H
    forward = config.depth * layer
    if E != H:
        forward += 2 * B * T * E * H
    forward += 2 * B * P * (H * E + E * V)  # MLM head on the masked positions only
    return 3.0 * forward


def bench(preset: str, batch: int, length: int, bf16: bool, steps: int) -> dict:
    from transformers import AlbertConfig as HFConfig
    from transformers import AlbertForPreTraining as HFAlbert

    config = AlbertConfig.preset(preset)
    torch.manual_seed(0)
    ours = AlbertForPreTraining(config).train()
    hf_config = HFConfig(**{k: v for k, v in config.to_dict().items() if k in HFConfig().to_dict()})
    hf = HFAlbert(hf_config).train()
    b = make_batch(config, batch, length)
    runs = {"litebert": (ours, ours_step), "transformers": (hf, hf_step)}
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-5) for name, (m, _) in runs.items()}
    times: dict[str, list[float]] = {name: [] for name in runs}
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    for i in range(steps + 1):  # the first step of each is warm-up
        for name, (model, step) in runs.items():
            t0 = time.perf_counter()
            with autocast:
                loss = step(model, b)
            loss.backward()
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)
            if i:
                times[name].append(time.perf_counter() - t0)
    tokens = batch * length
    out = {"preset": preset, "batch": batch, "seq_length": length, "dtype": "bf16-autocast" if bf16 else "fp32"}
    for name, ts in times.items():
        out[f"{name}_tokens_per_s"] = tokens / statistics.median(ts)
        out[f"{name}_step_s"] = statistics.median(ts)
    out["flops_per_step"] = train_flops(config, batch, length)
    out["ratio"] = out["litebert_tokens_per_s"] / out["transformers_tokens_per_s"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["albert-tiny", "albert-base-v2"])
    parser.add_argument("--shapes", nargs="+", default=["8x128", "2x512"], help="BATCHxLENGTH")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per model (after one warm-up step)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "train.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    n = 2048
    peak = {"fp32": matmul_tflops(torch.float32, n=n, repeats=3),
            "bf16-autocast": matmul_tflops(torch.bfloat16, n=n, repeats=3)}
    print(f"matmul {n}x{n}: fp32 {peak['fp32']:.3g} TFLOP/s, bf16 {peak['bf16-autocast']:.3g} TFLOP/s")
    rows = []
    header = (f"{'preset':<16}{'shape':>8}{'dtype':>15}{'litebert tok/s':>16}{'HF tok/s':>12}{'ratio':>8}"
              f"{'lb mfu':>8}{'HF mfu':>8}")
    print(header)
    print("-" * len(header))
    for preset in args.presets:
        for shape in args.shapes:
            batch, length = map(int, shape.split("x"))
            for bf16 in (False, True):
                r = bench(preset, batch, length, bf16, args.steps)
                rate = peak[r["dtype"]] * 1e12
                for name in ("litebert", "transformers"):
                    r[f"{name}_mfu"] = r["flops_per_step"] / r[f"{name}_step_s"] / rate
                rows.append(r)
                print(f"{preset:<16}{shape:>8}{r['dtype']:>15}{r['litebert_tokens_per_s']:>16.0f}"
                      f"{r['transformers_tokens_per_s']:>12.0f}{r['ratio']:>7.2f}x"
                      f"{r['litebert_mfu']:>8.1%}{r['transformers_mfu']:>8.1%}", flush=True)
    import transformers

    result = {"what": "training step (forward + backward + AdamW), median tokens/s; HF loss over (B, T) labels, "
                      f"litebert over (B, P={PREDICTIONS}) masked positions; mfu = useful model FLOPs per step "
                      "(3 x analytic forward, MLM head over the masked positions for both) / step time / "
                      "matmul_tflops of the step's dtype",
              "matmul_tflops": {"fp32": peak["fp32"], "bf16": peak["bf16-autocast"], "n": n},
              "torch": torch.__version__, "transformers": transformers.__version__,
              "machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
              "rows": rows}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
