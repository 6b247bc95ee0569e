"""benchmarks/common.write_json: a bare name lands in benchmarks/results/, a path where it says. A benchmark that
runs for minutes must not crash at the end over where its output goes (`--output benchmarks/results/x.json`
from the repository root once tried to write into results/benchmarks/results/ and lost the run)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import common  # noqa: E402


def test_a_bare_name_goes_under_results_and_a_path_is_taken_as_given(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    assert common.write_json({"a": 1}, "x.json") == tmp_path / "results" / "x.json"
    monkeypatch.chdir(tmp_path)
    written = common.write_json({"b": 2}, "out/dir/y.json")
    assert written.resolve() == (tmp_path / "out" / "dir" / "y.json").resolve()
    assert json.loads((tmp_path / "out" / "dir" / "y.json").read_text()) == {"b": 2}
    assert common.write_json({}, str(tmp_path / "z.json")) == tmp_path / "z.json"
