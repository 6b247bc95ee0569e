"""How the model's heavy operations run: attention, the projections' matmuls, dropout and the GELU, with the CPU
fast paths that make them faster on the machine at hand.

`litebert.model` says what ALBERT computes; this module says how. Each fast path is a switch of CPU_FAST_PATHS
(CpuFastPaths), which `litebert.calibrate` sets from measurements on the machine a run is on, and each is worth
measured in benchmarks/levers.py:
- `gelu_tanh`: the erf GELU for bf16 on a CPU;
- `attention`: for short bf16 sequences, a backward of plain matmuls (MatmulBackwardAttention) or SDPA in fp32,
  batched matmuls for a bf16 forward without a gradient, and attention dropout through `dropout_mask`;
- `Projection`: a shared layer's weight gradient summed in place over the layers (Linear, SharedGrad),
  `matmul`'s row blocks for the shapes oneDNN runs slowly whole, biases and, without a gradient, the FFN's GELU
  applied by oneDNN as it writes a matmul's output, and weights packed into oneDNN's layout (packed_projection,
  keep_packed_weights);
- `Dropout`: four decisions from each 64-bit random word (dropout_mask).
None changes what is computed beyond rounding (packed dropout changes which elements are dropped, not their law).
GPUs and torch.compile take torch's own ops.

Shapes: B batch, T sequence length, H hidden size, nh heads, hs head size, N rows of a matmul.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.weak import WeakIdKeyDictionary


# ---------------------------------------------------------------------------------------------- the switches
@dataclass
class CpuFastPaths:
    """Switches of the CPU-only fast paths below (bf16 and fp32). The defaults are what an AMX Xeon measured;
    `litebert.calibrate` sets them from measurements on the machine a run is on (written to the run's log), as
    `torch.backends` flags are set from outside. They change speed only, never what is computed beyond bf16
    rounding (and, with packed_dropout, which elements dropout draws: not their law)."""

    erf_gelu_bf16: bool = True
    """bf16 `gelu_new` on CPU runs the exact (erf) GELU (see gelu_tanh)."""
    attention_backward: str = "matmul"
    """How bf16 attention that will be differentiated runs up to `attention_backward_max_len` (see attention):
    "matmul" (SDPA forward, a backward of bf16 matmuls), "kept" (a forward of bf16 matmuls that keeps its (T, T)
    probabilities for that backward), "fp32" (SDPA in fp32) or "sdpa" (SDPA's own bf16)."""
    attention_backward_max_len: int = 512
    """Longer sequences take SDPA's own bf16 backward (the matmul backward's transient (B, nh, T, T) tensors grow
    as T^2), and SDPA's forward without a gradient; a calibration sets it to the length it measured."""
    attention_forward: str = "sdpa"
    """How bf16 attention with no gradient to take runs up to `attention_backward_max_len` (see attention):
    "sdpa", or "matmul" (batched bf16 matmuls and a softmax, the forward of "kept"); an inference calibration
    sets it."""
    shared_weight_grad: bool = True
    """A projection that several layers share sums its weight gradient in place (see Linear)."""
    attention_block_heads: int = 0
    """Heads per block of the matmul attention backward (0: all at once; see MatmulBackwardAttention); a
    calibration sets it."""
    row_chunks: dict[str, int] = field(default_factory=dict)
    """Rows per block of the matmuls that run faster in blocks (see matmul), by matmul_key; empty until
    `litebert.calibrate` measures the run's shapes on its machine."""
    weight_grads: dict[str, str] = field(default_factory=dict)
    """How the weight gradient of a projection runs (see SharedGrad), by the matmul_key of its forward: one of
    WEIGHT_GRADS; empty (gy^T @ x, as autograd does) until `litebert.calibrate` measures the run's shapes."""
    bias_epilogues: dict[str, bool] = field(default_factory=dict)
    """Projection matmuls, by matmul_key, whose bias oneDNN adds as it writes the output (see matmul); empty
    until `litebert.calibrate` measures the run's shapes."""
    packed_dropout: bool = True
    """Dropout in training on a CPU draws four decisions from each 64-bit random word (see dropout_mask), and
    attention under dropout runs as batched matmuls with that mask (see dropout_attention): the same distribution
    as torch's dropout (p rounded to 1/65536), other draws. A rule for every CPU, not a calibration: it draws a
    quarter of the random words, and computes attention in the run's precision where SDPA's dropout kernel works in
    fp32 (an albert-base-v1 training step 1.17x / 1.43x faster at 8x128 / 8x512 on an AMD EPYC,
    benchmarks/bench_dropout.py)."""
    gelu_epilogues: dict[str, bool] = field(default_factory=dict)
    """FFN input projections, by gelu_key (at any row count), whose bias and GELU oneDNN applies as it writes the
    output when no gradient is taken (see Projection.activated); empty until `litebert.calibrate` measures the
    run's shapes."""
    packed_weights: dict[str, int] = field(default_factory=dict)
    """Projection weights, by weight_key (at any row count), that passes without a gradient apply from a copy
    reordered into oneDNN's blocked layout (see packed_projection): the fewest layers a copy made for one pass
    must serve to pay for its packing (a copy kept across passes inside keep_packed_weights pays wherever the
    entry is not 0); empty until `litebert.calibrate` measures the run's shapes."""


ATTENTION_BACKWARDS = ("matmul", "kept", "fp32", "sdpa")
WEIGHT_GRADS = ("", "grad", "input")
"""How a projection's weight gradient gy^T x is computed: "" with gy^T as a strided view, "grad" with gy
transposed first, "input" as x^T gy with x transposed first (see SharedGrad)."""


CPU_FAST_PATHS = CpuFastPaths()


# ---------------------------------------------------------------------------------------------- GELU
def gelu_tanh(x: Tensor) -> Tensor:
    """GELU in its tanh form (ALBERT's "gelu_new"), except for bf16 on CPU, where the exact (erf) GELU runs.

    Why: on CPU, PyTorch's vectorised tanh GELU is ~5x slower than its erf GELU (albert-base FFN, 8x128 bf16:
    3.1 vs 0.63 ms forward, 3.3 vs 1.3 ms backward, benchmarks/cpu_kernels.py; the tanh form costs 17-18% of
    an inference pass, benchmarks/levers.py). The tanh form only approximates the erf one; the
    two differ by at most 4.8e-4 (at x = 2.70, where rounding to bf16 alone errs by up to 7.8e-3), so in
    bf16 they give the same number for 97.6% of the bf16 inputs in (-8, 8) and never differ by more than
    4.8e-4 plus rounding (tests/test_model_fast_paths.py). fp32, fp16 and CUDA keep the tanh form exactly.
    hidden_act="gelu_pytorch_tanh" (Hugging Face's name for the same function) keeps it in bf16 on CPU too.
    """
    if x.dtype == torch.bfloat16 and x.device.type == "cpu" and CPU_FAST_PATHS.erf_gelu_bf16:
        return F.gelu(x)
    return F.gelu(x, approximate="tanh")


def gelu_pytorch_tanh(x: Tensor) -> Tensor:
    """GELU in its tanh form everywhere (slow in bf16 on CPU; see gelu_tanh)."""
    return F.gelu(x, approximate="tanh")


def gelu_form(act: Callable[[Tensor], Tensor], dtype: torch.dtype) -> str | None:
    """Which GELU `act` computes on a CPU tensor of `dtype`: "tanh" or "erf"; None where `act` is no GELU."""
    if act is gelu_tanh:
        return "erf" if dtype == torch.bfloat16 and CPU_FAST_PATHS.erf_gelu_bf16 else "tanh"
    return {gelu_pytorch_tanh: "tanh", F.gelu: "erf"}.get(act)


def gelu_key(dtype: torch.dtype, inner: int, out: int, form: str) -> str:
    """CPU_FAST_PATHS.gelu_epilogues's key of an (N, inner) @ (inner, out) matmul in `dtype`, any N, followed by the
    GELU `form` ("tanh" or "erf")."""
    return f"{str(dtype).removeprefix('torch.')} {inner}x{out} gelu {form}"


# ---------------------------------------------------------------------------------------------- attention
def split_heads(qkv: Tensor, num_heads: int) -> Tensor:
    """The fused projections (B, T, 3H) as q, k, v: a (3, B, nh, T, hs) view."""
    B, T, _ = qkv.shape
    return qkv.view(B, T, 3, num_heads, -1).permute(2, 0, 3, 1, 4)


def merge_heads(x: Tensor) -> Tensor:
    """(B, nh, T, hs) → (B, T, H); free for SDPA's outputs, which it lays out as (B, T, nh, hs)."""
    B, nh, T, hs = x.shape
    return x.transpose(1, 2).reshape(B, T, nh * hs)


def attention(qkv: Tensor, num_heads: int, mask: Tensor | None, dropout_p: float) -> Tensor:
    """Scaled dot-product attention of the fused projections qkv (B, T, 3H) → context (B, T, H); `mask` additive
    (B, 1, 1, T).

    On a CPU, SDPA's flash-attention backward is slow in bf16: on an AMX Xeon (12 heads of 64, torch 2.13, forward
    + backward per layer from the fused projections, padded) 24.5 ms at 8x128, 98 at 32x128 and 96 at 8x512;
    14.8, 68 and 139 ms with the attention upcast to fp32; 9.3, 36 and 75 ms with `MatmulBackwardAttention` on
    all heads at once (benchmarks/cpu_kernels.py).
    So bf16 attention that will be differentiated, up to CPU_FAST_PATHS.attention_backward_max_len, takes the
    backward CPU_FAST_PATHS.attention_backward names (calibrated per machine); with attention dropout, whose
    mask the matmul backward does not replay, "matmul" and "kept" fall back to "fp32" (attention dropout on a CPU
    runs as dropout_attention, unless CPU_FAST_PATHS.packed_dropout is switched off). Without a gradient,
    SDPA's bf16 forward runs at a sixth of the matmul rate on an AMD EPYC without AMX (ALBERT-base 8x512, 48 ms
    a layer; batched matmuls 29 ms, 2x faster at 8x128 too); CPU_FAST_PATHS.attention_forward says which runs.
    """
    how = cpu_attention_path(qkv, dropout_p)
    if how == "dropout":
        return dropout_attention(qkv, mask, num_heads, dropout_p)
    if how == "forward":
        return matmul_attention(qkv, mask, num_heads)[0]
    if how in ("matmul", "kept"):
        return MatmulBackwardAttention.apply(qkv, mask, num_heads, how == "kept")
    q, k, v = split_heads(qkv, num_heads)  # (B, nh, T, hs) each
    if how == "fp32":
        with torch.autocast("cpu", enabled=False):  # autocast would cast the fp32 inputs straight back to bf16
            mask = mask.float() if mask is not None else None
            ctx = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask,
                                                 dropout_p=dropout_p)
        return merge_heads(ctx.to(q.dtype))
    return merge_heads(F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p))


def attention_at(qkv: Tensor, rows: Tensor, num_heads: int, mask: Tensor | None, dropout_p: float) -> Tensor:
    """Attention of the queries at `rows` (B, R) only, over all T keys and values: qkv (B, T, 3H) → context
    (B, R, H); `mask` additive (B, 1, 1, T).

    The last layer of a model whose heads read a few positions (pretraining's masked ones and [CLS]) needs no
    other queries (see AlbertEncoder.forward). It runs as SDPA, except where `attention` would take batched
    matmuls on a CPU (cpu_attention_path: "matmul", "kept", "forward" or "dropout"): there plain autograd through
    batched matmuls and a softmax, whose (R, T) tensors are small, beats SDPA's bf16 kernels. AMD EPYC, forward +
    backward, bf16, R = 21, masked (benchmarks/cpu_kernels.py --only attention-at-rows): ALBERT-base 8x128 4.8
    against 8.8 ms, 32x128 14.2 against 31.5, 8x512 13.6 against 22.6; the demo's model (64x64, R = 11) 2.4
    against 6.8. Forward alone 1.3-1.8x faster. Attention dropout on a CPU takes the same matmuls with a
    dropout_mask, as `attention` takes dropout_attention, where SDPA would run its fp32 math kernel (the same EPYC,
    p = 0.1, scratch timing: 6.5 against 11.1 ms at 8x128, 18.5 against 37.2 at 32x128, 16.4 against 33.3 at 8x512).
    """
    q, k, v = split_heads(qkv, num_heads)  # (B, nh, T, hs) each
    B, nh, T, hs = q.shape
    q = torch.gather(q, 2, rows[:, None, :, None].expand(B, nh, rows.shape[1], hs))  # (B, nh, R, hs)
    if cpu_attention_path(qkv, dropout_p) not in ("matmul", "kept", "forward", "dropout"):
        return merge_heads(F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p))
    ctx = attend(q.reshape(B * nh, -1, hs), k.reshape(B * nh, T, hs), v.reshape(B * nh, T, hs),
                 head_masks(mask, nh), dropout_p)[0]  # (B*nh, R, hs)
    return merge_heads(ctx.view(B, nh, -1, hs))


def cpu_attention_path(qkv: Tensor, dropout_p: float) -> str:
    """Which attention CPU_FAST_PATHS give qkv (B, T, 3H) (see attention): "dropout" (dropout_attention) under
    attention dropout wherever packs_dropout says so, in any dtype and length; else "sdpa"; for bf16 on a CPU up to
    attention_backward_max_len, with a gradient to take, the calibrated backward ("matmul", "kept", "fp32",
    "sdpa"; "fp32" for the first two under attention dropout, whose mask the matmul backward cannot replay), and
    without one "forward" (batched matmuls, no dropout) where the calibration says so."""
    if packs_dropout(qkv, dropout_p):
        return "dropout"
    if not (qkv.device.type == "cpu" and qkv.dtype == torch.bfloat16
            and qkv.shape[1] <= CPU_FAST_PATHS.attention_backward_max_len):
        return "sdpa"
    if qkv.requires_grad:
        how = CPU_FAST_PATHS.attention_backward
        return "fp32" if how in ("matmul", "kept") and dropout_p > 0 else how
    return "forward" if dropout_p == 0 and CPU_FAST_PATHS.attention_forward == "matmul" else "sdpa"


class MatmulBackwardAttention(torch.autograd.Function):
    """Attention of qkv (B, T, 3H) → (B, T, H) with a backward of batched matmuls and one softmax and its gradient,
    all in the inputs' dtype (aten's softmax kernels compute in fp32 inside, so only their outputs are rounded).
    Its forward is SDPA's (no dropout), or with `keep` batched matmuls that keep the (T, T) probabilities; with
    `dropout_p`, those and a dropout_mask on the probabilities, kept too (see dropout_attention).

    Like flash attention it saves only its input and recomputes the (T, T) probabilities, so it keeps no more
    memory than SDPA beyond the backward's transient (heads, T, T) tensors. In fp32 it is the exact gradient
    (tests/test_model_fast_paths.py). Keeping the (T, T) tensors in bf16 rather than fp32 halves the memory they
    stream, with no larger error against an fp64 reference (AMX Xeon, per layer fwd + bwd, unmasked: 32x128 22.7
    against 36.0 ms with an fp32 softmax, 8x512 78.6 against 121). The backward copies q, k, v and the output
    gradient once into contiguous (B*nh, T, hs) tensors, where batched matmuls of the strided views copied them
    at each use (per layer, fwd + bwd, from the fused projections: 8.2 → 7.5 ms at 8x128, 39.3 → 36.3 at 32x128,
    74.6 → 71.4 at 8x512; then with the scale and the mask on the matmuls: 8.1, 34.4 and 66.5 unmasked, 9.3,
    36 and 75 masked). It works through CPU_FAST_PATHS.attention_block_heads heads at a time, as calibrated:
    at 8x512 blocks of 8 heads keep each (T, T) block at 4 MB, and the backward takes 41-42 ms against 47-50
    for all 96 heads at once (the full training step 1.035-1.047x faster); at T = 128 and 256 no block size
    pays.

    With `keep` the backward skips the scores matmul and the softmax, and the forward does them instead of SDPA,
    at the cost of B*nh*T*T saved values per layer (ALBERT-base 8x128: 1.5 MB a layer in bf16; 8x512: 50 MB).
    Per layer, fwd + bwd, masked, AMX Xeon (benchmarks/cpu_kernels.py): 6.1 → 5.1 ms at 8x128, 27.5 → 21.6 at
    32x128, 63.9 → 53.2 at 8x512; in the whole training step 1.00-1.07x (benchmarks/levers.py), and in one A/B
    at 8x512 0.97x, so it is calibrated.
    """

    @staticmethod
    def forward(ctx, qkv: Tensor, mask: Tensor | None, num_heads: int, keep: bool = False,
                dropout_p: float = 0.0) -> Tensor:
        ctx.num_heads = num_heads
        if not keep and not dropout_p:
            ctx.save_for_backward(qkv, mask, None, None)
            ctx.dropout_scale = 1.0
            return merge_heads(F.scaled_dot_product_attention(*split_heads(qkv, num_heads), attn_mask=mask))
        # under dropout the probabilities are always kept: the backward needs them with the mask
        out, heads, p, drop, ctx.dropout_scale = matmul_attention(qkv, mask, num_heads, dropout_p)
        ctx.save_for_backward(heads, mask, p, drop)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        saved, mask, kept, drop = ctx.saved_tensors
        heads = contiguous_heads(saved, ctx.num_heads) if kept is None else saved  # (3, B*nh, T, hs)
        q, k, v = heads
        (n, T, hs), B = q.shape, grad_out.shape[0]
        nh = n // B
        go = grad_out.to(q.dtype).view(B, T, nh, hs).transpose(1, 2).reshape(n, T, hs)
        # dropout's scale s is linear through the softmax's backward, so it rides on the dQ and dK matmuls too
        masks, s = head_masks(mask, nh), ctx.dropout_scale
        alpha = hs ** -0.5 * s
        grads = torch.empty_like(heads)  # dQ, dK, dV
        step = CPU_FAST_PATHS.attention_block_heads or n
        with torch.autocast(q.device.type, enabled=False):  # out= is no autocast op
            for i in range(0, n, step):
                h = slice(i, i + step)
                p = kept[h] if kept is not None else probabilities(q[h], k[h], masks[h] if masks is not None else None)
                if drop is None:
                    torch.bmm(p.transpose(1, 2), go[h], out=grads[2, h])
                else:  # dV = s (P * D)^T dO; P * D recomputed rather than kept as a third (T, T) tensor
                    torch.baddbmm(grads[2, h], (p * drop[h]).transpose(1, 2), go[h], beta=0, alpha=s, out=grads[2, h])
                grad_p = torch.bmm(go[h], v[h].transpose(1, 2))  # (heads, T, T); / s under dropout
                if drop is not None:
                    grad_p.mul_(drop[h])
                # dS = P * (dP - rowsum(P * dP)), by the kernel autograd itself runs for softmax
                grad_s = torch.ops.aten._softmax_backward_data(grad_p, p, -1, p.dtype)
                torch.baddbmm(grads[0, h], grad_s, k[h], beta=0, alpha=alpha, out=grads[0, h])
                torch.baddbmm(grads[1, h], grad_s.transpose(1, 2), q[h], beta=0, alpha=alpha, out=grads[1, h])
        return grads.view(3, B, nh, T, hs).permute(1, 3, 0, 2, 4).reshape(B, T, 3 * nh * hs), None, None, None, None


def matmul_attention(qkv: Tensor, mask: Tensor | None, num_heads: int, dropout_p: float = 0.0
                     ) -> tuple[Tensor, Tensor, Tensor, Tensor | None, float]:
    """Attention of qkv (B, T, 3H) as batched matmuls in its dtype → (context (B, T, H), the contiguous heads
    (3, B*nh, T, hs), the probabilities (B*nh, T, T), the dropout mask (B*nh, T, T) or None, its scale)."""
    B, T, _ = qkv.shape
    heads = contiguous_heads(qkv, num_heads)
    out, p, drop, scale = attend(heads[0], heads[1], heads[2], head_masks(mask, num_heads), dropout_p)
    return merge_heads(out.view(B, num_heads, T, -1)), heads, p, drop, scale


def attend(q: Tensor, k: Tensor, v: Tensor, masks: Tensor | None, dropout_p: float = 0.0
           ) -> tuple[Tensor, Tensor, Tensor | None, float]:
    """Batched matmul attention in the inputs' dtype (autocast off): q (n, R, hs), k and v (n, T, hs), masks (n, 1
    or R, T) → (context (n, R, hs), probabilities (n, R, T) before dropout, the dropout mask (n, R, T) or None, its
    scale). With `dropout_p`, a dropout_mask drops probabilities and the context is scaled to keep its
    expectation."""
    with torch.autocast(q.device.type, enabled=False):
        p = probabilities(q, k, masks)
        if dropout_p == 0:
            return torch.bmm(p, v), p, None, 1.0
        keep, scale = dropout_mask(p.shape, dropout_p, p.dtype)
        # scaled on the matmul; the bias beta = 0 ignores is a constant, so autograd takes no gradient for it
        return torch.baddbmm(p.new_zeros(()), p * keep, v, beta=0.0, alpha=scale), p, keep, scale


def contiguous_heads(qkv: Tensor, num_heads: int) -> Tensor:
    """The fused projections (B, T, 3H) as contiguous q, k, v: (3, B*nh, T, hs)."""
    B, T, H3 = qkv.shape
    heads = qkv.new_empty(3, B * num_heads, T, H3 // (3 * num_heads))
    heads.view(3, B, num_heads, T, -1).copy_(split_heads(qkv, num_heads))
    return heads


def head_masks(mask: Tensor | None, num_heads: int) -> Tensor | None:
    """An additive mask (B, 1, 1 or T, T) as one per head: (B*nh, 1 or T, T), a view."""
    if mask is None:
        return None
    B, T = mask.shape[0], mask.shape[-1]
    return mask.expand(B, num_heads, -1, T).reshape(B * num_heads, -1, T)


def probabilities(q: Tensor, k: Tensor, masks: Tensor | None) -> Tensor:
    """softmax(q k^T / sqrt(hs) + mask) of q, k (n, T, hs) and masks (n, 1 or T, T) → (n, T, T).

    The softmax scale rides on the matmul (alpha), as does the mask (beta = 1): a separate pass over a (T, T)
    tensor costs more than its matmul (8x512, AMX Xeon: adding the mask 8.4 ms, the matmul 2.9 ms).
    """
    bias = masks if masks is not None else q[:, :1, :1]  # ignored with beta = 0
    scores = torch.baddbmm(bias, q, k.transpose(1, 2), beta=float(masks is not None), alpha=q.shape[-1] ** -0.5)
    return torch.softmax(scores, -1)


# ---------------------------------------------------------------------------------------------- dropout
def dropout_mask(shape: tuple[int, ...] | torch.Size, p: float, dtype: torch.dtype) -> tuple[Tensor, float]:
    """(keep (`dtype`, `shape`: 1 kept, 0 dropped), scale): each element dropped with probability t / 65536,
    t = round(p * 65536), and the scale 1 / (1 - t / 65536) that keeps the expectation. Four decisions come from
    each 64-bit word of torch's CPU generator (as seeded, saved and restored for every torch op): torch's CPU
    dropout draws one Bernoulli variable an element, 4x the generator's work (AMD EPYC, 2 threads: 25M decisions,
    a (8, 12, 512, 512) attention's, 44 against 190 ms).

    The mask is a tensor of the data's dtype that the data is multiplied by, not a bool one: torch's CPU kernels
    read bool tensors slowly (the same EPYC, (96, 128, 128) bf16: torch.where on a bool mask 0.86 ms, a product
    with a bf16 mask 0.14 ms; the comparison writing bool 0.36 ms, writing bf16 0.13 ms)."""
    n, threshold = math.prod(shape), min(round(p * 65536), 65536)
    if threshold == 65536:
        return torch.zeros(shape, dtype=dtype), 0.0
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-2 ** 63, 2 ** 63 - 1)  # 64 uniform bits each
    lanes = words.view(torch.int16)[:n].view(shape)
    # P(a lane < t - 32768) = t / 65536
    keep = torch.ge(lanes, threshold - 32768, out=torch.empty(shape, dtype=dtype))
    return keep, 65536 / (65536 - threshold)


def packs_dropout(x: Tensor, p: float) -> bool:
    """Whether dropout of `x` at rate `p` (0 outside training) takes dropout_mask: on a CPU, where the switch is
    on, never under torch.compile, whose own dropout fuses into its kernels (the mask's draw would break the graph
    at every dropout and recompile it for every shape: 8 recompilations of a 2-layer albert-base-v1, then eager)."""
    return p > 0 and x.device.type == "cpu" and CPU_FAST_PATHS.packed_dropout and not torch.compiler.is_compiling()


class Dropout(nn.Dropout):
    """nn.Dropout whose mask comes from dropout_mask on a CPU (see CpuFastPaths.packed_dropout); torch's own
    elsewhere."""

    def forward(self, x: Tensor) -> Tensor:
        if not packs_dropout(x, self.p if self.training else 0.0):
            return super().forward(x)
        keep, scale = dropout_mask(x.shape, self.p, x.dtype)
        return (x * keep).mul_(scale)  # x exactly or 0, then rounded once with the scale


def dropout_attention(qkv: Tensor, mask: Tensor | None, num_heads: int, dropout_p: float) -> Tensor:
    """Attention of qkv (B, T, 3H) → (B, T, H) with dropout on its probabilities: batched matmuls in qkv's dtype,
    the softmax and a dropout_mask, with MatmulBackwardAttention's backward, where `attention` would otherwise run
    SDPA in fp32 (the "fp32" fallback): on a CPU SDPA's only kernel with dropout is its math one, which draws
    torch's Bernoulli mask (torch 2.13, profiled). Saves the (B*nh, T, T) probabilities and the mask for backward,
    as that kernel does. Against plain autograd through the same ops with a bool mask, which it replaced (no
    zero-filled gradient for the matmul's unused bias, no separate scaling passes, one copy for dQKV instead of
    a concatenation and a copy), forward + backward of one ALBERT-base layer, bf16, p = 0.1, AMD EPYC, scratch
    timing in alternating processes: 8.8 against 11.2-16.0 ms at 8x128, 35.7 against 44.5-55.2 at 32x128, 116
    against 144-146 at 8x512."""
    return MatmulBackwardAttention.apply(qkv, mask, num_heads, True, dropout_p)


# ---------------------------------------------------------------------------------------------- matmuls and projections
def matmul_key(dtype: torch.dtype, rows: int, inner: int, out: int) -> str:
    """CPU_FAST_PATHS.row_chunks's key of a (rows, inner) @ (inner, out) matmul in `dtype`."""
    return f"{str(dtype).removeprefix('torch.')} {rows}x{inner}x{out}"


def matmul(a: Tensor, b: Tensor, bias: Tensor | None = None) -> Tensor:
    """a (N, K) @ b (K, M) (+ bias (M,)) → (N, M), in blocks of rows where CPU_FAST_PATHS.row_chunks says so, else
    with the bias added as the output is written where CPU_FAST_PATHS.bias_epilogues says so.

    Why: oneDNN runs some shapes far below its rate and their row blocks at the full one. On an AMX Xeon (2
    threads, torch 2.13) a bf16 (1024, 768) @ (768, 768) runs at 1.0 TFLOP/s and its two 512-row halves at 1.8;
    (512 or 2048, 768) @ (768, 768) at 2.3 (benchmarks/cpu_kernels.py). And addmm first copies the bias into
    every row of the output, a pass over (N, M) that oneDNN's own linear does not make: bf16 (4096, 768) @ (768,
    2304) 5.6 against 4.9 ms there, (4096, 768) @ (768, 3072) 8.0 against 7.1. Which shapes is the library's and
    the CPU's business, so `litebert.calibrate` measures the run's own; each block writes its rows of the output.
    """
    key = matmul_key(a.dtype, a.shape[0], a.shape[1], b.shape[1])
    rows = CPU_FAST_PATHS.row_chunks.get(key, 0)
    if not rows or rows >= a.shape[0] or a.device.type != "cpu":
        if bias is None:
            return torch.mm(a, b)
        if CPU_FAST_PATHS.bias_epilogues.get(key) and a.device.type == "cpu":
            return torch.ops.mkldnn._linear_pointwise(a, b.t(), bias, "none", [], "")  # b.t(): the (M, K) weight
        return torch.addmm(bias, a, b)
    out = a.new_empty(a.shape[0], b.shape[1])
    with torch.autocast("cpu", enabled=False):  # out= is no autocast op: a, b and bias share a dtype already
        for i in range(0, a.shape[0], rows):
            if bias is not None:
                torch.addmm(bias, a[i:i + rows], b, out=out[i:i + rows])
            else:
                torch.mm(a[i:i + rows], b, out=out[i:i + rows])
    return out


def linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """F.linear through `matmul`: x (..., in), weight (out, in) → (..., out)."""
    return matmul(x.reshape(-1, x.shape[-1]), weight.t(), bias).view(*x.shape[:-1], -1)


TRANSPOSE_ROWS = 64
"""Rows of the input per block of `transpose`."""


def transpose(a: Tensor, out: Tensor | None = None) -> Tensor:
    """a (N, K) → its transpose (K, N), contiguous (into `out` when given), copied TRANSPOSE_ROWS rows of `a` at a
    time.

    Why: torch's copy of a transposed view streams one of the two sides with a stride of a whole row; a block of
    64 rows keeps both sides' lines in cache. bf16 (4096, 768): 1.6 ms, against 6.3 for .t().contiguous();
    (4096, 3072): 7.8 against 30 (AMX Xeon, 2 threads, torch 2.13, benchmarks/cpu_kernels.py); whether that pays
    where it is used is measured (see SharedGrad).
    """
    out = a.new_empty(a.shape[1], a.shape[0]) if out is None else out
    for i in range(0, a.shape[0], TRANSPOSE_ROWS):
        out[:, i:i + TRANSPOSE_ROWS].copy_(a[i:i + TRANSPOSE_ROWS].t())
    return out


def weight_grad_plan(x: Tensor, gy: Tensor) -> str:
    """CPU_FAST_PATHS.weight_grads's entry for the projection of x (N, in) whose output gradient is gy (N, out)."""
    return CPU_FAST_PATHS.weight_grads.get(matmul_key(x.dtype, x.shape[0], x.shape[1], gy.shape[1]), "")


class SharedGrad:
    """The weight and bias gradients of one projection, summed over the layers that apply it in one forward.

    The weight gradient gy^T x, from the output gradient gy (N, out) and the input x (N, in), is computed as
    CPU_FAST_PATHS.weight_grads says for its shape (WEIGHT_GRADS): "" as autograd does, with gy^T a strided view;
    "grad" with gy transposed first; "input" as x^T gy, x transposed first under a row of ones, which gives the
    (in, out) transpose of the gradient with the bias gradient 1^T gy as an extra last row: (in + 1, out), the
    bias sum riding on the matmul; `take` turns it round once, however many layers were added.

    Why: oneDNN runs a matmul whose first operand is a transposed view (gy^T) well below its rate: bf16, 4096
    rows, AMX Xeon, 2 threads: 1.2-1.4 TFLOP/s for albert-base's four weight gradients, against 1.9-2.1 with that
    operand contiguous. Transposing the narrower of gy and x first (see transpose) wins overall at some shapes
    and loses at others (one layer's gradient added to a sum, benchmarks/cpu_kernels.py: Q/K/V 14.4 → 10.5 ms
    with x first, FFN in 19.5 → 13.5, FFN out 18.1 → 12.9 with gy first; attention output 4.7 → 6.8).
    `litebert.calibrate` times the three ways per shape on the machine a run is on.
    """

    def __init__(self):
        self.uses = 0
        """Layers that applied the projection in the forward."""
        self.how = ""
        self.sum: Tensor | None = None
        """(out, in), or (in + 1, out) with the bias's in the last row for "input"."""
        self.bias: Tensor | None = None
        """(out,), when not in `sum`."""

    def add(self, gy: Tensor, x: Tensor) -> None:
        """Add one layer's gradients: gy (N, out), x (N, in)."""
        self.how = weight_grad_plan(x, gy)
        if self.how == "input":
            a = x.new_empty(x.shape[1] + 1, x.shape[0])  # (in + 1, N)
            transpose(x, out=a[:-1])
            a[-1] = 1
            b = gy  # (N, out)
        else:
            a, b = (transpose(gy), x) if self.how == "grad" else (gy.t(), x)  # (out, N), (N, in)
            self.bias = gy.sum(0) if self.bias is None else self.bias.add_(gy.sum(0))
        self.sum = torch.mm(a, b) if self.sum is None else self.sum.addmm_(a, b)

    def take(self) -> tuple[Tensor, Tensor]:
        """The sums as the weight's (out, in) and the bias's (out,) gradients; emptied, so that a retained graph can
        run backward again."""
        weight, bias = (transpose(self.sum[:-1]), self.sum[-1]) if self.how == "input" else (self.sum, self.bias)
        self.sum = self.bias = None
        return weight, bias


class Linear(torch.autograd.Function):
    """F.linear through `matmul` (forward and input gradient) and `SharedGrad` (weight and bias gradients), with
    the weight and bias gradients summed in place over the layers that share them when given a SharedGrad.

    Autograd gives each of the L layers sharing a projection its own (out, in) weight gradient and sums the L
    tensors with add_ (55 ms of an 826-ms ALBERT-base 8x128 step on an AMX Xeon); here each layer's backward
    adds its gy^T x into one buffer (addmm with beta = 1: the sum rides on the matmul). The layer applied first
    in the forward hands the sum to autograd: every later layer's input depends on its output, so its backward
    runs after all the others that run. Each forward has its own SharedGrad, so graphs never mix.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, shared: SharedGrad | None) -> Tensor:
        ctx.shared, ctx.first = shared, shared is None or shared.uses == 0
        if shared is not None:
            shared.uses += 1
        ctx.save_for_backward(x, weight)
        with torch.autocast(x.device.type, enabled=False):  # the caller cast x, weight and bias already
            return linear(x, weight, bias)  # (..., out)

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        x, weight = ctx.saved_tensors
        needs_x, needs_w, needs_b = ctx.needs_input_grad[:3]
        gy, xs = grad_y.reshape(-1, grad_y.shape[-1]), x.reshape(-1, x.shape[-1])  # (N, out), (N, in)
        grad_x = matmul(gy, weight).view(x.shape) if needs_x else None
        if not needs_w:  # a frozen weight may still have a trained bias (BitFit)
            return grad_x, None, gy.sum(0) if needs_b else None, None
        sums = ctx.shared if ctx.shared is not None else SharedGrad()
        sums.add(gy, xs)
        if not ctx.first:
            return grad_x, None, None, None
        grad_w, grad_b = sums.take()
        return grad_x, grad_w, grad_b if needs_b else None, None


def autocast_cast(*tensors: Tensor) -> tuple[Tensor, ...]:
    """The tensors in the autocast dtype of their device when autocast is on there, else as they are."""
    device = tensors[0].device.type
    if not torch.is_autocast_enabled(device):
        return tensors
    return tuple(t.to(torch.get_autocast_dtype(device)) for t in tensors)


def linear_fast_paths(weight: Tensor, uses: int) -> tuple[bool, bool]:
    """(whether a projection of `weight` applied by `uses` layers runs through `Linear` in this forward, whether it
    sums its weight gradient there): on a CPU only, never under torch.compile."""
    if weight.device.type != "cpu" or torch.compiler.is_compiling():
        return False, False
    trains = weight.requires_grad and torch.is_grad_enabled()
    sums = uses > 1 and CPU_FAST_PATHS.shared_weight_grad and trains
    planned = (any(CPU_FAST_PATHS.row_chunks.values()) or any(CPU_FAST_PATHS.bias_epilogues.values())
               or (trains and any(CPU_FAST_PATHS.weight_grads.values()))
               or (not torch.is_grad_enabled() and any(CPU_FAST_PATHS.gelu_epilogues.values())))
    return sums or planned, sums


class Projection:
    """A linear layer's weight and bias as one forward applies them, in each of the `uses` layers that share
    them: cast once to the autocast dtype; through `Linear` where `linear_fast_paths` says so, else F.linear."""

    def __init__(self, weight: Tensor, bias: Tensor, uses: int, packed: bool = False):
        self.packed = packed
        """`weight` is already cast and in oneDNN's blocked layout, with no autograd (see packed_projection)."""
        if packed:
            self.weight, self.bias, self.fast, self.shared = weight, bias, True, None
            return
        self.weight, self.bias = autocast_cast(weight, bias)
        self.fast, sums = linear_fast_paths(weight, uses)
        self.shared = SharedGrad() if sums else None

    def __call__(self, x: Tensor) -> Tensor:
        if not self.fast:
            return F.linear(x, self.weight, self.bias)
        x = x.to(self.weight.dtype)
        if self.packed:
            rows = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, x.shape[-1]), self.weight, self.bias, "none", [],
                                                      "")  # (N, out)
            return rows.view(*x.shape[:-1], -1)
        if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
            return Linear.apply(x, self.weight, self.bias, self.shared)
        return linear(x, self.weight, self.bias)

    def activated(self, x: Tensor, act: Callable[[Tensor], Tensor]) -> Tensor:
        """act(self(x)): x (..., in) → (..., out), with the bias and a GELU applied by oneDNN as it writes the
        output where CPU_FAST_PATHS.gelu_epilogues says so for this projection; only when no gradient is taken,
        since the backward would need the output before the GELU, which the fused way never holds.

        Why: PyTorch's GELU is a second pass over the (N, I) output, and its tanh form runs slowly on CPU; in
        oneDNN's epilogue it costs little. The FFN input projection with its GELU, pre-activations of unit
        variance, AMX Xeon, 2 threads (benchmarks/cpu_kernels.py --only gelu-epilogue): albert-base at 1,024 rows,
        fp32 and the tanh GELU, 19.6 ms as the matmul then the GELU, 17.3 fused; bf16 and the erf GELU at 4,096
        rows 15.7 against 11.3; the demo's model (128 -> 512) at 4,096 rows, fp32 tanh, 4.3 against 2.4.
        `litebert.calibrate` times both ways at a run's shape; the plan holds at any row count (texts batched by
        length vary it), since the epilogue only drops a pass over the output: fused was faster at every row
        count from 64 to 4,096, in both dtypes and both forms, in the same measurements.
        """
        form = gelu_form(act, self.weight.dtype) if self.fast and not torch.is_grad_enabled() else None
        if form is None or not CPU_FAST_PATHS.gelu_epilogues.get(gelu_key(self.weight.dtype,
                                                                          *self.weight.shape[::-1], form)):
            return act(self(x))
        rows = x.reshape(-1, x.shape[-1]).to(self.weight.dtype)  # (N, in)
        y = torch.ops.mkldnn._linear_pointwise(rows, self.weight, self.bias, "gelu", [],
                                               "tanh" if form == "tanh" else "none")
        return y.view(*x.shape[:-1], -1)  # (..., out)


def projection(linear: nn.Module, uses: int) -> Callable[[Tensor], Tensor]:
    """`linear` as one forward of `uses` layers sharing it applies it: a Projection where its fast path applies
    to a plain nn.Linear (a packed one where that applies), else the module itself (int8 and adapter modules,
    GPUs, torch.compile)."""
    if type(linear) is not nn.Linear:
        return linear
    packed = packed_projection((linear.weight,), (linear.bias,), uses)
    if packed is not None:
        return packed
    return Projection(linear.weight, linear.bias, uses) if linear_fast_paths(linear.weight, uses)[0] else linear


# ---------------------------------------------------------------------------------------------- packed weights
def weight_key(dtype: torch.dtype, inner: int, out: int) -> str:
    """CPU_FAST_PATHS.packed_weights's key of an (out, inner) projection weight applied in `dtype`, any rows."""
    return f"{str(dtype).removeprefix('torch.')} {inner}x{out}"


PACKED = WeakIdKeyDictionary()
"""A projection's first weight source -> dtype applied -> (stamp, packed weight, bias) of the copies that
packed_projection keeps inside keep_packed_weights; an entry goes with its parameter."""
KEEP_PACKED: ContextVar[bool] = ContextVar("litebert_keep_packed_weights", default=False)


@contextmanager
def keep_packed_weights() -> Iterator[None]:
    """Inside this block, passes without a gradient keep the packed copies of their projection weights (see
    packed_projection) for later passes inside such a block, while the sources keep their storage and version
    counter: for a caller that owns a model for a series of passes (the pipelines).

    Why only inside: a weight changed in place through `.data`, or FSDP gathering new values into memory it
    reuses, leaves the version counter as it was, so a copy kept across passes could go stale; outside, each pass
    packs its own copies, and only of blocks it applies more than once."""
    token = KEEP_PACKED.set(True)
    try:
        yield
    finally:
        KEEP_PACKED.reset(token)


def packed_projection(weights: tuple[Tensor, ...], biases: tuple[Tensor, ...], uses: int) -> Projection | None:
    """The projection of the weights (out_i, in) and biases (out_i,), concatenated (the fused Q/K/V) and cast to
    the autocast dtype, applied from a copy of the weight in oneDNN's blocked layout, for a pass without a gradient
    where CPU_FAST_PATHS.packed_weights says so: kept across passes inside keep_packed_weights, else made for the
    `uses` layers of this pass that share it where they are enough to pay for the packing; None where not, and
    on GPUs, under torch.compile or with a gradient (the copy has no autograd).

    Why: oneDNN reorders a plain weight into its blocked layout inside every matmul, and the shared block of
    ALBERT-base is applied 12 times per forward; kept across passes (keep_packed_weights), the reorder, autocast's
    cast and the Q/K/V concatenation are made once. AMD EPYC (AVX512-BF16, no AMX), 2 threads, torch 2.13, with
    the bias: bf16 (16, 768) @ (768, 3072) 0.288 ms by F.linear, 0.197 packed; at 1,024 rows 12.1 and 11.0 ms; in
    fp32, where F.linear goes through MKL, 1.19 and 0.69 ms, 26.7 and 21.7 ms; packing that weight takes 0.32 ms
    in bf16, and the FFN output's (768, 3072) 1.3 ms (benchmarks/cpu_kernels.py --only packed-weights).
    `litebert.calibrate` times both ways at a run's shape, with the packing; the plan holds at any row count, since
    packing only drops the per-call reorder. A kept copy costs memory: half the fp32 weights in bf16, as much in
    fp32.
    """
    w = weights[0]
    if torch.is_grad_enabled() or w.device.type != "cpu" or torch.compiler.is_compiling():
        return None
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else w.dtype
    fewest = CPU_FAST_PATHS.packed_weights.get(weight_key(dtype, w.shape[1], sum(t.shape[0] for t in weights)), 0)
    stamp = version_stamp(*weights, *biases) if fewest and KEEP_PACKED.get() else None
    if not fewest or (stamp is None and uses < max(2, fewest)):  # one layer of one pass: the plain weight
        return None
    kept = PACKED.get(w, {}).get(dtype) if stamp is not None else None
    if kept is None or kept[0] != stamp:
        weight, bias = autocast_cast(torch.cat(weights) if len(weights) > 1 else w,
                                     torch.cat(biases) if len(biases) > 1 else biases[0])
        kept = (stamp, torch.ops.mkldnn._reorder_linear_weight(weight), bias)
        if stamp is not None:
            PACKED.setdefault(w, {})[dtype] = kept
    return Projection(kept[1], kept[2], uses, packed=True)


def version_stamp(*tensors: Tensor) -> tuple[tuple[int, int], ...] | None:
    """Each tensor's (storage address, version counter): what changes when a tensor is replaced or changed in
    place through autograd's view of it; None for inference tensors, which keep no version counter."""
    try:
        return tuple((t.data_ptr(), t._version) for t in tensors)
    except RuntimeError:
        return None


def activated(projection: Callable[[Tensor], Tensor], act: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """act(projection(x)), fused where the projection is a Projection that can (see Projection.activated)."""
    return projection.activated(x, act) if isinstance(projection, Projection) else act(projection(x))
