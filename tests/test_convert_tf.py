"""`litebert convert tf`: Google's TensorFlow checkpoints read without TensorFlow.

The fixtures (tests/fixtures/tf/, written by tests/make_tf_fixtures.py with tensorflow-cpu) are real TF bytes:
TF1 Saver checkpoints with the official variable names, a sharded one, one with optimizer slots, a TF-Hub layout
and a BERT checkpoint. Their references come from TensorFlow (`tf.train.load_variable`) and from Hugging Face's
TF loaders, never from litebert.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import shutil
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from litebert import AlbertForPreTraining, AlbertModel
from litebert.cli import main
from litebert.convert import _tf_family, convert_tf
from litebert.tfbundle import _block_entries, _table_items, _varint, crc32c, find_prefix, masked_crc32c, \
    open_bundle

transformers = pytest.importorskip("transformers")

FIXTURES = Path(__file__).parent / "fixtures" / "tf"
CHECKPOINTS = {"albert_1group": "model.ckpt-best", "albert_2groups": "model.ckpt-best",
               "albert_slots": "model.ckpt-125000", "hub": "variables/variables", "bert": "model.ckpt",
               "albert_encoder": "model.ckpt"}


def reference(name: str) -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURES / name / "outputs.safetensors"))


# ---------------------------------------------------------------------------------------------- format
def test_crc32c_matches_published_check_values():
    # RFC 3720 (iSCSI) B.4 and the CRC catalogue's check value.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    # The vectorised path (>= 256 bytes) against the byte loop, at sizes around its row/column split.
    g = torch.Generator().manual_seed(0)
    for n in (255, 256, 257, 4099, 20_011):
        data = torch.randint(0, 256, (n,), generator=g, dtype=torch.uint8).numpy().tobytes()
        assert crc32c(data) == _bytewise_crc(data), n
    assert masked_crc32c(b"") == 0xA282EAD8  # LevelDB's mask of crc 0


def _bytewise_crc(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_tensors_equal_tensorflows_reads_bit_for_bit(name):
    bundle = open_bundle(FIXTURES / name / CHECKPOINTS[name])
    want = json.loads((FIXTURES / name / "tf_reads.json").read_text())
    assert sorted(bundle.entries) == sorted(want)
    for var, ref in want.items():
        got = bundle.read(var).numpy()
        assert (got.dtype.str, list(got.shape)) == (ref["dtype"], ref["shape"]), var
        assert hashlib.sha256(got.tobytes()).hexdigest() == ref["sha256"], var


def test_sharded_bundle_reads_both_shards():
    bundle = open_bundle(FIXTURES / "albert_2groups" / "model.ckpt-best")
    assert bundle.num_shards == 2 and {e.shard for e in bundle.entries.values()} == {0, 1}


@pytest.mark.parametrize("given, prefix, hub", [
    ("albert_1group/model.ckpt-best", "albert_1group/model.ckpt-best", None),
    ("albert_1group/model.ckpt-best.index", "albert_1group/model.ckpt-best", None),
    ("albert_1group", "albert_1group/model.ckpt-best", None),  # via its `checkpoint` state file
    ("albert_2groups", "albert_2groups/model.ckpt-best", None),  # its only .index
    ("hub", "hub/variables/variables", "hub"),
])
def test_checkpoint_is_found_from_any_of_its_names(given, prefix, hub):
    assert find_prefix(FIXTURES / given) == (FIXTURES / prefix, FIXTURES / hub if hub else None)


# ---------------------------------------------------------------------------------------------- parity
ARCHITECTURES = {"bert": "BertForPreTraining", "albert_encoder": "AlbertModel"}


def _outputs(model, inputs: dict, heads: bool) -> dict[str, torch.Tensor]:
    """The encoder's outputs and, for a pretraining model, its two logits (Hugging Face or litebert)."""
    base = model.base_model if hasattr(model, "base_model") else getattr(model, "albert", model)
    with torch.no_grad():
        out = {k: v for k, v in vars(base.eval()(**inputs)).items() if k in ("last_hidden_state", "pooler_output")}
        if heads:
            full = model.eval()(**inputs)
            out["prediction_logits"] = full.prediction_logits
            out["sentence_logits"] = getattr(full, "sop_logits", None)
            if out["sentence_logits"] is None:
                out["sentence_logits"] = full.seq_relationship_logits
    return out


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_converted_model_equals_hugging_faces_tf_loader(name, tmp_path):
    result = convert_tf(FIXTURES / name, tmp_path / "out")
    assert result.architecture == ARCHITECTURES.get(name, "AlbertForPreTraining")
    ref = reference(name)
    inputs = {k: ref[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    heads = "prediction_logits" in ref

    # Hugging Face's own class on the converted directory reproduces its TF loader exactly: same weights.
    hf, info = getattr(transformers, result.architecture).from_pretrained(tmp_path / "out", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    theirs = _outputs(hf, inputs, heads)
    assert sorted(theirs) == sorted(k for k in ref if k not in inputs)
    # The reference was computed on another CPU, whose kernels round otherwise: up to 6.2e-6 of the largest logit
    # on an AVX2-only EPYC (2026-12-05), the reference's own distance from float64 (below); wrong weights are O(1).
    for key, value in theirs.items():
        assert (value - ref[key]).abs().max() <= 1e-5 * ref[key].abs().max().clamp(min=1), key

    # litebert's forward is another fp32 implementation: equal up to rounding. The reference itself is ~5e-6
    # from the float64 result on these logits (|logit| up to ~10), so the bound is relative to their size.
    ours = (AlbertForPreTraining if heads else AlbertModel).from_pretrained(tmp_path / "out")
    for key, value in _outputs(ours, inputs, heads).items():
        assert (value - ref[key]).abs().max() <= 1e-5 * ref[key].abs().max().clamp(min=1), key


def test_tokenizer_travels_with_the_model(tmp_path):
    from litebert.tokenizer import AlbertTokenizer, WordPieceTokenizer

    convert_tf(FIXTURES / "hub", tmp_path / "albert")
    tok = AlbertTokenizer.from_pretrained(tmp_path / "albert")
    assert isinstance(tok, AlbertTokenizer) and tok.vocab_size == 64
    assert (tmp_path / "albert" / "spiece.model").read_bytes() == \
        (FIXTURES / "hub" / "assets" / "30k-clean.model").read_bytes()
    hf_tok = transformers.AlbertTokenizer.from_pretrained(tmp_path / "albert")
    assert hf_tok("the film was good")["input_ids"] == tok("the film was good")["input_ids"].tolist()[0]
    convert_tf(FIXTURES / "bert", tmp_path / "bert")
    assert isinstance(AlbertTokenizer.from_pretrained(tmp_path / "bert"), WordPieceTokenizer)


def test_no_tokenizer_beside_the_checkpoint_is_said(tmp_path, caplog):
    result = convert_tf(FIXTURES / "albert_encoder", tmp_path / "out")
    assert result.tokenizer is None and not (tmp_path / "out" / "spiece.model").exists()
    assert "no tokenizer beside the checkpoint (spiece.model or 30k-clean.model); none written" in caplog.text


def test_optimizer_slots_are_skipped_and_counted(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="litebert"):
        result = convert_tf(FIXTURES / "albert_slots", tmp_path / "out")
    assert result.skipped == {"adam_m": 32, "adam_v": 32, "global_step": 1}
    assert result.tensors == 32
    assert "skipped 65 optimizer and bookkeeping variables (adam_m 32, adam_v 32, global_step 1)" in caplog.text


def test_cli_round_trip(tmp_path, capsys):
    out = tmp_path / "converted"
    assert main(["convert", "tf", str(FIXTURES / "albert_slots" / "model.ckpt-125000.index"), str(out)]) == 0
    line = capsys.readouterr().out
    assert "AlbertForPreTraining (32 tensors)" in line and "adam_m 32, adam_v 32, global_step 1" in line
    assert main(["fill-mask", str(out), "the film was [MASK] .", "--top-k", "3", "--no-bf16"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[0])["result"]
    assert len(result) == 3 and all(0 < r["score"] <= 1 for r in result)
    # ... and back out through `export hf`, unchanged.
    assert main(["export", "hf", str(out), str(tmp_path / "again")]) == 0
    a, b = load_file(str(out / "model.safetensors")), load_file(str(tmp_path / "again" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------------- bad input
def _copy(name: str, tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES / name, tmp_path / name)
    return tmp_path / name


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _reseal_index(path: Path, patch_at: int, new_byte: int) -> None:
    """Change one byte of an index's data block and write the block's trailer crc anew (a well-formed index
    that says something else)."""
    data = bytearray(path.read_bytes())
    data[patch_at] = new_byte
    footer = bytes(data[-48:])
    _, pos = _varint(footer, 0)
    _, pos = _varint(footer, pos)
    index_offset, pos = _varint(footer, pos)
    index_size, _ = _varint(footer, pos)
    for _, handle in _block_entries(bytes(data[index_offset:index_offset + index_size])):
        offset, pos = _varint(handle, 0)
        size, _ = _varint(handle, pos)
        if offset <= patch_at < offset + size:
            struct.pack_into("<I", data, offset + size + 1, masked_crc32c(bytes(data[offset:offset + size + 1])))
    path.write_bytes(bytes(data))


def _entry_offset(index: Path, name: str) -> int:
    """Where the BundleEntryProto of `name` starts in the index file."""
    value = dict(_table_items(index))[name.encode()]
    return index.read_bytes().index(value)


def _one_line_error(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_flipped_byte_in_a_tensor_fails_its_crc(tmp_path):
    d = _copy("albert_1group", tmp_path)
    entry = open_bundle(d / "model.ckpt-best").entries["bert/pooler/dense/kernel"]
    _flip(d / "model.ckpt-best.data-00000-of-00001", entry.offset + 5)
    with pytest.raises(ValueError, match=r"crc32c mismatch for bert/pooler/dense/kernel") as err:
        convert_tf(d, tmp_path / "out")
    assert "model.ckpt-best.data-00000-of-00001" in _one_line_error(err)
    assert not (tmp_path / "out").exists()


def test_flipped_byte_in_the_index_fails_its_block_crc(tmp_path):
    d = _copy("albert_1group", tmp_path)
    _flip(d / "model.ckpt-best.index", 40)
    with pytest.raises(ValueError, match=r"model.ckpt-best.index: crc32c mismatch in the index block"):
        convert_tf(d, tmp_path / "out")


def test_truncated_or_missing_shard(tmp_path):
    d = _copy("albert_2groups", tmp_path)
    shard = d / "model.ckpt-best.data-00000-of-00002"
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"data-00000-of-00002: truncated data shard \(.* needs bytes up to"):
        convert_tf(d, tmp_path / "out")
    shard.unlink()
    with pytest.raises(FileNotFoundError, match=r"data-00000-of-00002: data shard missing"):
        convert_tf(d, tmp_path / "out")


@pytest.mark.parametrize("content", [b"model_checkpoint_path: nothing here\n", b"\x00" * 100])
def test_a_file_that_is_not_a_bundle(tmp_path, content):
    (tmp_path / "model.ckpt.index").write_bytes(content)
    with pytest.raises(ValueError, match=r"model.ckpt.index: not a TensorFlow checkpoint index \(no table magic"):
        convert_tf(tmp_path / "model.ckpt", tmp_path / "out")


def test_wrong_magic_number(tmp_path):
    d = _copy("bert", tmp_path)
    _flip(d / "model.ckpt.index", (d / "model.ckpt.index").stat().st_size - 1)
    with pytest.raises(ValueError, match=r"not a TensorFlow checkpoint index"):
        convert_tf(d / "model.ckpt", tmp_path / "out")


@pytest.mark.parametrize("dtype, shown", [(7, "DT_STRING"), (99, "dtype 99")])
def test_unknown_dtype(tmp_path, dtype, shown):
    d = _copy("albert_1group", tmp_path)
    index = d / "model.ckpt-best.index"
    at = _entry_offset(index, "bert/pooler/dense/bias")
    assert index.read_bytes()[at:at + 2] == b"\x08\x01"  # field 1 (dtype), DT_FLOAT
    _reseal_index(index, at + 1, dtype)
    with pytest.raises(ValueError, match=rf"bert/pooler/dense/bias has {shown}, expected a numeric dtype"):
        convert_tf(d, tmp_path / "out")


def test_unmapped_and_missing_variables_name_them(tmp_path):
    two, one = FIXTURES / "albert_2groups", FIXTURES / "albert_1group"
    with pytest.raises(ValueError, match=r"variables have no place in the albert model albert_config.json "
                                         r"describes: bert/encoder/transformer/group_0/inner_group_1/"):
        convert_tf(two, tmp_path / "out", config_file=one / "albert_config.json")
    with pytest.raises(ValueError, match=r"missing variables bert/encoder/transformer/group_0/inner_group_1/.* "
                                         r"\(48 of 71 in the encoder albert_config.json describes\)"):
        convert_tf(one, tmp_path / "out", config_file=two / "albert_config.json")


def test_config_and_shape_mismatch_name_the_variable(tmp_path):
    config = json.loads((FIXTURES / "albert_1group" / "albert_config.json").read_text())
    (tmp_path / "albert_config.json").write_text(json.dumps({**config, "vocab_size": 65}))
    with pytest.raises(ValueError, match=r"bert/embeddings/word_embeddings has shape \[64, 16\] but "
                                         r"albert_config.json implies \[65, 16\]"):
        convert_tf(FIXTURES / "albert_1group", tmp_path / "out", config_file=tmp_path / "albert_config.json")
    (tmp_path / "odd.json").write_text(json.dumps({**config, "net_structure_type": 1}))
    with pytest.raises(ValueError, match=r"net_structure_type=1 is an experimental ALBERT variant"):
        convert_tf(FIXTURES / "albert_1group", tmp_path / "out", config_file=tmp_path / "odd.json")


def test_checkpoint_of_another_architecture(tmp_path):
    with pytest.raises(ValueError, match=r"model.ckpt.index is a BERT checkpoint \(bert/encoder/layer_N/ "
                                         r"variables\) but .*albert_config.json describes ALBERT"):
        convert_tf(FIXTURES / "bert", tmp_path / "out", config_file=FIXTURES / "albert_1group" / "albert_config.json")
    with pytest.raises(ValueError, match=r"is an ALBERT checkpoint .* has no embedding_size: a BERT config"):
        convert_tf(FIXTURES / "albert_1group", tmp_path / "out", config_file=FIXTURES / "bert" / "bert_config.json")
    with pytest.raises(ValueError, match=r"x.index: not an ALBERT or BERT checkpoint .* it holds "
                                         r"model/transformer/layer_0/ff/kernel"):
        _tf_family({"model/transformer/layer_0/ff/kernel": ""}, Path("x.index"))


def test_tokenizer_whose_size_differs_from_the_embeddings(tmp_path):
    lines = (FIXTURES / "bert" / "vocab.txt").read_text().splitlines()
    (tmp_path / "vocab.txt").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match=r"vocab.txt: the tokenizer has 63 tokens but the checkpoint's word "
                                         r"embeddings have 64 rows"):
        convert_tf(FIXTURES / "bert", tmp_path / "out", tokenizer_file=tmp_path / "vocab.txt")
    assert not (tmp_path / "out").exists()


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    (tmp_path / "x.index").write_bytes(b"not a table")
    assert main(["convert", "tf", str(tmp_path / "x.index"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("litebert convert: error: ") and "x.index" in err


# ---------------------------------------------------------------------------------------------- regenerate
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs the tf-fixtures extra")
def test_fixtures_are_what_the_script_writes(tmp_path):
    """With TensorFlow installed: the committed fixtures are exactly what make_tf_fixtures.py writes."""
    import make_tf_fixtures

    make_tf_fixtures.main(tmp_path)
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(p.relative_to(FIXTURES) for p in FIXTURES.rglob("*") if p.is_file())
    for rel in written:
        assert (tmp_path / rel).read_bytes() == (FIXTURES / rel).read_bytes(), rel
