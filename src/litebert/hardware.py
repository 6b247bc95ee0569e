"""What the machine can do: the CPU's name and matrix-unit flags, and whether bf16 runs natively.

Reports and benchmarks name the CPU kind they ran on (bf16 speed differs ~5x between an AMX Xeon and an
AVX512-BF16 EPYC), and the demo and fine-tuning turn bf16 autocast on only where it is native.
"""
from __future__ import annotations

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


def cpu_kind() -> str:
    """One line for reports: the model name and which bf16 matrix unit it has."""
    flags = cpu_flags()
    unit = ("AMX" if any(f.startswith("amx") for f in flags)
            else "AVX512-BF16, no AMX" if "avx512_bf16" in flags else "no native bf16")
    return f"{cpu_model()} ({unit})"


def cpu_tag() -> str:
    """A short file-name tag for the CPU kind: vendor family and bf16 unit ("xeon-amx", "epyc-avx512bf16")."""
    name, flags = cpu_model().lower(), cpu_flags()
    family = next((f for f in ("xeon", "epyc", "core", "ryzen") if f in name), platform.machine() or "cpu")
    unit = ("amx" if any(f.startswith("amx") for f in flags)
            else "avx512bf16" if "avx512_bf16" in flags else "nobf16")
    return f"{family}-{unit}"


def bf16_supported(device: str = "cpu") -> bool:
    """Whether bf16 matmuls run natively (else autocast would emulate them slowly)."""
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)
