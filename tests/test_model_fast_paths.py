"""The CPU fast paths change how a number is computed, never what it is beyond bf16 rounding."""
import math

import pytest
import torch
import torch.nn.functional as F

import litebert.model as model_module
from litebert import kernels
from litebert import AlbertConfig, AlbertModel
from litebert.calibrate import fast_paths, onednn_dtypes

TINY = dict(vocab_size=50, embedding_size=8, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
            intermediate_size=24, max_position_embeddings=32, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0)


ONEDNN_BF16 = torch.bfloat16 in onednn_dtypes(True)
"""oneDNN has bf16 kernels on this CPU (AVX512 at least; on an AVX2-only CPU its bf16 linear raises)."""
needs_onednn_bf16 = pytest.mark.skipif(not ONEDNN_BF16, reason="oneDNN has no bf16 kernels on this CPU")


def _all_bf16() -> torch.Tensor:
    """Every bfloat16 number of magnitude below 2^64 (aten's bf16 GELUs overflow near the top of the range)."""
    x = torch.arange(1 << 16, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
    return x[x.float().abs() < 2.0 ** 64]


def test_bf16_gelu_is_the_tanh_form_to_bf16_precision():
    x = _all_bf16()
    xd = x.double()
    exact_tanh_form = 0.5 * xd * (1 + torch.tanh(math.sqrt(2 / math.pi) * (xd + 0.044715 * xd ** 3)))
    ours = kernels.gelu_tanh(x)
    assert ours.dtype == torch.bfloat16
    # Never further from the tanh form than the two GELUs are apart, plus half a bf16 step of rounding.
    half_step = exact_tanh_form.abs() * 2.0 ** -8
    assert ((ours.double() - exact_tanh_form).abs() <= 4.8e-4 + half_step).all()
    central = xd.abs() < 8
    same = (ours == exact_tanh_form.to(torch.bfloat16))[central].float().mean().item()
    assert same > 0.97, same
    # fp32 keeps the tanh form exactly.
    xf = torch.linspace(-6, 6, 1001)
    assert torch.equal(kernels.gelu_tanh(xf), F.gelu(xf, approximate="tanh"))


def _fused(q, k, v):
    """q, k, v (B, nh, T, hs) as the fused projections (B, T, 3H) that kernels.attention takes."""
    B, nh, T, hs = q.shape
    return torch.stack([q, k, v]).permute(1, 3, 0, 2, 4).reshape(B, T, 3 * nh * hs)


def _attention_and_grads(q, k, v, mask, how: str, dropout_p: float = 0.0):
    """Output and (dq, dk, dv) of kernels.attention with CPU_FAST_PATHS.attention_backward = `how`, as fp32 and
    (B, nh, T, hs)."""
    B, nh, T, hs = q.shape
    with fast_paths(attention_backward=how):
        qkv = _fused(q, k, v).detach().requires_grad_()
        out = kernels.attention(qkv, nh, mask, dropout_p)  # (B, T, H)
        out.float().square().sum().backward()
    heads = out.float().view(B, T, nh, hs).transpose(1, 2)
    return [heads] + list(kernels.split_heads(qkv.grad.float(), nh))


def _padded_inputs(dtype):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 24, 16, generator=g).to(dtype) for _ in range(3))
    keep = torch.ones(2, 24, dtype=torch.float64)
    keep[1, 10:] = 0
    mask = ((1.0 - keep) * torch.finfo(dtype).min)[:, None, None, :].to(dtype)  # (B, 1, 1, T)
    return q, k, v, mask


def test_the_matmul_attention_backward_is_the_exact_gradient():
    """In float64 it passes gradcheck (padding mask included); in fp32 it matches SDPA's own backward."""
    q, k, v, mask = _padded_inputs(torch.float64)
    mask = mask.clamp(min=-1e4)  # finite differences need finite scores
    qkv = _fused(*(t[1:, :2, 4:12, :4] for t in (q, k, v))).clone().requires_grad_()  # its last 2 keys are padding
    window = mask[1:, :, :, 4:12]
    for keep in (False, True):  # SDPA's forward; a matmul forward whose probabilities the backward reuses
        assert torch.autograd.gradcheck(lambda x: kernels.MatmulBackwardAttention.apply(x, window, 2, keep), [qkv])
    q, k, v, mask = _padded_inputs(torch.float32)
    sdpa = _fused(q, k, v).requires_grad_()
    out = kernels.merge_heads(F.scaled_dot_product_attention(*kernels.split_heads(sdpa, 3), attn_mask=mask))
    out.square().sum().backward()
    for keep in (False, True):
        for heads in (0, 4):  # all 6 heads at once; in blocks of 4 heads (the last block shorter, masks per block)
            ours = _fused(q, k, v).requires_grad_()
            with fast_paths(attention_block_heads=heads):
                ours_out = kernels.MatmulBackwardAttention.apply(ours, mask, 3, keep)
                ours_out.square().sum().backward()
            assert torch.allclose(ours_out, out, atol=1e-6), (keep, heads)
            assert torch.allclose(ours.grad, sdpa.grad, atol=1e-5, rtol=1e-5), (keep, heads)


def test_bf16_training_attention_backwards_stay_within_bf16_rounding_of_fp32():
    """Differentiable bf16 attention on CPU takes the calibrated backward (for speed): the fp32 one is at least as
    close to a full fp32 computation as bf16 SDPA's own; the matmul one (softmax in fp32, the (T, T) gradient
    rounded to bf16 before its two matmuls) within two bf16 steps of it; and the padding mask still applies."""
    q, k, v, mask = _padded_inputs(torch.bfloat16)
    reference = _attention_and_grads(q.float(), k.float(), v.float(), mask.float(), "sdpa")
    plain = _attention_and_grads(q, k, v, mask, "sdpa")
    for how in ("matmul", "kept", "fp32"):
        fast = _attention_and_grads(q, k, v, mask, how)
        for name, r, a, b in zip(["out", "dq", "dk", "dv"], reference, fast, plain):
            err_fast, err_plain = ((x - r).abs().max().item() / r.abs().max().item() for x in (a, b))
            bound = err_plain + 1e-3 if how == "fp32" else 2.0 ** -7
            assert err_fast <= bound, (how, name, err_fast, err_plain)
        assert fast[2][1, :, 10:].abs().max() == 0  # masked keys get no gradient
    # Attention dropout: the matmul backward cannot replay SDPA's dropout mask, so "matmul" and "kept" run the fp32
    # one.
    torch.manual_seed(3)
    fp32 = _attention_and_grads(q, k, v, mask, "fp32", 0.5)
    for how in ("matmul", "kept"):
        torch.manual_seed(3)
        assert all(torch.equal(a, b) for a, b in zip(_attention_and_grads(q, k, v, mask, how, 0.5), fp32)), how


def test_all_ones_mask_is_the_same_as_no_mask():
    torch.manual_seed(1)
    model = AlbertModel(AlbertConfig(**TINY)).eval()
    ids = torch.randint(5, 50, (2, 10))
    with torch.no_grad():
        ones = model(ids, torch.ones_like(ids)).last_hidden_state
        none = model(ids).last_hidden_state
        padded_mask = torch.ones_like(ids)
        padded_mask[1, 7:] = 0
        padded = model(ids, padded_mask).last_hidden_state
    assert torch.equal(ones, none)
    assert not torch.allclose(padded[1, :7], none[1, :7])  # a real mask still masks
    assert torch.allclose(padded[0], none[0], atol=1e-6)


def test_the_mask_shortcut_never_reads_a_device_tensor_back():
    """Skipping an all-ones mask needs its values on the host; for a non-CPU tensor that would be a device
    sync every forward, so there the mask is always built (a meta tensor stands in for a GPU one: reading it
    back raises)."""
    meta = torch.ones(2, 5, dtype=torch.int64, device="meta")
    mask = model_module.extended_attention_mask(meta, torch.float32)
    assert mask is not None and mask.shape == (2, 1, 1, 5) and mask.device.type == "meta"
    assert model_module.extended_attention_mask(torch.ones(2, 5, dtype=torch.int64), torch.float32) is None


@pytest.mark.parametrize("share", ["all", "none"])
def test_fused_qkv_is_built_once_per_forward(share):
    """A shared block's Q/K/V weight is concatenated once per forward, not once per layer."""
    model = AlbertModel(AlbertConfig(**TINY, share=share)).eval()
    calls = []
    for block in model.encoder.attention:
        original = block.fused_qkv
        block.fused_qkv = lambda original=original: calls.append(1) or original()
    model(torch.randint(5, 50, (1, 6)))
    assert len(calls) == len(model.encoder.attention) == (1 if share == "all" else 3)


def test_gelu_pytorch_tanh_keeps_the_tanh_form_in_bf16():
    """The opt-out: Hugging Face's `gelu_pytorch_tanh` name runs the tanh form whatever the dtype."""
    model = AlbertModel(AlbertConfig(**TINY, hidden_act="gelu_pytorch_tanh"))
    x = _all_bf16()
    assert torch.equal(model.encoder.ffn[0].act(x), F.gelu(x, approximate="tanh"))
    assert not torch.equal(kernels.gelu_tanh(x), F.gelu(x, approximate="tanh"))


# ---------------------------------------------------------------------------------------------- projections
NO_PLANS = dict(row_chunks={}, weight_grads={}, attention_block_heads=0, bias_epilogues={}, gelu_epilogues={},
                packed_weights={})
"""No measured plan in force (a calibration applied earlier in the process may have left one)."""


def _gradients(model, ids, mask, loss_of, **switches) -> dict[str, torch.Tensor]:
    """Parameter gradients of loss_of(model output) with no plan in force but the `switches` given."""
    model.zero_grad(set_to_none=True)
    with fast_paths(**{**NO_PLANS, **switches}):
        loss_of(model(ids, mask, output_hidden_states=True)).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def _assert_same_gradients(model, ids, mask, loss_of, **switches) -> None:
    """The model's parameter gradients are the same (to fp32 rounding) with the `switches` in force as with no plan."""
    plain = _gradients(model, ids, mask, loss_of)
    planned = _gradients(model, ids, mask, loss_of, **switches)
    for name in plain:
        assert _same(plain[name], planned[name]), name


def _assert_same_inference_outputs(model, ids, mask, **switches) -> None:
    """The model's inference_mode outputs are the same (to 1e-6) with the `switches` in force as without."""
    with torch.inference_mode():
        expected = model(ids, mask).last_hidden_state
        with fast_paths(**switches):
            assert torch.allclose(model(ids, mask).last_hidden_state, expected, atol=1e-6)


def _same(a: torch.Tensor, b: torch.Tensor, tolerance: float = 1e-5) -> bool:
    """Equal to fp32 rounding, relative to the tensor's largest entry."""
    return (a - b).abs().max().item() <= tolerance * a.abs().max().item() + 1e-8  # key biases: ~0 (softmax)


def _count_linear_calls(monkeypatch) -> list:
    calls = []
    real = kernels.Linear.apply
    monkeypatch.setattr(kernels.Linear, "apply", lambda *a: calls.append(a[3]) or real(*a))
    return calls


SHARINGS = [dict(share="all"), dict(share="attention"), dict(share="ffn"),
            dict(share="all", num_hidden_layers=4, num_hidden_groups=2), dict(share="none")]


@pytest.mark.parametrize("sharing", SHARINGS, ids=lambda s: "-".join(map(str, s.values())))
def test_a_shared_layer_sums_its_weight_gradient_in_place_to_the_same_gradient(sharing, monkeypatch):
    """The shared-gradient Linear gives autograd's own gradients (fp32, padding included), also for a loss on an
    inner layer only (whose backward never reaches the later layers) and for a graph run backward twice."""
    torch.manual_seed(0)
    model = AlbertModel(AlbertConfig(**{**TINY, **sharing})).eval()  # eval: no dropout, same masks both ways
    ids, mask = torch.randint(5, 50, (3, 7)), torch.ones(3, 7, dtype=torch.long)
    mask[0, 5:] = 0
    calls = _count_linear_calls(monkeypatch)
    shared_blocks = sharing["share"] != "none"
    probe = torch.randn(3, 7, TINY["hidden_size"])  # a sum of squares of LayerNorm outputs is nearly constant
    for loss_of in (lambda out: (out.last_hidden_state * probe).sum() + out.pooler_output.sum(),
                    lambda out: (out.hidden_states[1] * probe).sum()):
        plain = _gradients(model, ids, mask, loss_of, shared_weight_grad=False)
        assert not calls
        summed = _gradients(model, ids, mask, loss_of, shared_weight_grad=True)
        assert bool(calls) == shared_blocks and all(s is not None for s in calls)
        calls.clear()
        assert plain.keys() == summed.keys()
        for name in plain:
            assert _same(plain[name], summed[name]), name
    if shared_blocks:  # retain the graph, run backward twice: twice the gradient, not a leftover sum
        model.zero_grad(set_to_none=True)
        loss = (model(ids, mask).last_hidden_state * probe).sum()
        loss.backward(retain_graph=True)
        once = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        loss.backward()
        for name, p in model.named_parameters():
            if name in once:
                assert _same(p.grad, 2 * once[name]), name
        assert "encoder.attention.0.query.weight" in once


def test_transpose_in_row_blocks_is_the_transpose():
    a = torch.randn(130, 7)  # not a whole number of blocks
    assert torch.equal(kernels.transpose(a), a.t()) and kernels.transpose(a).is_contiguous()
    buffer = torch.zeros(9, 130)
    kernels.transpose(a, out=buffer[1:8])
    assert torch.equal(buffer[1:8], a.t()) and not buffer[0].any() and not buffer[8].any()


@pytest.mark.parametrize("how", ["grad", "input"])
@pytest.mark.parametrize("sharing", SHARINGS, ids=lambda s: "-".join(map(str, s.values())))
def test_weight_gradients_with_an_operand_transposed_first_are_autograds(sharing, how, monkeypatch):
    """Every projection's weight gradient with gy ("grad") or x ("input", the bias gradient riding along as a row)
    transposed first: autograd's weight and bias gradients, layers summed in place or not."""
    torch.manual_seed(0)
    config = AlbertConfig(**{**TINY, **sharing})
    model = AlbertModel(config).eval()
    ids, mask = torch.randint(5, 50, (3, 7)), torch.ones(3, 7, dtype=torch.long)
    mask[0, 5:] = 0
    H, I = config.hidden_size, config.intermediate_size
    plan = {kernels.matmul_key(torch.float32, 21, k, m): how for k, m in [(H, 3 * H), (H, H), (H, I), (I, H)]}
    probe = torch.randn(3, 7, H)
    loss_of = lambda out: (out.last_hidden_state * probe).sum() + out.pooler_output.sum()  # noqa: E731
    plain = _gradients(model, ids, mask, loss_of, shared_weight_grad=False)
    transposed, real = [], kernels.transpose
    monkeypatch.setattr(kernels, "transpose", lambda a, out=None: transposed.append(a.shape) or real(a, out))
    for summed in (False, True):
        ours = _gradients(model, ids, mask, loss_of, shared_weight_grad=summed, weight_grads=plan)
        assert ours.keys() == plain.keys()
        for name in plain:
            assert _same(plain[name], ours[name]), (summed, name)
    assert transposed  # the plan ran


def test_matmul_in_row_blocks_is_the_same_matmul():
    g = torch.Generator().manual_seed(0)
    a, b, bias = torch.randn(10, 8, generator=g), torch.randn(8, 6, generator=g), torch.randn(6, generator=g)
    with fast_paths(row_chunks={kernels.matmul_key(torch.float32, 10, 8, 6): 4}):
        blocked, blocked_bias = kernels.matmul(a, b), kernels.matmul(a, b, bias)
        other_shape = kernels.matmul(a[:9], b)  # not in the plan: whole
    assert torch.allclose(blocked, a @ b, atol=1e-6) and torch.allclose(blocked_bias, a @ b + bias, atol=1e-6)
    assert torch.allclose(other_shape, a[:9] @ b, atol=1e-6)
    assert kernels.matmul_key(torch.bfloat16, 1024, 768, 3072) == "bfloat16 1024x768x3072"


def test_a_bias_added_by_onednn_is_addmms_bias():
    """oneDNN's linear adds the bias as it writes the output: the same values as addmm's in bf16 and fp32; only
    the planned shape takes it, and never the bias-free input-gradient matmul."""
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16) if ONEDNN_BF16 else (torch.float32,):
        a, w, bias = (torch.randn(*shape, generator=g).to(dtype) for shape in ((12, 8), (6, 8), (6,)))
        with fast_paths(bias_epilogues={kernels.matmul_key(dtype, 12, 8, 6): True}):
            fused, other_rows = kernels.matmul(a, w.t(), bias), kernels.matmul(a[:9], w.t(), bias)
            no_bias = kernels.matmul(a, w.t())
        tol = 1e-6 if dtype == torch.float32 else 1e-2
        assert torch.allclose(fused.float(), torch.addmm(bias, a, w.t()).float(), atol=tol), dtype
        assert torch.allclose(other_rows.float(), torch.addmm(bias, a[:9], w.t()).float(), atol=tol)
        assert torch.equal(no_bias, a @ w.t())


def test_a_model_with_its_biases_added_by_onednn_computes_the_same_outputs_and_gradients(monkeypatch):
    """Every forward projection of a 2-layer model with its bias added by oneDNN's linear: the same outputs and
    gradients as F.linear (to fp32 rounding), under inference_mode too, and the planned matmuls did run it."""
    torch.manual_seed(0)
    config = AlbertConfig(**{**TINY, "num_hidden_layers": 2})
    model = AlbertModel(config).eval()
    ids, mask = torch.randint(5, 50, (3, 7)), torch.ones(3, 7, dtype=torch.long)
    H, I = config.hidden_size, config.intermediate_size
    plan = {kernels.matmul_key(torch.float32, 21, k, m): True for k, m in [(H, 3 * H), (H, H), (H, I), (I, H)]}
    probe = torch.randn(3, 7, H)
    loss_of = lambda out: (out.last_hidden_state * probe).sum()  # noqa: E731
    fused, real = [], torch.ops.mkldnn._linear_pointwise
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", lambda *a: fused.append(a[1].shape) or real(*a))
    _assert_same_gradients(model, ids, mask, loss_of, bias_epilogues=plan)
    assert len(fused) == 4 * config.num_hidden_layers  # Q/K/V, output, FFN in and out, in each layer
    _assert_same_inference_outputs(model, ids, mask, bias_epilogues=plan)


def test_each_activation_names_the_gelu_it_computes():
    """gelu_form says which GELU an FFN's activation computes, so that oneDNN applies that one and no other."""
    f32, bf16 = torch.float32, torch.bfloat16
    acts = model_module.ACT_FNS
    assert kernels.gelu_form(acts["gelu_new"], f32) == "tanh"
    with fast_paths(erf_gelu_bf16=True):
        assert kernels.gelu_form(acts["gelu_new"], bf16) == "erf"
    with fast_paths(erf_gelu_bf16=False):
        assert kernels.gelu_form(acts["gelu_fast"], bf16) == "tanh"
    assert kernels.gelu_form(acts["gelu_pytorch_tanh"], bf16) == "tanh"
    assert kernels.gelu_form(acts["gelu"], f32) == "erf"
    assert kernels.gelu_form(acts["relu"], f32) is None


def _gelu_calls(monkeypatch) -> list:
    """The activations oneDNN's linear was asked to apply, one per call."""
    calls, real = [], torch.ops.mkldnn._linear_pointwise
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", lambda *a: calls.append(a[3:]) or real(*a))
    return calls


@pytest.mark.parametrize("dtype, act, form", [(torch.float32, "gelu_new", "tanh"), (torch.float32, "gelu", "erf"),
                                              pytest.param(torch.bfloat16, "gelu_new", "erf",
                                                           marks=needs_onednn_bf16),
                                              pytest.param(torch.bfloat16, "gelu_pytorch_tanh", "tanh",
                                                           marks=needs_onednn_bf16)])
def test_a_gelu_applied_by_onednn_is_the_activations_own(dtype, act, form, monkeypatch):
    """The FFN input projection with its bias and GELU applied by oneDNN as it writes the output: the same numbers
    as the activation after the matmul (to fp32 rounding; in bf16 to its rounding), for the planned projection at
    any row count, and never where a gradient is taken (its backward needs the output before the GELU)."""
    g = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*shape, generator=g).to(dtype) for shape in ((2, 6, 8), (24, 8), (24,)))
    fn = model_module.ACT_FNS[act]
    plan = {kernels.gelu_key(dtype, 8, 24, form): True}
    calls = _gelu_calls(monkeypatch)
    with fast_paths(**{**NO_PLANS, "gelu_epilogues": plan}):
        with torch.inference_mode():
            projection = kernels.Projection(w, b, 1)
            fused, fewer_rows = projection.activated(x, fn), projection.activated(x[:1], fn)
            narrower = kernels.Projection(w[:20], b[:20], 1).activated(x, fn)  # 8 -> 20: not in the plan
        assert calls == [("gelu", [], "tanh" if form == "tanh" else "none")] * 2
        xg = x.clone().requires_grad_()
        trained = kernels.Projection(w, b, 1).activated(xg, fn)
        assert len(calls) == 2 and trained.requires_grad  # with a gradient: the GELU after the matmul
    expected = fn(F.linear(x, w, b))
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert fused.shape == expected.shape == (2, 6, 24) and fused.dtype == dtype
    assert torch.allclose(fused.float(), expected.float(), atol=tol, rtol=tol)
    assert torch.allclose(fewer_rows.float(), expected[:1].float(), atol=tol, rtol=tol)
    assert torch.allclose(narrower.float(), expected[..., :20].float(), atol=tol, rtol=tol)


def test_a_model_with_its_ffn_gelu_applied_by_onednn_infers_the_same_and_trains_as_before(monkeypatch):
    """A 2-layer model whose FFN GELU oneDNN applies in inference: the same outputs (to fp32 rounding), one fused
    call per layer applied; in training nothing is fused and the gradients are unchanged."""
    torch.manual_seed(0)
    config = AlbertConfig(**{**TINY, "num_hidden_layers": 2})
    model = AlbertModel(config).eval()
    ids, mask = torch.randint(5, 50, (3, 7)), torch.ones(3, 7, dtype=torch.long)
    plan = {kernels.gelu_key(torch.float32, config.hidden_size, config.intermediate_size, "tanh"): True}
    calls = _gelu_calls(monkeypatch)
    with torch.inference_mode():
        expected = model(ids, mask).last_hidden_state
        with fast_paths(**{**NO_PLANS, "gelu_epilogues": plan}):
            fused = model(ids, mask).last_hidden_state
    assert len(calls) == config.num_hidden_layers and _same(expected, fused)
    probe = torch.randn(3, 7, config.hidden_size)
    _assert_same_gradients(model, ids, mask, lambda out: (out.last_hidden_state * probe).sum(), gelu_epilogues=plan)
    assert len(calls) == config.num_hidden_layers  # none while training


def _packing_plan(config: AlbertConfig, dtype: torch.dtype, fewest: int = 1) -> dict[str, int]:
    """Every projection weight of the encoder packed in `dtype`, a copy for one pass paying from `fewest` layers."""
    H, I = config.hidden_size, config.intermediate_size
    return {kernels.weight_key(dtype, k, m): fewest for k, m in [(H, 3 * H), (H, H), (H, I), (I, H)]}


def _count_packings(monkeypatch) -> list:
    packings, real = [], torch.ops.mkldnn._reorder_linear_weight
    monkeypatch.setattr(torch.ops.mkldnn, "_reorder_linear_weight",
                        lambda w, *a: packings.append(w.shape) or real(w, *a))
    return packings


def test_a_packed_weight_is_packed_once_and_again_only_when_the_weight_changes(monkeypatch):
    """Without a gradient, inside keep_packed_weights, a 3-layer model sharing one block applies its projections
    from packed copies: the same outputs as without (to fp32 rounding; in bf16 autocast the same bf16 numbers),
    each block's four weights packed once per dtype and kept across passes, packed again when a weight changes in
    place or is loaded (and the outputs follow it), never in training, where the gradients are as before."""
    torch.manual_seed(0)
    config = AlbertConfig(**TINY)
    model = AlbertModel(config).eval()
    ids, mask = torch.randint(5, 50, (3, 7)), torch.ones(3, 7, dtype=torch.long)
    plan = {**_packing_plan(config, torch.float32), **(_packing_plan(config, torch.bfloat16) if ONEDNN_BF16 else {})}
    packings = _count_packings(monkeypatch)
    n = 4 if ONEDNN_BF16 else 0  # bf16's copies

    def outputs(packed: bool, autocast: bool = False) -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            with fast_paths(**{**NO_PLANS, "packed_weights": plan if packed else {}}):
                with kernels.keep_packed_weights():
                    return model(ids, mask).last_hidden_state
    assert _same(outputs(False), outputs(True)) and len(packings) == 4  # Q/K/V fused, output, FFN in and out
    assert _same(outputs(False), outputs(True)) and len(packings) == 4  # kept
    assert torch.equal(outputs(False, autocast=True), outputs(True, autocast=True)) and len(packings) == 4 + n
    assert outputs(True).dtype == torch.float32 and len(packings) == 4 + n  # each dtype's copy kept
    with torch.no_grad():
        model.encoder.ffn[0].output.weight.mul_(2.0)
    assert _same(outputs(False), outputs(True))
    assert packings[4 + n:] == [(config.hidden_size, config.intermediate_size)]
    model.load_state_dict({k: v + 0.01 for k, v in model.state_dict().items()})
    assert _same(outputs(False), outputs(True)) and len(packings) == 9 + n
    probe = torch.randn(3, 7, config.hidden_size)
    _assert_same_gradients(model, ids, mask, lambda out: (out.last_hidden_state * probe).sum(), packed_weights=plan)
    assert len(packings) == 9 + n  # none while training


@pytest.mark.parametrize("share, fewest, packed", [("all", 1, 8), ("all", 3, 8), ("all", 4, 0), ("none", 1, 0)])
def test_outside_keep_packed_weights_each_pass_packs_the_blocks_it_applies_often_enough(share, fewest, packed,
                                                                                          monkeypatch):
    """Outside keep_packed_weights nothing is kept: a pass packs each block it applies in at least as many layers
    as the plan says pay for the packing, and never one it applies once (so a weight changed where its version
    counter cannot show it, through `.data`, is seen by the next pass); the others run as they are."""
    torch.manual_seed(0)
    config = AlbertConfig(**TINY, share=share)  # 3 layers
    model = AlbertModel(config).eval()
    ids, mask = torch.randint(5, 50, (3, 7)), torch.ones(3, 7, dtype=torch.long)
    packings = _count_packings(monkeypatch)
    plan = _packing_plan(config, torch.float32, fewest)
    with torch.no_grad(), fast_paths(**{**NO_PLANS, "packed_weights": plan}):
        before = model(ids, mask).last_hidden_state
        model.encoder.ffn[0].output.weight.data.mul_(2.0)
        after = model(ids, mask).last_hidden_state
        with fast_paths(packed_weights={}):
            expected = model(ids, mask).last_hidden_state
    assert len(packings) == packed
    assert _same(after, expected) and not _same(before, after)


def test_a_packed_projection_keeps_its_oneDNN_gelu_and_skips_what_cannot_pack(monkeypatch):
    """A kept packed FFN input projection with oneDNN's GELU plan applies both (the activation's numbers); a weight
    the plan does not name and a pass with a gradient run unpacked; inference tensors (no version counter) are
    packed per pass where shared, and not at all where not."""
    g = torch.Generator().manual_seed(0)
    linear = torch.nn.Linear(8, 24)
    x = torch.randn(2, 6, 8, generator=g)
    fn = model_module.ACT_FNS["gelu_new"]
    packings = _count_packings(monkeypatch)
    plan = {kernels.weight_key(torch.float32, 8, 24): 1}
    with fast_paths(**{**NO_PLANS, "packed_weights": plan,
                       "gelu_epilogues": {kernels.gelu_key(torch.float32, 8, 24, "tanh"): True}}):
        with torch.no_grad(), kernels.keep_packed_weights():
            packed = kernels.projection(linear, 1)
            assert packed.packed and len(packings) == 1
            assert torch.allclose(kernels.activated(packed, fn, x), fn(linear(x)), atol=1e-5)
            assert torch.allclose(packed(x[:1, :2]), linear(x[:1, :2]), atol=1e-5)
            assert not getattr(kernels.projection(torch.nn.Linear(8, 20), 1), "packed", False)
        with kernels.keep_packed_weights():
            assert kernels.projection(linear, 1) is linear  # with a gradient: the module itself
        with torch.inference_mode(), kernels.keep_packed_weights():
            made_here = torch.nn.Linear(8, 24)
            assert not kernels.projection(made_here, 1).packed  # the GELU plan's Projection, unpacked
            for _ in range(2):
                assert torch.allclose(kernels.projection(made_here, 2)(x), made_here(x), atol=1e-5)
        assert len(packings) == 3


def _blocks_of_4_rows(config: AlbertConfig, rows: int) -> dict[str, int]:
    """A row plan running every projection matmul (forward and input gradient) at `rows` in blocks of 4 rows."""
    H, I = config.hidden_size, config.intermediate_size
    shapes = [(H, 3 * H), (H, H), (H, I), (I, H), (3 * H, H)]
    return {kernels.matmul_key(dtype, rows, k, m): 4 for k, m in shapes for dtype in (torch.float32, torch.bfloat16)}


def test_a_model_under_a_row_plan_computes_the_same_outputs_and_gradients(monkeypatch):
    """Every projection matmul of a 3-layer model (21 rows) in blocks of 4 rows: the same outputs in training,
    under inference_mode and in bf16 (to bf16 rounding), the same gradients; only the embedding projection and the
    pooler (outside the encoder) still run F.linear."""
    torch.manual_seed(0)
    config = AlbertConfig(**TINY, share="none")
    model = AlbertModel(config).eval()
    ids, mask = torch.randint(5, 50, (3, 7)), torch.ones(3, 7, dtype=torch.long)
    plan = _blocks_of_4_rows(config, 21)
    probe = torch.randn(3, 7, config.hidden_size)  # a sum of squares of LayerNorm outputs is nearly constant
    loss_of = lambda out: (out.last_hidden_state * probe).sum()  # noqa: E731
    calls = _count_linear_calls(monkeypatch)
    _assert_same_gradients(model, ids, mask, loss_of, row_chunks=plan)
    assert len(calls) == 4 * config.num_hidden_layers and all(s is None for s in calls)  # no sharing here
    _assert_same_inference_outputs(model, ids, mask, row_chunks=plan)
    with torch.inference_mode():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            plain_bf16 = model(ids, mask).last_hidden_state
            with fast_paths(row_chunks=plan):
                planned_bf16 = model(ids, mask).last_hidden_state
    assert planned_bf16.dtype == plain_bf16.dtype
    assert (planned_bf16.float() - plain_bf16.float()).abs().max() <= 0.05 * plain_bf16.float().abs().max()
    linears, real = [], F.linear
    monkeypatch.setattr(F, "linear", lambda *a: linears.append(a[1].shape) or real(*a))
    with fast_paths(row_chunks=plan):
        model(ids, mask)
    assert linears == [(config.hidden_size, config.embedding_size), (config.hidden_size, config.hidden_size)]


def test_without_a_fast_path_the_projection_is_the_module_itself():
    """No plan and nothing shared (or a GPU, or torch.compile): the nn.Linear runs as itself, hooks and all."""
    linear = torch.nn.Linear(4, 4)
    with fast_paths(**NO_PLANS, shared_weight_grad=True):
        assert kernels.projection(linear, 1) is linear
        assert kernels.projection(linear, 3) is not linear  # shared in training: summed gradient
        with torch.no_grad():
            assert kernels.projection(linear, 3) is linear
    with fast_paths(row_chunks={"float32 1x4x4": 0}, weight_grads={"float32 1x4x4": ""}):  # measured: as is best
        assert kernels.projection(linear, 1) is linear
    with fast_paths(**{**NO_PLANS, "weight_grads": {"float32 1x4x4": "input"}}):  # a weight-gradient plan: trains only
        assert kernels.projection(linear, 1) is not linear
        with torch.no_grad():
            assert kernels.projection(linear, 1) is linear
    with fast_paths(shared_weight_grad=False):
        assert kernels.projection(linear, 3) is linear


def test_a_frozen_weight_still_trains_its_bias_through_the_fast_paths():
    """BitFit (weights frozen, biases trained) under a row plan, shared blocks: autograd's bias gradients."""
    torch.manual_seed(0)
    config = AlbertConfig(**TINY)
    model = AlbertModel(config).eval()
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.endswith("bias"))
    ids, mask = torch.randint(5, 50, (3, 7)), torch.ones(3, 7, dtype=torch.long)
    probe = torch.randn(3, 7, config.hidden_size)
    loss_of = lambda out: (out.last_hidden_state * probe).sum()  # noqa: E731
    plain = _gradients(model, ids, mask, loss_of)
    planned = _gradients(model, ids, mask, loss_of, row_chunks=_blocks_of_4_rows(config, 21), shared_weight_grad=True)
    assert plain.keys() == planned.keys() and all(name.endswith("bias") for name in plain)
    assert {"encoder.attention.0.dense.bias", "encoder.ffn.0.intermediate.bias", "encoder.ffn.0.output.bias"} <= set(plain)
    for name in plain:
        assert _same(plain[name], planned[name]), name


@pytest.mark.parametrize("overrides", [{}, dict(norm_position="pre"), dict(share="none"), dict(inner_group_num=2)],
                         ids=["post", "pre", "unshared", "inner2"])
def test_the_last_layer_at_the_heads_positions_is_the_whole_last_layer_gathered(overrides):
    torch.manual_seed(0)
    model = model_module.AlbertForPreTraining(AlbertConfig(**TINY, **overrides)).eval()  # no SOP dropout
    ids = torch.randint(5, 50, (3, 16))
    mask = torch.ones(3, 16, dtype=torch.long)
    mask[2, 11:] = 0  # padded: the keys there must stay masked for the gathered queries too
    positions = torch.tensor([[1, 4, 9, 0], [2, 3, 14, 15], [5, 6, 10, 0]])  # (B, P), 0 = a padding prediction
    labels = torch.tensor([[7, 8, 9, -100], [10, 11, 12, 13], [14, 15, 16, -100]])
    sop = torch.tensor([0, 1, 0])
    rows_seen = []
    last_ffn = model.albert.encoder.ffn[model.albert.encoder.layout[-1][1]]
    hook = last_ffn.register_forward_hook(lambda module, args, out: rows_seen.append(out.shape[1]))
    out = model(ids, mask, labels=labels, sentence_order_label=sop, masked_lm_positions=positions)
    hook.remove()
    assert rows_seen[-1] == 1 + positions.shape[1]  # the last layer ran on [CLS] and the 4 positions only
    grads = torch.autograd.grad(out.loss, list(model.parameters()), allow_unused=True)

    whole = model.albert(ids, mask)  # every position through the last layer, then gathered
    h = model_module.gather_positions(whole.last_hidden_state, positions)  # (B, P, H)
    logits = model.predictions(h, model.albert.embeddings.word_embeddings.weight)
    sop_logits = model.sop_classifier(whole.pooler_output)
    loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100) + F.cross_entropy(sop_logits, sop)
    expected = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)

    torch.testing.assert_close(out.prediction_logits, logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.sop_logits, sop_logits, atol=1e-5, rtol=1e-5)
    for (name, _), g, e in zip(model.named_parameters(), grads, expected):
        if e is None:
            assert g is None or not g.any(), name
        else:
            torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-4, msg=name)


def test_classification_runs_its_last_layer_at_cls_only_to_the_same_logits():
    torch.manual_seed(0)
    model = model_module.AlbertForSequenceClassification(AlbertConfig(**TINY, num_labels=3)).eval()
    ids, mask = torch.randint(5, 50, (2, 12)), torch.ones(2, 12, dtype=torch.long)
    mask[1, 7:] = 0
    whole = model.albert(ids, mask)
    torch.testing.assert_close(model(ids, mask).logits, model.classifier(whole.pooler_output), atol=1e-6, rtol=1e-5)
    at_cls = model.albert(ids, mask, output_positions=ids.new_zeros(2, 0))
    assert at_cls.last_hidden_state.shape == (2, 0, 32)
    with pytest.raises(ValueError, match="output_hidden_states"):
        model.albert(ids, mask, output_hidden_states=True, output_positions=ids.new_zeros(2, 0))


def test_attention_of_batched_matmuls_without_a_gradient_is_sdpas_to_bf16_rounding(monkeypatch):
    torch.manual_seed(0)
    qkv = torch.randn(3, 24, 3 * 32)
    mask = model_module.extended_attention_mask(torch.tensor([[1] * 24, [1] * 17 + [0] * 7, [1] * 5 + [0] * 19]),
                                                torch.float32)
    exact = kernels.attention(qkv.double(), 4, mask.double(), 0.0)  # fp64 SDPA: the reference
    monkeypatch.setattr(kernels.CPU_FAST_PATHS, "attention_forward", "matmul")
    fp32 = kernels.matmul_attention(qkv, mask, 4)[0]
    torch.testing.assert_close(fp32.double(), exact, atol=1e-6, rtol=1e-5)
    with torch.inference_mode():
        monkeypatch.setattr(kernels.CPU_FAST_PATHS, "attention_forward", "sdpa")
        sdpa = kernels.attention(qkv.bfloat16(), 4, mask.bfloat16(), 0.0)
        monkeypatch.setattr(kernels.CPU_FAST_PATHS, "attention_forward", "matmul")
        ours = kernels.attention(qkv.bfloat16(), 4, mask.bfloat16(), 0.0)
    assert torch.equal(ours, kernels.matmul_attention(qkv.bfloat16(), mask.bfloat16(), 4)[0])  # dispatched
    # No further from fp64 than SDPA's own bf16 is, give or take a bf16 step of the outputs (|x| < 4 here).
    err_ours, err_sdpa = (ours.double() - exact).abs().max(), (sdpa.double() - exact).abs().max()
    assert err_ours <= err_sdpa + 2 ** -6, (err_ours, err_sdpa)


def _attention_at_and_grads(qkv: torch.Tensor, rows: torch.Tensor, mask: torch.Tensor, grad: bool):
    qkv = qkv.clone().requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        out = kernels.attention_at(qkv, rows, 4, mask, 0.0)  # (B, R, H)
    if not grad:
        return [out]
    out.backward(torch.linspace(-1, 1, out.numel()).view_as(out).to(out.dtype))
    return [out.detach(), qkv.grad]


@pytest.mark.parametrize("grad", [True, False], ids=["train", "infer"])
def test_the_last_layers_attention_of_batched_matmuls_is_sdpas_to_bf16_rounding(grad, monkeypatch):
    """attention_at takes batched bf16 matmuls where the calibrated switches send `attention` there, SDPA
    elsewhere: outputs and gradients as close to fp64 SDPA as bf16 SDPA's, give or take a bf16 step, and padded
    keys still masked."""
    torch.manual_seed(0)
    qkv = torch.randn(3, 24, 3 * 32)
    mask = model_module.extended_attention_mask(torch.tensor([[1] * 24, [1] * 17 + [0] * 7, [1] * 5 + [0] * 19]),
                                                torch.float32)
    rows = torch.tensor([[0, 3, 23], [0, 16, 2], [0, 4, 1]])  # (B, R): [CLS] and two positions
    exact = _attention_at_and_grads(qkv.double(), rows, mask.double(), grad)
    runs = {}
    for path in ("sdpa", "matmul"):
        switch = dict(attention_backward=path) if grad else dict(attention_forward=path)
        for name, value in switch.items():
            monkeypatch.setattr(kernels.CPU_FAST_PATHS, name, value)
        calls = []
        monkeypatch.setattr(kernels, "probabilities", lambda *a, f=kernels.probabilities: calls.append(1)
                            or f(*a))
        runs[path] = _attention_at_and_grads(qkv.bfloat16(), rows, mask.bfloat16(), grad)
        assert bool(calls) == (path == "matmul"), path  # the switch decides which form runs
        monkeypatch.undo()
    for name, r, ours, sdpa in zip(["out", "dqkv"], exact, runs["matmul"], runs["sdpa"]):
        err_ours, err_sdpa = ((x.double() - r).abs().max().item() for x in (ours, sdpa))
        assert err_ours <= err_sdpa + 2 ** -6 * r.abs().max().item(), (name, err_ours, err_sdpa)
    if grad:
        dkeys = runs["matmul"][1].view(3, 24, 3, 32)[:, :, 1]  # the keys' gradient (B, T, H)
        assert dkeys[1, 17:].abs().max() == 0 and dkeys[2, 5:].abs().max() == 0  # padded keys get none


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_a_packed_dropout_mask_drops_each_element_independently_with_probability_p(p):
    """Four decisions from each 64-bit word: every lane, and every pair of lanes of a word, Bernoulli as asked."""
    torch.manual_seed(0)
    keep, scale = kernels.dropout_mask((4096, 1024), p, torch.float32)
    assert set(keep.unique().tolist()) <= {0.0, 1.0}
    dropped = keep.view(-1, 4) == 0  # the four lanes of each word
    n, sigma = dropped.shape[0], math.sqrt(p * (1 - p) / dropped.shape[0])
    assert (dropped.float().mean(0) - p).abs().max() < 5 * sigma  # each lane
    both = (dropped[:, 0] & dropped[:, 1]).float().mean(), (dropped[:, 2] & dropped[:, 3]).float().mean()
    assert all(abs(b - p * p) < 5 * math.sqrt(p * p * (1 - p * p) / n) for b in both)  # pairs independent
    assert scale == pytest.approx(1 / (1 - p), rel=1e-4)
    torch.manual_seed(0)
    again = kernels.dropout_mask((4096, 1024), p, torch.bfloat16)[0]  # torch's generator: seeded; any dtype
    assert again.dtype == torch.bfloat16 and torch.equal(again.float(), keep)
    assert kernels.dropout_mask((3, 5), 0.0, torch.float32)[0].eq(1).all()
    assert kernels.dropout_mask((3, 5), 1.0, torch.float32)[0].eq(0).all()


def test_packed_dropout_keeps_the_expectation_and_its_gradient_is_the_mask(monkeypatch):
    x = torch.randn(64, 256, requires_grad=True)
    drop = kernels.Dropout(0.1)
    assert drop.eval()(x) is x
    drop.train()
    torch.manual_seed(3)
    y = drop(x)
    torch.manual_seed(3)
    keep, scale = kernels.dropout_mask(x.shape, 0.1, x.dtype)
    assert torch.equal(y, torch.where(keep.bool(), x * scale, 0))
    y.backward(torch.ones_like(y))
    assert torch.equal(x.grad, keep * scale)
    bf16 = torch.randn(64, 256).bfloat16()  # x times the scale in full precision, rounded once to bf16
    torch.manual_seed(3)
    keep, scale = kernels.dropout_mask(bf16.shape, 0.1, torch.bfloat16)
    torch.manual_seed(3)
    assert torch.equal(drop(bf16), torch.where(keep.bool(), (bf16.float() * scale).bfloat16(), 0))
    mean = torch.stack([drop(torch.ones(256, 256)) for _ in range(64)]).mean()
    assert mean == pytest.approx(1.0, abs=3e-3)  # E = x: 4M draws, sigma ~1.6e-4
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)  # torch.compile: its own dropout, fused
    assert not kernels.packs_dropout(x, 0.1)
    monkeypatch.undo()
    with fast_paths(packed_dropout=False):  # torch's own dropout: other draws, the same law
        assert drop(torch.ones(256, 256)).eq(0).float().mean() == pytest.approx(0.1, abs=0.01)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_attention_under_dropout_is_the_attention_of_its_mask(dtype, monkeypatch):
    """dropout_attention computes softmax(q k^T / sqrt(hs) + mask) with dropout_mask's elements dropped and the
    rest scaled, then @ v; its gradients are autograd's of that formula; a model in training takes it on a CPU."""
    torch.manual_seed(0)
    B, T, H, nh = 2, 7, 16, 2
    qkv = torch.randn(B, T, 3 * H, dtype=torch.float64).to(dtype).requires_grad_()
    mask = torch.zeros(B, 1, 1, T, dtype=dtype)
    mask[1, ..., -2:] = torch.finfo(dtype).min
    torch.manual_seed(5)
    out = kernels.dropout_attention(qkv, mask, nh, 0.3)
    torch.manual_seed(5)
    keep, scale = kernels.dropout_mask((B * nh, T, T), 0.3, dtype)
    q, k, v = (x.double() for x in kernels.split_heads(qkv, nh))  # (B, nh, T, hs)
    probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(H // nh) + mask.double(), -1)
    ref = kernels.merge_heads((probs * keep.view(B, nh, T, T) * scale) @ v)
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=3e-2, rtol=3e-2)
    torch.testing.assert_close(out.double(), ref, **tol)
    g = torch.randn_like(ref)
    (grad,) = torch.autograd.grad(out, qkv, g.to(dtype))
    (grad_ref,) = torch.autograd.grad(ref, qkv, g)
    torch.testing.assert_close(grad.double(), grad_ref.double(), **tol)
    torch.manual_seed(5)
    with fast_paths(attention_block_heads=1):  # the backward a head at a time: the same gradient
        (blocked,) = torch.autograd.grad(kernels.dropout_attention(qkv, mask, nh, 0.3), qkv, g.to(dtype))
    torch.testing.assert_close(blocked, grad, **tol)
    # the last layer's queries at a few rows only: the same formula, its own mask of (B*nh, R, T)
    rows = torch.tensor([[0, 5], [6, 0]])  # (B, R)
    torch.manual_seed(6)
    out = kernels.attention_at(qkv, rows, nh, mask, 0.3)
    torch.manual_seed(6)
    keep, scale = kernels.dropout_mask((B * nh, 2, T), 0.3, dtype)
    probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(H // nh) + mask.double(), -1)  # a fresh graph
    at = probs.gather(2, rows[:, None, :, None].expand(B, nh, 2, T))  # (B, nh, R, T)
    ref = kernels.merge_heads((at * keep.view(B, nh, 2, T) * scale) @ v)
    torch.testing.assert_close(out.double(), ref, **tol)
    (grad,) = torch.autograd.grad(out, qkv, g[:, :2].to(dtype))
    (grad_ref,) = torch.autograd.grad(ref, qkv, g[:, :2])
    torch.testing.assert_close(grad.double(), grad_ref.double(), **tol)
    # in a model in training: attention dropout runs here, not in SDPA (whose draws would differ)
    config = AlbertConfig(**{**TINY, "attention_probs_dropout_prob": 0.2})
    model = AlbertModel(config).train()
    ids = torch.randint(0, 50, (2, 9))
    calls, real = [], kernels.dropout_mask
    monkeypatch.setattr(kernels, "dropout_mask", lambda shape, *a: calls.append(tuple(shape)) or real(shape, *a))
    model(ids, output_positions=torch.tensor([[0, 3], [0, 1]]))
    with fast_paths(packed_dropout=False):
        model(ids, output_positions=torch.tensor([[0, 3], [0, 1]]))
    heads = 2 * config.num_attention_heads
    # every layer but the last at all 9 positions; the last at [CLS] (for the pooler) and the 2 asked
    assert [c for c in calls if len(c) == 3] == [(heads, 9, 9)] * (config.num_hidden_layers - 1) + [(heads, 3, 9)]
