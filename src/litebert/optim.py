"""The optimizers: LAMB as google-research/albert wrote it, torch's AdamW as the alternative, BERT's
AdamWeightDecay (the official fine-tuning optimizer) on AdamW's kernels, the parameter groups they use, and the
learning-rate schedule (linear warmup, polynomial decay to 0).

LAMB (You et al. 2020) is Adam whose update is rescaled per weight matrix by the trust ratio ‖w‖ / ‖update‖,
so every layer moves by the same fraction of its norm whatever the batch size. The official optimizer
(`lamb_optimizer.py`), which this follows line for line:

    m = β1 m + (1 - β1) g;   v = β2 v + (1 - β2) g²          (no bias correction: m and v start at 0)
    u = m / (√v + ε) + λ w                                   (decay added to the update: decoupled, AdamW-like)
    r = ‖w‖ / ‖u‖  if both norms are > 0, else 1             (1 for parameters excluded from adaptation)
    w = w - lr · r · u

LayerNorm weights and all biases are excluded from both the decay and the trust ratio: the official code
passes `exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"]` and leaves
`exclude_from_layer_adaptation` unset, which makes it the same list. Gradients are clipped to a global norm of
1.0 before the optimizer sees them (the caller does that: it also needs the norm for logging).
"""
from __future__ import annotations

import re

import torch
from torch import nn

from litebert.config.pretrain import OPTIMIZERS, OptimConfig, ScheduleConfig  # noqa: F401 (re-exported)

def learning_rate(peak: float, progress: float, warmup: float, power: float = 1.0) -> float:
    """lr at `progress` ∈ [0, 1] of training, warmup ending at `warmup` ∈ [0, 1].

    Warmup is `peak * progress / warmup`; afterwards `peak * (1 - progress) ** power`. In steps this is the
    official schedule exactly: lr(step) = peak * step / warmup_steps, then peak * (1 - step / total) ** power
    (the decay is not restarted after warmup, and at step 0 the learning rate is 0).
    """
    if progress < warmup:
        return peak * progress / warmup
    return peak * max(0.0, 1.0 - progress) ** power


def excluded(name: str, patterns: list[str]) -> bool:
    """Whether a parameter name matches one of the exclusion regexes (the official `re.search` test)."""
    return any(re.search(p, name) for p in patterns)


def param_groups(model: nn.Module, weight_decay: float, exclude: list[str]) -> list[dict]:
    """Two groups: matrices and embeddings (decayed, trust ratio on) and LayerNorms + biases (neither).

    Parameters that share storage (tied weights) appear once, under their first name.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if excluded(name, exclude) else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay, "adapt": True},
        {"params": no_decay, "weight_decay": 0.0, "adapt": False},
    ]


class Lamb(torch.optim.Optimizer):
    """LAMB exactly as google-research/albert's `LAMBOptimizer` (see the module docstring); with `adapt` off
    in every group, exactly BERT's `AdamWeightDecayOptimizer` (`build_optimizer` makes that one from torch's
    AdamW instead: `without_bias_correction`).

    Each param group may set `weight_decay` and `adapt` (apply the trust ratio). State per parameter:
    `exp_avg` (m) and `exp_avg_sq` (v), both fp32 like the parameters.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0, adapt: bool = True):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, adapt=adapt)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                update = m / (v.sqrt() + group["eps"])
                if group["weight_decay"]:
                    update.add_(p, alpha=group["weight_decay"])
                if group["adapt"]:
                    w_norm, u_norm = p.norm(), update.norm()
                    one = torch.ones_like(w_norm)
                    ratio = torch.where(w_norm > 0, torch.where(u_norm > 0, w_norm / u_norm, one), one)
                    update.mul_(ratio)
                p.sub_(update, alpha=group["lr"])
        return loss


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    """LAMB, AdamWeightDecay or torch's AdamW over `param_groups(model)`, at the peak learning rate (the loop
    sets it every step).

    AdamWeightDecay (the official `optimization.AdamWeightDecayOptimizer` of BERT and ALBERT's fine-tuning
    scripts) is LAMB's update without the trust ratio: m and v without bias correction, u = m / (√v + ε) + λw,
    w -= lr·u, LayerNorms and biases undecayed. So it is `Lamb` with `adapt` off in every group.
    """
    groups = param_groups(model, config.weight_decay, config.exclude)
    betas = (config.beta1, config.beta2)
    if config.name == "lamb":
        return Lamb(groups, lr=config.lr, betas=betas, eps=config.eps)
    for g in groups:
        g.pop("adapt")
    # On a CPU torch's AdamW defaults to a Python loop of ~10 element-wise ops per parameter (its foreach default
    # is CUDA's only); its fused CPU kernel makes one pass per tensor, the same update to rounding: a step of the
    # demo's model 1.2 against 2.7 ms, of ALBERT-base 4.7 against 13.2 (benchmarks/bench_optimizer.py, AMD EPYC).
    on_cpu = all(p.device.type == "cpu" for g in groups for p in g["params"])
    adamw = torch.optim.AdamW(groups, lr=config.lr, betas=betas, eps=config.eps, fused=True if on_cpu else None)
    if config.name == "adamweightdecay":
        without_bias_correction(adamw)
    return adamw


NO_BIAS_CORRECTION_STEP = 2.0 ** 60
"""A step count at which torch's Adam kernels correct no bias: β^t is 0 in floating point for every β below
1 - 1e-15, so 1 - β^t is exactly 1; and 2^60 + 1 rounds back to 2^60 in float32 and float64 alike, so the count
the optimizer adds to each step never moves."""


def without_bias_correction(adamw: torch.optim.AdamW) -> None:
    """Make `adamw` BERT/ALBERT's AdamWeightDecayOptimizer: the same update as `Lamb` with `adapt` off,
    w = w(1 - lr·λ) - lr·m / (√v + ε), which is torch's AdamW with its bias corrections 1 - β^t at 1.

    Its state starts here, each parameter's step count at NO_BIAS_CORRECTION_STEP (on the device and in the dtype
    torch's own first step would put it), so a CPU run takes the fused kernel: a step of the demo's model 1.20
    against 2.89 ms for `Lamb`'s loop, of ALBERT-base 6.67 against 18.9 (bench_optimizer.py, AMD EPYC). The state
    saves and loads as AdamW's; a resume restores the count with it, and a state `Lamb`'s loop saved (litebert
    before 2026-12-05: m and v alone) is given the count as it loads."""
    for group in adamw.param_groups:
        for p in group["params"]:
            adamw.state[p] = {"step": _uncorrected_step(group, p),
                              "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                              "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
    adamw.register_load_state_dict_pre_hook(_from_loop_state)


def _uncorrected_step(group: dict, p: torch.Tensor) -> torch.Tensor:
    """NO_BIAS_CORRECTION_STEP where torch's AdamW keeps its count: on the parameter's device in float32 for the
    fused and capturable paths, else a CPU scalar of the default dtype."""
    on_device = group["fused"] or group["capturable"]
    return torch.tensor(NO_BIAS_CORRECTION_STEP, dtype=torch.float32 if on_device else None,
                        device=p.device if on_device else "cpu")


def _from_loop_state(adamw: torch.optim.AdamW, state_dict: dict) -> dict | None:
    """A state `Lamb`'s loop saved (m and v with no step count; groups with its `adapt` and none of AdamW's
    flags, which would load as torch's defaults: not fused) as AdamW's; a state AdamW saved passes unchanged."""
    if all("step" in state for state in state_dict["state"].values()) or \
            len(state_dict["param_groups"]) != len(adamw.param_groups):  # AdamW's own, or torch's error to raise
        return None
    groups = [{**{k: v for k, v in own.items() if k != "params"}, **{k: v for k, v in saved.items() if k != "adapt"}}
              for own, saved in zip(adamw.param_groups, state_dict["param_groups"])]
    state = {k: {"step": torch.tensor(NO_BIAS_CORRECTION_STEP), **v} for k, v in state_dict["state"].items()}
    return {**state_dict, "state": state, "param_groups": groups}


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr

