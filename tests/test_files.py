"""files.py: atomic writes leave either the old file or the new one, with the permissions any other new file gets."""
import os
import stat

import pytest
import torch

from litebert import AlbertConfig, AlbertForSequenceClassification
from litebert.checkpoint import save_checkpoint
from litebert.files import write_atomic, write_text_atomic


@pytest.fixture
def umask():
    """Set the process's umask for one test, then put the old one back."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_atomic_writes_get_the_permissions_the_umask_gives(tmp_path, umask, mask):
    """A model directory on a shared cluster stays readable to the group when the umask says so (the temporary
    file was once made by mkstemp, always 0o600)."""
    umask(mask)
    write_text_atomic(tmp_path / "a.json", "{}\n")
    (tmp_path / "plain.txt").write_text("x")
    assert mode(tmp_path / "a.json") == mode(tmp_path / "plain.txt") == 0o666 & ~mask


def test_saved_models_and_checkpoints_are_readable_to_others_under_the_usual_umask(tmp_path, umask):
    """safetensors >= 0.8 writes its files 0o600 whatever the umask; litebert's are as any other new file."""
    torch.manual_seed(0)
    model = AlbertForSequenceClassification(AlbertConfig.preset("albert-tiny", vocab_size=40, num_labels=2))
    model.save_pretrained(tmp_path / "model")
    assert {p.name: mode(p) for p in (tmp_path / "model").iterdir()} == {"config.json": 0o644,
                                                                         "model.safetensors": 0o644}
    saved = save_checkpoint(tmp_path / "checkpoints", 7, model.state_dict(), {"step": 7, "rng": torch.ones(3)})
    assert {p.name: mode(p) for p in saved.iterdir()} == {name: 0o644 for name in ("model.safetensors",
                                                                                   "state.safetensors", "state.json")}


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "manifest.json"
    write_text_atomic(target, "old\n")

    def fail(tmp):
        tmp.write_text("half")
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, fail)
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
