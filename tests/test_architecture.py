"""The module boundaries docs/architecture.md promises, checked on the source's imports."""
from __future__ import annotations

import ast
from pathlib import Path

import litebert

SRC = Path(litebert.__file__).parent


def litebert_imports(module: str) -> dict[str, set[str]]:
    """{imported litebert module: names taken from it} for one module (top-level and function-level imports)."""
    path = SRC / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = SRC / module.replace(".", "/") / "__init__.py"
    out: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "litebert":  # `from litebert import kernels`
            for alias in node.names:
                out.setdefault(f"litebert.{alias.name}", set())
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("litebert"):
            out.setdefault(node.module, set()).update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("litebert"):
                    out.setdefault(alias.name, set())
    return out


def modules(package: str) -> list[str]:
    root = SRC / package
    return [f"{package}.{p.stem}" for p in sorted(root.glob("*.py")) if p.stem != "__init__"]


def test_the_model_knows_nothing_of_training_or_files():
    """Only its config and the kernels it runs on; `from_pretrained` / `save_pretrained` hand over to convert.py
    (imported when called). The kernels import nothing of litebert's: `calibrate` sets their switches from outside."""
    assert set(litebert_imports("model")) <= {"litebert.config", "litebert.convert", "litebert.kernels"}
    assert litebert_imports("kernels") == {}


def test_config_imports_nothing_that_runs():
    allowed = {"litebert.config", "litebert.config.model", "litebert.config.pretrain", "litebert.config.finetune",
               "litebert.config.demo", "litebert.config.fields", "litebert.config.data", "litebert.config.tokenizer",
               "litebert.files", "litebert.fetch"}
    for module in ["config", *modules("config")]:
        assert set(litebert_imports(module)) <= allowed, module


def test_metrics_do_not_import_fine_tuning():
    assert not [m for m in litebert_imports("metrics") if m.startswith("litebert.finetune")]


def test_data_reaches_the_tokenizer_only_to_encode():
    for module in modules("data"):
        taken = litebert_imports(module).get("litebert.tokenizer", set())
        assert taken <= {"AlbertTokenizer"}, (module, taken)


def test_one_atomic_writer_and_one_hash():
    """Atomic writes and file hashing live in files.py; no module renames temporary files of its own, except
    the directory swaps of checkpoints and data create, which write their files through files.py first."""
    for path in SRC.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if path.name == "files.py":
            continue
        assert "def file_sha256" not in text and "def write_json_atomic" not in text, path
        assert "mkstemp(" not in text, path


def test_one_optimizer_step_for_pretraining_and_fine_tuning():
    """Backward, clipping and the update happen in step.py only (issue 14: share the loop, do not copy it); the
    two training loops call `step.take_step` / `step.update`."""
    for path in SRC.rglob("*.py"):
        if path.name in ("step.py", "calibrate.py"):  # calibrate.py times a backward pass; it trains nothing
            continue
        text = path.read_text(encoding="utf-8")
        for call in (".backward(", "clip_grad_norm_(", "optimizer.step("):
            assert call not in text, (path, call)
    for loop in ("pretrain", "finetune.train"):
        assert "litebert.step" in litebert_imports(loop) or "step" in litebert_imports(loop).get("litebert", set())
