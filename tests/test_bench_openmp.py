"""benchmarks/bench_openmp.py compares OpenMP settings across child processes: its paired per-round ratio must
cancel load on the machine that lasts a round (the EPYC moved between ~117 and ~145 ms per demo step for minutes,
every setting alike), and each round must start with another setting."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_openmp  # noqa: E402


def test_the_paired_ratio_cancels_load_that_lasts_a_round(monkeypatch):
    cost = {"default": 1.0, "bound, close": 0.8, "wait active": 1.0, "wait passive": 1.25}
    load = [1.0, 1.3, 1.3, 1.0, 1.2]  # the whole machine slower in some rounds
    order: list[str] = []

    def fake_child(case, setting):
        order.append(setting)
        return cost[setting] * load[(len(order) - 1) // len(cost)]
    monkeypatch.setattr(bench_openmp, "run_child", fake_child)
    result = bench_openmp.measure("demo-train", rounds=len(load))
    assert set(result["speedup_over_default"]) == set(bench_openmp.SETTINGS)
    for name, seconds in cost.items():
        assert abs(result["speedup_over_default"][name] - 1.0 / seconds) < 1e-12
        assert len(result["runs_s"][name]) == len(load)
    firsts = [order[r * len(cost)] for r in range(len(load))]
    assert firsts[:len(cost)] == list(bench_openmp.SETTINGS)  # round r starts at the r-th setting
