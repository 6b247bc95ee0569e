"""The single-kernel facts behind litebert's CPU fast paths (the numbers kernels.py's comments cite).

  - GELU in bf16: the tanh form (ALBERT's "gelu_new") vs the erf form, forward and backward, on an
    albert-base FFN activation (B x T x 3072).
  - bf16 attention forward + backward per layer (B x 12 heads x 64) through `litebert.kernels.attention` with each
    CPU_FAST_PATHS.attention_backward: "matmul" (SDPA forward, bf16 matmul backward), "kept" (matmul forward
    keeping its probabilities for that backward), "fp32" (SDPA with the inputs cast up) and "sdpa" (SDPA's own
    bf16 backward), with and without an additive padding mask, at
    B x T = 8x128, 32x128, 8x256, 8x512: where the default ("matmul" up to T = 512) comes from.
  - bf16 attention of the last layer at the heads' positions only (`litebert.kernels.attention_at`, R = 21 rows:
    20 masked positions and [CLS]; the demo's model 11), forward + backward and forward alone, masked, as SDPA
    and as batched matmuls (the switches set as calibration sets them where `attention` takes matmuls), at
    ALBERT-base 8x128, 32x128, 8x512 and the demo's model (2 heads of 64) at 64x64.
  - bf16 matmul rate of x (M, 768) @ W^T for output widths 768 (Q, K, V apart), 2304 (fused Q/K/V) and 3072
    (FFN in), at M = 1024 rows (8 x 128 tokens) and 4096 (8 x 512).
  - bf16 rate of every albert-base projection matmul (N, K) @ (K, M) (forward and input gradient) at N = 512 to
    4096 rows, whole and through `litebert.kernels.matmul` in blocks of 256 / 512 / 1024 rows: where the row-block
    plan that `litebert.calibrate` measures per run comes from.
  - bf16 forward projections with their bias, at 1024 and 4096 rows: added by addmm (which first copies it into
    every row of the output) and by oneDNN's linear as it writes the output (`CPU_FAST_PATHS.bias_epilogues`).
  - the FFN's input projection with its bias and GELU, in fp32 (tanh and erf GELU) and bf16 (erf and tanh), at
    64 to 4096 rows of albert-base (768 -> 3072) and of the demo's model (128 -> 512): the GELU a pass after
    the matmul, and applied by oneDNN as it writes the output (`CPU_FAST_PATHS.gelu_epilogues`, inference only).
    The inputs are scaled so the pre-activations have unit variance, as a trained model's roughly do (PyTorch's
    tanh GELU slows down as its inputs grow).
  - bf16 weight (and bias) gradients of every albert-base projection at 1024 and 4096 rows, each way of
    `litebert.kernels.WEIGHT_GRADS` (gy^T a strided view; gy transposed first; x transposed first, the bias riding
    along), one layer's added into a running sum as a shared block's are, and the block transposes themselves:
    where the weight-gradient plan that `litebert.calibrate` measures per run comes from.
  - every albert-base forward projection with its bias in fp32 and bf16, at 16 to 4096 rows, without a gradient:
    F.linear (MKL's sgemm in fp32, oneDNN in bf16), oneDNN's linear on the plain weight (which it reorders into
    its blocked layout in every call), and oneDNN's linear on a copy packed once (`kernels.packed_projection`),
    with the packing itself timed apart; in fp32 also onnxruntime's MatMul + Add on the same weight (its MLAS
    kernels, what onnxruntime's inference runs on), where onnxruntime is installed. bf16 only where oneDNN has bf16
    kernels (`litebert.calibrate.onednn_dtypes`).
  - the same four projections as a pass applies them, 12 times over from one set of weights (ALBERT-base's shared
    block), each feeding the next, fp32, at 16 to 1,024 rows: oneDNN's linear on packed copies against
    onnxruntime's MatMul + Add chain on the same weights. Unlike the group above, where one weight is applied
    again and again and stays in cache, the 28 MB of weights stream from memory here as they do in a real pass.
  - int8 against fp32 for the same projections at 16 to 1024 rows, without a gradient: oneDNN's fp32 linear on the
    packed weight; `litebert.quantize.Int8Linear` (oneDNN's u8 x s8 kernel, 7-bit activations where 8 saturate);
    and fbgemm's dynamic int8 linear (`torch.ao.nn.quantized.dynamic.Linear`, built on quantized tensors that
    PyTorch has deprecated), with each int8 output's relative error against fp32.
Variants of one measurement are timed round-robin (common.interleaved_medians).

    PYTHONPATH=src .venv/bin/python benchmarks/cpu_kernels.py [--repeats 9] [--threads N] [--only gelu-epilogue ...]
Writes benchmarks/results/cpu_kernels_<cpu>.json.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable
from unittest import mock

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_tag, format_table, interleaved_medians, machine_info, on_onnxruntime_thread, set_threads, \
    use_run_allocator, write_json  # noqa: E402
from litebert import kernels  # noqa: E402
from litebert.calibrate import onednn_dtypes  # noqa: E402
from litebert.export import ort_session  # noqa: E402
from litebert.quantize import Int8Linear  # noqa: E402

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


def attention_step(B: int, T: int, how: str, masked: bool):
    """Forward + backward of kernels.attention on a (B, T, 3 x 768) bf16 leaf (12 heads of 64) with the attention
    backward `how`."""
    qkv = torch.randn(B, T, 3 * 768).to(BF16).requires_grad_()
    keep = torch.ones(B, T)
    keep[0, T // 2:] = 0  # one padded row
    mask = ((1 - keep) * torch.finfo(BF16).min)[:, None, None, :].to(BF16) if masked else None
    grad = torch.randn(B, T, 768).to(BF16)

    def run():
        with mock.patch.object(kernels, "CPU_FAST_PATHS", kernels.CpuFastPaths(attention_backward=how,
                                                                     attention_backward_max_len=T)):
            kernels.attention(qkv, 12, mask, 0.0).backward(grad)
    return run


def attention_rows(repeats: int) -> list[dict]:
    rows = []
    for B, T in ((8, 128), (32, 128), (8, 256), (8, 512)):
        fns = {f"{how} {'masked' if masked else 'unmasked'}": attention_step(B, T, how, masked)
               for how in kernels.ATTENTION_BACKWARDS for masked in (True, False)}
        seconds = interleaved_medians(fns, warmup=2, repeats=repeats)
        rows += [{"kernel": f"attention fwd+bwd {B}x{T}", "variant": k, "ms": s * 1e3} for k, s in seconds.items()]
    return rows


def attention_at_step(B: int, T: int, H: int, heads: int, R: int, path: str, grad: bool):
    """kernels.attention_at on a (B, T, 3H) bf16 input at R rows per sequence (one padded sequence), forward and,
    with `grad`, backward; `path` "sdpa" or "matmul" (the matmul backward / matmul forward switched on)."""
    qkv = torch.randn(B, T, 3 * H).to(BF16).requires_grad_(grad)
    keep = torch.ones(B, T)
    keep[0, T // 2:] = 0
    mask = ((1 - keep) * torch.finfo(BF16).min)[:, None, None, :].to(BF16)
    rows = torch.stack([torch.randperm(T)[:R] for _ in range(B)])
    out_grad = torch.randn(B, R, H).to(BF16)
    fast = kernels.CpuFastPaths(attention_backward=path, attention_forward=path, attention_backward_max_len=T)

    def run():
        with mock.patch.object(kernels, "CPU_FAST_PATHS", fast), torch.set_grad_enabled(grad):
            out = kernels.attention_at(qkv, rows, heads, mask, 0.0)
            if grad:
                out.backward(out_grad)
    return run


def attention_at_rows(repeats: int) -> list[dict]:
    rows = []
    for B, T, H, heads, R in ((8, 128, 768, 12, 21), (32, 128, 768, 12, 21), (8, 512, 768, 12, 21),
                              (64, 64, 128, 2, 11)):
        for grad in (True, False):
            fns = {path: attention_at_step(B, T, H, heads, R, path, grad) for path in ("sdpa", "matmul")}
            seconds = interleaved_medians(fns, warmup=2, repeats=repeats)
            kernel = f"attention at {R} rows {'fwd+bwd' if grad else 'fwd'} {B}x{T} H={H}"
            rows += [{"kernel": kernel, "variant": k, "ms": s * 1e3} for k, s in seconds.items()]
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


def row_block_rows(repeats: int) -> list[dict]:
    rows = []
    for n in (512, 768, 1024, 2048, 4096):
        for k, m in ((768, 768), (768, 2304), (768, 3072), (2304, 768), (3072, 768)):
            a, b = torch.randn(n, k).to(BF16), torch.randn(k, m).to(BF16)
            key = kernels.matmul_key(BF16, n, k, m)

            def blocked(rows_per_block, a=a, b=b, key=key):
                def run():
                    with mock.patch.object(kernels.CPU_FAST_PATHS, "row_chunks", {key: rows_per_block}):
                        kernels.matmul(a, b)
                return run
            fns = {f"{r}-row blocks" if r else "whole": blocked(r) for r in (0, 256, 512, 1024) if r < n}
            for name, s in interleaved_medians(fns, warmup=2, repeats=repeats).items():
                rows.append({"kernel": f"bf16 matmul {n}x{k}x{m}", "variant": name, "ms": s * 1e3,
                             "tflops": 2 * n * k * m / s / 1e12})
    return rows


def bias_rows(repeats: int) -> list[dict]:
    rows = []
    for n in (1024, 4096):
        for k, m in ((768, 2304), (768, 768), (768, 3072), (3072, 768)):
            a, w, bias = torch.randn(n, k).to(BF16), torch.randn(m, k).to(BF16), torch.randn(m).to(BF16)
            key = kernels.matmul_key(BF16, n, k, m)

            def with_bias(fused, a=a, w=w, bias=bias, key=key):
                def run():
                    with mock.patch.object(kernels.CPU_FAST_PATHS, "bias_epilogues", {key: fused}):
                        kernels.matmul(a, w.t(), bias)
                return run
            fns = {"addmm": with_bias(False), "oneDNN linear": with_bias(True)}
            for name, s in interleaved_medians(fns, warmup=2, repeats=repeats).items():
                rows.append({"kernel": f"bf16 projection with bias {n}x{k}x{m}", "variant": name, "ms": s * 1e3,
                             "tflops": 2 * n * k * m / s / 1e12})
    return rows


def gelu_epilogue_rows(repeats: int) -> list[dict]:
    rows = []
    for n, k, m in ((64, 768, 3072), (256, 768, 3072), (1024, 768, 3072), (4096, 768, 3072), (64, 128, 512),
                    (256, 128, 512), (1024, 128, 512), (4096, 128, 512)):
        for dtype, form in ((torch.float32, "tanh"), (torch.float32, "erf"), (BF16, "erf"), (BF16, "tanh")):
            x, w, b = torch.randn(n, k).to(dtype), (torch.randn(m, k) * k ** -0.5).to(dtype), torch.zeros(m, dtype=dtype)
            act = kernels.gelu_pytorch_tanh if form == "tanh" else F.gelu
            key = kernels.gelu_key(dtype, k, m, form)
            with torch.inference_mode(), mock.patch.object(kernels.CPU_FAST_PATHS, "gelu_epilogues", {key: True}):
                projection = kernels.Projection(w, b, 1)

            def run(fused, projection=projection, x=x, act=act, key=key):
                def call():
                    switch = mock.patch.object(kernels.CPU_FAST_PATHS, "gelu_epilogues", {key: fused})
                    with torch.inference_mode(), switch:
                        projection.activated(x, act)
                return call
            fns = {"matmul, then GELU": run(False), "GELU by oneDNN": run(True)}
            for name, s in interleaved_medians(fns, warmup=2, repeats=repeats).items():
                rows.append({"kernel": f"{str(dtype).removeprefix('torch.')} FFN in + {form} GELU {n}x{k}x{m}",
                             "variant": name, "ms": s * 1e3, "tflops": 2 * n * k * m / s / 1e12})
    return rows


def ort_projections(weights: list[torch.Tensor], biases: list[torch.Tensor], order: list[int]
                    ) -> Callable[[torch.Tensor], object] | None:
    """x (N, in) -> onnxruntime applying the fp32 projections weights[i] (out_i, in_i) + biases[i] for i in
    `order`, each to the last's output cut to its first in_i columns (MatMul, Add, and a Slice where the widths
    differ), in a session on onnxruntime's own thread (common.on_onnxruntime_thread); None without onnxruntime."""
    try:
        import numpy as np
        import onnx
        import onnxruntime  # noqa: F401 (ort_session's)
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    inits = [numpy_helper.from_array(a, name) for i, (w, b) in enumerate(zip(weights, biases))
             for a, name in ((w.t().contiguous().numpy(), f"w{i}"), (b.numpy(), f"b{i}"))]
    inits += [numpy_helper.from_array(np.array(v, np.int64), name) for v, name in (([0], "start"), ([1], "axis"))]
    nodes, h, width = [], "x", weights[order[0]].shape[1]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])]
    for step, i in enumerate(order):
        inner = weights[i].shape[1]
        if inner != width:  # the fused Q/K/V's output cut to one projection's width, as attention hands it on
            inits.append(numpy_helper.from_array(np.array([inner], np.int64), f"end{step}"))
            nodes.append(helper.make_node("Slice", [h, "start", f"end{step}", "axis"], [f"s{step}"]))
            h = f"s{step}"
        nodes += [helper.make_node("MatMul", [h, f"w{i}"], [f"m{step}"]),
                  helper.make_node("Add", [f"m{step}", f"b{i}"], [f"y{step}"])]
        h, width = f"y{step}", weights[i].shape[0]
    graph = helper.make_graph(nodes, "projections", inputs,
                              [helper.make_tensor_value_info(h, TensorProto.FLOAT, ["N", width])], inits)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "projections.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
        session = ort_session(path, torch.get_num_threads(), spinning=False)
    return on_onnxruntime_thread(lambda x: session.run(None, {"x": x.numpy()}))


def packed_weight_rows(repeats: int) -> list[dict]:
    """ms per call of each forward projection, weight plain or packed once, in fp32 (and onnxruntime's) and bf16
    where oneDNN has it; and of the packing."""
    rows = []
    linear_pointwise = torch.ops.mkldnn._linear_pointwise
    for dtype in onednn_dtypes(bf16=True):
        for k, m in ((768, 2304), (768, 768), (768, 3072), (3072, 768)):
            w, b = torch.randn(m, k).to(dtype), torch.randn(m).to(dtype)
            packed = torch.ops.mkldnn._reorder_linear_weight(w)
            name = str(dtype).removeprefix("torch.")
            pack_s = interleaved_medians({"pack": lambda w=w: torch.ops.mkldnn._reorder_linear_weight(w)},
                                         warmup=2, repeats=repeats)["pack"]
            rows.append({"kernel": f"{name} packing of the ({m}, {k}) weight", "variant": "pack", "ms": pack_s * 1e3})
            for n in (16, 128, 1024, 4096):
                x = torch.randn(n, k).to(dtype)
                fns = {"F.linear": lambda x=x, w=w, b=b: F.linear(x, w, b),
                       "oneDNN, plain weight": lambda x=x, w=w, b=b: linear_pointwise(x, w, b, "none", [], ""),
                       "oneDNN, packed weight": lambda x=x, p=packed, b=b: linear_pointwise(x, p, b, "none", [], "")}
                ort = ort_projections([w], [b], [0]) if dtype == torch.float32 else None
                if ort is not None:
                    fns["onnxruntime MatMul + Add"] = lambda x=x, ort=ort: ort(x)
                with torch.inference_mode():
                    seconds = interleaved_medians(fns, warmup=2, repeats=repeats)
                for variant, sec in seconds.items():
                    rows.append({"kernel": f"{name} projection {n}x{k}x{m}", "variant": variant, "ms": sec * 1e3,
                                 "tflops": 2 * n * k * m / sec / 1e12})
    return rows


BLOCK = ((2304, 768), (768, 768), (3072, 768), (768, 3072))
"""ALBERT-base's shared block's projections as (out, in), in a pass's order: fused Q/K/V, attention output, FFN
in, FFN out."""


def layer_chain_rows(repeats: int) -> list[dict]:
    """ms per pass of the block's four projections applied 12 times over, each to the last's output (the fused
    Q/K/V's cut to its first 768 columns), fp32: oneDNN's linear on packed copies against onnxruntime."""
    torch.manual_seed(0)
    weights = [torch.randn(m, k) / k ** 0.5 for m, k in BLOCK]  # unit-scale outputs, so 12 layers stay finite
    biases = [torch.randn(m) * 0.1 for m, _ in BLOCK]
    packed = [torch.ops.mkldnn._reorder_linear_weight(w) for w in weights]
    order = list(range(len(BLOCK))) * 12
    ort = ort_projections(weights, biases, order)

    def onednn(x: torch.Tensor) -> torch.Tensor:
        for i in order:
            x = torch.ops.mkldnn._linear_pointwise(x[:, :BLOCK[i][1]], packed[i], biases[i], "none", [], "")
        return x

    rows, flops_per_row = [], 2 * 12 * sum(m * k for m, k in BLOCK)
    for n in (16, 64, 128, 1024):
        x = torch.randn(n, BLOCK[0][1])
        fns = {"oneDNN, packed weights": lambda x=x: onednn(x)}
        if ort is not None:
            fns["onnxruntime MatMul + Add"] = lambda x=x: ort(x)
        with torch.inference_mode():
            seconds = interleaved_medians(fns, warmup=2, repeats=repeats)
            apart = float((onednn(x) - torch.from_numpy(ort(x)[0])).abs().max()) if ort is not None else None
        for variant, sec in seconds.items():
            rows.append({"kernel": f"float32 block of 4 projections x 12, {n} rows", "variant": variant,
                         "ms": sec * 1e3, "tflops": n * flops_per_row / sec / 1e12, "max_abs_diff": apart})
    return rows


def int8_rows(repeats: int) -> list[dict]:
    """ms per call of each forward projection in fp32 (oneDNN, packed weight) and in int8 (litebert's Int8Linear
    and fbgemm's dynamic linear), with the int8 outputs' relative error against fp32."""
    rows, fbgemm_here = [], "fbgemm" in torch.backends.quantized.supported_engines
    if fbgemm_here:
        torch.backends.quantized.engine = "fbgemm"
    for k, m in ((768, 2304), (768, 768), (768, 3072), (3072, 768)):
        linear = torch.nn.Linear(k, m)
        packed, b = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach()), linear.bias.detach()
        int8 = Int8Linear.from_linear(linear)
        fns = {"fp32 oneDNN, packed weight":
               lambda x: torch.ops.mkldnn._linear_pointwise(x, packed, b, "none", [], ""),
               "int8 Int8Linear (oneDNN)": int8}
        if fbgemm_here:
            with warnings.catch_warnings():  # PyTorch deprecates quantized tensors: measured for comparison only
                warnings.simplefilter("ignore")
                fbgemm = torch.ao.nn.quantized.dynamic.Linear(k, m, dtype=torch.qint8)
                # the same int8 weight as Int8Linear's: its per-output-channel scales
                fbgemm.set_weight_bias(torch.quantize_per_channel(linear.weight.detach(), int8.weight_scale,
                                                                  int8.weight_zero_point, 0, torch.qint8), b)
            fns["int8 fbgemm dynamic (deprecated API)"] = fbgemm
        for n in (16, 128, 1024):
            x = torch.randn(n, k)
            with torch.inference_mode():
                seconds = interleaved_medians({name: lambda f=f: f(x) for name, f in fns.items()}, warmup=2,
                                              repeats=repeats)
                want = linear(x)
                error = {name: ((f(x) - want).norm() / want.norm()).item() for name, f in fns.items()}
            for name, sec in seconds.items():
                rows.append({"kernel": f"projection {n}x{k}x{m}", "variant": f"{name} (error {error[name]:.1e})",
                             "ms": sec * 1e3, "tflops": 2 * n * k * m / sec / 1e12})
    return rows


def weight_grad_rows(repeats: int) -> list[dict]:
    rows = []
    for n in (1024, 4096):
        for k, m in ((768, 2304), (768, 768), (768, 3072), (3072, 768)):
            x, gy = torch.randn(n, k).to(BF16), torch.randn(n, m).to(BF16)
            key = kernels.matmul_key(BF16, n, k, m)
            fns = {}
            for how in kernels.WEIGHT_GRADS:
                with mock.patch.object(kernels.CPU_FAST_PATHS, "weight_grads", {key: how}):
                    sums = kernels.SharedGrad()
                    sums.add(gy, x)

                def add(sums=sums, how=how):
                    with mock.patch.object(kernels.CPU_FAST_PATHS, "weight_grads", {key: how}):
                        sums.add(gy, x)
                fns[f"{how or 'strided gy^T'}{' transposed first' if how else ''}"] = add
            for name, s in interleaved_medians(fns, warmup=2, repeats=repeats).items():
                rows.append({"kernel": f"bf16 weight gradient {n}x{k}x{m}, added to a sum", "variant": name,
                             "ms": s * 1e3, "tflops": 2 * n * k * m / s / 1e12})
        for k in (768, 3072):
            a = torch.randn(n, k).to(BF16)
            fns = {"kernels.transpose": lambda a=a: kernels.transpose(a),
                   ".t().contiguous()": lambda a=a: a.t().contiguous()}
            for name, s in interleaved_medians(fns, warmup=2, repeats=repeats).items():
                rows.append({"kernel": f"bf16 transpose ({n}, {k})", "variant": name, "ms": s * 1e3})
    return rows


GROUPS = {"gelu": gelu_rows, "attention": attention_rows, "attention-at-rows": attention_at_rows,
          "matmul": matmul_rows, "row-blocks": row_block_rows,
          "bias": bias_rows, "gelu-epilogue": gelu_epilogue_rows, "weight-grads": weight_grad_rows,
          "packed-weights": packed_weight_rows, "layer-chain": layer_chain_rows, "int8": int8_rows}
"""--only's names -> the function measuring that group of kernels."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--only", nargs="+", choices=list(GROUPS), help="measure these groups only (default: all)")
    args = parser.parse_args(argv)
    use_run_allocator()
    threads = set_threads(args.threads)
    start = time.perf_counter()
    rows = [row for name in (args.only or GROUPS) for row in GROUPS[name](args.repeats)]
    print(format_table(["kernel", "variant", "ms", "TFLOP/s"],
                       [[r["kernel"], r["variant"], r["ms"], r.get("tflops", "")] for r in rows]))
    path = write_json({"rows": rows, "machine": machine_info(threads=threads),
                       "wall_s": time.perf_counter() - start},
                      f"cpu_kernels_{cpu_tag()}{'_' + '_'.join(args.only) if args.only else ''}.json")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
