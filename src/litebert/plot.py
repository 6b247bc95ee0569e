"""PNG curves of a pretraining run from its metrics.jsonl: loss, MLM accuracy, SOP accuracy and learning rate,
against step (`curves_step.png`) and against wall-clock time (`curves_time.png`); eval points overlaid."""
from __future__ import annotations

import json
from pathlib import Path

PANELS = (("loss", "loss"), ("mlm_acc", "MLM accuracy"), ("sop_acc", "SOP accuracy"), ("lr", "learning rate"))


def read_metrics(path: Path) -> tuple[list[dict], list[dict]]:
    """(train records, eval records) of a metrics.jsonl; events (skip, rollback) and bad lines are left out."""
    train, evals = [], []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash
        if "event" in record:
            continue
        (evals if record.get("split") == "eval" else train).append(record)
    return train, evals


def plot_run(run_dir: Path, out_dir: Path | None = None) -> list[Path]:
    """Write curves_step.png and curves_time.png for `run_dir`; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = Path(run_dir) / "metrics.jsonl"
    if not metrics.is_file():
        raise FileNotFoundError(f"{metrics} not found: {run_dir} is not a `litebert pretrain` output directory")
    train, evals = read_metrics(metrics)
    if not train:
        raise ValueError(f"{metrics} holds no training records yet")
    out_dir = Path(out_dir) if out_dir is not None else Path(run_dir) / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for axis, label in (("step", "step"), ("time_s", "time (min)")):
        scale = 1 / 60 if axis == "time_s" else 1
        fig, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
        for ax, (key, title) in zip(axes.flat, PANELS):
            points = [(r[axis] * scale, r[key]) for r in train if r.get(key) is not None]
            if points:
                ax.plot(*zip(*points), label="train", linewidth=1)
            eval_points = [(r[axis] * scale, r[key]) for r in evals if r.get(key) is not None]
            if eval_points:
                ax.plot(*zip(*eval_points), "o-", label="eval", markersize=3)
            ax.set_title(title)
            ax.set_xlabel(label)
            ax.grid(alpha=0.3)
            if eval_points:
                ax.legend()
        fig.suptitle(Path(run_dir).name)
        path = out_dir / f"curves_{'step' if axis == 'step' else 'time'}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
