"""The `litebert` command line: one sub-command group per module that owns the work.

Each module listed in COMMAND_MODULES exposes `add_commands(subparsers)`, which adds its sub-commands and
sets `func` on each parser to a function taking the parsed `argparse.Namespace` and returning an exit code.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from litebert.config import fields

COMMAND_MODULES = [
    "litebert.params",
    "litebert.tokenizer",
    "litebert.data.create",
    "litebert.pretrain",
    "litebert.plot",
    "litebert.finetune.run",
    "litebert.demo",
    "litebert.export",
    "litebert.convert",
    "litebert.pipelines",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="litebert",
        description="ALBERT in PyTorch: model, tokenizer, pretraining data, pretraining, fine-tuning.",
        epilog="environment: LITEBERT_MALLOC=system leaves glibc's allocator as it is (by default freed memory is "
               "kept for reuse, so steps do not fault their activations in again); LITEBERT_CALIBRATION_DIR, "
               "LITEBERT_ONNX_DIR and LITEBERT_TOKENIZER_DIR move the caches of precision measurements, ONNX "
               "exports and tokenizers rebuilt from a tokenizer.json from ~/.cache/litebert.",
    )
    parser.add_argument("--version", action="version", version=version_line())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def version_line() -> str:
    """litebert's version and what it runs on, as a bug report needs them."""
    import platform

    import torch

    from litebert import __version__

    return f"litebert {__version__} (torch {torch.__version__}, Python {platform.python_version()})"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args, extras = parser.parse_known_args(argv)
    if extras:  # argparse would only say "unrecognized"; name the nearest valid option
        command = fields.find_subparser(parser, argv)
        command.error(fields.suggest_unknown(command, extras))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        from litebert.hardware import keep_freed_memory
        keep_freed_memory()  # before the first tensor: steps then reuse their memory instead of faulting it in
        with notes_on_stderr():
            return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        # Bad input is reported in one line, without a traceback.
        print(f"litebert {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C where no clean stop is set up (pretrain and finetune have their own)
        print(f"litebert {args.command}: interrupted", file=sys.stderr)
        return 130


@contextmanager
def notes_on_stderr() -> Iterator[None]:
    """The library's notes (logger "litebert") on stderr as "litebert: ..." for one command: its warnings, and at
    INFO what a user would otherwise wait on or miss (a calibration or an ONNX export about to run, variables a
    conversion skipped). INFO on rank 0 only: under torchrun every rank would say it once more. A library user
    configures logging as they like; only the command line does it for them."""
    logger = logging.getLogger("litebert")
    handler = logging.StreamHandler(sys.stderr)  # the stderr of this call (pytest swaps it per test)
    handler.setFormatter(logging.Formatter("litebert: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    if level == logging.NOTSET:
        logger.setLevel(logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARNING)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


if __name__ == "__main__":
    sys.exit(main())
