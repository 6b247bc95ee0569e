"""The optimizer step pretraining and fine-tuning share (`litebert.step`): accumulation gives the global batch's
gradient, clipping reports the norm before it, a non-finite step changes nothing, and too many in a row stop."""
from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
from torch import nn

from litebert import distributed as D
from litebert import step as S

WORLD = D.World(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))


def linear_problem(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    return nn.Linear(6, 3), torch.randn(8, 6), torch.randn(8, 3)


def mse_forward(model: nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    loss = ((model(batch["x"]) - batch["y"]) ** 2).mean()
    return loss, torch.tensor([float(len(batch["x"]))], dtype=torch.float64)


def grads(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters()]


def test_micro_batches_accumulate_to_the_global_batch_gradient():
    model, x, y = linear_problem()
    whole = S.take_step(model, list(model.parameters()), [{"x": x, "y": y}], mse_forward, WORLD, nullcontext(),
                        clip_norm=None, stop=False)
    expected = grads(model)
    model.zero_grad(set_to_none=True)
    quarters = [{"x": x[i:i + 2], "y": y[i:i + 2]} for i in range(0, 8, 2)]
    done = []  # the progress bar's view inside the step: after each micro-batch but the last
    split = S.take_step(model, list(model.parameters()), quarters, mse_forward, WORLD, nullcontext(),
                        clip_norm=None, stop=False, micro_batch_done=done.append)
    assert done == [0.25, 0.5, 0.75]
    for got, want in zip(grads(model), expected):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    assert split.loss == pytest.approx(whole.loss, rel=1e-6)  # the mean of equal-size micro-batch means
    assert split.stats.tolist() == [8.0] and split.stats.dtype == torch.float64
    assert split.grad_norm == pytest.approx(whole.grad_norm, rel=1e-5)


def test_clipping_reports_the_norm_before_it_and_the_update_follows():
    model, x, y = linear_problem()
    before = [p.detach().clone() for p in model.parameters()]
    result = S.take_step(model, list(model.parameters()), [{"x": x, "y": 100 * y}], mse_forward, WORLD,
                         nullcontext(), clip_norm=0.5, stop=False)
    clipped = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads(model)]))
    assert result.grad_norm > 10 and clipped.item() == pytest.approx(0.5, rel=1e-4)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    assert S.update(optimizer, result.decision) and not result.decision.skip
    moved = torch.linalg.vector_norm(torch.cat([(p - b).flatten() for p, b in zip(model.parameters(), before)]))
    assert moved.item() == pytest.approx(0.5, rel=1e-4)  # SGD lr 1 moves by the clipped gradient
    assert all(p.grad is None for p in model.parameters())


def test_a_non_finite_step_is_skipped_and_changes_nothing():
    model, x, y = linear_problem()
    before = [p.detach().clone() for p in model.parameters()]
    x[3, 2] = float("nan")
    result = S.take_step(model, list(model.parameters()), [{"x": x, "y": y}], mse_forward, WORLD, nullcontext(),
                         clip_norm=1.0, stop=False)
    assert result.decision.skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    assert not S.update(optimizer, result.decision)
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    assert all(p.grad is None for p in model.parameters()) and not optimizer.state  # no moment saw the NaN


def test_the_clock_is_read_after_the_gradients_and_the_budget_stops():
    model, x, y = linear_problem()
    readings = []

    def clock() -> float:
        readings.append(all(p.grad is not None for p in model.parameters()))
        return 12.0
    result = S.take_step(model, list(model.parameters()), [{"x": x, "y": y}], mse_forward, WORLD, nullcontext(),
                         clip_norm=1.0, stop=False, clock=clock, budget_s=10.0, tokens_at=0)
    assert readings == [True]
    assert result.decision.stop and result.decision.elapsed_s == 12.0 and result.decision.tokens == 8.0


def test_the_skip_guard_gives_up_only_on_a_run_of_skips():
    guard = S.SkipGuard(limit=2)
    for step, skipped in enumerate([True, True, False, True, True], start=1):
        guard.record(skipped, step)
    with pytest.raises(RuntimeError, match="3 steps in a row had a non-finite loss or gradient \\(at step 6\\)"):
        guard.record(True, 6)
