"""Readers for the benchmark files as distributed, and the GLUE / RACE encoders on top of them.

Files -> typed examples:
  * GLUE TSVs (`read_glue_tsv`): header or not per task, test files without labels, QQP's short rows.
  * SQuAD v1.1 / v2.0 JSON (`read_squad`).
  * RACE split directories (`read_race`): `{middle,high}/*.txt`, one JSON passage per file.
  * Rated snippets (`read_rated_snippets`, the movie-reviews task): `id<TAB>rating<TAB>text`, split by hash.
  * A user's own texts (`read_table`): CSV, TSV or JSON lines with text / text_pair / label columns, found
    in the data directory by `locate_files`.
Every reader returns `(examples, ReadReport)`. A row that breaks the format raises ValueError with
`file:line` (or the question / file it concerns) and what was expected; the quirks the official files
really have are skipped and counted in the report, which the caller prints. Nothing is dropped silently.

Examples -> model inputs: `encode_pair_examples` (GLUE) and `encode_choice_examples` (RACE) build
`[CLS] a [SEP] b [SEP]` sequences padded to a fixed length, as ALBERT's run scripts do.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Iterator, Protocol

import numpy as np
import torch

from litebert import pairs
from litebert.files import open_text
from litebert.finetune.tasks import ConllFormat, RaceFormat, RatedSnippetsFormat, SquadFormat, TableFormat, Task, \
    TestFile, TsvFormat


@dataclass
class ReadReport:
    """What a reader kept and what it skipped, per reason, with the first place each reason occurred."""

    path: str
    examples: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    first_skipped_at: dict[str, str] = field(default_factory=dict)

    def skip(self, reason: str, where: str) -> None:
        """Count one skipped row/file under `reason`; `where` is e.g. "train.tsv:17"."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.first_skipped_at.setdefault(reason, where)

    def summary(self) -> str:
        """One line for logs, e.g. "QQP/train.tsv: 363846 examples; skipped 3 wrong_field_count (first at ...)"."""
        text = f"{self.path}: {self.examples} examples"
        for reason, count in self.skipped.items():
            text += f"; skipped {count} {reason} (first at {self.first_skipped_at[reason]})"
        return text


@dataclass(frozen=True)
class TextExample:
    """A GLUE (or own-texts) example: one sentence or a pair, and its label."""

    guid: str
    text_a: str
    text_b: str | None
    label: str | float | tuple[str, ...] | None
    """A label string, a float (regression), the set of labels of a multi-label example, or None (test)."""


@dataclass(frozen=True)
class SquadExample:
    """A SQuAD question with its paragraph; answers are (text, character start in `context`)."""

    qid: str
    question: str
    context: str
    answers: list[tuple[str, int]]
    is_impossible: bool = False
    plausible_answers: list[tuple[str, int]] = field(default_factory=list)
    """SQuAD 2.0's answers an annotator found plausible for an unanswerable question (not checked)."""


@dataclass(frozen=True)
class ChoiceExample:
    """A RACE question: read `context`, pick one of `options`; `label` is the option index."""

    guid: str
    context: str
    question: str
    options: tuple[str, ...]
    label: int | None


@dataclass(frozen=True)
class TokenExample:
    """A CoNLL sentence: its words and one tag per word (None: an unlabelled file)."""

    guid: str
    words: tuple[str, ...]
    tags: tuple[str, ...] | None


Example = TextExample | SquadExample | ChoiceExample | TokenExample


# ----------------------------------------------------------------------------------------------------------
# GLUE


def read_glue_tsv(path: str, task: Task) -> tuple[list[TextExample], ReadReport]:
    """Read a GLUE train/dev/test TSV of `task` as its official download lays it out.

    The guid is the value of the task's id column when the file has it (test files, most dev files),
    else the 0-based data-row number. Files without the label column (test sets) give label None.
    """
    fmt = task.format
    if not isinstance(fmt, TsvFormat):
        raise ValueError(f"{task.name} is not a TSV task")
    report = ReadReport(path)
    examples: list[TextExample] = []
    with open_text(path, newline="") as f:
        # QUOTE_NONE: GLUE sentences contain unbalanced quotes that the default dialect would merge across lines.
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        first = next(rows, None)
        if first is None:
            raise ValueError(f"{path}: empty file")
        if fmt.headerless and fmt.text_a not in first:
            header, data = list(fmt.headerless), itertools.chain([(1, first)], ((rows.line_num, r) for r in rows))
        else:
            header, data = first, ((rows.line_num, r) for r in rows)
        columns = _glue_columns(header, fmt, path)
        for row_number, (line, row) in enumerate(data):
            where = f"{path}:{line}"
            if not row:
                report.skip("blank_line", where)
                continue
            if len(row) != len(header):
                if fmt.skip_malformed:
                    report.skip("wrong_field_count", where)
                    continue
                raise ValueError(f"{where}: expected {len(header)} tab-separated fields {header}, found {len(row)}")
            examples.append(_text_example(row, columns, row_number, task, where))
    _check_unique([e.guid for e in examples], path)
    report.examples = len(examples)
    return examples, report


def _glue_columns(header: list[str], fmt: TsvFormat, path: str) -> dict[str, int | None]:
    """Column index of each role; label/id are None when the file does not carry them."""
    wanted = {"text_a": fmt.text_a, "text_b": fmt.text_b}
    missing = [name for name in wanted.values() if name is not None and name not in header]
    if missing:
        raise ValueError(f"{path}:1: header {header} lacks column(s) {missing}")
    optional = {"label": fmt.label, "id": fmt.id_column}
    return {role: header.index(name) if name in header else None for role, name in {**wanted, **optional}.items()}


def _text_example(
    row: list[str], columns: dict[str, int | None], row_number: int, task: Task, where: str
) -> TextExample:
    text_b = row[columns["text_b"]] if columns["text_b"] is not None else None
    guid = row[columns["id"]] if columns["id"] is not None else str(row_number)
    label: str | float | None = None
    if columns["label"] is not None:
        raw = row[columns["label"]]
        if task.kind == "regression":
            try:
                label = float(raw)
            except ValueError:
                raise ValueError(f"{where}: expected a float label, found {raw!r}") from None
        elif raw in task.labels:
            label = raw
        else:
            raise ValueError(f"{where}: expected a label in {list(task.labels)}, found {raw!r}")
    return TextExample(guid=guid, text_a=row[columns["text_a"]], text_b=text_b, label=label)


def _check_unique(ids: list[str], path: str) -> None:
    seen: set[str] = set()
    for guid in ids:
        if guid in seen:
            raise ValueError(f"{path}: id {guid!r} occurs more than once")
        seen.add(guid)


# ----------------------------------------------------------------------------------------------------------
# SQuAD


def read_squad(path: str) -> tuple[list[SquadExample], ReadReport]:
    """Read an official SQuAD v1.1 or v2.0 JSON file into one example per question.

    Each answer must sit at its `answer_start` in the context: training labels are built from that offset.
    """
    with open_text(path) as f:
        dataset = json.load(f)
    if not isinstance(dataset, dict) or not isinstance(dataset.get("data"), list):
        raise ValueError(f"{path}: expected a JSON object with a 'data' list (official SQuAD format)")
    report = ReadReport(path)
    examples = [
        _squad_example(qa, paragraph["context"], f"{path}: article {a} paragraph {p} question {q}")
        for a, article in enumerate(dataset["data"])
        for p, paragraph in enumerate(_required(article, "paragraphs", f"{path}: article {a}"))
        for q, qa in enumerate(_required(paragraph, "qas", f"{path}: article {a} paragraph {p}"))
    ]
    _check_unique([e.qid for e in examples], path)
    report.examples = len(examples)
    return examples, report


def _squad_example(qa: dict, context: str, where: str) -> SquadExample:
    qid = _required(qa, "id", where)
    where = f"{where} (id {qid})"
    answers = [_squad_answer(a, context, where) for a in _required(qa, "answers", where)]
    is_impossible = bool(qa.get("is_impossible", False))
    if is_impossible and answers:
        raise ValueError(f"{where}: marked is_impossible but has answers")
    plausible = [(a["text"], a["answer_start"]) for a in qa.get("plausible_answers", [])]
    return SquadExample(qid=qid, question=_required(qa, "question", where), context=context, answers=answers,
                        is_impossible=is_impossible, plausible_answers=plausible)


def _squad_answer(answer: dict, context: str, where: str) -> tuple[str, int]:
    text, start = _required(answer, "text", where), _required(answer, "answer_start", where)
    if context[start:start + len(text)] != text:
        raise ValueError(f"{where}: answer {text!r} is not at character {start} of the context")
    return text, start


def _required(obj: dict, key: str, where: str):
    if not isinstance(obj, dict) or key not in obj:
        raise ValueError(f"{where}: missing field {key!r}")
    return obj[key]


# ----------------------------------------------------------------------------------------------------------
# RACE


def read_race(split_dir: str, fmt: RaceFormat) -> tuple[list[ChoiceExample], ReadReport]:
    """Read `split_dir/{level}/*.txt` for each level of `fmt`, files in name order.

    Each file is one JSON object {"article", "questions", "options", "answers" (letters), "id"}; the guid
    of its i-th question is f"{id}-{i}". Files not ending in .txt are skipped and counted.
    """
    report = ReadReport(split_dir)
    examples: list[ChoiceExample] = []
    for level in fmt.levels:
        level_dir = os.path.join(split_dir, level)
        if not os.path.isdir(level_dir):
            raise FileNotFoundError(f"{level_dir}: no RACE '{level}' directory")
        for name in sorted(os.listdir(level_dir)):
            file_path = os.path.join(level_dir, name)
            if not name.endswith(".txt"):
                report.skip("not_a_txt_file", file_path)
                continue
            with open_text(file_path) as f:
                try:
                    passage = json.load(f)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{file_path}:{err.lineno}: not a JSON object: {err.msg}") from None
            examples.extend(_race_examples(passage, fmt.num_choices, file_path))
    _check_unique([e.guid for e in examples], split_dir)
    report.examples = len(examples)
    return examples, report


def _race_examples(passage: dict, num_choices: int, where: str) -> list[ChoiceExample]:
    article, passage_id = _required(passage, "article", where), _required(passage, "id", where)
    questions, options, answers = (_required(passage, k, where) for k in ("questions", "options", "answers"))
    if not len(questions) == len(options) == len(answers):
        raise ValueError(f"{where}: {len(questions)} questions, {len(options)} option lists, {len(answers)} answers")
    letters = [chr(ord("A") + i) for i in range(num_choices)]
    examples = []
    for i, (question, opts, answer) in enumerate(zip(questions, options, answers)):
        if len(opts) != num_choices or answer not in letters:
            raise ValueError(f"{where}: question {i}: expected {num_choices} options and an answer in {letters}, "
                             f"found {len(opts)} options and {answer!r}")
        examples.append(ChoiceExample(guid=f"{passage_id}-{i}", context=article, question=question,
                                      options=tuple(opts), label=letters.index(answer)))
    return examples


# ----------------------------------------------------------------------------------------------------------
# Rated snippets (movie-reviews)

SPLITS = ("train", "dev", "test")


def hash_split(key: str, bounds: tuple[float, float]) -> str:
    """"train", "dev" or "test" for `key`, from the first 8 bytes of SHA-256("snippet:" + key) read as a
    fraction of 2**64: below bounds[0] train, below bounds[1] dev, else test. Stable across runs and machines."""
    u = int.from_bytes(hashlib.sha256(f"snippet:{key}".encode()).digest()[:8], "big") / 2**64
    return "train" if u < bounds[0] else "dev" if u < bounds[1] else "test"


def read_rated_snippets(path: str, task: Task) -> tuple[list[TextExample], ReadReport]:
    """Read one split of a rated-snippets file; `path` is `FILE#split` (split in train/dev/test).

    Lines are `id<TAB>mean rating<TAB>text` (CRLF line ends are fine). Ratings within the neutral band are
    skipped and counted as `neutral_rating`; the other splits' lines are not counted at all.
    """
    fmt = task.format
    if not isinstance(fmt, RatedSnippetsFormat):
        raise ValueError(f"{task.name} is not a rated-snippets task")
    file_path, _, split = path.rpartition("#")
    if split not in SPLITS or not file_path:
        raise ValueError(f"{path}: expected FILE#split with split in {SPLITS}")
    report = ReadReport(path)
    examples: list[TextExample] = []
    with open_text(file_path) as f:
        for line_number, line in enumerate(f, 1):
            where = f"{file_path}:{line_number}"
            fields = line.rstrip("\r\n").split("\t")
            if fields == [""]:
                report.skip("blank_line", where)
                continue
            if len(fields) != 3:
                raise ValueError(f"{where}: expected 3 tab-separated fields (id, rating, text), found {len(fields)}")
            guid, rating, text = fields
            if hash_split(guid, fmt.split_bounds) != split:
                continue
            try:
                value = float(rating)
            except ValueError:
                raise ValueError(f"{where}: expected a numeric rating, found {rating!r}") from None
            if abs(value) <= fmt.neutral_band:
                report.skip("neutral_rating", where)
                continue
            examples.append(TextExample(guid=guid, text_a=text, text_b=None,
                                        label=task.labels[int(value > 0)]))
    _check_unique([e.guid for e in examples], path)
    report.examples = len(examples)
    return examples, report


# ----------------------------------------------------------------------------------------------------------
# CoNLL (token classification)


def read_conll(path: str, task: Task) -> tuple[list[TokenExample], ReadReport]:
    """Sentences of a CoNLL column file (see `ConllFormat`). A file whose lines all hold one column is
    unlabelled (words only). A line with too few columns, or a tag outside the task's tag set (when it has
    one), is an error naming the file:line; -DOCSTART- lines and their blank line are skipped and counted."""
    column = task.format.label_column
    report = ReadReport(path)
    sentences: list[tuple[list[str], list[str | None], str]] = []
    words: list[str] = []
    tags: list[str | None] = []
    start = ""
    with open_text(path) as f:
        for line_number, line in enumerate(f, 1):
            fields = line.split()
            where = f"{path}:{line_number}"
            if fields and fields[0] == "-DOCSTART-":
                report.skip("docstart", where)
                continue
            if not fields:
                if words:
                    sentences.append((words, tags, start))
                    words, tags = [], []
                continue
            if not words:
                start = where
            words.append(fields[0])
            tags.append(_conll_tag(fields, column, task, where))
    if words:
        sentences.append((words, tags, start))
    labelled = [all(t is not None for t in s[1]) for s in sentences]
    if any(labelled) and not all(labelled):
        raise ValueError(f"{sentences[labelled.index(False)][2]}: a line without a tag column in a tagged file")
    examples = [TokenExample(f"{os.path.basename(path)}-{i}", tuple(w), tuple(t) if ok else None)
                for i, ((w, t, _), ok) in enumerate(zip(sentences, labelled))]
    if not examples:
        raise ValueError(f"{path}: no sentences (expected one token per line, a blank line between sentences)")
    report.examples = len(examples)
    return examples, report


def _conll_tag(fields: list[str], column: int, task: Task, where: str) -> str | None:
    """The tag of one token line; None for a words-only line."""
    if len(fields) == 1:
        return None
    if not -len(fields) <= column < len(fields):
        raise ValueError(f"{where}: expected a tag in column {column} of space-separated columns, found "
                         f"{len(fields)} columns")
    tag = fields[column]
    if task.labels and tag not in task.labels:
        raise ValueError(f"{where}: tag {tag!r} is not one of {task.name}'s {list(task.labels)}")
    return tag


# ----------------------------------------------------------------------------------------------------------
# A user's own texts (text-classification, text-regression)


def locate_files(task: Task, data_dir: str | os.PathLike) -> Task:
    """The row with its file stems ("train", "dev", "test") resolved to the files `data_dir` holds, one suffix
    each; a test file is optional and, when it has a label column, is the reported split (dev then selects).
    Rows of other formats are returned as they are."""
    fmt = task.format
    if not isinstance(fmt, TableFormat):
        return task

    def find(stem: str, required: bool, *aliases: str) -> str | None:
        names = [name + s for name in (stem, *aliases) for s in fmt.suffixes]
        found = [name for name in names if os.path.isfile(os.path.join(data_dir, name))]
        if len(found) > 1:
            raise ValueError(f"{data_dir}: {' and '.join(found)} both exist; keep one {stem} file")
        if not found and required:
            raise FileNotFoundError(f"{data_dir}: no {stem} file for {task.name} (expected one of "
                                    f"{', '.join(names)})")
        return found[0] if found else None

    # Hugging Face datasets name the dev split "validation"
    train, dev = find(task.train_file, True), find(task.dev_files[0], True, "validation")
    test = find(task.test_files[0].path, False)
    labelled = test is not None and _table_has_labels(os.path.join(data_dir, test), fmt)
    return dataclasses.replace(task, train_file=train, dev_files=(dev,),
                               test_files=(TestFile(test),) if test else (), test_labelled=labelled)


def read_table(path: str, task: Task) -> tuple[list[TextExample], ReadReport]:
    """Labelled (or, for a test file, unlabelled) texts of a .csv, .tsv, .jsonl or .json file (`TableFormat`).

    Labels are strings for classification (JSON numbers as written: 1 -> "1"), checked against the row's label
    set when it has one, and floats for regression. A row without the label column's value in a labelled file,
    or without text, is an error naming the file:line; blank lines are skipped and counted.
    """
    fmt = task.format
    if not isinstance(fmt, TableFormat):
        raise ValueError(f"{task.name} is not a table task")
    report = ReadReport(path)
    rows = _table_rows(path, fmt, report, numeric_labels=task.kind == "regression")
    header = next(rows)
    columns = _table_columns(header, fmt, path)
    examples = [_table_example(row, columns, number, task, where) for number, (where, row) in enumerate(rows)]
    if not examples:
        raise ValueError(f"{path}: no examples")
    _check_unique([e.guid for e in examples], path)
    report.examples = len(examples)
    return examples, report


def _table_rows(path: str, fmt: TableFormat, report: ReadReport, numeric_labels: bool = False) -> Iterator:
    """The file's column names, then (file:line, {column: value}) per row; blank rows are counted in `report`.
    With `numeric_labels`, a ';'-separated CSV's labels written with a decimal comma ("0,25": Excel where the
    comma is the decimal mark) come with a decimal point."""
    suffix = os.path.splitext(path)[1]
    if suffix not in fmt.suffixes:
        raise ValueError(f"{path}: expected a {', '.join(fmt.suffixes)} file")
    with open_text(path, newline="") as f:
        if suffix in (".jsonl", ".json"):
            yield from _json_rows(f, path, report)
            return
        quoting = csv.QUOTE_MINIMAL if suffix == ".csv" else csv.QUOTE_NONE
        delimiter = _csv_delimiter(f, fmt) if suffix == ".csv" else "\t"
        reader = csv.reader(f, delimiter=delimiter, quoting=quoting)
        decimal_comma = numeric_labels and delimiter == ";"
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path}:1: expected a header row naming the columns")
        header = [name.strip() for name in header]  # "text, label", as written by hand
        yield header
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not row or row == [""]:
                report.skip("blank_line", where)
            elif len(row) != len(header):
                raise ValueError(f"{where}: expected {len(header)} fields {header}, found {len(row)}")
            else:
                values = dict(zip(header, row))
                label = values.get(fmt.label)
                if decimal_comma and label and re.fullmatch(r"\s*[+-]?\d*,\d+\s*", label):
                    values[fmt.label] = label.replace(",", ".")
                yield where, values


def _csv_delimiter(f, fmt: TableFormat) -> str:
    """',', or ';' when only a split at ';' finds a text column in the header: Excel writes CSV with ';' where
    the comma is the decimal mark (most of Europe)."""
    header = f.readline()
    f.seek(0)
    names = {d: next(csv.reader([header], delimiter=d), []) for d in ",;"}
    return ";" if not set(fmt.text_a) & set(names[","]) and set(fmt.text_a) & set(names[";"]) else ","


def _json_rows(f, path: str, report: ReadReport) -> Iterator:
    """As `_table_rows` for JSON lines, or for one JSON array of objects (a .json file may be either, as
    Hugging Face datasets' loader takes it); the columns are the first object's keys."""
    first = f.read(1)
    while first.isspace():
        first = f.read(1)
    f.seek(0)
    rows = _json_array(f, path) if first == "[" else _json_lines(f, path, report)
    yield list(rows[0][1]) if rows else []
    yield from rows


def _json_array(f, path: str) -> list[tuple[str, dict]]:
    try:
        items = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: not a JSON array of objects: {err.msg}") from None
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"{path}: item {i}: expected a JSON object, found {type(item).__name__}")
    return [(f"{path}: item {i}", item) for i, item in enumerate(items)]


def _json_lines(f, path: str, report: ReadReport) -> list[tuple[str, dict]]:
    rows = []
    for number, line in enumerate(f, 1):
        where = f"{path}:{number}"
        if not line.strip():
            report.skip("blank_line", where)
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not a JSON object: {err.msg}") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object per line, found {type(row).__name__}")
        rows.append((where, row))
    return rows


def _table_columns(header: list[str], fmt: TableFormat, path: str) -> dict[str, str | None]:
    """Column name of each role (text_a, text_b, label, id); None where the file has no such column."""
    def first(names: tuple[str, ...]) -> str | None:
        return next((n for n in names if n in header), None)

    columns = {"text_a": first(fmt.text_a), "text_b": first(fmt.text_b),
               "label": fmt.label if fmt.label in header else None, "id": first(fmt.id_columns)}
    if columns["text_a"] is None:
        raise ValueError(f"{path}:1: columns {header} have no text column (expected one of {list(fmt.text_a)}, and "
                         f"{fmt.label!r}; {list(fmt.text_b)} for pairs)")
    return columns


def _table_has_labels(path: str, fmt: TableFormat) -> bool:
    """Whether the file's columns (CSV/TSV header, or the first JSON object's keys) include the label."""
    rows = _table_rows(path, fmt, ReadReport(path))
    header = next(rows)
    rows.close()
    return fmt.label in header


def _table_example(row: dict, columns: dict[str, str | None], number: int, task: Task, where: str) -> TextExample:
    def text(role: str) -> str | None:
        if columns[role] is None:
            return None
        value = row.get(columns[role])
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where}: expected text in column {columns[role]!r}, found {value!r}")
        return value

    label: str | float | tuple[str, ...] | None = None
    if columns["label"] is not None:
        raw = row.get(columns["label"])
        if raw is None or (raw == "" and task.kind != "multi_label"):  # a multi-label example may have none
            raise ValueError(f"{where}: no {columns['label']!r} in a labelled file")
        label = _table_label(raw, task, where)
    guid = str(row.get(columns["id"], number)) if columns["id"] is not None else str(number)
    return TextExample(guid=guid, text_a=text("text_a"), text_b=text("text_b"), label=label)


def _table_label(raw: object, task: Task, where: str) -> str | float | tuple[str, ...]:
    """A float (regression), a label string, or for multi-label a tuple of them: from a JSON list, or from a
    cell of names separated by commas ("" is no label)."""
    if task.kind == "regression":
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: expected a number as {task.name}'s label, found {raw!r}") from None
    if task.kind == "multi_label":
        names = raw if isinstance(raw, list) else [n.strip() for n in raw.split(",")] if isinstance(raw, str) \
            else None
        if names is None:
            raise ValueError(f"{where}: expected a list of labels (or names separated by commas), found {raw!r}")
        labels = tuple(dict.fromkeys(n if isinstance(n, str) else json.dumps(n) for n in names if n != ""))
        if any("," in label for label in labels):  # predictions files separate a set's names by commas
            raise ValueError(f"{where}: a multi-label name cannot contain a comma, found {labels}")
    else:  # a label's surrounding spaces ("pos " from "text, label" rows) would make it another class
        labels = (raw.strip() if isinstance(raw, str) else json.dumps(raw),)
    unknown = [label for label in labels if task.labels and label not in task.labels]
    if unknown:
        raise ValueError(f"{where}: label {unknown[0]!r} is not one of the training file's {list(task.labels)}")
    return labels if task.kind == "multi_label" else labels[0]


def read_examples(task: Task, path: str) -> tuple[list[Example], ReadReport]:
    """Read any of `task`'s files (`path` = a TSV, a SQuAD JSON, a RACE split directory, a CoNLL file or
    `FILE#split`)."""
    if isinstance(task.format, ConllFormat):
        return read_conll(path, task)
    if isinstance(task.format, TableFormat):
        return read_table(path, task)
    if isinstance(task.format, TsvFormat):
        return read_glue_tsv(path, task)
    if isinstance(task.format, SquadFormat):
        return read_squad(path)
    if isinstance(task.format, RatedSnippetsFormat):
        return read_rated_snippets(path, task)
    return read_race(path, task.format)


# ----------------------------------------------------------------------------------------------------------
# Encoding


class Tokenizer(Protocol):
    """What the encoders need of a tokenizer (litebert.tokenizer.AlbertTokenizer has it)."""

    cls_token_id: int
    sep_token_id: int
    pad_token_id: int
    unk_token_id: int

    def tokenize(self, text: str) -> list[str]: ...

    def convert_tokens_to_ids(self, tokens: list[str]) -> list[int]: ...


def _token_ids(tokenizer: Tokenizer, texts: list[str]) -> Iterator[list[int]]:
    """Token ids of each text, in order; one native batch call where the tokenizer has `tokenize_batch`
    (SentencePiece's per-call overhead is most of the cost of encoding short sentences one by one)."""
    batch = getattr(tokenizer, "tokenize_batch", None)
    pieces = batch(texts) if batch is not None else map(tokenizer.tokenize, texts)
    return (tokenizer.convert_tokens_to_ids(p) for p in pieces)


def encode_pair_examples(
    examples: list[TextExample], task: Task, tokenizer: Tokenizer, max_seq_length: int
) -> dict[str, torch.Tensor]:
    """GLUE examples -> `input_ids`, `attention_mask`, `token_type_ids` (N, max_seq_length) and `labels`.

    `labels` (N,) holds label ids (int64) or scores (float32, regression) and is absent when the examples
    are unlabelled (test sets). A pair too long loses tokens from its longer side first (BERT's rule).
    """
    texts_a = _token_ids(tokenizer, [example.text_a for example in examples])
    texts_b = _token_ids(tokenizer, [example.text_b for example in examples if example.text_b is not None])
    sequences = []
    for example, ids_a in zip(examples, texts_a):
        ids_b = next(texts_b) if example.text_b is not None else None
        sequences.append(_pack(ids_a, ids_b, max_seq_length, tokenizer))
    batch = _pad(sequences, max_seq_length, tokenizer.pad_token_id)
    labels = [example.label for example in examples]
    if all(label is not None for label in labels):
        if task.kind == "regression":
            batch["labels"] = torch.tensor(labels, dtype=torch.float32)
        elif task.kind == "multi_label":  # (N, L) multi-hot, float for binary cross-entropy
            batch["labels"] = torch.zeros(len(labels), task.num_labels)
            for row, names in enumerate(labels):
                batch["labels"][row, [task.label_id(n) for n in names]] = 1.0
        else:
            batch["labels"] = torch.tensor([task.label_id(label) for label in labels], dtype=torch.int64)
    elif any(label is not None for label in labels):
        raise ValueError("some examples have labels and some do not")
    return batch


def encode_choice_examples(
    examples: list[ChoiceExample], task: Task, tokenizer: Tokenizer, max_seq_length: int
) -> dict[str, torch.Tensor]:
    """RACE examples -> `input_ids`, `attention_mask`, `token_type_ids` (N, num_choices, max_seq_length), `labels` (N,).

    As run_race.py: choice k reads `[CLS] article [SEP] question+option_k [SEP]`, where a question with a
    blank "_" has the option put in the blank; the question+option keeps its last `max_qa_length` tokens
    and the article is cut to fit.
    """
    fmt = task.format
    if not isinstance(fmt, RaceFormat):
        raise ValueError(f"{task.name} is not a multiple-choice task")
    sequences = []
    for example in examples:
        context = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(example.context))
        for option in example.options:
            qa = example.question.replace("_", option) if "_" in example.question else f"{example.question} {option}"
            qa_ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(qa))[-fmt.max_qa_length:]
            kept_context = context[: max(0, max_seq_length - 3 - len(qa_ids))]
            sequences.append(_pack(kept_context, qa_ids, max_seq_length, tokenizer))
    batch = _pad(sequences, max_seq_length, tokenizer.pad_token_id)
    batch = {k: v.view(len(examples), fmt.num_choices, max_seq_length) for k, v in batch.items()}
    if all(e.label is not None for e in examples):
        batch["labels"] = torch.tensor([e.label for e in examples], dtype=torch.int64)
    return batch


def encode_token_examples(examples: list[TokenExample], task: Task, tokenizer: Tokenizer, max_seq_length: int
                          ) -> tuple[dict[str, torch.Tensor], list[np.ndarray], int]:
    """Tagged sentences -> (`input_ids`, `attention_mask`, `token_type_ids` (N, max_seq_length) and, when
    tagged, `labels` (N, max_seq_length): each word's tag id on its first piece, -100 on the other pieces and
    the specials; each sentence's first-piece positions (W,); words cut by truncation). See `encode_words`."""
    sequences, starts, cuts = encode_words([e.words for e in examples], tokenizer, max_seq_length)
    labels = np.full((len(examples), max_seq_length), -100, dtype=np.int64)
    for row, (example, first) in enumerate(zip(examples, starts)):
        if example.tags is not None:
            labels[row, first] = [task.labels.index(t) for t in example.tags[:len(first)]]
    batch = _pad(sequences, max_seq_length, tokenizer.pad_token_id)
    if all(e.tags is not None for e in examples):
        batch["labels"] = torch.from_numpy(labels)
    return batch, starts, sum(cuts)


def encode_words(sentences: list[Sequence[str]], tokenizer: Tokenizer, max_seq_length: int
                 ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[np.ndarray], list[int]]:
    """Sentences given as words -> each one's `[CLS] pieces [SEP]` (ids, token types), its words' first-piece
    positions (W,), and how many of its last words did not fit in max_seq_length (those are not encoded).

    Words are tokenized one by one, as separate words of the sentence (a word SentencePiece maps to nothing
    keeps a slot as [UNK]); token classification is trained and read at each word's first piece."""
    pieces = iter(_token_ids(tokenizer, [w for words in sentences for w in words]))
    sequences, starts, cuts = [], [], []
    for words in sentences:
        ids, first = [], []
        for i, word_ids in enumerate(next(pieces) for _ in words):
            word_ids = word_ids or [tokenizer.unk_token_id]
            if len(ids) + len(word_ids) > max_seq_length - 2:  # room for [CLS] and [SEP]
                for _ in range(len(words) - i - 1):
                    next(pieces)
                break
            first.append(len(ids) + 1)  # after [CLS]
            ids.extend(word_ids)
        sequences.append(pairs.pack(ids, None, tokenizer.cls_token_id, tokenizer.sep_token_id))
        starts.append(np.asarray(first, dtype=np.int64))
        cuts.append(len(words) - len(first))
    return sequences, starts, cuts


def _pack(ids_a: list[int], ids_b: list[int] | None, max_len: int, tokenizer: Tokenizer) -> tuple[np.ndarray, np.ndarray]:
    """`[CLS] a [SEP] (b [SEP])` ids and token types, cut to `max_len` from the longer side (run_classifier's
    _truncate_seq_pair; `litebert.pairs`)."""
    ids_a, ids_b = pairs.truncate_pair(ids_a, ids_b, max_len - (3 if ids_b is not None else 2))
    return pairs.pack(ids_a, ids_b, tokenizer.cls_token_id, tokenizer.sep_token_id)


def _pad(sequences: list[tuple[np.ndarray, np.ndarray]], length: int, pad_id: int) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in pairs.pad(sequences, length, pad_id).items()}
