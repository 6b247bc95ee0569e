"""Timing helpers shared by the benchmarks: thread settings, warm-up + median timing, machine facts, JSON.

On a small shared machine one measurement means little. `interleaved_medians` therefore runs the contenders
in turn, round after round, so that a burst of load from another process hits all of them alike, and keeps
the median of each; ratios between contenders of the same run are what a report should quote.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Callable

import torch

from litebert import hardware
from litebert.hardware import cpu_flags, cpu_model, cpu_tag  # noqa: F401 (cpu_tag: result names)

RESULTS = Path(__file__).resolve().parent / "results"


def set_threads(threads: int | None) -> int:
    """Fix torch's intra-op threads (default: every core this process may use) and one inter-op thread;
    returns the count, to hand the same number to other runtimes (onnxruntime's intra_op_num_threads)."""
    threads = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only allowed before the first parallel op; keep what is set
        pass
    return threads


def use_run_allocator() -> str:
    """The allocator setting litebert's CLI starts with (`hardware.keep_freed_memory`; LITEBERT_MALLOC=system
    opts out), so a script's timings match runs. Process-wide: every contender in the process shares it, and
    `machine_info` records it. bench_allocator.py measures what it is worth."""
    return hardware.keep_freed_memory()


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()  # GPU work is asynchronous: wait for it before reading the clock


def time_once(fn: Callable[[], object]) -> float:
    """Wall seconds of one call (including the GPU work it queued)."""
    _sync()
    start = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - start


def median_time(fn: Callable[[], object], warmup: int = 1, repeats: int = 5) -> float:
    """Median wall seconds of `repeats` calls after `warmup` untimed ones (allocators, caches, JIT)."""
    for _ in range(warmup):
        fn()
    return statistics.median(time_once(fn) for _ in range(repeats))


ONNXRUNTIME_THREAD = ThreadPoolExecutor(1, thread_name_prefix="onnxruntime")
"""The one thread onnxruntime contenders run from (see on_onnxruntime_thread)."""


def on_onnxruntime_thread(fn: Callable[..., object]) -> Callable[..., object]:
    """`fn` (an onnxruntime contender: a session run, or a pipeline that runs one) called from ONNXRUNTIME_THREAD.

    Why: called from the main thread, onnxruntime's allocations share glibc's main heap with PyTorch's and land in
    the holes PyTorch's freed activations left, so the next PyTorch pass grows the heap onto fresh pages it must
    fault in. Capped AMX Xeon, ALBERT-base 8x128 fp32, every bench_inference contender round-robin (2026-12-04):
    litebert's pass took 6,000-17,000 page faults and 936 ms after the three sessions ran from the main thread, the
    process growing ~30 MB a round; run from a thread of their own (glibc gives it an arena of its own) 0 faults
    and 667 ms, as with no session at all (680), and onnxruntime on HF's export 654 ms, as in a process of its own
    (650). (In a worker process called through a pipe that session took 754 ms: slower, so not that.)
    """
    return lambda *args, **kwargs: ONNXRUNTIME_THREAD.submit(fn, *args, **kwargs).result()


def interleaved_medians(fns: dict[str, Callable[[], object]], warmup: int = 1,
                        repeats: int = 5) -> dict[str, float]:
    """Median wall seconds of each function, timed round-robin: round r times every function once."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(time_once(fn))
    return {name: statistics.median(ts) for name, ts in times.items()}


def matmul_tflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """Dense (n x n) @ (n x n) rate in TFLOP/s: the ceiling a transformer's linear layers can approach."""
    a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
    seconds = median_time(lambda: a @ b, warmup=2, repeats=repeats)
    return 2 * n ** 3 / seconds / 1e12


def machine_info(**extra: object) -> dict[str, object]:
    """Where and when a result was measured: CPU, cores, threads, library versions, date."""
    versions = {}
    for package in ("torch", "transformers", "onnxruntime", "onnx", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores_available": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "load_average": os.getloadavg(),
        "allocator": hardware.ALLOCATOR,
        "dispatch_caps": hardware.dispatch_caps(),
        **extra,
    }


def write_json(data: dict, name: str) -> Path:
    """Write `data` (indented, keys sorted) to benchmarks/results/NAME when NAME is a bare file name, else to the
    path NAME as given (relative to the current directory): `--output benchmarks/results/x.json` from the
    repository root lands where it says, not in a results/ folder nested inside results/. Returns the path."""
    path = Path(name)
    if path.parent == Path("."):
        path = RESULTS / path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def format_table(header: list[str], rows: list[list[object]]) -> str:
    """A plain-text table with columns padded to their widest cell (floats with 3 significant digits)."""
    cell = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    cells = [header] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])
