"""The process allocator setting (`hardware.keep_freed_memory`): freed activations are reused, not faulted in again.

Each case runs in a fresh interpreter, since the setting is process-wide and cannot be undone.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

# Allocates and frees a 64 MiB tensor of ones (every page touched) twelve times; prints the page faults the
# last nine took (the first calls may still grow the heap) and what keep_freed_memory reported.
PROBE = """
import json, resource, torch
from litebert import hardware
setting = hardware.keep_freed_memory()
for _ in range(3):
    torch.ones(16 << 20)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(9):
    torch.ones(16 << 20)
print(json.dumps({"setting": setting, "state": hardware.ALLOCATOR,
                  "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def probe(malloc: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "LITEBERT_MALLOC"}
    if malloc is not None:
        env["LITEBERT_MALLOC"] = malloc
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting acts on glibc's malloc only")
def test_kept_memory_is_reused_without_page_faults():
    kept, system = probe(None), probe("system")
    assert kept["setting"] == kept["state"] == "glibc, freed memory kept (mmap off, no trim)"
    assert system["state"] == "system (LITEBERT_MALLOC=system)"
    pages = 9 * (64 << 20) // 4096  # what nine fresh mappings of 64 MiB fault in with 4 KiB pages
    assert system["faults"] > pages // 2  # glibc maps and unmaps a block this large on every call ...
    assert kept["faults"] < pages // 50  # ... and with the setting reuses the first one


def test_an_unknown_setting_is_refused_with_the_accepted_values():
    done = subprocess.run([sys.executable, "-m", "litebert.cli", "params", "--preset", "albert-base-v2"],
                          env={**os.environ, "LITEBERT_MALLOC": "jemalloc"}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "LITEBERT_MALLOC='jemalloc': expected 'keep' (the default) or 'system'" in done.stderr
