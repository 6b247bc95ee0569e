"""One optimizer step: the part of the training loop pretraining and fine-tuning share.

    accumulate  forward/backward over the step's micro-batches, each loss divided by their number (so the
                gradient is the mean loss's); under DDP the gradients are all-reduced on the last one only
    clip        to the global gradient norm (the norm before clipping is kept, for the log)
    agree       one cross-rank decision (`distributed.agree`): skip a non-finite update anywhere, stop on a
                signal or at the time budget, rank 0's clock, the loss averaged over ranks
    update      `optimizer.step()` unless the decision skips it (or the caller holds it back: pretraining's
                spike guard rolls back instead); gradients are cleared either way

The loops around it (what a step's batches are, the schedule, logging, evaluation, checkpoints) stay in
`pretrain` and `finetune.train`; the model knows nothing of any of this.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from litebert import distributed as D

Forward = Callable[[nn.Module, dict], tuple[Tensor, Tensor]]
"""(model, micro-batch) -> (the micro-batch's mean loss, with its graph; its statistics (S,) float64, detached).
Called under autocast; what the statistics hold is the caller's (pretraining: MLM/SOP hits and counts)."""


@dataclass
class StepResult:
    stats: Tensor
    """(S,) float64 on the CPU: the micro-batches' statistics, summed."""
    loss: float
    """This rank's loss, the mean over its micro-batches."""
    grad_norm: float
    """The global gradient norm before clipping (inf / NaN when the gradients are not finite)."""
    decision: D.Decision


def accumulate(model: nn.Module, batches: Sequence[dict], forward: Forward, autocast,
               done: Callable[[float], None] | None = None) -> tuple[Tensor, Tensor]:
    """Forward/backward over the micro-batches; gradients accumulate in `.grad`. (mean loss, summed stats).
    `done(fraction)` after each micro-batch but the last: a progress bar's view inside a long step."""
    loss = stats = None
    for i, batch in enumerate(batches):
        with D.gradient_sync(model, enabled=i == len(batches) - 1):
            with autocast:
                micro_loss, micro_stats = forward(model, batch)
            (micro_loss / len(batches)).backward()
        loss = micro_loss.detach() if loss is None else loss + micro_loss.detach()
        stats = micro_stats if stats is None else stats + micro_stats
        if done is not None and i < len(batches) - 1:
            done((i + 1) / len(batches))
    return loss / len(batches), stats


def clip(params: Sequence[nn.Parameter], max_norm: float | None) -> float:
    """Clip to the global gradient norm; returns the norm before clipping (also computed when clipping is off)."""
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm or float("inf"))
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # a DTensor under FSDP


def take_step(model: nn.Module, params: Sequence[nn.Parameter], batches: Sequence[dict], forward: Forward,
              world: D.World, autocast, *, clip_norm: float | None, stop: bool,
              clock: Callable[[], float] | None = None, budget_s: float | None = None, tokens_at: int | None = None,
              after_backward: Callable[[], None] | None = None,
              micro_batch_done: Callable[[float], None] | None = None) -> StepResult:
    """accumulate -> clip -> agree. The update itself is `update(optimizer, result.decision)`.

    `clock` reads this rank's training clock once the gradients are ready (rank 0's reading is the one agreed,
    and the one `budget_s` is checked against); `tokens_at` indexes the statistics' token count, summed over
    ranks into the decision; `micro_batch_done` is `accumulate`'s `done`.
    """
    loss_t, stats = accumulate(model, batches, forward, autocast, micro_batch_done)
    if after_backward is not None:
        after_backward()
    grad_norm = clip(params, clip_norm)
    stats = stats.detach().double().cpu()
    loss = float(loss_t)
    decision = D.agree(world, nonfinite=not (math.isfinite(loss) and math.isfinite(grad_norm)), stop=stop,
                       elapsed_s=clock() if clock is not None else 0.0, loss=loss, budget_s=budget_s,
                       tokens=stats[tokens_at].item() if tokens_at is not None else 0.0)
    return StepResult(stats=stats, loss=loss, grad_norm=grad_norm, decision=decision)


def update(optimizer: torch.optim.Optimizer, decision: D.Decision, hold: bool = False) -> bool:
    """The optimizer update unless the step is skipped or held; the gradients are cleared either way.
    Returns whether the weights changed."""
    changed = not (decision.skip or hold)
    if changed:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return changed


class SkipGuard:
    """Gives up when more than `limit` updates in a row are skipped for a non-finite loss or gradient: then the
    model, not a batch, is broken. (The totals are the loops' own, saved in their checkpoints.)"""

    def __init__(self, limit: int):
        self.limit, self.in_a_row = limit, 0

    def record(self, skipped: bool, step: int) -> None:
        """After each step's decision; `step` names the step in the error."""
        self.in_a_row = self.in_a_row + 1 if skipped else 0
        if self.in_a_row > self.limit:
            raise RuntimeError(f"{self.in_a_row} steps in a row had a non-finite loss or gradient (at step "
                               f"{step}); giving up")


def skip_message(step: int, total: int) -> str:
    return f"step {step}: non-finite loss or gradient, update skipped ({total} so far)"
