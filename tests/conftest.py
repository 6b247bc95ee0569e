"""Test-session settings shared by every test module."""
import torch

# Test models are tiny: one thread is as fast as two for them, and it keeps the tests that start extra
# processes (torchrun, data workers) from fighting over the two cores.
torch.set_num_threads(1)
