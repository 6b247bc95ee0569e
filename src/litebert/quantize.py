"""Dynamic int8 inference in PyTorch: the encoder's matmuls in int8, on the CPU, with no export.

`quantize_dynamic_int8(model)` replaces, in place, the four projections of every transformer block (the fused
Q/K/V, the attention output, the FFN's two) with `Int8Linear`:
- weights: int8, one symmetric scale per output channel, quantised once;
- activations: uint8 with one scale and zero point per call, from the input's min and max (as onnxruntime's
  dynamic quantisation), on 7 bits where the CPU's int8 kernel would saturate on 8 (`activation_levels`);
- the product: one oneDNN kernel (`torch.ops.onednn.qlinear_pointwise`, the op inductor's x86 int8 path uses)
  that multiplies in int8 (VNNI, or AMX where present), rescales to fp32 and adds the bias, and for the FFN's
  first matmul applies its GELU too.
Embeddings, LayerNorms, attention's softmax and every head stay in fp32: they are a small share of the time and
where int8 would cost the most accuracy. Without VNNI it buys a smaller model, not speed: on an AVX2-only EPYC the
int8 kernel ran 1.1-2.1x slower than fp32 oneDNN on a packed weight at 16 to 128 rows, 2-7% at 1,024
(benchmarks/cpu_kernels.py --only int8).

Why not the alternatives (measured on the no-AMX Xeon, benchmarks/README.md):
`torch.ao.quantization.quantize_dynamic` is deprecated (to be removed) and cannot reach the fused Q/K/V, which
reads the three weights directly; torchao's int8 configs were no faster than fp32 in eager mode; `torch._int_mm`
multiplies fast (1.2 int8 TOPS at 1024 x 768 x 3072, fp32 0.23 TFLOP/s) but rescaling its int32 product in
separate passes cost as much again (1.37x fp32 end to end, against 2.3x with the fused kernel).

A quantised model is for inference: it cannot be trained or saved as a checkpoint (keep the fp32 model for that).
benchmarks/bench_inference.py times it; benchmarks/bench_int8_accuracy.py measures what it costs in accuracy.
"""
from __future__ import annotations

import functools

import torch
from torch import Tensor, nn

from litebert.model import AlbertAttention, AlbertFFN


FUSED_ACTIVATIONS = {"gelu_new": ("gelu", "tanh"), "gelu_fast": ("gelu", "tanh"),
                     "gelu_pytorch_tanh": ("gelu", "tanh"), "gelu": ("gelu", "none"), "relu": ("relu", "")}
"""config.hidden_act -> oneDNN's post-op (name, algorithm) that computes it inside the FFN's first int8 matmul."""


def _require_onednn_int8() -> None:
    if not hasattr(torch.ops.onednn, "qlinear_pointwise"):
        raise RuntimeError(f"int8 inference needs PyTorch's oneDNN int8 kernels (torch.ops.onednn."
                           f"qlinear_pointwise, x86 CPU builds); torch {torch.__version__} here has none")


@functools.cache
def activation_levels() -> int:
    """The largest uint8 activation code: 255, or 127 where oneDNN's int8 kernel saturates at 8 bits.

    Why: without VNNI (an AVX2-only CPU such as a first-generation EPYC, or AVX512 without VNNI) oneDNN multiplies
    u8 x s8 with vpmaddubsw, which sums each pair of products into a saturating int16: 2 x 255 x 127 = 64,770
    overflows it, 2 x 127 x 127 = 32,258 does not (fbgemm's `reduce_range` answers the same). Measured on the
    kernel itself, not read off CPU flags: 64 products of 255 x 127 come back exact or not. On a first-generation
    EPYC (AVX2, 2026-12-05) 8-bit activations put a linear layer's output 25-34% off fp32; 7-bit ones, as below.
    """
    _require_onednn_int8()
    weight = torch.ops.onednn.qlinear_prepack(torch.full((1, 64), 127, dtype=torch.int8), None)
    y = torch.ops.onednn.qlinear_pointwise(torch.full((1, 64), 255, dtype=torch.uint8), 1.0, 0, weight,
                                           torch.ones(1), torch.zeros(1, dtype=torch.int64), None, 1.0, 0,
                                           torch.float32, "none", [], "")
    return 255 if y.item() == 64 * 255 * 127 else 127


class Int8Linear(nn.Module):
    """y = act(x W^T + b) with W in int8 (one symmetric scale per output channel) and x quantised to uint8 at
    run time (one scale and zero point per call, from its min and max, as onnxruntime's dynamic quantisation);
    the int8 matmul, the rescale to fp32, the bias and `activation` run as one oneDNN kernel."""

    def __init__(self, weight: Tensor, bias: Tensor | None, activation: tuple[str, str] = ("none", "")):
        super().__init__()
        _require_onednn_int8()
        w = weight.detach().float()  # (N, K)
        scale = w.abs().amax(1).clamp_min(1e-12) / 127  # (N,)
        w8 = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
        self.register_buffer("weight_packed", torch.ops.onednn.qlinear_prepack(w8, None), persistent=False)
        self.register_buffer("weight_scale", scale)
        self.register_buffer("weight_zero_point", torch.zeros(len(scale), dtype=torch.int64))
        self.register_buffer("bias", None if bias is None else bias.detach().float())
        self.in_features, self.out_features = w.shape[1], w.shape[0]
        self.activation = activation

    @classmethod
    def from_linear(cls, linear: nn.Linear, activation: tuple[str, str] = ("none", "")) -> "Int8Linear":
        return cls(linear.weight, linear.bias, activation)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape  # (..., K)
        x8, scale, zero_point = quantize_uint8(x.reshape(-1, shape[-1]), activation_levels())
        y = torch.ops.onednn.qlinear_pointwise(x8, scale, zero_point, self.weight_packed, self.weight_scale,
                                               self.weight_zero_point, self.bias, 1.0, 0, torch.float32,
                                               self.activation[0], [], self.activation[1])  # (M, N) fp32
        return y.view(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, int8, "
                f"activation={self.activation[0]}")


def quantize_uint8(x: Tensor, levels: int = 255) -> tuple[Tensor, float, int]:
    """x (M, K) fp32 as uint8 codes 0..levels with one scale and zero point: x ~ scale * (x8 - zero_point), the
    range widened to hold 0 (so zero padding stays exact). Two passes: min/max, then scale-shift-truncate (the
    +0.5 rounds)."""
    lo, hi = (v.item() for v in torch.aminmax(x))
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max((hi - lo) / levels, 1e-12)
    zero_point = round(-lo / scale)
    return (x * (1 / scale)).add_(zero_point + 0.5).clamp_(0, levels).to(torch.uint8), scale, zero_point


@torch.no_grad()
def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """Put every transformer block of `model` (any litebert class) on int8 matmuls, in place; returns it in eval
    mode. A block shared by several layers is quantised once; the FFN's activation joins its first matmul."""
    if any(t.device.type != "cpu" for t in model.parameters()):
        raise ValueError("int8 inference (litebert.quantize) runs on the CPU: move the model there first")
    fused = FUSED_ACTIVATIONS.get(model.config.hidden_act)
    for module in model.modules():
        if isinstance(module, AlbertAttention) and module.qkv_projection is None:
            module.qkv_projection = Int8Linear(*module.fused_qkv())
            module.dense = Int8Linear.from_linear(module.dense)
        elif isinstance(module, AlbertFFN) and isinstance(module.intermediate, nn.Linear):
            module.intermediate = Int8Linear.from_linear(module.intermediate, fused or ("none", ""))
            if fused:
                module.act = nn.Identity()
            module.output = Int8Linear.from_linear(module.output)
    return model.eval()
