"""The small-budget recipe's levers: pre-LN blocks, single-piece masking, the unigram MLM bias, the unigram
baseline in evaluation, and HF export refusing what Hugging Face cannot hold."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import litebert
from litebert.config import AlbertConfig
from litebert.data.masking import MaskingOptions, MaskingVocab, mask_ngrams

SMALL = dict(vocab_size=50, embedding_size=8, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
             intermediate_size=32, max_position_embeddings=16, hidden_act="gelu")


def test_pre_ln_blocks_compute_x_plus_f_of_normalised_x():
    """A hand-written pre-LN forward (LN inside each residual branch, one final LN) gives the model's output."""
    torch.manual_seed(0)
    model = litebert.AlbertModel(AlbertConfig(**SMALL, norm_position="pre")).eval()
    ids = torch.randint(5, 50, (2, 7))
    emb, enc = model.embeddings, model.encoder
    attn, ffn = enc.attention[0], enc.ffn[0]
    x = emb(ids, torch.zeros_like(ids))
    for _ in range(3):  # share="all": the same blocks at every layer
        h = attn.layer_norm(x)
        q, k, v = (lin(h).view(2, 7, 2, 8).transpose(1, 2) for lin in (attn.query, attn.key, attn.value))
        ctx = torch.softmax(q @ k.transpose(-1, -2) / 8 ** 0.5, -1) @ v
        x = x + attn.dense(ctx.transpose(1, 2).reshape(2, 7, 16))
        x = x + ffn.output(F.gelu(ffn.intermediate(ffn.layer_norm(x))))
    expected = enc.final_layer_norm(x)
    with torch.no_grad():
        got = model(ids).last_hidden_state
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert litebert.AlbertModel(AlbertConfig(**SMALL)).encoder.final_layer_norm is None  # post-LN: ALBERT's


def test_norm_position_is_validated():
    with pytest.raises(ValueError, match="norm_position must be one of post, pre"):
        AlbertConfig(**SMALL, norm_position="sandwich")


def test_pre_ln_saves_natively_and_hf_export_refuses(tmp_path, caplog):
    model = litebert.AlbertForPreTraining(AlbertConfig(**SMALL, norm_position="pre")).eval()
    with pytest.raises(ValueError, match="Hugging Face's ALBERT cannot hold this model: norm_position='pre'"):
        model.save_pretrained(tmp_path / "hf", layout="huggingface")
    assert not (tmp_path / "hf").exists()  # nothing written half
    with caplog.at_level(logging.WARNING, logger="litebert"):
        assert model.save_pretrained(tmp_path / "native") == "litebert"
    back = litebert.AlbertForPreTraining.from_pretrained(tmp_path / "native").eval()
    ids = torch.randint(5, 50, (2, 9))
    with torch.no_grad():
        assert torch.equal(model(ids).prediction_logits, back(ids).prediction_logits)


def test_export_hf_command_refuses_with_one_line(tmp_path, capsys):
    from litebert.cli import main

    litebert.AlbertForPreTraining(AlbertConfig(**SMALL, norm_position="pre")).save_pretrained(tmp_path / "m")
    assert main(["export", "hf", str(tmp_path / "m"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "norm_position='pre'" in err
    litebert.AlbertForPreTraining(AlbertConfig(**SMALL)).save_pretrained(tmp_path / "post")
    assert main(["export", "hf", str(tmp_path / "post"), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "config.json").is_file()


def _vocab() -> MaskingVocab:
    return MaskingVocab.build(1000, mask_token_id=4, special_ids=[0, 1, 2, 3, 4])


def _words(rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray]:
    """[CLS] pieces [SEP] where words are 1-4 pieces long; (ids, is_word_start)."""
    starts = []
    while len(starts) < length - 2:
        n = int(rng.integers(1, 5))
        starts += [True] + [False] * (n - 1)
    starts = [False] + starts[:length - 2] + [False]
    ids = np.concatenate([[2], rng.integers(5, 1000, length - 2), [3]])
    return ids, np.array(starts)


def test_single_piece_masking_splits_words_at_the_same_rate():
    """whole_word=False: pieces are masked one by one (words end up partly masked), still 15% of a sequence;
    whole_word=True never masks part of a word."""
    rng = np.random.default_rng(0)
    partial = {True: 0, False: 0}
    masked = {True: [], False: []}
    for _ in range(300):
        ids, starts = _words(rng, 128)
        for whole in (True, False):
            options = MaskingOptions(0.15, 20, ngram=1, whole_word=whole)
            spans = mask_ngrams(ids, starts, options, _vocab(), rng)
            chosen = np.zeros(128, bool)
            chosen[spans.positions] = True
            masked[whole].append(chosen.sum())
            word_id = np.cumsum(starts | (ids == 2) | (ids == 3))
            for w in np.unique(word_id[chosen]):
                members = (word_id == w) & (ids > 4)
                partial[whole] += int(chosen[members].any() and not chosen[members].all())
    assert partial[True] == 0 and partial[False] > 100
    for whole in (True, False):
        assert abs(np.mean(masked[whole]) - 0.15 * 128) < 1.0


def test_piece_counts_and_unigram_bias(tmp_path):
    """The MLM bias starts at log p(piece): a model whose hidden state says nothing predicts the unigram
    distribution of the training data (special pieces get the smoothing floor only)."""
    from litebert import pretrain as P
    from litebert.data import CreateOptions, create_pretraining_data
    from litebert.data.dataset import PretrainingDataset
    from litebert.tokenizer import train_sentencepiece

    rng = np.random.default_rng(0)
    words = "the a cat dog sat on mat ran far away".split()
    docs = ["\n".join(" ".join(rng.choice(words, 8, p=np.linspace(2, 0.2, 10) / 11)) + "." for _ in range(5))
            for _ in range(30)]
    (tmp_path / "c.txt").write_text("\n\n".join(docs) + "\n")
    train_sentencepiece([tmp_path / "c.txt"], tmp_path / "tok", vocab_size=29)
    create_pretraining_data([tmp_path / "c.txt"], tmp_path / "tok", tmp_path / "data",
                            CreateOptions(max_seq_length=32, max_predictions_per_seq=5, dupe_factor=1),
                            progress=False)
    data = PretrainingDataset(tmp_path / "data", "train")
    counts = data.piece_counts()
    stored = np.concatenate([np.asarray(s.arrays["input_ids"]) for s in data.shards])
    special = list(data.manifest["special_ids"].values())
    assert counts.sum() == np.isin(stored, special, invert=True).sum() and counts[special].sum() == 0
    assert data.most_frequent_piece() == int(np.argmax(np.bincount(stored[~np.isin(stored, special)])))

    model = litebert.AlbertForPreTraining(AlbertConfig(**{**SMALL, "vocab_size": 29}))
    P.init_mlm_bias(model, counts)
    p = torch.softmax(model.predictions.bias.detach().double(), -1).numpy()
    expected = (counts + 0.5) / (counts + 0.5).sum()
    np.testing.assert_allclose(p, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="piece counts have shape"):
        P.init_mlm_bias(model, counts[:-1])
