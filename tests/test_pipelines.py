"""Inference on raw text: litebert.pipeline against transformers' pipelines on the same saved checkpoints (fp32),
and the fill-mask / classify / tag / answer commands."""
from __future__ import annotations

import io
import json
import shutil
import sys

import numpy as np
import pytest
import torch

from litebert import AlbertConfig, AlbertForMaskedLM, AlbertForQuestionAnswering, AlbertForSequenceClassification, \
    AlbertForTokenClassification, AlbertModel
from litebert.cli import main
from litebert.pipelines import pipeline
from litebert.tokenizer import AlbertTokenizer, train_sentencepiece

transformers = pytest.importorskip("transformers")

SENTENCES = ["the film was good and the music was great .", "a dull story , sadly told , with poor acting .",
             "she walked to the river and watched the boats .", "the old house by the bridge had a red door .",
             "nobody expected the ending , which was lovely .", "the market opens at nine every morning ."]


TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipelines")
    rng = np.random.default_rng(0)
    words = " ".join(SENTENCES).split()
    lines = SENTENCES * 20 + [" ".join(rng.choice(words, 10)) for _ in range(300)]
    (root / "text.txt").write_text("\n".join(lines), encoding="utf-8")
    train_sentencepiece([root / "text.txt"], root / "tok", vocab_size=80, num_threads=2)
    tokenizer = AlbertTokenizer.from_pretrained(root / "tok")
    config = AlbertConfig(vocab_size=tokenizer.vocab_size, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                          num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    heads = {"mlm": (AlbertForMaskedLM, {}), "base": (AlbertModel, {}), "qa": (AlbertForQuestionAnswering, {}),
             "cls": (AlbertForSequenceClassification,
                     {"num_labels": 3, "id2label": {0: "negative", 1: "neutral", 2: "positive"}}),
             "ner": (AlbertForTokenClassification, {"num_labels": len(TAGS), "id2label": dict(enumerate(TAGS))})}
    for name, (cls, extra) in heads.items():
        torch.manual_seed(1)
        cls(config.replace(**extra)).save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    return root


def hf_pipeline(task, directory, cls):
    model = getattr(transformers, cls).from_pretrained(directory)
    tokenizer = transformers.AlbertTokenizer.from_pretrained(directory)
    return transformers.pipeline(task, model=model, tokenizer=tokenizer, device="cpu")


def test_fill_mask_matches_transformers(models):
    ours = pipeline("fill-mask", models / "mlm", device="cpu", bf16=False)
    theirs = hf_pipeline("fill-mask", models / "mlm", "AlbertForMaskedLM")
    texts = ["the film was [MASK] .", "[MASK] old house by the bridge", "she walked to the river and [MASK]"]
    for text, got in zip(texts, ours(texts, top_k=5)):
        want = theirs(text, top_k=5)
        assert [g["token"] for g in got] == [w["token"] for w in want], text
        assert [g["score"] for g in got] == pytest.approx([w["score"] for w in want], abs=1e-5)
        assert [g["token_str"] for g in got] == [w["token_str"] for w in want]
        assert [g["sequence"] for g in got] == [w["sequence"] for w in want]
    with pytest.raises(ValueError, match=r"text 2 has 0 \[MASK\] pieces, expected 1"):
        ours(["a [MASK] here", "no mask"])


def test_fill_mask_names_predicted_special_tokens_as_transformers_does(models, tmp_path):
    """A model may rank [SEP], <unk> or [CLS] first: token_str writes them out (it was "" and " ⁇ "), as
    transformers' fill-mask does; the filled sequence still drops them."""
    tokenizer = AlbertTokenizer.from_pretrained(models / "mlm")
    model = AlbertForMaskedLM.from_pretrained(models / "mlm")
    with torch.no_grad():  # the MLM bias ranks the special tokens first, in this order
        for boost, token in zip((30.0, 20.0, 10.0), (tokenizer.sep_token_id, tokenizer.unk_token_id,
                                                      tokenizer.cls_token_id)):
            model.predictions.bias[token] += boost
    model.save_pretrained(tmp_path / "mlm")
    tokenizer.save_pretrained(tmp_path / "mlm")
    got = pipeline("fill-mask", tmp_path / "mlm", device="cpu", bf16=False)("the film was [MASK] .", top_k=3)
    want = hf_pipeline("fill-mask", tmp_path / "mlm", "AlbertForMaskedLM")("the film was [MASK] .", top_k=3)
    assert [g["token_str"] for g in got] == [w["token_str"] for w in want] == ["[SEP]", "<unk>", "[CLS]"]
    assert [g["sequence"] for g in got] == [w["sequence"] for w in want]


def test_text_classification_and_features_match_transformers(models):
    ours = pipeline("text-classification", models / "cls", device="cpu", bf16=False, batch_size=2)
    theirs = hf_pipeline("text-classification", models / "cls", "AlbertForSequenceClassification")
    got, want = ours(SENTENCES), theirs(SENTENCES)
    assert [g["label"] for g in got] == [w["label"] for w in want]
    assert [g["score"] for g in got] == pytest.approx([w["score"] for w in want], abs=1e-5)
    pair = ours("the film was good", "the music was great")
    assert pair["label"] in {"negative", "neutral", "positive"} and 0 < pair["score"] <= 1
    for top_k in (None, 2):  # every class / the top two, highest first, as transformers lists them
        got, want = ours(SENTENCES, top_k=top_k), theirs(SENTENCES, top_k=top_k)
        assert [[g["label"] for g in row] for row in got] == [[w["label"] for w in row] for row in want]
        assert [g["score"] for row in got for g in row] == pytest.approx([w["score"] for row in want for w in row],
                                                                         abs=1e-5)
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        ours(SENTENCES, top_k=0)

    ours = pipeline("feature-extraction", models / "base", device="cpu", bf16=False)
    theirs = hf_pipeline("feature-extraction", models / "base", "AlbertModel")
    for text, got in zip(SENTENCES, ours(SENTENCES)):
        want = np.array(theirs(text))[0]  # (T, H)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_token_classification_matches_transformers(models):
    ours = pipeline("token-classification", models / "ner", device="cpu", bf16=False, batch_size=2)
    model = transformers.AlbertForTokenClassification.from_pretrained(models / "ner")
    tokenizer = transformers.AlbertTokenizerFast.from_pretrained(models / "ner")  # its aggregation needs offsets
    theirs = transformers.pipeline("token-classification", model=model, tokenizer=tokenizer, device="cpu",
                                   aggregation_strategy="first")
    # Words whose first piece is not a lone "▁": transformers makes that piece a word of its own, litebert reads
    # a word at its first piece whatever it is, as `litebert finetune` trains token classification.
    pieces = AlbertTokenizer.from_pretrained(models / "ner").tokenize
    texts = [" ".join(w for w in s.split() if pieces(w)[0] != "▁") for s in SENTENCES]
    got_all = ours(texts)
    assert sum(len(g) for g in got_all) >= 5  # random weights tag enough words to compare
    for text, got in zip(texts, got_all):
        want = theirs(text)
        # transformers' offsets start at the space before a word, and its "word" joins pieces without spaces
        assert [(g["entity_group"], g["start"], g["end"]) for g in got] == \
            [(w["entity_group"], w["start"] + (text[w["start"]] == " "), w["end"]) for w in want], text
        assert [g["score"] for g in got] == pytest.approx([float(w["score"]) for w in want], abs=1e-5)
        assert all(text[g["start"]:g["end"]] == g["word"] for g in got)


def test_tag_reads_each_word_and_says_what_it_could_not_tag(models, caplog):
    ner = pipeline("token-classification", models / "ner", device="cpu", bf16=False, batch_size=3)
    text = "  the film ,was   good and   the music was great . "
    words = ner(text, aggregation="none")
    assert words and all(text[w["start"]:w["end"]] == w["word"] == text.split()[w["index"]] for w in words)
    assert all(w["entity"] != "O" and 0 < w["score"] <= 1 for w in words)
    # every word tagged as an entity lies in exactly one entity group, and nothing else does
    groups = ner(text)
    inside = [w for w in words if any(g["start"] <= w["start"] and w["end"] <= g["end"] for g in groups)]
    assert inside == words and all(g["entity_group"] in {"PER", "LOC"} for g in groups)
    long = " ".join(SENTENCES * 8)  # longer than the model's 64 pieces
    with caplog.at_level("WARNING", logger="litebert"):
        tagged = ner([SENTENCES[0], long])
    assert "text 2: its last" in caplog.text and "were not tagged" in caplog.text
    caplog.clear()  # classify and features cut a text to the model's length too, and say so
    cls = pipeline("text-classification", models / "cls", device="cpu", bf16=False)
    with caplog.at_level("WARNING", logger="litebert"):
        cls([SENTENCES[0], long, SENTENCES[1]])
    assert "1 of 3 text(s) are longer than the model's 64 pieces and were cut to fit (text 2)" in caplog.text
    assert tagged[0] == ner(SENTENCES[0]) and max(g["end"] for g in tagged[1]) < len(long) // 2
    with pytest.raises(ValueError, match="aggregation must be 'first' or 'none'"):
        ner(text, aggregation="max")


def test_a_pipeline_keeps_its_packed_weights_from_call_to_call(models, monkeypatch):
    """Where calibration packs the projection weights, a pipeline (which owns its model) packs each once, keeps the
    copies from call to call, and scores as transformers does (fp32, to 1e-5)."""
    from litebert import kernels
    from litebert.calibrate import fast_paths

    ours = pipeline("text-classification", models / "cls", device="cpu", bf16=False, batch_size=2)
    theirs = hf_pipeline("text-classification", models / "cls", "AlbertForSequenceClassification")
    H, I = ours.model.config.hidden_size, ours.model.config.intermediate_size
    plan = {kernels.weight_key(torch.float32, k, m): 5 for k, m in [(H, 3 * H), (H, H), (H, I), (I, H)]}  # > 2 layers
    packings, real = [], torch.ops.mkldnn._reorder_linear_weight
    monkeypatch.setattr(torch.ops.mkldnn, "_reorder_linear_weight", lambda w, *a: packings.append(w.shape) or real(w))
    with fast_paths(packed_weights=plan):
        first, again = ours(SENTENCES), ours(SENTENCES[:2])
    assert len(packings) == 4  # the shared block's fused Q/K/V, output, FFN in and out, once for both calls
    assert [g["score"] for g in first] == pytest.approx([w["score"] for w in theirs(SENTENCES)], abs=1e-5)
    assert [g["label"] for g in again] == [g["label"] for g in first[:2]]
    assert [g["score"] for g in again] == pytest.approx([g["score"] for g in first[:2]], abs=1e-6)


def test_question_answering_returns_a_span_of_the_context(models):
    qa = pipeline("question-answering", models / "qa", device="cpu", bf16=False)
    context = " ".join(SENTENCES * 8)  # longer than the model: several windows
    results = qa(["what was lovely ?", "where did she walk ?"], [context, SENTENCES[2]])
    for result, ctx in zip(results, [context, SENTENCES[2]]):
        assert result["answer"] and ctx[result["start"]:result["end"]] == result["answer"]
        assert 0 < result["score"] <= 1


def test_question_answering_matches_transformers(models):
    ours = pipeline("question-answering", models / "qa", device="cpu", bf16=False, batch_size=2)
    theirs = hf_pipeline("question-answering", models / "qa", "AlbertForQuestionAnswering")
    long = " ".join(SENTENCES * 3)  # windows of 64 pieces, 32 apart: several per context
    questions = ["what was lovely ?", "where did she walk ?", "what opens at nine ?", "who had a red door ?",
                 "what was dull ?"]
    contexts = [SENTENCES[4], SENTENCES[2], long, SENTENCES[3] + " " + SENTENCES[0], long + " " + long]
    for question, context, got in zip(questions, contexts, ours(questions, contexts)):
        want = theirs(question=question, context=context, max_seq_len=64)
        assert (got["answer"], got["start"]) == (want["answer"], want["start"]), (got, want)
        # transformers' slow-tokenizer path reports a span that ends the context one character short
        assert got["end"] == want["end"] + (got["end"] == len(context)), (got, want)
        assert got["score"] == pytest.approx(want["score"], rel=1e-5)
        assert context[got["start"]:got["end"]] == got["answer"]


def test_length_sorted_batches_give_each_text_its_own_result(models):
    """Texts of mixed lengths are batched in order of length: each result must still be that text's, as if it
    had run alone, in the order given."""
    rng = np.random.default_rng(3)
    texts = [" ".join(SENTENCES[i % 6] for i in range(n)) for n in rng.integers(1, 7, 13)]
    text_pairs = [SENTENCES[i % 6] for i in range(13)]
    cls = pipeline("text-classification", models / "cls", device="cpu", bf16=False, batch_size=4)
    alone = [cls(t, q) for t, q in zip(texts, text_pairs)]
    batched = cls(texts, text_pairs)
    assert [b["label"] for b in batched] == [a["label"] for a in alone]
    assert [b["score"] for b in batched] == pytest.approx([a["score"] for a in alone], abs=1e-5)

    feats = pipeline("feature-extraction", models / "base", device="cpu", bf16=False, batch_size=4)
    for got, text in zip(feats(texts), texts):
        np.testing.assert_allclose(got, feats(text), atol=1e-5)

    fill = pipeline("fill-mask", models / "mlm", device="cpu", bf16=False, batch_size=2)
    masked = [t.replace("the", "[MASK]", 1) for t in texts[:7]]
    assert [r[0]["sequence"] for r in fill(masked)] == [fill(t)[0]["sequence"] for t in masked]
    with pytest.raises(ValueError, match=r"text 3 has 2 \[MASK\] pieces, expected 1"):
        fill(masked[:2] + ["[MASK] and [MASK]"] + masked[2:])


def test_onnxruntime_and_int8_backends_match_torch(models):
    """backend onnxruntime reproduces the torch pipeline; the int8 backends stay close; the export is made once
    and cached by the weights (a different model gets its own file)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import os
    from pathlib import Path

    cache = Path(os.environ["LITEBERT_ONNX_DIR"])
    texts = SENTENCES + [SENTENCES[0] + " " + SENTENCES[3]]
    torch_cls = pipeline("text-classification", models / "cls", device="cpu", bf16=False, batch_size=3)
    want = torch_cls(texts)
    for backend, tolerance in (("onnxruntime", 1e-5), ("onnxruntime-int8", 0.05), ("torch-int8", 0.05)):
        ort_cls = pipeline("text-classification", models / "cls", device="cpu", batch_size=3, backend=backend)
        got = ort_cls(texts)
        assert ort_cls.onnx == backend.startswith("onnxruntime") and ort_cls.backend == backend
        assert [g["score"] for g in got] == pytest.approx([w["score"] for w in want], abs=tolerance)
        if backend == "onnxruntime":
            assert [g["label"] for g in got] == [w["label"] for w in want]
    exports = sorted(cache.glob("AlbertForSequenceClassification-*.onnx"))
    assert [e.name.split("-")[1] for e in exports] == ["fp32", "int8"]
    before = [e.stat().st_mtime_ns for e in exports]
    pipeline("text-classification", models / "cls", device="cpu", backend="onnxruntime")
    assert [e.stat().st_mtime_ns for e in exports] == before  # taken from the cache, not exported again

    qa_torch = pipeline("question-answering", models / "qa", device="cpu", bf16=False)
    qa_ort = pipeline("question-answering", models / "qa", device="cpu", backend="onnxruntime")
    question, context = "what was lovely ?", " ".join(SENTENCES * 3)
    got, want = qa_ort(question, context), qa_torch(question, context)
    assert (got["answer"], got["start"], got["end"]) == (want["answer"], want["start"], want["end"])
    assert got["score"] == pytest.approx(want["score"], rel=1e-4)
    ner = pipeline("token-classification", models / "ner", device="cpu", backend="onnxruntime")
    want = pipeline("token-classification", models / "ner", device="cpu", bf16=False)(SENTENCES)
    for got, expected in zip(ner(SENTENCES), want):
        assert [(g["entity_group"], g["start"], g["end"]) for g in got] == \
            [(w["entity_group"], w["start"], w["end"]) for w in expected]
        assert [g["score"] for g in got] == pytest.approx([w["score"] for w in expected], abs=1e-5)
    fill = pipeline("fill-mask", models / "mlm", device="cpu", backend="onnxruntime")
    assert [r["token"] for r in fill("the film was [MASK] .")] == \
        [r["token"] for r in pipeline("fill-mask", models / "mlm", device="cpu", bf16=False)("the film was [MASK] .")]
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        pipeline("fill-mask", models / "mlm", backend="tensorrt")
    with pytest.raises(ValueError, match="runs on the CPU without bf16"):
        pipeline("fill-mask", models / "mlm", device="cpu", bf16=True, backend="onnxruntime")


def test_commands_print_json_lines(models, tmp_path, capsys):
    assert main(["fill-mask", str(models / "mlm"), "the film was [MASK] .", "--top-k", "2", "--no-bf16"]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["text"] == "the film was [MASK] ." and len(line["result"]) == 2
    (tmp_path / "texts.txt").write_text("a great film\ta lovely story\nthe music was poor\tdull\n")
    assert main(["classify", str(models / "cls"), "--file", str(tmp_path / "texts.txt"), "--batch-size", "1"]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [o["text"] for o in out] == ["a great film", "the music was poor"] and all("label" in o["result"]
                                                                                        for o in out)
    assert main(["classify", str(models / "cls"), "--text", "a great film", "--backend", "onnxruntime"]) == 0
    assert json.loads(capsys.readouterr().out)["result"]["label"] in {"negative", "neutral", "positive"}
    assert main(["tag", str(models / "ner"), "--text", SENTENCES[0], "--text", SENTENCES[1]]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [o["text"] for o in out] == SENTENCES[:2] and all({"entity_group", "start"} <= set(e)
                                                              for o in out for e in o["result"])
    # texts as arguments, as fill-mask takes them: the same lines, arguments first, then --text
    assert main(["tag", str(models / "ner"), SENTENCES[0], "--text", SENTENCES[1]]) == 0
    assert [json.loads(x) for x in capsys.readouterr().out.splitlines()] == out
    assert main(["classify", str(models / "cls"), "the music was poor", "a great film", "--no-bf16"]) == 0
    assert [json.loads(x)["text"] for x in capsys.readouterr().out.splitlines()] == ["the music was poor",
                                                                                     "a great film"]
    assert main(["answer", str(models / "qa"), "--question", "where ?", "--context", SENTENCES[2]]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert SENTENCES[2][answer["start"]:answer["end"]] == answer["answer"]
    assert main(["classify", str(models / "cls")]) == 2
    assert capsys.readouterr().err == "litebert classify: error: give texts to classify (arguments, --text or --file)\n"
    assert main(["answer", str(models / "qa"), "--question", "where ?"]) == 2
    assert capsys.readouterr().err == "litebert answer: error: give --question and --context, or --file\n"


def test_a_model_saved_with_another_head_is_refused(models, tmp_path, capsys):
    """classify on a pretraining checkpoint answered from a random classifier, and tag on a sentence classifier
    read its `classifier` weights as a token classifier's ("entity_group": "ntailment"): both are refused, naming
    the saved class; feature extraction takes any model; a config.json without architectures still loads."""
    for command, model, wanted in (("classify", "mlm", "needs a classifier fine-tuned on texts"),
                                   ("tag", "cls", "needs a token classifier"),
                                   ("answer", "cls", "needs a QA head")):
        extra = ["--question", "q", "--context", "c"] if command == "answer" else ["--text", "a film"]
        assert main([command, str(models / model), *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"litebert {command}: error: {models / model}: its config.json names Albert")
        assert wanted in err
    assert main(["fill-mask", str(models / "cls"), "a [MASK] film"]) == 2
    assert "names AlbertForSequenceClassification, and fill-mask needs a masked-LM head" in capsys.readouterr().err
    assert len(pipeline("feature-extraction", models / "cls", device="cpu", bf16=False)("a film")) > 0
    shutil.copytree(models / "cls", tmp_path / "cls")
    config = json.loads((tmp_path / "cls" / "config.json").read_text())
    del config["architectures"]
    (tmp_path / "cls" / "config.json").write_text(json.dumps(config))
    assert pipeline("text-classification", tmp_path / "cls", device="cpu", bf16=False)("a film")["label"]


def test_answer_reads_questions_and_contexts_from_json_lines(models, tmp_path, capsys, monkeypatch):
    """answer --file: one JSON object per line with question and context, each answered as --question/--context
    would be, in order; a bad line is named before anything runs."""
    pairs = [("where did she walk ?", SENTENCES[2]), ("what was lovely ?", SENTENCES[4]),
             ("what opens ?", " ".join(SENTENCES * 3))]
    lines = [json.dumps({"question": q, "context": c, "id": n}) for n, (q, c) in enumerate(pairs)]
    (tmp_path / "qa.jsonl").write_text(lines[0] + "\n\n" + "\n".join(lines[1:]) + "\n", encoding="utf-8")
    assert main(["answer", str(models / "qa"), "--file", str(tmp_path / "qa.jsonl"), "--no-bf16"]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [o["question"] for o in out] == [q for q, _ in pairs]
    for (question, context), o in zip(pairs, out):
        assert main(["answer", str(models / "qa"), "--question", question, "--context", context, "--no-bf16"]) == 0
        alone = json.loads(capsys.readouterr().out)
        assert (o["result"]["answer"], o["result"]["start"]) == (alone["answer"], alone["start"])
        assert o["result"]["score"] == pytest.approx(alone["score"], rel=1e-5)
    for bad, message in (('{"question": "q"}', "expected a JSON object with string fields question and context"),
                         ("where ?\tcontext", "not JSON (Expecting value); expected")):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(f"{lines[0]}\n{bad}\n".encode())))
        assert main(["answer", str(models / "qa"), "--file", "-"]) == 2
        captured = capsys.readouterr()
        assert captured.err.startswith(f"litebert answer: error: stdin:2: {message}") and captured.out == ""


def test_commands_stream_a_file_in_chunks_and_name_bad_lines(models, tmp_path, capsys, caplog, monkeypatch):
    import litebert.pipelines as P

    monkeypatch.setattr(P, "CHUNK", 2)  # 5 texts: 3 pipeline calls, each printed before the next is read
    calls = []
    monkeypatch.setattr(P, "classify", lambda p, texts, pairs, top_k: calls.append(len(texts)) or
                        [{"label": t.upper(), "score": 1.0} for t in texts])
    texts = ["a great film", "the music was poor", "", "dull", "a lovely story", "nine"]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    with caplog.at_level("WARNING", logger="litebert"):
        assert main(["classify", str(models / "cls"), "--file", str(tmp_path / "texts.txt")]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [o["text"] for o in out] == [t for t in texts if t] and calls == [2, 2, 1]
    assert all(o["result"]["label"] == o["text"].upper() for o in out)
    assert "texts.txt: 1 blank line(s) skipped" in caplog.text
    (tmp_path / "mixed.txt").write_text("a film\tgood\njust a text\n")
    assert main(["classify", str(models / "cls"), "--file", str(tmp_path / "mixed.txt")]) == 2
    assert "mixed.txt:2: no tab, but line 1 is a pair" in capsys.readouterr().err
    (tmp_path / "masks.txt").write_text("the film was [MASK] .\nno mask here\n")
    assert main(["fill-mask", str(models / "mlm"), "--file", str(tmp_path / "masks.txt")]) == 2
    captured = capsys.readouterr()
    assert "masks.txt:2: 0 [MASK] in the line, expected 1" in captured.err and captured.out == ""
    # --file - reads a pipe; errors name its line
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a great film\n\ndull\n")))
    assert main(["classify", str(models / "cls"), "--file", "-"]) == 0
    assert [json.loads(x)["text"] for x in capsys.readouterr().out.splitlines()] == ["a great film", "dull"]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"the film was [MASK] .\nno mask\n")))
    assert main(["fill-mask", str(models / "mlm"), "--file", "-"]) == 2
    assert capsys.readouterr().err == "litebert fill-mask: error: stdin:2: 0 [MASK] in the line, expected 1\n"
    # A Windows editor's byte-order mark is not part of the first text; another encoding is named by line
    (tmp_path / "bom.txt").write_text("a great film\ndull\n", encoding="utf-8-sig")
    assert main(["classify", str(models / "cls"), "--file", str(tmp_path / "bom.txt")]) == 0
    assert [json.loads(x)["text"] for x in capsys.readouterr().out.splitlines()] == ["a great film", "dull"]
    (tmp_path / "latin1.txt").write_bytes("a film\nna\u00efve\n".encode("latin-1"))
    assert main(["classify", str(models / "cls"), "--file", str(tmp_path / "latin1.txt")]) == 2
    captured = capsys.readouterr()
    assert "latin1.txt:2: byte 0xef at column 3 is not UTF-8" in captured.err and captured.out == ""
