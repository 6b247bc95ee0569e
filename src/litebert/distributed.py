"""Data parallelism applied from outside the model: process group from torchrun's environment, DDP or FSDP
wrapping, full state dicts for checkpoints, and `agree`, the one place where ranks make a joint decision.

The model (`litebert.model`) is written for one device and knows nothing of this module. `run` in
`litebert.pretrain` joins with `joined()` (a no-op outside torchrun), calls `parallelize(model, ...)`, and each
step `agree(...)`: whether to skip the step (a rank saw a non-finite loss or gradient), whether to stop (a rank
was interrupted, or rank 0's clock says the time budget is used), and the mean loss every rank then feeds to
the spike guard. Every rank uses the one result, so no rank can take a branch another does not.

A rank that dies must not leave the others waiting forever in a collective: the process group is created with a
short `timeout`, and torchrun tears the job down when a worker exits non-zero.
"""
from __future__ import annotations

import gc
import os
import signal
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from litebert.config.pretrain import ParallelConfig
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)


@dataclass(frozen=True)
class World:
    """This process's place in the job: rank, world size, the device it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(config: ParallelConfig, device: str | None = None) -> World:
    """Join the process group torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK (a single process without).

    `device` "cpu" or "cuda" (default: cuda when available); each rank takes cuda:LOCAL_RANK.
    """
    device_type = device or ("cuda" if torch.cuda.is_available() else "cpu")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(device_type, local_rank) if device_type == "cuda" else torch.device("cpu")
    if device_type == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        backend = config.backend or ("nccl" if device_type == "cuda" else "gloo")
        dist.init_process_group(backend, timeout=timedelta(seconds=config.timeout_s),
                                device_id=dev if device_type == "cuda" else None)
    return World(rank, world_size, local_rank, dev)


def shutdown(world: World, wait: bool = True) -> None:
    """Leave the process group. With `wait` (the run ended normally) every rank first waits for the others, so
    none tears its connections down while a peer still has a collective in flight; then the run's garbage (DDP
    / FSDP wrappers holding gloo work) is freed while the interpreter is whole, not during its exit."""
    if world.distributed and dist.is_initialized():
        if wait:
            dist.barrier()
        gc.collect()
        dist.destroy_process_group()


@contextmanager
def joined(config: ParallelConfig, device: str | None = None):
    """`init_distributed` for the length of a with-block, then `shutdown`: waiting for the peers if the block
    ended normally, not if it raised (the peers may be gone)."""
    world = init_distributed(config, device)
    ended_normally = False
    try:
        yield world
        ended_normally = True
    finally:
        shutdown(world, wait=ended_normally)


@dataclass(frozen=True)
class Decision:
    """What every rank does after a step's gradients are ready (identical on all ranks)."""

    skip: bool
    """Some rank saw a non-finite loss or gradient norm: no optimizer update this step."""
    stop: bool
    """Some rank asked to stop (interrupt), or rank 0's clock is past the time budget."""
    elapsed_s: float
    """Rank 0's training clock: the one the time-based schedule and the budget follow."""
    loss: float
    """The step's loss averaged over ranks (what the spike guard watches)."""
    tokens: float = 0.0
    """Real (non-padding) tokens of the step, summed over ranks."""


def agree(world: World, *, nonfinite: bool, stop: bool, elapsed_s: float, loss: float,
          budget_s: float | None = None, tokens: float = 0.0) -> Decision:
    """The one cross-rank decision of a step: a single all-reduce of [nonfinite, stop, rank 0's clock, loss,
    tokens].

    Summed: any rank's flag counts; only rank 0 contributes its clock; the loss sum over ranks is averaged.
    """
    values = torch.tensor([float(nonfinite), float(stop), elapsed_s if world.rank == 0 else 0.0, loss, tokens],
                          dtype=torch.float64)
    if world.distributed:
        values = values.to(world.device)
        dist.all_reduce(values)
        values = values.cpu()
    any_nonfinite, any_stop, clock, loss_sum, token_sum = values.tolist()
    # A NaN loss on one rank makes the sum NaN; that is already a skip.
    skip = any_nonfinite > 0 or loss_sum != loss_sum
    over_budget = budget_s is not None and clock >= budget_s
    return Decision(skip=skip, stop=any_stop > 0 or over_budget, elapsed_s=clock,
                    loss=loss_sum / world.world_size, tokens=token_sum)


@contextmanager
def stop_on_signals(flag: list, prog: str):
    """Within it, SIGTERM / SIGINT (a cluster's pre-emption, Ctrl-C) append their name to `flag`: the loop passes
    `stop=bool(flag)` to `agree` and stops cleanly after the current step (a checkpoint, exit status 0). A
    second signal exits at once (status 128 + its number); checkpoints on disk are intact, being atomic."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun hands the signal to every rank: say which speaks
        prog = f"{prog} (rank {os.environ.get('RANK', '?')})"

    def handler(signum: int, _frame) -> None:
        name = signal.Signals(signum).name
        if flag:
            # Names the first signal too: this handler can run nested inside the first one's, before its message.
            print(f"\n{prog}: second signal, {name} after {flag[0]}: exiting now; resume from the last checkpoint",
                  file=sys.stderr, flush=True)
            os._exit(128 + signum)
        flag.append(name)
        print(f"\n{prog}: {name}: stopping after this step with a checkpoint (send it again to exit at once)",
              file=sys.stderr, flush=True)

    previous = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: no handlers
        pass
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def all_reduce_sum(world: World, values: torch.Tensor) -> torch.Tensor:
    """Sum a small float tensor of statistics over ranks (for logging: counts, sums)."""
    if world.distributed:
        values = values.to(world.device, copy=True)
        dist.all_reduce(values)
    return values.cpu()


def broadcast_object(world: World, obj):
    """Rank 0's `obj` (JSON-like: a checkpoint's name, an error message) on every rank."""
    if not world.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def decided_by_rank0(world: World, decide):
    """`decide()` run on rank 0 only; its (JSON-like) result on every rank, or the exception it raised raised on
    every rank, so that no rank waits for a decision that never comes."""
    result, error = None, None
    if world.is_main:
        try:
            result = decide()
        except Exception as err:  # noqa: BLE001 (re-raised on every rank below)
            if not world.distributed:
                raise
            error = err
    result, error = broadcast_object(world, (result, error))
    if error is not None:
        raise error
    return result


def all_gather_objects(world: World, obj) -> list:
    """Every rank's `obj` (JSON-like: RNG states, data positions), in rank order, on every rank."""
    if not world.distributed:
        return [obj]
    out = [None] * world.world_size
    dist.all_gather_object(out, obj)
    return out


@contextmanager
def gradient_sync(model: nn.Module, enabled: bool):
    """Within it, backward only accumulates locally unless `enabled` (the last micro-batch of a step).

    Skipping the all-reduce on the other micro-batches is DDP's `no_sync` / FSDP's
    `set_requires_gradient_sync(False)`; a single process has nothing to skip.
    """
    inner = getattr(model, "_orig_mod", model)  # under torch.compile
    if enabled:
        yield
    elif hasattr(inner, "no_sync"):
        with inner.no_sync():
            yield
    elif hasattr(inner, "set_requires_gradient_sync"):
        inner.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            inner.set_requires_gradient_sync(True)
    else:
        yield


def checkpoint_activations(model: nn.Module) -> int:
    """Make every transformer block of `model` (each attention and FFN block) recompute its activations in
    backward instead of keeping them (non-reentrant `torch.utils.checkpoint`, dropout replayed with the same
    RNG state, so the gradients are the same). What a step keeps falls to about the blocks' inputs, at the cost
    of a second forward through the blocks. Returns the number of blocks changed.

    Applied from outside the model, like the wrappers below: each block's `forward` is replaced on the instance,
    so parameter names, state dicts and checkpoints stay as they were. A block that L layers share is checkpointed
    at each of its L applications."""
    from functools import partial

    from torch.utils.checkpoint import checkpoint

    from litebert.model import AlbertAttention, AlbertFFN

    blocks = [m for m in model.modules() if isinstance(m, (AlbertAttention, AlbertFFN)) and "forward" not in vars(m)]
    for block in blocks:
        block.forward = partial(checkpoint, block.forward, use_reentrant=False)
    return len(blocks)


def parallelize(model: nn.Module, world: World, config: ParallelConfig, compile: bool = False,
                unused_parameters: bool = False, activation_checkpointing: bool = False) -> nn.Module:
    """The model as the training step calls it: moved to the device, its blocks set to recompute activations in
    backward if asked (`checkpoint_activations`), then FSDP- or DDP-wrapped, then compiled.

    `unused_parameters`: some parameters never get a gradient (the SOP head, when the data has no sentence
    task); DDP's static-graph mode learns which on the first step instead of waiting for them forever.

    With FSDP the model is sharded in place and returned as is; the encoder is one unit, because ALBERT applies
    its shared blocks L times per pass (a unit per block would all-gather each of them L times, and the
    encoder fuses a block's Q/K/V weights once per forward, outside the block). With DDP the wrapper is
    returned and `model` keeps the unwrapped parameters (DDP shares them).
    """
    model.to(world.device)
    if activation_checkpointing:
        checkpoint_activations(model)
    if world.distributed and config.fsdp:
        from torch.distributed.fsdp import fully_shard

        fully_shard(model.albert.encoder)
        fully_shard(model)
        wrapped = model
    elif world.distributed:
        from torch.nn.parallel import DistributedDataParallel

        ids = [world.device.index] if world.device.type == "cuda" else None
        wrapped = DistributedDataParallel(model, device_ids=ids, static_graph=unused_parameters)
    else:
        wrapped = model
    return torch.compile(wrapped) if compile else wrapped


def model_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full (unsharded) model state on CPU, keyed by parameter name as one process would hold it.

    `model` is the unwrapped module (FSDP-sharded or not). Under FSDP this is a collective: every rank calls
    it, rank 0 receives the tensors. Checkpoints store this, so they load at any world size.
    """
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def optimizer_state_dict(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The full optimizer state on CPU, keyed by parameter name (not position): portable like the model's."""
    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a full state dict (saved at any world size) into the local, possibly sharded, model."""
    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load a full optimizer state dict (from `optimizer_state_dict`) into the local optimizer."""
    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))
