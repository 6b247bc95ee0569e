"""benchmarks/cpu_kernels.py's onnxruntime contender computes what PyTorch does: the projections applied in order,
each to the last's output cut to its own input width (the fused Q/K/V's first 768 columns, as attention hands on
one of Q, K, V), so the timings compare equal work."""
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import cpu_kernels  # noqa: E402


def test_onnxruntime_chain_matches_pytorch():
    g = torch.Generator().manual_seed(0)
    shapes = ((12, 4), (4, 4), (6, 4), (4, 6))  # (out, in): a fused Q/K/V three times as wide, as in the block
    weights = [torch.randn(m, k, generator=g) for m, k in shapes]
    biases = [torch.randn(m, generator=g) for m, _ in shapes]
    order = [0, 1, 2, 3, 0, 1, 2, 3]
    run = cpu_kernels.ort_projections(weights, biases, order)
    x = torch.randn(5, 4, generator=g)
    expected = x
    for i in order:
        expected = F.linear(expected[:, :shapes[i][1]], weights[i], biases[i])
    got = torch.from_numpy(run(x)[0])
    assert got.shape == (5, 4)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)


def test_one_projection_needs_no_slice():
    w, b = torch.randn(3, 5), torch.randn(3)
    x = torch.randn(2, 5)
    out = cpu_kernels.ort_projections([w], [b], [0])(x)[0]
    torch.testing.assert_close(torch.from_numpy(out), F.linear(x, w, b), rtol=1e-5, atol=1e-5)
