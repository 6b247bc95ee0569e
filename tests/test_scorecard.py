"""benchmarks/scorecard.py scores issue 12's targets from the benchmarks' results as the issue reads them:
litebert in the precision calibration picks, against the reference's better precision; int8 never counted."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import scorecard  # noqa: E402


def train_row(preset, batch, length, dtype, ours, hf, calibrated, mfu=0.6):
    return {"preset": preset, "batch": batch, "seq_length": length, "dtype": dtype, "calibrated": calibrated,
            "litebert_tokens_per_s": ours, "transformers_tokens_per_s": hf, "litebert_mfu": mfu}


def inference_part(shape, tokens):
    batch, seq = shape
    return [{"batch": batch, "seq": seq, "contender": name, "tokens_per_s": t} for name, t in tokens.items()]


def results():
    base = {"rows": [
        # calibration picked fp32 at 8x128, though litebert's bf16 row is faster: runs get fp32, so fp32 counts
        train_row("albert-base-v2", 8, 128, "fp32", 400, 300, "fp32"),
        train_row("albert-base-v2", 8, 128, "bf16-autocast", 900, 200, "fp32"),
        # at 32x128 HF's fp32 is its better precision: the reference is that, not HF bf16
        train_row("albert-base-v2", 32, 128, "fp32", 300, 250, "bf16-autocast", mfu=0.3),
        train_row("albert-base-v2", 32, 128, "bf16-autocast", 500, 150, "bf16-autocast", mfu=0.55),
    ]}
    demo = {"rows": [train_row("demo", 64, 64, "bf16-autocast", 21000, 10000, "bf16-autocast")]}
    tokens = {"litebert fp32": 900, "litebert bf16 autocast": 1400, "litebert bf16 weights": 1300,
              "litebert int8 (PyTorch)": 5000, "HF fp32": 1200, "HF bf16 autocast": 700, "ORT HF fp32": 1000,
              "ORT litebert int8": 4000}
    inference = {"presets": {"albert-base-v2": {"results": inference_part((8, 128), tokens)}}}
    return base, demo, inference


def test_each_target_is_read_as_the_issue_states_it():
    rows = {(r["target"], r["where"]): r for r in scorecard.score(*results())}
    fp32_pick = rows["training", "albert-base-v2 8x128"]
    assert fp32_pick["litebert"] == "litebert fp32" and fp32_pick["reference"] == "HF fp32"
    assert fp32_pick["ratio"] == pytest.approx(400 / 300) and fp32_pick["verdict"] == "missed"
    bf16_pick = rows["training", "albert-base-v2 32x128"]
    assert bf16_pick["ratio"] == pytest.approx(500 / 250) and bf16_pick["verdict"] == "met"
    mfu = rows["training MFU", "albert-base-v2 32x128"]
    assert mfu["ratio"] == pytest.approx(0.55) and mfu["verdict"] == "met"
    assert ("training MFU", "albert-base-v2 8x128") not in rows  # the MFU target is at 32x128 only
    assert rows["demo", "demo 64x64"]["ratio"] == pytest.approx(2.1) and rows["demo", "demo 64x64"]["verdict"] == "met"
    # inference: litebert's best contender that keeps its outputs (bf16 autocast) over the better reference
    # (onnxruntime at 1000: HF fp32 is faster still, but is not one of the issue's references)
    served = rows["inference", "albert-base-v2 8x128"]
    assert served["litebert"] == "litebert bf16 autocast" and served["reference"] == "ORT HF fp32"
    assert served["ratio"] == pytest.approx(1.4) and served["verdict"] == "missed"
    int8 = rows["inference, int8 (outputs differ)", "albert-base-v2 8x128"]
    assert int8["ratio"] == pytest.approx(5.0) and int8["verdict"] == "" and int8["goal"] is None


def test_a_cpu_without_native_bf16_is_scored_against_hf_fp32():
    """No bf16 contender is timed where bf16 is emulated (an AVX2-only CPU): HF fp32 stands in for HF bf16."""
    base, demo, _ = results()
    tokens = {"litebert fp32": 900, "litebert int8 (PyTorch)": 2000, "HF fp32": 700, "ORT HF fp32": 600}
    inference = {"presets": {"albert-base-v2": {"results": inference_part((8, 128), tokens)}}}
    served = {(r["target"], r["where"]): r for r in scorecard.score(base, demo, inference)}[
        "inference", "albert-base-v2 8x128"]
    assert served["litebert"] == "litebert fp32" and served["reference"] == "HF fp32"
    assert served["ratio"] == pytest.approx(900 / 700)


def test_scoring_alone_names_the_results_it_lacks(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(scorecard, "RESULTS", tmp_path)
    monkeypatch.setattr(scorecard, "cpu_tag", lambda: "testcpu")
    with pytest.raises(SystemExit, match="scorecard_testcpu_train_base.json"):
        scorecard.main(["--score-only"])
    base, demo, inference = results()
    machine = {"cpu": "Test CPU"}
    for part, data in {"train_base": base, "train_demo": demo, "inference": inference}.items():
        (tmp_path / f"scorecard_testcpu_{part}.json").write_text(json.dumps({**data, "machine": machine}))
    monkeypatch.setattr(scorecard, "write_json", lambda data, name: (tmp_path / name).write_text(json.dumps(data))
                        and tmp_path / name)
    assert scorecard.main(["--score-only"]) == 0
    written = json.loads((tmp_path / "scorecard_testcpu.json").read_text())
    assert [r["verdict"] for r in written["rows"] if r["target"] == "training"] == ["missed", "met"]
    assert "missed" in capsys.readouterr().out


def test_parts_rerun_only_what_is_named_and_score_with_the_saved_rest(tmp_path, monkeypatch):
    monkeypatch.setattr(scorecard, "RESULTS", tmp_path)
    monkeypatch.setattr(scorecard, "cpu_tag", lambda: "testcpu")
    ran: list = []
    monkeypatch.setattr(scorecard, "run_all", lambda commands: ran.append(commands))
    for part, data in zip(("train_base", "train_demo", "inference"), results()):
        (tmp_path / f"scorecard_testcpu_{part}.json").write_text(json.dumps({**data, "machine": {"cpu": "Test"}}))
    monkeypatch.setattr(scorecard, "write_json", lambda data, name: (tmp_path / name).write_text(json.dumps(data))
                        and tmp_path / name)
    assert scorecard.main(["--parts", "inference"]) == 0
    assert [list(commands) for commands in ran] == [["inference"]]
    assert ran[0]["inference"][0] == "bench_inference.py"
    assert json.loads((tmp_path / "scorecard_testcpu.json").read_text())["rows"]
