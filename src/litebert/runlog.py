"""One logger for pretraining and fine-tuning: JSON lines, TensorBoard scalars, a progress bar, messages.

    records   one JSON object per line (`metrics.jsonl` of a pretraining run, `log.jsonl` of a fine-tuning seed);
              `litebert plot` and the reports read them back
    scalars   every finite number of a record goes to TensorBoard (when installed) as SPLIT/NAME, where SPLIT is
              the record's "split" ("train" when absent); a nested dict's numbers as NAME/KEY, e.g. selection/accuracy
    progress  a tqdm bar at the run's step, with a one-line postfix the caller formats; without a terminal (a
              cluster job's log file, a pipe) a plain line every PROGRESS_LINE_S seconds instead of a redrawn bar
    messages  lines for the user, printed above the bar (on stderr)

Only the process that owns the run's files logs: other ranks get a disabled RunLog whose methods do nothing.
"""
from __future__ import annotations

import functools
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

PROGRESS_LINE_S = 30.0
"""Seconds between progress lines when stderr is not a terminal."""


class RunLog:
    """A run's record; see the module docstring."""

    def __init__(self, path: Path | None, *, tensorboard: Path | None = None, total: int | None = None,
                 progress: bool = False, initial: int = 0, append: bool = True, timestamps: bool = False,
                 enabled: bool = True, interactive: bool | None = None):
        """interactive: draw a bar (a terminal) or print progress lines (a log file); None: stderr decides."""
        self.enabled = enabled
        self.path = Path(path) if path is not None and enabled else None
        self.timestamps = timestamps
        self.writer = self.bar = self.lines = None
        self._drawn = 0.0  # time.monotonic() of the bar's last refresh
        if not enabled:
            return
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not append:
                self.path.write_text("", encoding="utf-8")
        if tensorboard is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(tensorboard))
            except ImportError:  # TensorBoard is an optional extra
                _say_tensorboard_is_missing()
        if progress and (interactive if interactive is not None else sys.stderr.isatty()):
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
        elif progress:
            self.lines = ProgressLines(total, initial)

    def truncate_after(self, step: int) -> None:
        """Drop records past `step` (a resume or rollback repeats those steps)."""
        if self.path is None or not self.path.exists():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        kept = [ln for ln in lines if ln.strip() and json.loads(ln).get("step", 0) <= step]
        self.path.write_text("".join(ln + "\n" for ln in kept), encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        """Append one record; its numbers also go to TensorBoard at record["step"]."""
        if not self.enabled:
            return
        if self.timestamps:
            record = {"time": time.time(), **record}
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, default=_jsonable) + "\n")
        if self.writer is not None and "step" in record:
            for name, value in scalars(record):
                self.writer.add_scalar(name, value, record["step"])

    def message(self, text: str) -> None:
        if self.enabled:
            (self.bar.write if self.bar is not None else print)(text, file=sys.stderr)

    def advance(self, step: float, postfix: str | None = None) -> None:
        """Move the bar to `step`: a whole step when it ends; a fraction inside one (accumulated micro-batches),
        drawn at most once per `bar.mininterval`, so a step of hundreds of micro-batches still shows it moves."""
        if self.lines is not None:
            self.lines.advance(step, postfix)
        if self.bar is None:
            return
        within = step != int(step)
        if within and time.monotonic() - self._drawn < self.bar.mininterval:
            return
        self.bar.n = math.floor(step * 100) / 100 if within else step  # never a whole step before it ends
        if postfix is not None:
            self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.refresh()
        self._drawn = time.monotonic()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


class ProgressLines:
    """Progress for a log file: at most every PROGRESS_LINE_S seconds a line such as
    "step 120/1,000 (12%), 1.23 s/step: loss 6.530 ...", where a terminal would redraw a bar in place (in a file
    each redraw is kept, and a long run's log becomes megabytes of carriage returns)."""

    def __init__(self, total: int | None, initial: int = 0):
        self.total, self.first_step = total, initial
        self.started = self.printed = time.monotonic()

    def advance(self, step: float, postfix: str | None = None) -> None:
        now = time.monotonic()
        if now - self.printed < PROGRESS_LINE_S:
            return
        self.printed = now
        text = f"step {step:,.2f}" if step != int(step) else f"step {int(step):,}"
        if self.total:
            text += f"/{self.total:,} ({step / self.total:.0%})"
        if step > self.first_step:
            text += f", {(now - self.started) / (step - self.first_step):.2f} s/step"
        print(text + (f": {postfix}" if postfix else ""), file=sys.stderr, flush=True)


def counter(total: int | None, unit: str, desc: str | None = None, disable: bool = False):
    """A progress count for a long loop of a command (texts classified, documents read): `update(n)`, `close()`,
    usable in `with`. A tqdm bar on a terminal; elsewhere `CountLines`, as RunLog does for steps."""
    if disable or sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=f" {unit}s", dynamic_ncols=True, file=sys.stderr, disable=disable)
    return CountLines(total, unit, desc)


class CountLines:
    """`counter`'s form for a log file: at most every PROGRESS_LINE_S seconds a line such as
    "data create: 1,234 docs, 85.3 docs/s" or "1,234/10,000 texts (12%), 85.3 texts/s"."""

    def __init__(self, total: int | None, unit: str, desc: str | None = None):
        self.total, self.unit, self.desc, self.n = total, unit, desc, 0
        self.started = self.printed = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.printed < PROGRESS_LINE_S:
            return
        self.printed = now
        count = f"{self.n:,}/{self.total:,} {self.unit}s ({self.n / self.total:.0%})" if self.total else \
            f"{self.n:,} {self.unit}s"
        rate = self.n / max(now - self.started, 1e-9)
        print(f"{self.desc + ': ' if self.desc else ''}{count}, {rate:,.1f} {self.unit}s/s", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass

    def __enter__(self) -> "CountLines":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@functools.cache  # once per process: a fine-tuning run opens a log per seed
def _say_tensorboard_is_missing() -> None:
    print("TensorBoard logs are off: the tensorboard package is not installed (pip install 'litebert[tensorboard]'); "
          "the JSON-lines records and `litebert plot` do without it", file=sys.stderr)


def scalars(record: dict[str, Any]) -> list[tuple[str, float]]:
    """(TensorBoard tag, value) for every finite number of a record, e.g. ("eval/mlm_acc", 0.31)."""
    prefix = record.get("split", "train")
    out = []
    for key, value in record.items():
        if key in ("step", "time"):
            continue
        if isinstance(value, dict):
            items = [(f"{key}/{k}", v) for k, v in value.items()]
        else:
            items = [(f"{prefix}/{key}", value)]
        out += [(tag, float(v)) for tag, v in items
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    return out


def _jsonable(x: Any) -> Any:
    return float(x) if isinstance(x, (np.floating, np.integer)) else str(x)
