"""The single-kernel facts behind litebert's CPU fast paths (the numbers model.py's comments cite).

  - GELU in bf16: the tanh form (ALBERT's "gelu_new") vs the erf form, forward and backward, on an
    albert-base FFN activation (B x T x 3072).
  - SDPA forward + backward per layer (8 x 12 heads x 64), bf16 vs fp32 (inputs cast up, as
    `litebert.model.attention` does), with and without an additive padding mask, at T = 128, 256, 512: where
    CPU_FAST_PATHS.fp32_attention_backward_max_len's default comes from.
  - bf16 matmul rate of x (M, 768) @ W^T for output widths 768 (Q, K, V apart), 2304 (fused Q/K/V) and 3072
    (FFN in), at M = 1024 rows (8 x 128 tokens) and 4096 (8 x 512).
Variants of one measurement are timed round-robin (common.interleaved_medians).

    PYTHONPATH=src .venv/bin/python benchmarks/cpu_kernels.py [--repeats 9] [--threads N]   # ~1 min
Writes benchmarks/results/cpu_kernels.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import format_table, interleaved_medians, machine_info, set_threads, write_json  # noqa: E402

BF16 = torch.bfloat16


def gelu_rows(repeats: int) -> list[dict]:
    """ms per call of each GELU form on (8, 128, 3072) bf16, forward and backward."""
    x = torch.randn(8, 128, 3072).to(BF16)
    grad = torch.randn_like(x)
    fns = {
        "tanh forward": lambda: F.gelu(x, approximate="tanh"),
        "erf forward": lambda: F.gelu(x),
        "tanh backward": lambda: torch.ops.aten.gelu_backward(grad, x, approximate="tanh"),
        "erf backward": lambda: torch.ops.aten.gelu_backward(grad, x),
    }
    seconds = interleaved_medians(fns, warmup=2, repeats=repeats)
    return [{"kernel": "gelu bf16 (8, 128, 3072)", "variant": k, "ms": s * 1e3} for k, s in seconds.items()]


def attention_step(T: int, dtype: torch.dtype, masked: bool):
    """Forward + backward of SDPA on (8, 12, T, 64) bf16 leaves, computed in `dtype`."""
    q, k, v = (torch.randn(8, 12, T, 64).to(BF16).requires_grad_() for _ in range(3))
    keep = torch.ones(8, T)
    keep[0, T // 2:] = 0  # one padded row
    mask = ((1 - keep) * torch.finfo(BF16).min)[:, None, None, :].to(dtype) if masked else None
    grad = torch.randn(8, 12, T, 64).to(BF16)

    def run():
        out = F.scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype), attn_mask=mask)
        out.to(BF16).backward(grad)
    return run


def attention_rows(repeats: int) -> list[dict]:
    rows = []
    for T in (128, 256, 512):
        fns = {f"{name} {'masked' if masked else 'unmasked'}": attention_step(T, dtype, masked)
               for name, dtype in (("bf16", BF16), ("fp32", torch.float32)) for masked in (True, False)}
        seconds = interleaved_medians(fns, warmup=2, repeats=repeats)
        rows += [{"kernel": f"sdpa fwd+bwd T={T}", "variant": k, "ms": s * 1e3} for k, s in seconds.items()]
    return rows


def matmul_rows(repeats: int) -> list[dict]:
    rows = []
    for M in (1024, 4096):
        x = torch.randn(M, 768).to(BF16)
        weights = {N: torch.randn(N, 768).to(BF16) for N in (768, 2304, 3072)}
        fns = {f"width {N}": (lambda w=w: x @ w.t()) for N, w in weights.items()}
        seconds = interleaved_medians(fns, warmup=2, repeats=repeats)
        for (N, _), (name, s) in zip(weights.items(), seconds.items()):
            rows.append({"kernel": f"bf16 matmul M={M} K=768", "variant": name, "ms": s * 1e3,
                         "tflops": 2 * M * 768 * N / s / 1e12})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)
    start = time.perf_counter()
    rows = gelu_rows(args.repeats) + attention_rows(args.repeats) + matmul_rows(args.repeats)
    print(format_table(["kernel", "variant", "ms", "TFLOP/s"],
                       [[r["kernel"], r["variant"], r["ms"], r.get("tflops", "")] for r in rows]))
    path = write_json({"rows": rows, "machine": machine_info(threads=threads),
                       "wall_s": time.perf_counter() - start}, "cpu_kernels.json")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
