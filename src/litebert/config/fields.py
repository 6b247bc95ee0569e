"""One override syntax for every config dataclass, derived from its fields.

A run's settings come from three layers, later ones winning:

    defaults          the dataclass's field defaults (the paper's, for the paper presets)
    --config FILE     a nested JSON or TOML file: {"optim": {"lr": 1e-3}} / [optim] lr = 1e-3
    flags             --optim.lr=1e-3 for every field (dotted path), or a short alias (--lr 1e-3) for common ones

Every flag's argparse `dest` is its dotted field path, so aliases and generic flags meet in one place and the
last one given wins. Unknown keys, in a file or on the command line, are errors that name the nearest valid one.
Values are parsed by the field's annotation: int, float, str, bool (true/false), Path, None ("none"), tuples
("1,2,3"), Literal choices, and dicts (repeatable KEY=VALUE, merged into the default).
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Callable, Literal, Union

from litebert.files import open_text

CONFIG_FLAG = "config"
"""The dest of --config FILE."""


# ------------------------------------------------------------------------------------------------ dicts
def from_dict(cls, data: dict[str, Any], where: str = ""):
    """A (nested) config dataclass from a dict; an unknown key is a ValueError naming the nearest valid one."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or cls.__name__}: expected a table of fields, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in names:
            raise ValueError(f"unknown config key {cls.__name__}.{key}{nearest_hint(key, names)}")
        inner = _dataclass_of(hints[key])
        kwargs[key] = from_dict(inner, value, path) if inner is not None else _coerce(value, hints[key], path)
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-able nested dict (Paths as strings, tuples as lists) that `from_dict` reads back."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def flat(config: Any, prefix: str = "") -> dict[str, Any]:
    """{"optim.lr": 0.00176, ...}: a nested config (dataclass or dict) as dotted keys; dict-valued fields
    (e.g. model.overrides) stay whole."""
    items = to_dict(config) if dataclasses.is_dataclass(config) else config
    out = {}
    for key, value in items.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and not _is_dict_field(config, key):
            out.update(flat(value, name + "."))
        else:
            out[name] = value
    return out


def leaves(cls, prefix: str = "") -> dict[str, Any]:
    """{dotted path: annotation} of every non-dataclass field, nested sections included."""
    out = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        inner = _dataclass_of(hints[f.name])
        if inner is not None:
            out.update(leaves(inner, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = hints[f.name]
    return out


def load_file(path: str | Path) -> dict[str, Any]:
    """The nested dict of a --config file: .toml is TOML, anything else JSON; errors name the file."""
    path = Path(path)
    try:
        with open_text(path) as f:
            text = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"--config {path}: no such file") from None
    if path.suffix.lower() == ".toml":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"--config {path}: not valid TOML ({err})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"--config {path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a JSON object of fields")
    return data


def nearest_hint(name: str, choices) -> str:
    """'; did you mean X?' for the closest of `choices`, or the empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# ------------------------------------------------------------------------------------------------ values
def parse_value(text: str, annotation: Any, path: str) -> Any:
    """A command-line string as the field's type; ValueError names the flag and what was expected."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        if type(None) in args and text.strip().lower() in ("none", "null"):
            return None
        inner = [a for a in args if a is not type(None)]
        return parse_value(text, inner[0] if len(inner) == 1 else str, path)
    if origin is Literal:
        if text not in args:
            raise ValueError(f"--{path}: expected one of {', '.join(map(str, args))}, got {text!r}")
        return text
    if origin is tuple:
        item = args[0] if args else str
        return tuple(parse_value(t.strip(), item, path) for t in text.split(",") if t.strip())
    if origin is list:
        item = args[0] if args else str
        return [parse_value(t.strip(), item, path) for t in text.split(",") if t.strip()]
    if annotation is bool:
        low = text.strip().lower()
        if low not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"--{path}: expected true or false, got {text!r}")
        return low in ("true", "1", "yes")
    if annotation in (int, float):
        try:
            return annotation(text)
        except ValueError:
            raise ValueError(f"--{path}: expected {'an integer' if annotation is int else 'a number'}, "
                             f"got {text!r}") from None
    if annotation is Path:
        return Path(text)
    return text


def parse_item(item: str, path: str) -> tuple[str, Any]:
    """'vocab_size=8000' -> ("vocab_size", 8000): numbers, true/false/null as JSON, anything else a string."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ValueError(f"--{path} {item!r}: expected KEY=VALUE")
    return key, json.loads(value) if re.fullmatch(r"[-\d.eE+]+|true|false|null", value) else value


def _coerce(value: Any, annotation: Any, path: str) -> Any:
    """A value read from a JSON/TOML file as the field's type (lists -> tuples, strings -> Paths)."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _coerce(value, inner[0], path) if len(inner) == 1 else value
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if annotation is Path and isinstance(value, str):
        return Path(value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _dataclass_of(annotation: Any):
    return annotation if isinstance(annotation, type) and dataclasses.is_dataclass(annotation) else None


def _is_dict_field(config: Any, key: str) -> bool:
    if not dataclasses.is_dataclass(config):
        return False
    return typing.get_origin(typing.get_type_hints(type(config)).get(key)) is dict


# ------------------------------------------------------------------------------------------------ argparse
class DictItem(argparse.Action):
    """A dict field's flag: each KEY=VALUE is added to the dict collected so far."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = dict(getattr(namespace, self.dest, None) or {})
        key, value = parse_item(values, self.dest)
        items[key] = value
        setattr(namespace, self.dest, items)


def add_config_arguments(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    """--config FILE and one --dotted.path flag per field of `cls` (except `skip`), in a help group.

    Aliases are added by the command with `dest` set to the dotted path and default=argparse.SUPPRESS.
    """
    parser.usage = "%(prog)s [options]  (any setting as --SECTION.FIELD=VALUE; --help lists them)"
    parser.add_argument("--config", dest=CONFIG_FLAG, metavar="FILE",
                        help="settings as nested JSON or TOML (a .toml suffix); flags override it")
    group = parser.add_argument_group(
        "every setting", f"--SECTION.FIELD=VALUE for any field of {cls.__name__} (defaults in docs/configuration.md)")
    for path, annotation in leaves(cls).items():
        # --train.max_steps and --train.max-steps both work, unless an alias already spells one of them
        flags = [f for f in dict.fromkeys([f"--{path}", f"--{path.replace('_', '-')}"])
                 if f not in parser._option_string_actions]
        if path in skip or not flags:
            continue
        if typing.get_origin(annotation) is dict:
            group.add_argument(*flags, dest=path, action=DictItem, metavar=metavar(annotation),
                               default=argparse.SUPPRESS)
        else:
            group.add_argument(*flags, dest=path, metavar=metavar(annotation), default=argparse.SUPPRESS,
                               type=flag_type(annotation, path))


def flag_type(annotation: Any, path: str) -> Callable[[str], Any]:
    """An argparse `type` parsing by the annotation; bad values report our message, not "invalid value"."""
    def parse(text: str) -> Any:
        try:
            return parse_value(text, annotation, path)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err).split(": ", 1)[-1]) from None
    return parse


def config_from_args(cls, args: argparse.Namespace, base: Any = None):
    """Defaults (or `base`), then --config FILE, then every flag given; validated by rebuilding the dataclass."""
    data = to_dict(base if base is not None else cls())  # dict fields merge into their defaults
    file = getattr(args, CONFIG_FLAG, None)
    if file:
        _merge(data, load_file(file))
    known = leaves(cls)
    for key, value in vars(args).items():
        if key in known:
            _set_path(data, key, _jsonable(value), merge=typing.get_origin(known[key]) is dict)
    return from_dict(cls, data)


def suggest_unknown(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    """'unknown option --x; did you mean --y?' for argparse's leftovers, using the sub-parser's option names."""
    options = [s for action in parser._actions for s in action.option_strings]
    first = next((e for e in extras if e.startswith("-")), extras[0])
    return f"unknown option {first.split('=')[0]}{nearest_hint(first.split('=')[0], options)}"


def find_subparser(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The deepest sub-parser named by `argv`'s leading words (for error hints)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for i, word in enumerate(argv):
                if word in action.choices:
                    return find_subparser(action.choices[word], argv[i + 1:])
    return parser


def metavar(annotation: Any) -> str:
    """How a value of `annotation` is written on the command line: INT, {a,b}, true|false, KEY=VALUE, ..."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is dict:
        return "KEY=VALUE"
    if origin is Literal:
        return "{" + ",".join(map(str, args)) + "}"
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return (metavar(inner[0]) if len(inner) == 1 else "VALUE") + "|none"
    if origin in (tuple, list):
        return "A,B,..."
    return {int: "INT", float: "FLOAT", bool: "true|false", Path: "PATH"}.get(annotation, "TEXT")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _merge(into: dict, data: dict) -> None:
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):  # sections and dict fields merge
            _merge(into[key], value)
        else:
            into[key] = value


def _set_path(data: dict, path: str, value: Any, merge: bool) -> None:
    *sections, name = path.split(".")
    for section in sections:
        data = data.setdefault(section, {})
    data[name] = {**(data.get(name) or {}), **value} if merge else value
