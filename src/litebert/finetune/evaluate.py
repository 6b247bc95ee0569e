"""Offline scoring of saved predictions against a labelled data file (`litebert evaluate`).

Prediction file formats:
  * SQuAD: the official JSON {qid: answer text}; optional no-answer file {qid: score} (`--na-probs`).
  * GLUE: the GLUE submission TSV, header `index<TAB>prediction`, one row per example: the example's guid
    (see `readers.read_glue_tsv`) and its label string, or a float for STS-B.
  * RACE: JSON {guid: "A".."D"}, guid = f"{passage id}-{question number}".
"""
from __future__ import annotations

import csv
import dataclasses
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from litebert import metrics
from litebert.files import open_text, write_atomic
from litebert.finetune.readers import read_examples
from litebert.finetune.tasks import TASKS, ConllFormat, SquadFormat, Task, TsvFormat, get_task, task_metrics, \
    with_labels_from


def score_predictions(
    task_name: str, data_file: str, predictions_file: str, na_probs_file: str | None = None
) -> dict[str, float]:
    """Metrics of `predictions_file` on the labelled `data_file` (a dev TSV, SQuAD JSON or RACE split dir).

    Raises ValueError naming the first example that has no prediction.
    """
    task = get_task(task_name)
    if isinstance(task.format, SquadFormat):
        with open_text(data_file) as f:
            dataset = json.load(f)
        predictions = _load_json_dict(predictions_file)
        na_probs = _load_json_dict(na_probs_file) if na_probs_file else None
        return metrics.evaluate_squad(dataset, predictions, na_probs, task.format.version)
    if na_probs_file:
        raise ValueError(f"--na-probs applies to SQuAD 2.0, not {task.name}")
    if isinstance(task.format, ConllFormat):
        return _score_conll(task, data_file, predictions_file)
    examples, _ = read_examples(task, data_file)
    if task.kind == "multiple_choice":
        predicted = {guid: str(label) for guid, label in _load_json_dict(predictions_file).items()}
    else:
        predicted = read_glue_predictions(predictions_file)
    if task.kind == "classification" and not task.labels:  # a generic row: the labels both files name
        task = with_labels_from(task, [str(e.label) for e in examples] + list(predicted.values()))
    if task.kind == "multi_label" and not task.labels:
        task = with_labels_from(task, [n for e in examples for n in e.label] +
                                [n for names in predicted.values() for n in _names(names)])
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
    with open_text(path, newline="") as f:
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


def write_glue_predictions(path: str, task: Task, guids: list[str], predictions: Sequence) -> None:
    """Write a GLUE submission TSV: label ids (N,) become label strings, regression scores stay floats, a
    multi-label prediction (a tuple of label ids) becomes its labels separated by commas."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("index\tprediction\n")
        for guid, value in zip(guids, list(predictions), strict=True):
            # repr: the shortest text that reads back as the same float, so offline scores equal online ones
            # (rounding would tie near-equal scores and change Spearman).
            text = (repr(float(value)) if task.kind == "regression"
                    else ",".join(task.labels[i] for i in value) if task.kind == "multi_label"
                    else task.labels[int(value)])
            f.write(f"{guid}\t{text}\n")


def glue_submission_files() -> dict[str, Task]:
    """{file name the GLUE server expects: the task that predicts it}: the 9 tasks' test files plus AX
    (the diagnostic set, predicted by the MNLI model)."""
    return {t.submission: task for task in TASKS.values() if isinstance(task.format, TsvFormat)
            for t in task.test_files if t.submission}


def glue_submission(sources: list[str | Path], output_zip: str | Path, allow_missing: bool = False) -> list[str]:
    """Zip the GLUE test predictions found in `sources` (finetune output directories, or their submission/
    folders) as the GLUE server takes them: one `{CoLA,SST-2,...,AX}.tsv` per task at the zip's root.

    Each file is checked: the `index<TAB>prediction` header, and every prediction a label of its task (a float
    for STS-B). A file found twice, or a missing one (unless `allow_missing`), is an error naming it. Returns
    the names written; the zip appears whole or not at all."""
    expected = glue_submission_files()
    found: dict[str, Path] = {}
    for source in map(Path, sources):
        folder = source / "submission" if (source / "submission").is_dir() else source
        if not folder.is_dir():
            raise FileNotFoundError(f"{source}: no such directory (pass finetune output directories)")
        for path in sorted(folder.glob("*.tsv")):
            if path.name not in expected:
                continue
            if path.name in found:
                raise ValueError(f"{path.name} is in both {found[path.name].parent} and {path.parent}: keep one")
            _check_submission_file(path, expected[path.name])
            found[path.name] = path
    missing = [name for name in expected if name not in found]
    if missing and not allow_missing:
        raise ValueError(f"the GLUE server needs every task's file; missing {', '.join(missing)} "
                         f"(fine-tune those tasks, or pass --allow-missing for a partial zip)")
    if not found:
        raise ValueError(f"no GLUE submission file in {', '.join(map(str, sources))}")

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name, path in found.items():
                z.write(path, arcname=name)
    write_atomic(output_zip, write)
    return list(found)


def _check_submission_file(path: Path, task: Task) -> None:
    with open_text(path) as f:
        header = f.readline().rstrip("\n")
        if header != "index\tprediction":
            raise ValueError(f"{path}:1: expected the header 'index<TAB>prediction', found {header!r}")
        rows = 0
        for line_number, line in enumerate(f, 2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 2:
                raise ValueError(f"{path}:{line_number}: expected index<TAB>prediction")
            _label_value(task, fields[1], where=f"{path}:{line_number}")
            rows += 1
    if rows == 0:
        raise ValueError(f"{path}: no predictions")


def _label_value(task: Task, label: str | float | tuple[str, ...], where: str | None = None
                 ) -> float | int | np.ndarray:
    """A label string (or STS-B float) as the number the metrics compare; a multi-label set (or its names
    separated by commas, as predictions files hold it) as its multi-hot row (L,)."""
    try:
        if task.kind == "multi_label":
            row = np.zeros(task.num_labels, dtype=np.int64)
            row[[task.label_id(n) for n in (_names(label) if isinstance(label, str) else label)]] = 1
            return row
        return float(label) if task.kind == "regression" else task.label_id(str(label))
    except ValueError as err:
        raise ValueError(f"{where}: {err}" if where else str(err)) from None


def _names(cell: str) -> list[str]:
    """The labels of a multi-label predictions cell: names separated by commas ("" for none)."""
    return [n for n in cell.split(",") if n]


def _score_conll(task: Task, data_file: str, predictions_file: str) -> dict[str, float]:
    """Entity scores of a CoNLL-layout predictions file (the predicted tag last on each line, as `predict`
    writes it) against the tags of `data_file`, sentence by sentence."""
    gold, _ = read_examples(with_labels_from(task, []), data_file)
    predicted, _ = read_examples(dataclasses.replace(task, format=ConllFormat(-1), labels=()), predictions_file)
    if len(gold) != len(predicted):
        raise ValueError(f"{predictions_file}: {len(predicted)} sentences, {data_file} has {len(gold)}")
    for g, p in zip(gold, predicted):
        if g.words != p.words:
            raise ValueError(f"{predictions_file}: sentence {p.guid} does not follow {data_file}'s {g.guid} "
                             f"(expected the same words in the same order)")
    return metrics.evaluate_entities([list(g.tags) for g in gold], [list(p.tags) for p in predicted])


def _load_json_dict(path: str) -> dict:
    with open_text(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object mapping ids to predictions")
    return data
