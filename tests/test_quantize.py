"""Dynamic int8 inference in PyTorch (litebert.quantize): each int8 matmul is close to its fp32 one, zero stays
exact, shared blocks are quantised once, the FFN's activation is fused, and a trained classifier keeps its
decisions."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from litebert import AlbertConfig, AlbertForSequenceClassification, AlbertModel
from litebert.quantize import Int8Linear, activation_levels, quantize_dynamic_int8, quantize_uint8

if not hasattr(torch.ops.onednn, "qlinear_pointwise"):
    pytest.skip("this torch build has no oneDNN int8 kernels", allow_module_level=True)

CONFIG = AlbertConfig(vocab_size=200, embedding_size=16, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                      intermediate_size=128, max_position_embeddings=64)


def test_uint8_quantisation_keeps_zero_exact_and_errs_by_half_a_step():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(64, 48, generator=g) * 3 + 1, torch.zeros(2, 48)])
    x8, scale, zero_point = quantize_uint8(x)
    assert x8.dtype == torch.uint8 and x8.shape == x.shape
    back = scale * (x8.float() - zero_point)
    assert (back[-2:] == 0).all()  # zero padding stays zero
    assert (back - x).abs().max() <= scale / 2 + 1e-6
    assert int(x8.min()) == 0 and int(x8.max()) == 255  # the range is used whole
    positive, *_ = quantize_uint8(torch.rand(10, 8) + 1)  # all positive: the range still holds 0
    assert int(positive.min()) > 0


def test_activation_codes_stay_where_the_int8_kernel_is_exact():
    """The widest codes the kernel is fed multiply exactly, on a CPU with VNNI (8 bits) or without (7 bits: oneDNN's
    AVX2 kernel sums pairs of u8 x s8 products in a saturating int16)."""
    levels = activation_levels()
    assert levels in (127, 255)
    weight = torch.ops.onednn.qlinear_prepack(torch.full((3, 64), 127, dtype=torch.int8), None)
    x8 = torch.full((2, 64), levels, dtype=torch.uint8)
    y = torch.ops.onednn.qlinear_pointwise(x8, 1.0, 0, weight, torch.ones(3), torch.zeros(3, dtype=torch.int64),
                                           None, 1.0, 0, torch.float32, "none", [], "")
    assert (y == 64 * levels * 127).all()
    codes, *_ = quantize_uint8(torch.randn(50, 8), levels)
    assert int(codes.min()) == 0 and int(codes.max()) == levels


@pytest.mark.parametrize("activation,reference", [(("none", ""), lambda y: y),
                                                  (("gelu", "tanh"), lambda y: F.gelu(y, approximate="tanh")),
                                                  (("relu", ""), F.relu)])
def test_int8_linear_is_close_to_fp32(activation, reference):
    g = torch.Generator().manual_seed(1)
    linear = torch.nn.Linear(96, 80)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(80, 96, generator=g) * 0.1)
    x = torch.randn(2, 7, 96, generator=g)
    want = reference(linear(x)).detach()
    got = Int8Linear.from_linear(linear, activation)(x)
    assert got.shape == want.shape == (2, 7, 80)
    error = (got - want).abs().max() / want.abs().max()
    assert error < 0.03, error
    assert F.cosine_similarity(got.flatten(), want.flatten(), 0) > 0.999


def test_quantized_model_quantises_each_shared_block_once_and_stays_close(tmp_path):
    torch.manual_seed(0)
    model = AlbertModel(CONFIG).eval()
    inputs = dict(input_ids=torch.randint(5, 200, (3, 20)), attention_mask=torch.ones(3, 20, dtype=torch.long))
    inputs["attention_mask"][1:, 15:] = 0
    with torch.no_grad():
        want = model(**inputs).last_hidden_state
    quantize_dynamic_int8(model)
    int8 = [m for m in model.modules() if isinstance(m, Int8Linear)]
    assert len(int8) == 4  # one shared block: fused Q/K/V, attention output, FFN in (GELU fused), FFN out
    assert int8[2].activation == ("gelu", "tanh") and isinstance(model.encoder.ffn[0].act, torch.nn.Identity)
    with torch.no_grad():
        got = model(**inputs).last_hidden_state
    assert F.cosine_similarity(got.flatten(), want.flatten(), 0) > 0.999
    assert (got - want).abs().max() < 0.1

    with pytest.raises(ValueError, match="quantised to int8 for inference"):
        model.save_pretrained(tmp_path / "int8")
    assert not (tmp_path / "int8").exists()  # nothing written half

    # no sharing, pre-LN, an activation oneDNN cannot fuse (it stays a separate fp32 op)
    unshared = AlbertModel(CONFIG.replace(share="none", norm_position="pre", hidden_act="silu")).eval()
    with torch.no_grad():
        want = unshared(**inputs).last_hidden_state
        quantize_dynamic_int8(unshared)
        got = unshared(**inputs).last_hidden_state
    assert sum(isinstance(m, Int8Linear) for m in unshared.modules()) == 4 * CONFIG.num_hidden_layers
    assert unshared.encoder.ffn[0].act is F.silu and unshared.encoder.ffn[0].intermediate.activation == ("none", "")
    assert F.cosine_similarity(got.flatten(), want.flatten(), 0) > 0.999


def test_trained_classifier_keeps_its_decisions_in_int8():
    """A classifier trained on a token-presence task (label 1 iff token 7 occurs) scores the same in int8."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    ids = torch.from_numpy(rng.integers(10, 200, (512, 16)))
    labels = torch.from_numpy(rng.integers(0, 2, 512))
    ids[labels == 1, torch.from_numpy(rng.integers(1, 16, int(labels.sum())))] = 7
    model = AlbertForSequenceClassification(CONFIG.replace(num_labels=2, hidden_dropout_prob=0.0,
                                                           attention_probs_dropout_prob=0.0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for step in range(150):
        batch = torch.from_numpy(rng.integers(0, 448, 32))
        loss = model(ids[batch], labels=labels[batch]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    test = slice(448, 512)
    with torch.no_grad():
        fp32 = model(ids[test]).logits
        int8 = quantize_dynamic_int8(model)(ids[test]).logits
    accuracy = (fp32.argmax(-1) == labels[test]).float().mean()
    assert accuracy > 0.9, accuracy  # the task was learnt, so the comparison means something
    assert (int8.argmax(-1) == fp32.argmax(-1)).float().mean() >= 0.97
    assert (int8.softmax(-1) - fp32.softmax(-1)).abs().max() < 0.1
