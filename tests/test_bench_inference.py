"""benchmarks/bench_inference.py runs onnxruntime off the main thread (so that its allocations use a glibc arena
of their own and cannot make the PyTorch contenders fault in fresh pages), always from the same thread, and
hands back what the session returns."""
import sys
import threading
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_inference  # noqa: E402


class RecordingSession:
    def __init__(self):
        self.threads, self.feeds = [], []

    def run(self, outputs, feed):
        self.threads.append(threading.current_thread())
        self.feeds.append(feed)
        return [feed["input_ids"] * 2]


def test_onnxruntime_runs_from_one_thread_of_its_own():
    session = RecordingSession()
    ids = torch.arange(6).view(2, 3)
    run = bench_inference.ort_runner(session, {"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    first, second = run(), run()
    assert (first[0] == ids.numpy() * 2).all() and (second[0] == first[0]).all()
    assert session.threads[0] is session.threads[1] is not threading.main_thread()
    assert set(session.feeds[0]) == {"input_ids", "attention_mask"}  # numpy arrays, built once
    assert session.feeds[0] is session.feeds[1]
