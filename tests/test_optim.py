"""LAMB against an independent float64 transcription of google-research/albert's lamb_optimizer.py, the
parameter groups, and the official warmup + polynomial-decay schedule."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from litebert.config import AlbertConfig
from litebert.model import AlbertForPreTraining
from litebert.optim import (
    Lamb,
    OptimConfig,
    ScheduleConfig,
    build_optimizer,
    learning_rate,
    param_groups,
    without_bias_correction,
)

EXCLUDE = ["LayerNorm", "layer_norm", "bias"]


def official_lamb_step(param, grad, m, v, name, lr, wd=0.01, b1=0.9, b2=0.999, eps=1e-6):
    """`LAMBOptimizer.apply_gradients` of the official code for one variable, in numpy float64."""
    m = b1 * m + (1 - b1) * grad
    v = b2 * v + (1 - b2) * grad ** 2
    update = m / (np.sqrt(v) + eps)
    if not any(re.search(r, name) for r in EXCLUDE):  # _do_use_weight_decay
        update = update + wd * param
    ratio = 1.0
    if not any(re.search(r, name) for r in EXCLUDE):  # _do_layer_adaptation (defaults to the same list)
        w_norm, g_norm = np.linalg.norm(param), np.linalg.norm(update)
        ratio = (w_norm / g_norm if g_norm > 0 else 1.0) if w_norm > 0 else 1.0
    return param - ratio * lr * update, m, v


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(5, 4)
        self.layer_norm = nn.LayerNorm(4)
        self.zero = nn.Parameter(torch.zeros(3))  # a decayed, adapted parameter with norm 0: ratio falls back to 1


def test_lamb_matches_the_official_update():
    torch.manual_seed(0)
    model = Tiny().double()
    with torch.no_grad():
        model.layer_norm.weight.normal_()
    optimizer = Lamb(param_groups(model, 0.01, EXCLUDE), lr=0.05, betas=(0.9, 0.999), eps=1e-6)
    names = dict((id(p), n) for n, p in model.named_parameters())
    reference = {n: (p.detach().numpy().copy(), 0.0, 0.0) for n, p in model.named_parameters()}
    rng = np.random.default_rng(0)
    for step in range(5):
        for p in model.parameters():
            grad = rng.normal(size=p.shape) * (0 if step == 0 and names[id(p)] == "zero" else 1)
            p.grad = torch.from_numpy(grad)
            w, m, v = reference[names[id(p)]]
            reference[names[id(p)]] = official_lamb_step(w, grad, m, v, names[id(p)], lr=0.05)
        optimizer.step()
        for n, p in model.named_parameters():
            np.testing.assert_allclose(p.detach().numpy(), reference[n][0], rtol=1e-12, atol=1e-14, err_msg=n)
    assert not torch.equal(model.zero, torch.zeros(3))  # it left 0 through the ratio-1 fallback


def test_no_bias_correction_first_step():
    """First step, excluded parameter: m = 0.1 g, v = 0.001 g², so the step is lr · 0.1/√0.001 ≈ 3.162 · lr."""
    p = nn.Parameter(torch.zeros(4, dtype=torch.float64))
    optimizer = Lamb([{"params": [p], "weight_decay": 0.0, "adapt": False}], lr=0.01, eps=0.0)
    p.grad = torch.tensor([1.0, -2.0, 3.0, -4.0], dtype=torch.float64)
    optimizer.step()
    expected = -0.01 * 0.1 / np.sqrt(0.001) * np.sign(p.grad.numpy())
    np.testing.assert_allclose(p.detach().numpy(), expected, rtol=1e-12)


def test_trust_ratio_sets_the_step_to_lr_times_weight_norm():
    p = nn.Parameter(torch.randn(10, 10, dtype=torch.float64))
    before = p.detach().clone()
    optimizer = Lamb([{"params": [p], "weight_decay": 0.0, "adapt": True}], lr=0.1)
    p.grad = torch.randn(10, 10, dtype=torch.float64) * 1e-3  # any gradient scale
    optimizer.step()
    assert (p.detach() - before).norm().item() == pytest.approx(0.1 * before.norm().item(), rel=1e-12)


def test_param_groups_of_albert_exclude_layer_norms_and_biases():
    model = AlbertForPreTraining(AlbertConfig.preset("albert-tiny", vocab_size=100))
    decay, no_decay = param_groups(model, 0.01, EXCLUDE)
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    decay_names = {names[id(p)] for p in decay["params"]}
    assert no_decay_names and decay_names and not no_decay_names & decay_names
    assert all(n.endswith(".bias") or ".layer_norm." in n for n in no_decay_names)
    assert "predictions.bias" in no_decay_names and "albert.embeddings.layer_norm.weight" in no_decay_names
    assert "albert.embeddings.word_embeddings.weight" in decay_names
    assert "albert.encoder.attention.0.query.weight" in decay_names
    assert len(decay_names) + len(no_decay_names) == len(list(model.parameters()))
    assert (decay["weight_decay"], decay["adapt"]) == (0.01, True)
    assert (no_decay["weight_decay"], no_decay["adapt"]) == (0.0, False)


def test_build_adamw_keeps_the_groups():
    model = Tiny()
    optimizer = build_optimizer(model, OptimConfig(name="adamw", lr=1e-3))
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0]
    assert optimizer.param_groups[0]["eps"] == 1e-6
    assert isinstance(build_optimizer(model, OptimConfig()), Lamb)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        OptimConfig(name="sgd")


@pytest.mark.parametrize("name", ["adamw", "adamweightdecay"])
def test_adam_on_a_cpu_runs_the_fused_kernel_with_the_loops_update_and_an_exact_resume(name):
    """On a CPU `build_optimizer` gives torch's fused AdamW (one pass per tensor instead of a Python loop of
    element-wise ops), for AdamWeightDecay with its bias correction off: the same update as the loop it replaces
    (torch's for-loop AdamW; `Lamb` without the trust ratio for AdamWeightDecay) to rounding, and a state dict
    that resumes bit for bit."""
    def fresh():
        torch.manual_seed(0)
        return Tiny()

    grads = [[torch.randn_like(p) for p in fresh().parameters()] for _ in range(12)]

    def run(model, optimizer, steps):
        for step_grads in steps:
            for p, g in zip(model.parameters(), step_grads):
                p.grad = g.clone()
            optimizer.step()
        return [p.detach().clone() for p in model.parameters()]

    config = OptimConfig(name=name, lr=1e-2)
    fused_model = fresh()
    fused = build_optimizer(fused_model, config)
    assert fused.defaults["fused"] is True
    loop_model = fresh()
    groups, betas = param_groups(loop_model, config.weight_decay, config.exclude), (config.beta1, config.beta2)
    if name == "adamweightdecay":
        loop = Lamb([{**g, "adapt": False} for g in groups], lr=config.lr, betas=betas, eps=config.eps)
    else:
        loop = torch.optim.AdamW([{k: v for k, v in g.items() if k != "adapt"} for g in groups], lr=config.lr,
                                 betas=betas, eps=config.eps, foreach=False)
    after_fused, after_loop = run(fused_model, fused, grads), run(loop_model, loop, grads)
    for a, b, start in zip(after_fused, after_loop, fresh().parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
        assert (a - start).abs().min() > 1e-3  # every weight moved

    halfway_model = fresh()
    halfway = build_optimizer(halfway_model, config)
    run(halfway_model, halfway, grads[:5])
    resumed_model = fresh()
    resumed_model.load_state_dict(halfway_model.state_dict())
    resumed = build_optimizer(resumed_model, config)
    resumed.load_state_dict(halfway.state_dict())
    for a, b in zip(run(resumed_model, resumed, grads[5:]), after_fused):
        assert torch.equal(a, b)


def test_schedule_is_the_official_one():
    """polynomial_decay(step, 125000, power 1) with linear warmup over 3125 steps, both from step 0."""
    s = ScheduleConfig()
    lr = lambda step: learning_rate(0.00176, *s.progress(step, 0.0), s.power)  # noqa: E731
    assert lr(0) == 0.0
    assert lr(1000) == pytest.approx(0.00176 * 1000 / 3125)
    assert lr(3125) == pytest.approx(0.00176 * (1 - 3125 / 125000))
    assert lr(62500) == pytest.approx(0.00088)
    assert lr(125000) == 0.0 and lr(200000) == 0.0
    squared = ScheduleConfig(warmup_steps=0, total_steps=100, power=2.0)
    assert learning_rate(1.0, *squared.progress(50, 0.0), 2.0) == pytest.approx(0.25)


def test_budget_schedule_follows_time():
    s = ScheduleConfig(budget_s=1000.0, warmup_fraction=0.1)
    assert learning_rate(1.0, *s.progress(10**6, 50.0), 1.0) == pytest.approx(0.5)  # steps do not matter
    assert learning_rate(1.0, *s.progress(0, 550.0), 1.0) == pytest.approx(0.45)
    assert learning_rate(1.0, *s.progress(0, 2000.0), 1.0) == 0.0


def bert_adam_weight_decay(params, grads, lr, steps, weight_decay=0.01, beta1=0.9, beta2=0.999, eps=1e-6):
    """google-research/bert's AdamWeightDecayOptimizer.apply_gradients, in numpy: no bias correction, the decay
    added to the update (not to the gradient), every parameter decayed here."""
    params = {k: v.astype(np.float64).copy() for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(x) for k, x in params.items()}
    for step in range(steps):
        for k in params:
            g = grads[step][k]
            m[k] = beta1 * m[k] + (1 - beta1) * g
            v[k] = beta2 * v[k] + (1 - beta2) * g * g
            update = m[k] / (np.sqrt(v[k]) + eps) + weight_decay * params[k]
            params[k] = params[k] - lr * update
    return params


def test_adam_weight_decay_is_the_official_fine_tuning_optimizer():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    start = {k: p.detach().numpy().copy() for k, p in model.named_parameters()}
    optimizer = build_optimizer(model, OptimConfig(name="adamweightdecay", lr=0.01, weight_decay=0.01, exclude=[]))
    rng = np.random.default_rng(0)
    grads = [{k: rng.normal(size=p.shape) for k, p in model.named_parameters()} for _ in range(5)]
    assert optimizer.defaults["fused"] is True  # a CPU's: torch's fused kernel, its bias correction switched off
    expected = bert_adam_weight_decay(start, grads, lr=0.01, steps=5)
    # the same trick holds in torch's other two AdamW implementations (a GPU's foreach, the for-loop)
    for implementation in (optimizer, "foreach", "for-loop"):
        if isinstance(implementation, str):
            model.load_state_dict({k: torch.tensor(v) for k, v in start.items()})
            implementation = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.01, eps=1e-6,
                                               foreach=implementation == "foreach")
            without_bias_correction(implementation)
        for step_grads in grads:
            for k, p in model.named_parameters():
                p.grad = torch.tensor(step_grads[k], dtype=torch.float32)
            implementation.step()
        for k, p in model.named_parameters():
            np.testing.assert_allclose(p.detach().numpy(), expected[k], rtol=1e-5, atol=1e-6)
    # a state saved by the loop it replaced (`Lamb` without the trust ratio: m and v, no step count) resumes
    model.load_state_dict({k: torch.tensor(v) for k, v in start.items()})
    loop = Lamb([{**g, "adapt": False} for g in param_groups(model, 0.01, [])], lr=0.01, eps=1e-6)
    resumed = build_optimizer(model, OptimConfig(name="adamweightdecay", lr=0.01, weight_decay=0.01, exclude=[]))
    for step, step_grads in enumerate(grads):
        if step == 2:
            resumed.load_state_dict(loop.state_dict())
            assert all(g["fused"] and "adapt" not in g for g in resumed.param_groups)
        for k, p in model.named_parameters():
            p.grad = torch.tensor(step_grads[k], dtype=torch.float32)
        (loop if step < 2 else resumed).step()
    for k, p in model.named_parameters():
        np.testing.assert_allclose(p.detach().numpy(), expected[k], rtol=1e-5, atol=1e-6)
    # and it is not torch's AdamW, whose bias correction makes the first update ~1/3 of this one
    adamw = nn.Linear(4, 3)
    adamw.load_state_dict({k: torch.tensor(v) for k, v in start.items()})
    torch_opt = build_optimizer(adamw, OptimConfig(name="adamw", lr=0.01, weight_decay=0.01, exclude=[]))
    for k, p in adamw.named_parameters():
        p.grad = torch.tensor(grads[0][k], dtype=torch.float32)
    torch_opt.step()
    first = bert_adam_weight_decay(start, grads, lr=0.01, steps=1)
    moved_official = np.abs(first["weight"] - start["weight"]).mean()
    moved_torch = np.abs(adamw.weight.detach().numpy() - start["weight"]).mean()
    assert 2.5 < moved_official / moved_torch < 3.5
