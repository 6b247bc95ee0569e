"""Training checkpoints: atomic, verifiable, loadable without executing code, pruned to the last K + the best.

A checkpoint is a directory `OUTPUT/checkpoints/step-0000100/` holding

    model.safetensors   the full model state dict (loads at any world size, with or without FSDP)
    state.safetensors   every other tensor: optimizer moments, torch RNG states, numpy RNG keys
    state.json          everything else, with each tensor replaced by a reference into state.safetensors,
                        plus the size and sha256 of both tensor files; written last, so it marks completion

It is written into a hidden temporary directory and renamed into place, so a crash or a full disk leaves
either the whole new checkpoint or none of it, and never touches the previous ones. Loading parses JSON and
safetensors only (no pickle), and checks sizes and hashes first: a truncated or altered newest checkpoint is
reported, and `load_latest` falls back to the one before it.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from litebert.files import file_sha256, fsync, write_json_atomic

PREFIX = "step-"
BEST = "best.json"
FORMAT = "litebert-checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read; the message names the path and the reason."""


@dataclass
class Checkpoint:
    """A checkpoint read back: its step, the model state dict, and the rest of the saved state."""

    path: Path
    step: int
    model: dict[str, torch.Tensor]
    state: dict[str, Any]


# ------------------------------------------------------------------------------------------ tree <-> files
def flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "") -> Any:
    """JSON skeleton of a nested dict/list/tuple; tensors and numpy arrays go into `tensors` by path."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": prefix}
    if isinstance(obj, np.ndarray):
        tensors[prefix] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"__ndarray__": prefix}
    if isinstance(obj, dict):
        if not all(isinstance(k, (str, int)) for k in obj):
            raise TypeError(f"checkpoint state: dict keys must be str or int at {prefix or 'top level'}")
        keys = ["int" if isinstance(k, int) else "str" for k in obj]
        items = {str(k): flatten(v, tensors, f"{prefix}.{k}" if prefix else str(k)) for k, v in obj.items()}
        return {"__dict__": items, "__keys__": keys} if "int" in keys else items
    if isinstance(obj, (list, tuple)):
        items = [flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"checkpoint state: cannot store {type(obj).__name__} at {prefix or 'top level'}")


def unflatten(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `flatten`."""
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__ndarray__" in skeleton:
            return tensors[skeleton["__ndarray__"]].numpy()
        if "__tuple__" in skeleton:
            return tuple(unflatten(v, tensors) for v in skeleton["__tuple__"])
        if "__dict__" in skeleton:
            return {(int(k) if kind == "int" else k): unflatten(v, tensors)
                    for (k, v), kind in zip(skeleton["__dict__"].items(), skeleton["__keys__"])}
        return {k: unflatten(v, tensors) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [unflatten(v, tensors) for v in skeleton]
    return skeleton


# ------------------------------------------------------------------------------------------ save
def checkpoint_path(directory: Path, step: int) -> Path:
    return Path(directory) / f"{PREFIX}{step:07d}"


def list_checkpoints(directory: Path) -> list[Path]:
    """Completed checkpoint directories, oldest first (temporary ones are hidden and skipped)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_dir() and p.name.startswith(PREFIX)
             and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def save_checkpoint(directory: Path, step: int, model: dict[str, torch.Tensor], state: dict[str, Any]) -> Path:
    """Write checkpoint `step` atomically under `directory`; return its path.

    `model` is a full model state dict; `state` any nested dict of tensors, numpy arrays and JSON values.
    Raises CheckpointError (naming the path and the OS error) when it cannot be written, e.g. a full disk; the
    partial files are removed and earlier checkpoints are untouched.
    """
    directory = Path(directory)
    final = checkpoint_path(directory, step)
    tmp = directory / f".tmp-{final.name}-{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        tensors: dict[str, torch.Tensor] = {}
        skeleton = flatten(state, tensors)
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in model.items()}, tmp / "model.safetensors")
        save_file(tensors, tmp / "state.safetensors")
        files = {}
        for name in ("model.safetensors", "state.safetensors"):
            fsync(tmp / name)
            files[name] = {"bytes": (tmp / name).stat().st_size, "sha256": file_sha256(tmp / name)}
        meta = {"format": FORMAT, "version": VERSION, "step": step, "files": files, "state": skeleton}
        with open(tmp / "state.json", "w", encoding="utf-8") as f:
            f.write(json.dumps(meta) + "\n")
            f.flush()
            os.fsync(f.fileno())
        mode = stat.S_IMODE((tmp / "state.json").stat().st_mode)  # as `open` made it: 0o666 less the umask
        for name in files:  # safetensors >= 0.8 writes 0o600 whatever the umask
            os.chmod(tmp / name, mode)
        if final.exists():  # the same step saved again (after a rollback): replace it
            old = directory / f".old-{final.name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        previous = [p.name for p in list_checkpoints(directory)]
        kept = f"the previous checkpoint {directory / previous[-1]} is intact" if previous else "no earlier checkpoint"
        raise CheckpointError(f"could not write checkpoint {final}: {err.strerror or err}; {kept}") from err
    return final


# ------------------------------------------------------------------------------------------ load
def load_checkpoint(path: Path) -> Checkpoint:
    """Read and verify one checkpoint directory; CheckpointError names the file that is missing or corrupt."""
    path = Path(path)
    meta_path = path / "state.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{meta_path} is missing: {path} is not a complete checkpoint") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{meta_path} is corrupt: {err}") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(f"{meta_path} is not a {FORMAT} v{VERSION} checkpoint")
    for name, expected in meta["files"].items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{file} is missing")
        size = file.stat().st_size
        if size != expected["bytes"]:
            raise CheckpointError(f"{file} is corrupt: {size} bytes, {expected['bytes']} were written")
        if file_sha256(file) != expected["sha256"]:
            raise CheckpointError(f"{file} is corrupt: its sha256 differs from the one recorded at save")
    try:
        model = load_file(path / "model.safetensors")
        tensors = load_file(path / "state.safetensors")
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"{path} is corrupt: {err}") from None
    return Checkpoint(path, int(meta["step"]), model, unflatten(meta["state"], tensors))


def load_latest(directory: Path) -> Checkpoint | None:
    """The newest checkpoint that loads; a corrupt one is skipped with a warning naming it. None if none."""
    for path in reversed(list_checkpoints(directory)):
        try:
            return load_checkpoint(path)
        except CheckpointError as err:
            warnings.warn(f"{err}; falling back to the previous checkpoint", stacklevel=2)
    return None


# ------------------------------------------------------------------------------------------ retention
def read_best(directory: Path) -> dict | None:
    """{"step", "metric", "value"} of the best checkpoint so far, or None."""
    path = Path(directory) / BEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_best(directory: Path, step: int, metric: str, value: float) -> None:
    """Record checkpoint `step` as the best (atomically)."""
    path = Path(directory) / BEST
    write_json_atomic(path, {"step": step, "metric": metric, "value": value}, indent=None)


def prune(directory: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` checkpoints, never the best one; return those deleted."""
    if keep_last < 1:
        return []
    best = read_best(directory)
    keep_best = checkpoint_path(directory, best["step"]) if best else None
    removed = []
    for path in list_checkpoints(directory)[:-keep_last]:
        if path != keep_best:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed

