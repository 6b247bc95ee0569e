"""Sharded Hugging Face checkpoints (`model.safetensors.index.json`, `pytorch_model.bin.index.json`) load as one."""
from __future__ import annotations

import json

import pytest
import torch

import litebert
from litebert.convert import read_state_dict

transformers = pytest.importorskip("transformers")

CONFIG = dict(vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              intermediate_size=64, max_position_embeddings=32, num_hidden_groups=2)


@pytest.fixture(scope="module", params=[True, False], ids=["safetensors", "bin"])
def sharded(request, tmp_path_factory):
    """(directory, model, file stem): an HF AlbertForPreTraining saved in shards of 20 kB, as safetensors or as
    pytorch_model-*.bin files."""
    directory = tmp_path_factory.mktemp("sharded")
    torch.manual_seed(0)
    hf = transformers.AlbertForPreTraining(transformers.AlbertConfig(**CONFIG)).eval()
    hf.save_pretrained(directory, max_shard_size="20kB", safe_serialization=request.param)
    return directory, hf, "model.safetensors" if request.param else "pytorch_model.bin"


def test_sharded_checkpoint_loads_with_the_same_outputs(sharded):
    directory, hf, stem = sharded
    index = json.loads((directory / f"{stem}.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 2 and not (directory / stem).exists()
    ours = litebert.AlbertForPreTraining.from_pretrained(directory).eval()
    ids = torch.randint(5, 99, (2, 10), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    with torch.no_grad():
        a, b = ours(ids, mask), hf(input_ids=ids, attention_mask=mask)
    assert (a.prediction_logits - b.prediction_logits).abs().max() <= 1e-5
    assert (a.sop_logits - b.sop_logits).abs().max() <= 1e-5


def test_missing_shard_or_key_is_named(sharded, tmp_path):
    directory, _, stem = sharded
    for f in directory.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    index_path = tmp_path / f"{stem}.index.json"
    index = json.loads(index_path.read_text())
    key, shard = next(iter(index["weight_map"].items()))

    index["weight_map"][key] = "elsewhere" + shard[-20:]
    index_path.write_text(json.dumps(index))
    with pytest.raises(FileNotFoundError, match=rf"elsewhere.*: shard listed in {stem}.index.json is missing"):
        read_state_dict(tmp_path)

    other = next(s for s in set(index["weight_map"].values()) if s != shard and not s.startswith("elsewhere"))
    index["weight_map"][key] = other
    index_path.write_text(json.dumps(index))
    with pytest.raises(ValueError, match=rf"{other}: lacks {key}, which {stem}.index.json places in it"):
        read_state_dict(tmp_path)

    index_path.write_text("{}")
    with pytest.raises(ValueError, match=r"not a sharded-checkpoint index \(expected JSON with a weight_map"):
        read_state_dict(tmp_path)
