"""PNG curves of a run. Pretraining (metrics.jsonl): loss, MLM accuracy, SOP accuracy and learning rate, against
step (`curves_step.png`) and against wall-clock time (`curves_time.png`), eval points overlaid. Fine-tuning (a
`finetune` output directory or one seed's): loss, learning rate, gradient norm and the selection metrics
against step, one line per seed (`finetune.png`)."""
from __future__ import annotations

import argparse
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
    seed_logs = sorted(Path(run_dir).glob("seed-*/log.jsonl")) or sorted(Path(run_dir).glob("log.jsonl"))
    if not metrics.is_file() and seed_logs:
        return [plot_finetune(seed_logs, Path(out_dir) if out_dir is not None else Path(run_dir) / "plots", plt)]
    if not metrics.is_file():
        raise FileNotFoundError(f"{metrics} not found: {run_dir} is not a `litebert pretrain` or `finetune` output "
                                f"directory")
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


def plot_finetune(logs: list[Path], out_dir: Path, plt) -> Path:
    """finetune.png: training loss, learning rate, gradient norm and every selection metric, by step, per seed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
    for log in logs:
        records = [r for r in read_metrics(log)[0] if "step" in r]
        name = log.parent.name if log.parent.name.startswith("seed-") else "run"
        for ax, key in zip(axes.flat[:3], ("loss", "lr", "grad_norm")):
            points = [(r["step"], r[key]) for r in records if key in r]
            if points:
                ax.plot(*zip(*points), label=name, linewidth=1)
                ax.set_title(key.replace("_", " "))
        selection = [r for r in records if isinstance(r.get("selection"), dict)]
        for metric in (selection[0]["selection"] if selection else {}):
            axes.flat[3].plot([r["step"] for r in selection], [r["selection"][metric] for r in selection], "o-",
                              markersize=3, label=f"{name} {metric}")
    axes.flat[3].set_title("selection split")
    for ax in axes.flat:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(logs[0].parent.parent.name if len(logs) > 1 else logs[0].parent.name)
    path = out_dir / "finetune.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `litebert plot`."""
    q = subparsers.add_parser("plot", help="PNG curves of a pretraining or fine-tuning run")
    q.add_argument("run_dir", metavar="RUN_DIR", help="a `litebert pretrain` or `litebert finetune` output directory")
    q.add_argument("--output", help="directory for the PNGs (default RUN_DIR/plots)")
    q.set_defaults(func=_plot_command)


def _plot_command(args: argparse.Namespace) -> int:
    for path in plot_run(Path(args.run_dir), Path(args.output) if args.output else None):
        print(f"wrote {path}")
    return 0
