"""Offline scoring of saved predictions against a labelled data file (`litebert evaluate`).

Prediction file formats:
  * SQuAD: the official JSON {qid: answer text}; optional no-answer file {qid: score} (`--na-probs`).
  * GLUE: the GLUE submission TSV, header `index<TAB>prediction`, one row per example: the example's guid
    (see `readers.read_glue_tsv`) and its label string, or a float for STS-B.
  * RACE: JSON {guid: "A".."D"}, guid = f"{passage id}-{question number}".
"""
from __future__ import annotations

import csv
import json

import numpy as np

from litebert import metrics
from litebert.finetune.readers import read_examples
from litebert.finetune.tasks import SquadFormat, Task, get_task, task_metrics


def score_predictions(
    task_name: str, data_file: str, predictions_file: str, na_probs_file: str | None = None
) -> dict[str, float]:
    """Metrics of `predictions_file` on the labelled `data_file` (a dev TSV, SQuAD JSON or RACE split dir).

    Raises ValueError naming the first example that has no prediction.
    """
    task = get_task(task_name)
    if isinstance(task.format, SquadFormat):
        with open(data_file, encoding="utf-8") as f:
            dataset = json.load(f)
        predictions = _load_json_dict(predictions_file)
        na_probs = _load_json_dict(na_probs_file) if na_probs_file else None
        return metrics.evaluate_squad(dataset, predictions, na_probs, task.format.version)
    if na_probs_file:
        raise ValueError(f"--na-probs applies to SQuAD 2.0, not {task.name}")
    examples, _ = read_examples(task, data_file)
    if task.kind == "multiple_choice":
        predicted = {guid: str(label) for guid, label in _load_json_dict(predictions_file).items()}
    else:
        predicted = read_glue_predictions(predictions_file)
    labels, guesses = [], []
    for example in examples:
        if example.label is None:
            raise ValueError(f"{data_file}: example {example.guid!r} has no label; score a dev file, not a test file")
        if example.guid not in predicted:
            raise ValueError(f"{predictions_file}: no prediction for example id {example.guid!r}")
        # RACE examples carry the option index already; GLUE ones the label string or score.
        labels.append(example.label if task.kind == "multiple_choice" else _label_value(task, example.label))
        guesses.append(_label_value(task, predicted[example.guid], where=f"{predictions_file}: id {example.guid!r}"))
    return task_metrics(task, np.array(guesses), np.array(labels))


def read_glue_predictions(path: str) -> dict[str, str]:
    """index -> prediction string from a GLUE submission TSV (header `index<TAB>prediction`)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(rows, None)
        if header != ["index", "prediction"]:
            raise ValueError(f"{path}:1: expected the header 'index<TAB>prediction', found {header}")
        predictions: dict[str, str] = {}
        for row in rows:
            if len(row) != 2:
                raise ValueError(f"{path}:{rows.line_num}: expected 2 tab-separated fields, found {len(row)}")
            if row[0] in predictions:
                raise ValueError(f"{path}:{rows.line_num}: index {row[0]!r} occurs more than once")
            predictions[row[0]] = row[1]
    return predictions


def write_glue_predictions(path: str, task: Task, guids: list[str], predictions: np.ndarray) -> None:
    """Write a GLUE submission TSV: label ids (N,) become label strings, regression scores stay floats."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("index\tprediction\n")
        for guid, value in zip(guids, np.asarray(predictions).tolist(), strict=True):
            # repr: the shortest text that reads back as the same float, so offline scores equal online ones
            # (rounding would tie near-equal scores and change Spearman).
            text = repr(float(value)) if task.kind == "regression" else task.labels[int(value)]
            f.write(f"{guid}\t{text}\n")


def _label_value(task: Task, label: str | float, where: str | None = None) -> float | int:
    """A label string (or STS-B float) as the number the metrics compare."""
    try:
        return float(label) if task.kind == "regression" else task.label_id(str(label))
    except ValueError as err:
        raise ValueError(f"{where}: {err}" if where else str(err)) from None


def _load_json_dict(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object mapping ids to predictions")
    return data
