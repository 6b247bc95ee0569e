"""Test-session settings shared by every test module."""
import dataclasses
import os
import tempfile

import pytest
import torch

# Test models are tiny: one thread is as fast as two for them. `make test` runs two pytest workers (pytest-xdist),
# one per core, and the tests that start extra processes (torchrun, data workers) share them.
torch.set_num_threads(1)

# Calibrations (litebert.calibrate) measured by the tests stay with this session, not in the user's cache;
# child processes inherit the directory, so a rerun in a kill/resume test decides as the first run did.
os.environ.setdefault("LITEBERT_CALIBRATION_DIR", tempfile.mkdtemp(prefix="litebert-calibration-"))
os.environ.setdefault("LITEBERT_ONNX_DIR", tempfile.mkdtemp(prefix="litebert-onnx-"))
os.environ.setdefault("LITEBERT_TOKENIZER_DIR", tempfile.mkdtemp(prefix="litebert-tokenizers-"))


@pytest.fixture(autouse=True)
def _restore_cpu_fast_paths():
    """A run that applied a calibration changes kernels.CPU_FAST_PATHS process-wide: after each test, back to the
    defaults (a module-scoped fixture's run applies its calibration before any test's own set-up could save it)."""
    from litebert import kernels
    yield
    for name, value in dataclasses.asdict(kernels.CpuFastPaths()).items():
        setattr(kernels.CPU_FAST_PATHS, name, value)
