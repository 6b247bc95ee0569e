"""What the machine can do: the CPU's name and matrix-unit flags, and whether bf16 runs natively.

Reports and benchmarks name the CPU kind they ran on (bf16 speed differs ~5x between an AMX Xeon and an
AVX512-BF16 EPYC), and the demo and fine-tuning turn bf16 autocast on only where it is native. The process's
allocator setting (`keep_freed_memory`) lives here too: it is a fact of the machine's C library, not of a run.
"""
from __future__ import annotations

import ctypes
import os
import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo ("AMD EPYC", "Intel(R) Xeon(R) ..."), else platform's."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> list[str]:
    """The matrix-unit flags that decide bf16 speed (AMX, AVX-512 BF16), sorted."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted(f for f in flags if f.startswith("amx") or f in ("avx512_bf16", "avx512f", "avx2"))


DISPATCH_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ONEDNN_DEFAULT_FPMATH_MODE", "ATEN_CPU_CAPABILITY")
"""Variables that change which kernels run on the same CPU: oneDNN's instruction-set cap (its old name too), its
implicit down-conversion of fp32 matmuls, and ATen's vector width. ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 on an AMX
Xeon takes bf16 matmuls from ~2.6 TFLOP/s to ~0.23, below fp32's 0.41 (2 threads, torch 2.13, 2026-12-04)."""


def dispatch_caps() -> dict[str, str]:
    """The DISPATCH_ENV variables this process runs under (only those set), e.g. {"ONEDNN_MAX_CPU_ISA": "AVX2"}."""
    return {name: os.environ[name] for name in DISPATCH_ENV if os.environ.get(name, "").strip()}


def cpu_kind() -> str:
    """One line for reports: the model name, which bf16 matrix unit it has, and any cap on what runs on it."""
    flags = cpu_flags()
    unit = ("AMX" if any(f.startswith("amx") for f in flags)
            else "AVX512-BF16, no AMX" if "avx512_bf16" in flags else "no native bf16")
    caps = "".join(f"; {name}={value}" for name, value in dispatch_caps().items())
    return f"{cpu_model()} ({unit}{caps})"


def cpu_tag() -> str:
    """A short file-name tag for the CPU kind: vendor family and bf16 unit ("xeon-amx", "epyc-avx512bf16"),
    and an instruction-set cap if one is set ("xeon-amx-isa-avx512_core_bf16"), so capped results stay apart."""
    name, flags = cpu_model().lower(), cpu_flags()
    family = next((f for f in ("xeon", "epyc", "core", "ryzen") if f in name), platform.machine() or "cpu")
    unit = ("amx" if any(f.startswith("amx") for f in flags)
            else "avx512bf16" if "avx512_bf16" in flags else "nobf16")
    caps = dispatch_caps()
    isa = caps.get("ONEDNN_MAX_CPU_ISA") or caps.get("DNNL_MAX_CPU_ISA")
    return f"{family}-{unit}" + (f"-isa-{isa.strip().lower()}" if isa else "")


def bf16_supported(device: str = "cpu") -> bool:
    """Whether bf16 matmuls run natively (else autocast would emulate them slowly)."""
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


MALLOC_ENV = "LITEBERT_MALLOC"
"""`system` leaves the C library's allocator as it is; unset or `keep`, `keep_freed_memory` applies."""
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameter numbers (malloc.h)
ALLOCATOR = "system"
"""What `keep_freed_memory` set in this process, for run logs."""


def keep_freed_memory() -> str:
    """Have glibc keep freed memory for reuse instead of handing it back to the kernel; returns what was set.

    Why: glibc serves each block above its mmap threshold (128 KiB, adapting up to 32 MiB) with a fresh mapping
    and unmaps it when freed, so every training step's activations land on new pages the kernel must fault in and
    zero. An ALBERT-base 32x128 bf16 step took ~340,000 page faults (1.3 GB zeroed); with mmap off and trimming
    off (the heap keeps what it grew to) it takes none. On an AMX Xeon that made ALBERT-base training steps
    1.09-1.20x faster, the demo model's 1.54x, and inference 1.26-1.67x (benchmarks/bench_allocator.py). The
    cost: the process holds its peak memory until it exits, as PyTorch's CUDA caching allocator does on a GPU.
    Process-wide and one-way (glibc's adaptive threshold cannot be restored), so the CLI applies it at start;
    `LITEBERT_MALLOC=system` opts out. Elsewhere than glibc (musl, macOS, Windows) it does nothing."""
    global ALLOCATOR
    choice = os.environ.get(MALLOC_ENV, "keep").strip().lower() or "keep"
    if choice not in ("keep", "system"):
        raise ValueError(f"{MALLOC_ENV}={choice!r}: expected 'keep' (the default) or 'system'")
    if choice == "system":
        ALLOCATOR = f"system ({MALLOC_ENV}=system)"
        return ALLOCATOR
    if platform.libc_ver()[0] != "glibc":
        ALLOCATOR = "system (not glibc)"
        return ALLOCATOR
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # -1 turns trimming off (mallopt(3)); without M_MMAP_MAX=0 large blocks would still be mapped per call.
    if mallopt(_M_MMAP_MAX, 0) and mallopt(_M_TRIM_THRESHOLD, -1):
        ALLOCATOR = "glibc, freed memory kept (mmap off, no trim)"
    else:
        ALLOCATOR = "system (glibc refused mallopt)"
    return ALLOCATOR
