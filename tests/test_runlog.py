"""The one run log of pretraining and fine-tuning: JSON lines, TensorBoard tags, truncation on resume."""
from __future__ import annotations

import json
import sys

from litebert.runlog import RunLog, scalars


def test_records_tags_and_truncation(tmp_path):
    log = RunLog(tmp_path / "m.jsonl", timestamps=True)
    for step in (1, 2, 3):
        log.write({"step": step, "loss": 1.0 / step, "tokens": 64 * step})
    log.write({"step": 3, "split": "eval", "mlm_acc": 0.25, "note": "text", "ok": True})
    log.truncate_after(2)  # a resume from step 2 repeats step 3
    records = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2] and all("time" in r for r in records)
    log.close()

    tags = dict(scalars({"step": 5, "split": "eval", "mlm_acc": 0.3, "sop_acc": float("nan"), "flag": True,
                         "selection": {"accuracy": 0.8, "name": "x"}, "time": 12.0}))
    assert tags == {"eval/mlm_acc": 0.3, "selection/accuracy": 0.8}  # finite numbers only, no step/time/bools
    assert dict(scalars({"step": 1, "loss": 2.0})) == {"train/loss": 2.0}


def test_a_disabled_log_writes_nothing(tmp_path):
    log = RunLog(tmp_path / "m.jsonl", tensorboard=tmp_path / "tb", progress=True, enabled=False)
    log.write({"step": 1, "loss": 1.0})
    log.message("hello")
    log.advance(1, "x")
    log.close()
    assert not (tmp_path / "m.jsonl").exists() and not (tmp_path / "tb").exists()


def test_a_fresh_log_replaces_an_old_file(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"step": 9}\n')
    RunLog(tmp_path / "m.jsonl", append=False).write({"step": 1})
    assert (tmp_path / "m.jsonl").read_text() == '{"step": 1}\n'


def test_tensorboard_missing_is_said_once(tmp_path, monkeypatch, capsys):
    """Without the optional tensorboard package the run goes on, its records intact, and says so once."""
    from litebert import runlog

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    runlog._say_tensorboard_is_missing.cache_clear()
    for seed in (1, 2):
        log = RunLog(tmp_path / f"seed-{seed}.jsonl", tensorboard=tmp_path / f"tb-{seed}")
        log.write({"step": 1, "loss": 0.5})
        log.close()
    err = capsys.readouterr().err
    assert err.count("TensorBoard logs are off: the tensorboard package is not installed") == 1
    assert not (tmp_path / "tb-1").exists() and (tmp_path / "seed-2.jsonl").read_text().count("loss") == 1


def test_the_bar_moves_inside_a_step_of_many_micro_batches(tmp_path):
    """A step of hundreds of accumulated micro-batches takes minutes on a CPU: the bar shows its fraction
    (never a whole step before the step ends), drawn at most once per mininterval."""
    log = RunLog(None, total=3, progress=True, interactive=True)
    log.bar.mininterval = 0
    log.advance(0.999)
    assert log.bar.n == 0.99
    log.advance(1, "loss 1.0")
    assert log.bar.n == 1
    log.bar.mininterval = 3600  # just drawn: a fraction waits, a whole step does not
    log.advance(1.5)
    assert log.bar.n == 1
    log.advance(2)
    assert log.bar.n == 2
    log.close()


def test_without_a_terminal_progress_is_a_line_now_and_then(monkeypatch, capsys):
    """A cluster job's log file is not a terminal: a redrawn bar would keep every redraw (carriage returns, megabytes
    over a long run). There the progress is a plain line at most every PROGRESS_LINE_S seconds."""
    import litebert.runlog as R

    clock = [100.0]
    monkeypatch.setattr(R.time, "monotonic", lambda: clock[0])
    log = RunLog(None, total=1000, progress=True, initial=100, interactive=False)
    assert log.bar is None
    for step in range(101, 121):
        clock[0] += 2.0
        log.advance(step, "loss 6.530")
    log.advance(120.5)  # inside a step: not yet time
    assert capsys.readouterr().err.splitlines() == ["step 115/1,000 (12%), 2.00 s/step: loss 6.530"]
    clock[0] += R.PROGRESS_LINE_S
    log.advance(120.5)
    assert capsys.readouterr().err == "step 120.50/1,000 (12%), 3.41 s/step\n"  # 70 s over 20.5 steps
    log.message("step 121: selection accuracy 0.5")
    assert capsys.readouterr().err == "step 121: selection accuracy 0.5\n"
    log.close()
    assert RunLog(None, progress=True).bar is None  # pytest's stderr is no terminal: lines by default


def test_a_command_counts_in_lines_without_a_terminal(monkeypatch, capsys):
    """data create's documents and classify --file's texts: a tqdm bar on a terminal, a line now and then in a log."""
    import litebert.runlog as R

    clock = [0.0]
    monkeypatch.setattr(R.time, "monotonic", lambda: clock[0])
    with R.counter(None, "doc", "data create") as docs:
        for _ in range(40):
            clock[0] += 1.0
            docs.update(100)
    assert capsys.readouterr().err.splitlines() == ["data create: 3,000 docs, 100.0 docs/s"]
    texts = R.counter(200, "text")
    clock[0] += R.PROGRESS_LINE_S
    texts.update(50)
    texts.close()
    assert capsys.readouterr().err == "50/200 texts (25%), 1.7 texts/s\n"
    assert R.counter(10, "text", disable=True).disable  # --no-progress: tqdm's disabled bar, silent
