"""Inference on raw text, as Hugging Face pipelines feel: `pipeline(task, model_dir)` returns a callable.

    fill-mask            "The film was [MASK]."       -> the top-k pieces for the mask: score, token, token_str,
                                                         sequence (as transformers' FillMaskPipeline)
    text-classification  "a gripping film" (or pairs) -> label and score (softmax; the raw score for regression)
    question-answering   question + context            -> answer, score, start, end (character offsets), decoded
                                                         as transformers' QuestionAnsweringPipeline (whole words);
                                                         a model fine-tuned here on SQuAD as its evaluation decoded
                                                         (after SQuAD 2.0: "" where it abstains, and null_odds)
    token-classification "Ada Lovelace met Babbage ."  -> entities: entity_group, score, word, start, end (as
                                                         transformers' aggregation_strategy="first"), or with
                                                         aggregation="none" each word not tagged O
    feature-extraction   "any text"                    -> the last hidden states (T, H) of each text

The model directory is what `save_pretrained` / `litebert finetune` / `litebert export hf` write (its tokenizer
alongside); one whose config.json names another head than the task runs on is refused (`check_head`). The
commands `litebert fill-mask | classify | tag | answer` wrap this: JSON lines out, and a --file is read in chunks
of CHUNK texts, each printed before the next is read, behind a progress bar (bad lines are named before anything
runs; blank ones are skipped and counted).

How the texts run:
- All texts of a call are encoded first, then cut into batches **in order of length**, each padded only to its
  longest row (rounded up to 8); results come back in the input order. Mixed-length text (reviews, documents)
  then spends little on padding, where batches in input order pad every row to the longest of its neighbours.
- backend "torch" (default): the model in PyTorch, bf16 autocast where it measures faster (`litebert.calibrate`).
  "torch-int8": the same model with its encoder's matmuls in int8 (`litebert.quantize`), CPU only.
  "onnxruntime" / "onnxruntime-int8": the model exported once to ONNX (int8: dynamic quantisation of the weights,
  see `litebert.export`), cached by a digest of its weights, and run by onnxruntime on the CPU.
  benchmarks/bench_pipelines.py measures them against transformers' pipeline on the same texts.
"""
from __future__ import annotations

import argparse
import bisect
import dataclasses
import itertools
import json
import logging
import math
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from litebert import pairs
from litebert.export import BACKENDS
from litebert.files import open_text
from litebert.kernels import keep_packed_weights
from litebert.model import AlbertForMaskedLM, AlbertForQuestionAnswering, AlbertForSequenceClassification, \
    AlbertForTokenClassification, AlbertModel


log = logging.getLogger("litebert")

Row = tuple[Sequence[int], Sequence[int]]
"""One encoded input: (input_ids, token_type_ids), unpadded."""


@dataclass
class Pipeline:
    """A model, its tokenizer and how to run them; call it with texts (see the module docstring)."""

    task: str
    model: Any
    """The litebert model, or for the onnxruntime backends its export (`export.OnnxModel`, called alike)."""
    tokenizer: Any
    device: torch.device
    bf16: bool
    batch_size: int
    run: Callable[..., list]
    backend: str = "torch"
    finetuned: dict | None = None
    """The model directory's finetune.json (what `litebert finetune` trained it for, and how it decodes), else None."""

    def __call__(self, *args, **kwargs):
        return self.run(self, *args, **kwargs)

    @property
    def onnx(self) -> bool:
        """The model is an ONNX export run by onnxruntime (`export.OnnxModel`)."""
        return self.backend.startswith("onnxruntime")

    def forward(self, **inputs: np.ndarray):
        """The model's outputs for int64 (B, T) inputs, as torch tensors named as the model's output fields."""
        if self.onnx:
            return self.model(**inputs)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()
        with torch.inference_mode(), autocast, keep_packed_weights():  # the pipeline owns the model: weights stay
            return self.model(**{k: torch.from_numpy(v).to(self.device) for k, v in inputs.items()})

    def map_batches(self, rows: Sequence[Row], results_of: Callable[[dict[str, np.ndarray], Any], list],
                    progress: bool = False,
                    extra_inputs: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None) -> list:
        """One result per row, in the rows' order: the rows are sorted by length, cut into `batch_size` batches
        each padded to its longest row (rounded up to 8, within the model's length), run, and
        `results_of(inputs, outputs)` turns a batch into its rows' results. `extra_inputs(inputs)` adds model
        inputs computed from the padded batch (fill-mask's masked_lm_positions)."""
        from litebert.finetune import batching

        lengths = np.array([len(ids) for ids, _ in rows], dtype=np.int64)
        batches = batching.eval_batches(lengths, self.batch_size, "bucket")  # index arrays, shortest rows first
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, unit="batch", dynamic_ncols=True, file=sys.stderr)
        results: list = [None] * len(rows)
        for index in batches:
            length = batching.padded_length(int(lengths[index].max()), self.model.config.max_position_embeddings)
            inputs = pairs.pad([rows[i] for i in index], length, self.tokenizer.pad_token_id)
            extra = extra_inputs(inputs) if extra_inputs else {}
            for i, result in zip(index, results_of(inputs, self.forward(**inputs, **extra))):
                results[i] = result
        return results

    def encode(self, texts: list[str], pairs: list[str] | None = None) -> list[Row]:
        """(input_ids, token_type_ids) of each text (or pair), cut to the model's length (longest first); a
        warning counts the texts that were cut."""
        limit = self.model.config.max_position_embeddings
        enc = self.tokenizer(texts, pairs, max_length=limit, padding=False, return_tensors=None)
        full = [i for i, ids in enumerate(enc["input_ids"]) if len(ids) == limit]  # cut, or an exact fit
        if full:
            whole = self.tokenizer([texts[i] for i in full], [pairs[i] for i in full] if pairs else None,
                                   padding=False, truncation=False, return_tensors=None)["input_ids"]
            if cut := [i + 1 for i, ids in zip(full, whole) if len(ids) > limit]:
                log.warning("%d of %d text(s) are longer than the model's %d pieces and were cut to fit (text %s)",
                            len(cut), len(texts), limit, ", ".join(map(str, cut[:5])) + (", ..." if cut[5:] else ""))
        return list(zip(enc["input_ids"], enc["token_type_ids"]))


def fill_mask(p: Pipeline, texts: str | Sequence[str], top_k: int = 5, progress: bool = False):
    """For each text (one [MASK] in it): the `top_k` predictions, most likely first."""
    single = isinstance(texts, str)
    texts = [texts] if single else list(texts)
    mask_id = p.tokenizer.mask_token_id
    rows = _encode_masked(p, texts)
    for n, (ids, _) in enumerate(rows):
        if (count := int(np.sum(np.asarray(ids) == mask_id))) != 1:
            raise ValueError(f"fill-mask: text {n + 1} has {count} [MASK] pieces, expected 1")

    def results_of(inputs: dict[str, np.ndarray], outputs) -> list:
        ids = torch.from_numpy(inputs["input_ids"])
        batch, cols = (ids == mask_id).nonzero(as_tuple=True)  # one mask per row
        logits = outputs.logits[batch, cols] if p.onnx else outputs.logits[:, 0]  # (B, V)
        probs = logits.float().softmax(-1)
        scores, tokens = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
        out = []
        for b in range(len(ids)):
            real = ids[b][inputs["attention_mask"][b] == 1]
            results = []
            for score, token in zip(scores[b].tolist(), tokens[b].tolist()):
                filled = real.clone()
                filled[cols[b]] = token
                # token_str names a predicted special token ([SEP], <unk>), as transformers' fill-mask does
                results.append({"score": score, "token": token,
                                "token_str": p.tokenizer.decode([token], skip_special_tokens=False),
                                "sequence": p.tokenizer.decode(filled.tolist(), skip_special_tokens=True)})
            out.append(results)
        return out

    def mask_positions(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"masked_lm_positions": np.argmax(inputs["input_ids"] == mask_id, axis=1)[:, None]}  # (B, 1)

    # in PyTorch the MLM head runs at the mask only (logits (B, 1, V)); an ONNX graph's cover all T positions
    out = p.map_batches(rows, results_of, progress, extra_inputs=None if p.onnx else mask_positions)
    return out[0] if single else out


def _encode_masked(p: Pipeline, texts: list[str]) -> list[Row]:
    """Texts holding the literal [MASK]: the pieces around it encoded apart and the mask id between them, as
    Hugging Face's ALBERT tokenizer splits special tokens out (the space before [MASK] goes with it)."""
    mask = "[MASK]"
    rows = []
    for text in texts:
        parts = text.split(mask)
        parts = [part.rstrip() if i < len(parts) - 1 else part for i, part in enumerate(parts)]
        encoded = p.tokenizer.encode_batch_ids([part for part in parts if part])
        ids, pieces = [], iter(encoded)
        for i, part in enumerate(parts):
            ids += next(pieces) if part else []
            if i < len(parts) - 1:
                ids.append(p.tokenizer.mask_token_id)
        ids = ids[:p.model.config.max_position_embeddings - 2]
        rows.append(pairs.pack(ids, None, p.tokenizer.cls_token_id, p.tokenizer.sep_token_id))
    return rows


def classify(p: Pipeline, texts: str | Sequence[str], text_pairs: str | Sequence[str] | None = None,
             progress: bool = False, top_k: int | None = 1):
    """For each text (or pair): {"label", "score"}, the softmax's top class, or the raw score for regression;
    with `top_k` other than 1 (None: every class), a list of the top classes, highest first, as transformers'
    pipeline gives them. For a multi-label model the predicted set (as `litebert predict` writes it): a list
    of {"label", "score"} for every label whose sigmoid passes 0.5, highest first."""
    if top_k is not None and top_k < 1:
        raise ValueError(f"classify: top_k must be at least 1 (or None for every class), got {top_k}")
    single = isinstance(texts, str)
    texts = [texts] if single else list(texts)
    pairs = None if text_pairs is None else ([text_pairs] if isinstance(text_pairs, str) else list(text_pairs))
    if pairs is not None and len(pairs) != len(texts):
        raise ValueError(f"classify: {len(texts)} texts but {len(pairs)} text pairs")
    labels = p.model.config.id2label or {}

    def results_of(inputs: dict[str, np.ndarray], outputs) -> list:
        logits = outputs.logits.float()  # (B, C)
        name = lambda i: _label_name(labels, i)  # noqa: E731
        if p.model.config.is_multi_label:
            probabilities = logits.sigmoid()
            return [[{"label": name(i), "score": float(row[i])} for i in row.argsort(descending=True) if row[i] > 0.5]
                    for row in probabilities]
        if logits.shape[-1] == 1:
            return [{"label": "score", "score": float(v)} for v in logits[:, 0]]
        if top_k == 1:
            score, index = logits.softmax(-1).max(-1)
            return [{"label": name(i), "score": float(s)} for s, i in zip(score, index)]
        scores, index = logits.softmax(-1).sort(-1, descending=True)
        k = logits.shape[-1] if top_k is None else min(top_k, logits.shape[-1])
        return [[{"label": name(i), "score": float(s)} for s, i in zip(row_s[:k], row_i[:k])]
                for row_s, row_i in zip(scores, index)]

    out = p.map_batches(p.encode(texts, pairs), results_of, progress)
    return out[0] if single else out


def _label_name(id2label: dict, index) -> str:
    """The name of class `index` (id2label keys are ints, or strings as read from JSON), else LABEL_{index}."""
    i = int(index)
    return id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))


def tag(p: Pipeline, texts: str | Sequence[str], aggregation: str = "first", progress: bool = False):
    """For each text, its entities: with aggregation "first" (transformers' name), chunks of consecutive words
    {"entity_group", "score", "word", "start", "end"}, read from the word tags by conlleval's rules (IOB1, BIO
    and IOBES alike; `metrics.entities`), the score the mean of their words'; with "none", every word not
    tagged "O": {"entity", "score", "index", "word", "start", "end"}.

    Words are the whitespace-separated parts of the text; each takes the tag the model predicts at its first
    piece (its score: that tag's probability there), as `litebert finetune` trains and scores token
    classification. Words past the model's length are not tagged: a warning counts them."""
    from litebert.finetune.readers import encode_words
    from litebert.finetune.squad import split_words
    from litebert.metrics import entities

    if aggregation not in ("first", "none"):
        raise ValueError(f"tag: aggregation must be 'first' or 'none', got {aggregation!r}")
    single = isinstance(texts, str)
    texts = [texts] if single else list(texts)
    spans = [split_words(text) for text in texts]  # per text: (start, end) of each word
    rows, starts, cuts = encode_words([[t[a:b] for a, b in words] for t, words in zip(texts, spans)], p.tokenizer,
                                      p.model.config.max_position_embeddings)
    for n, cut in enumerate(cuts):
        if cut:
            log.warning("tag: text %d: its last %d words are past the model's %d pieces and were not tagged",
                        n + 1, cut, p.model.config.max_position_embeddings)
    labels = p.model.config.id2label or {}

    def results_of(inputs: dict[str, np.ndarray], outputs) -> list:
        score, index = outputs.logits.float().softmax(-1).max(-1)  # (B, T): each piece's best tag
        return list(zip(index.cpu().numpy(), score.cpu().numpy()))

    out = []
    for text, words, at, (index, score) in zip(texts, spans, starts, p.map_batches(rows, results_of, progress)):
        scores = score[at].tolist()  # (W,): read at each word's first piece
        tags = [_label_name(labels, i) for i in index[at].tolist()]
        if aggregation == "none":
            out.append([{"entity": t, "score": s, "index": i, "word": text[words[i][0]:words[i][1]],
                         "start": words[i][0], "end": words[i][1]}
                        for i, (t, s) in enumerate(zip(tags, scores)) if t != "O"])
            continue
        out.append([{"entity_group": kind, "score": float(np.mean(scores[first:last + 1])),
                     "word": text[words[first][0]:words[last][1]], "start": words[first][0], "end": words[last][1]}
                    for kind, first, last in entities(tags)])
    return out[0] if single else out


def features(p: Pipeline, texts: str | Sequence[str], progress: bool = False):
    """For each text: its last hidden states, an array (T, H) over its pieces ([CLS] and [SEP] included)."""
    single = isinstance(texts, str)
    texts = [texts] if single else list(texts)

    def results_of(inputs: dict[str, np.ndarray], outputs) -> list:
        hidden = outputs.last_hidden_state.float().cpu().numpy()  # (B, T, H)
        return [h[m == 1] for h, m in zip(hidden, inputs["attention_mask"])]

    out = p.map_batches(p.encode(texts), results_of, progress)
    return out[0] if single else out


def answer(p: Pipeline, question: str | Sequence[str], context: str | Sequence[str],
           max_answer_length: int | None = None, progress: bool = False, null_threshold: float | None = None):
    """For each (question, context): {"answer", "score", "start", "end"}, with context[start:end] == answer.

    A model `litebert finetune` trained on SQuAD (its finetune.json says so), or one with the answerability head,
    answers as its evaluation decoded it: the fine-tuning's windows, decoder and `max_answer_length`
    (`finetune.squad`), so `answer` agrees with `litebert predict`. After SQuAD 2.0 it may abstain: answer "",
    start and end -1, when the question's null odds (added as "null_odds") exceed the threshold chosen at
    fine-tuning, or `null_threshold`; "score" is then the no-answer probability.
    Any other QA model decodes as transformers' question-answering pipeline (`max_answer_length` 15 by default).
    """
    from litebert.finetune.readers import SquadExample

    single = isinstance(question, str)
    questions, contexts = ([question], [context]) if single else (list(question), list(context))
    if len(questions) != len(contexts):
        raise ValueError(f"answer: {len(questions)} questions but {len(contexts)} contexts")
    examples = [SquadExample(str(i), q, c, []) for i, (q, c) in enumerate(zip(questions, contexts))]
    settings = p.finetuned or {}
    if str(settings.get("task", "")).startswith("squad") or p.model.config.qa_answerability:
        out = _answers_as_finetuned(p, examples, settings, max_answer_length, null_threshold, progress)
    else:
        out = _answers_as_transformers(p, examples, max_answer_length or 15, progress)
    return out[0] if single else out


def _answers_as_transformers(p: Pipeline, examples: list, max_answer_length: int, progress: bool) -> list[dict]:
    """Decoded as transformers' question-answering pipeline: windows over long contexts, in each the start and end
    probabilities (softmax over the context's pieces and [CLS]), a span of at most `max_answer_length` pieces
    scores p_start * p_end, the best span of all windows is widened to whole words."""
    from litebert.finetune.squad import SquadConfig, build_features, split_words

    length = min(384, p.model.config.max_position_embeddings)  # transformers' defaults, within the model
    config = SquadConfig(max_seq_length=length, doc_stride=min(length // 2, 128), max_answer_length=max_answer_length)
    feats = build_features(examples, p.tokenizer, config)  # windows padded to `length`: run without the padding
    rows = [(f.input_ids[:n], f.token_type_ids[:n]) for f in feats for n in [sum(f.attention_mask)]]

    def results_of(inputs: dict[str, np.ndarray], outputs) -> list:
        # each row's (start, end) logits, padded back to the window's length (the padding is never a context piece)
        starts, ends = (np.pad(x.float().cpu().numpy(), ((0, 0), (0, length - x.shape[1]))) for x in
                        (outputs.start_logits, outputs.end_logits))
        return list(zip(starts, ends))

    logits = p.map_batches(rows, results_of, progress)
    best: dict[int, tuple[float, int, int]] = {}  # example → (score, first char, last char)
    for f, (start_logits, end_logits) in zip(feats, logits):
        score, i, j = _best_span(f, start_logits, end_logits, p.tokenizer.all_special_ids, max_answer_length)
        if score > best.get(f.example_index, (-1.0,))[0]:
            last = max(f.token_offsets[j][1] - 1, f.token_offsets[j][0])  # a character of the last piece's word
            best[f.example_index] = (score, f.token_offsets[i][0], last)
    out = []
    for index, example in enumerate(examples):
        if index not in best:
            out.append({"answer": "", "score": 0.0, "start": -1, "end": -1})
            continue
        score, first, last = best[index]
        words = split_words(example.context)
        word_starts = [s for s, _ in words]
        start = words[bisect.bisect_right(word_starts, first) - 1][0]
        end = words[bisect.bisect_right(word_starts, last) - 1][1]
        out.append({"answer": example.context[start:end], "score": score, "start": start, "end": end})
    return out


def _answers_as_finetuned(p: Pipeline, examples: list, settings: dict, max_answer_length: int | None,
                          null_threshold: float | None, progress: bool) -> list[dict]:
    """Decoded by `finetune.squad` with the settings of the model's finetune.json (see `answer`)."""
    from litebert.finetune import squad
    from litebert.finetune.run import saved_config
    from litebert.finetune.train import squad_config

    saved = saved_config(settings)
    length = min(saved.max_seq_length or squad.SquadConfig.max_seq_length, p.model.config.max_position_embeddings)
    config = squad_config(dataclasses.replace(saved, max_answer_length=max_answer_length or saved.max_answer_length),
                          length)
    beam = p.model.config.qa_answerability
    version_2 = beam or settings.get("task") == "squad2.0"
    threshold = null_threshold if null_threshold is not None else settings.get("null_threshold") or 0.0
    feats = squad.build_features(examples, p.tokenizer, config)
    rows = [(f.input_ids[:n], f.token_type_ids[:n]) for f in feats for n in [sum(f.attention_mask)]]
    names = (("start_top_log_probs", "start_top_index", "end_top_log_probs", "end_top_index", "cls_logits") if beam
             else ("start_logits", "end_logits"))

    def results_of(inputs: dict[str, np.ndarray], outputs) -> list:
        values = [getattr(outputs, name).float().cpu().numpy() for name in names]
        if not beam:  # (B, T) logits padded back to the window's length: the padding is never a context piece
            values = [np.pad(v, ((0, 0), (0, config.max_seq_length - v.shape[1])), constant_values=-1e30)
                      for v in values]
        return list(zip(*values))

    outputs = [np.stack(column) for column in zip(*p.map_batches(rows, results_of, progress,
                                                                 _answer_mask if beam else None))]
    if beam:
        decoded = squad.decode_beam_predictions(examples, feats, outputs[0], outputs[1].astype(np.int64), outputs[2],
                                                outputs[3].astype(np.int64), outputs[4], config, threshold)
    else:
        decoded = squad.decode_predictions(examples, feats, *outputs, config, version_2, threshold)
    return [_finetuned_answer(decoded, example.qid, beam, version_2) for example in examples]


def _answer_mask(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The answerability head's p_mask (B, T) for padded `[CLS] question [SEP] context [SEP]` rows: 0 where an
    answer may start or end ([CLS] and the context, token type 1 before the last [SEP]), 1 elsewhere; as
    `squad.answerability_tensors` builds it in fine-tuning."""
    mask = (inputs["token_type_ids"] == 0) | (inputs["attention_mask"] == 0)
    mask[np.arange(len(mask)), inputs["attention_mask"].sum(1) - 1] = True  # the closing [SEP]
    mask[:, 0] = False
    return {"p_mask": mask.astype(np.int64)}


def _finetuned_answer(decoded, qid: str, beam: bool, version_2: bool) -> dict:
    """One question's result from decoded SQuAD predictions: the submitted answer with its character offsets and
    its probability among the n-best (the null answer counted in by the plain SQuAD 2.0 head), or ""."""
    text, nbest = decoded.predictions[qid], decoded.nbest[qid]
    result = {"answer": "", "score": 0.0, "start": -1, "end": -1}
    spans = [c for c in nbest if c.start >= 0]
    if text and spans:
        best = next(c for c in spans if c.text == text)
        result.update(answer=text, score=best.probability, start=best.start, end=best.end)
    elif version_2 and spans:  # abstained
        null = decoded.null_odds[qid]
        no_answer = (0.5 * (1 + math.tanh(null / 2)) if beam else  # the sigmoid of the answerability logit
                     next(c.probability for c in nbest if c.start < 0))
        result.update(score=no_answer)
    if version_2:
        odds = decoded.null_odds[qid]
        result["null_odds"] = odds if math.isfinite(odds) else None
    return result


def _best_span(feature, start_logits: np.ndarray, end_logits: np.ndarray, special_ids: frozenset[int],
               max_answer_length: int) -> tuple[float, int, int]:
    """(score, first piece, last piece) of the best span of one window, start/end logits (T,) each.

    As transformers' pipeline: the softmaxes run over the context's pieces and [CLS] (special pieces such as
    <unk> excluded), then [CLS] is dropped; spans (i, j) with 0 <= j - i < max_answer_length score p_i * p_j.
    """
    context = np.array([o is not None for o in feature.token_offsets]) & ~np.isin(feature.input_ids, list(special_ids))
    allowed = context.copy()
    allowed[0] = True  # [CLS] takes part in the normalisation
    p_start, p_end = (_softmax(np.where(allowed, x.astype(np.float64), -10000.0)) * context
                      for x in (start_logits, end_logits))
    scores = np.tril(np.triu(np.outer(p_start, p_end)), max_answer_length - 1)  # (T, T): i <= j < i + max
    i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return float(scores[i, j]), int(i), int(j)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


NEEDED_HEADS: dict[str, tuple[tuple[str, ...], str]] = {
    "fill-mask": (("ForMaskedLM", "ForPreTraining"), "a masked-LM head, as pretraining leaves it (run/final)"),
    "text-classification": (("ForSequenceClassification",), "a classifier fine-tuned on texts (litebert finetune "
                            "--task text-classification, a GLUE task, ...)"),
    "token-classification": (("ForTokenClassification",), "a token classifier (litebert finetune --task "
                             "token-classification or conll2003-ner)"),
    "question-answering": (("ForQuestionAnswering",), "a QA head (litebert finetune --task squad1.1 or squad2.0)"),
}
"""Per pipeline task (feature-extraction takes any model): the class-name endings of config.json's `architectures`
that carry its head (ALBERT's and BERT's), and what that head is, for the error that names the mismatch."""


def check_head(task: str, model_dir: str | Path) -> None:
    """Refuse a model saved with another head than `task` runs on: a pretraining checkpoint given to classify
    would answer from a random classifier, and a sentence classifier given to tag reads as a token classifier
    with the same weight names. A config.json without `architectures` is loaded as it is (a new head is warned of)."""
    from litebert.export import saved_architecture

    if task not in NEEDED_HEADS or not (Path(model_dir) / "config.json").is_file():
        return  # what is not a model directory is named by the loader
    architecture = saved_architecture(model_dir)
    endings, needed = NEEDED_HEADS[task]
    if architecture is not None and not architecture.endswith(endings):
        raise ValueError(f"{model_dir}: its config.json names {architecture}, and {task} needs {needed}")


TASKS: dict[str, tuple[type, Callable]] = {
    "fill-mask": (AlbertForMaskedLM, fill_mask),
    "text-classification": (AlbertForSequenceClassification, classify),
    "question-answering": (AlbertForQuestionAnswering, answer),
    "feature-extraction": (AlbertModel, features),
    "token-classification": (AlbertForTokenClassification, tag),
}


def pipeline(task: str, model_dir: str | Path, device: str | None = None, bf16: bool | None = None,
             batch_size: int = 32, backend: str = "torch") -> Pipeline:
    """A ready pipeline for `task` on the model (and tokenizer) in `model_dir`.

    backend "torch": bf16 None means on a GPU where it supports bf16, on a CPU where bf16 inference measures
    faster than fp32 at (batch_size, 128) (measured once per machine and model shape, cached:
    `litebert.calibrate`). "torch-int8": the encoder's matmuls in int8 (`litebert.quantize`, CPU only, made
    at load: 0.1 s for ALBERT-base). "onnxruntime" / "onnxruntime-int8": CPU only, fp32 or int8 weights (the export
    is made on first use and cached, `litebert.export.cached_onnx`). bf16 applies to "torch" only."""
    from litebert import calibrate
    from litebert.export import backend_model, check_backend
    from litebert.finetune.run import finetune_settings
    from litebert.tokenizer import AlbertTokenizer

    if task not in TASKS:
        raise ValueError(f"unknown pipeline task {task!r}; known: {', '.join(TASKS)}")
    check_backend(backend, device, bf16)
    check_head(task, model_dir)
    head, run = TASKS[task]
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() and backend == "torch" else "cpu"))
    model = head.from_pretrained(Path(model_dir)).to(dev).eval()
    tokenizer = AlbertTokenizer.from_pretrained(model_dir)
    finetuned = finetune_settings(model_dir)
    if backend != "torch":
        return Pipeline(task, backend_model(model, backend), tokenizer, dev, False, batch_size, run, backend, finetuned)
    choice = calibrate.precision_choice(dev, bf16, model.config, batch_size,
                                        min(128, model.config.max_position_embeddings), "infer")
    calibrate.apply_choice(choice)
    return Pipeline(task, model, tokenizer, dev, choice["bf16"], batch_size, run, finetuned=finetuned)


# ---------------------------------------------------------------------------------------------- CLI
def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `litebert fill-mask`, `litebert classify`, `litebert tag` and `litebert answer`."""
    for name, help_text in (("fill-mask", "the most likely pieces for [MASK]"),
                            ("classify", "label texts with a fine-tuned classifier"),
                            ("tag", "the entities in texts, with a fine-tuned token classifier (NER)"),
                            ("answer", "answer questions from a context with a fine-tuned QA model")):
        p = subparsers.add_parser(name, help=help_text)
        p.add_argument("model", metavar="MODEL_DIR")
        if name == "fill-mask":
            p.add_argument("text", nargs="*", help="texts with one [MASK] each (or --file)")
            p.add_argument("--top-k", type=int, default=5)
        elif name in ("classify", "tag"):  # texts as arguments, as fill-mask takes them, or as --text
            p.add_argument("texts", nargs="*", metavar="text", help="texts (or --text, --file)")
            p.add_argument("--text", action="append", default=[], help="a text (repeatable; after the arguments)")
        if name == "classify":
            p.add_argument("--text-pair", action="append", default=None, help="its second text, for pair tasks")
            p.add_argument("--top-k", type=int, default=1,
                           help="classes per text, highest first (default 1: the top class alone; 0: every class)")
        elif name == "tag":
            p.add_argument("--aggregation", choices=("first", "none"), default="first",
                           help="first: entities of consecutive words (default); none: each word not tagged O")
        elif name == "answer":
            p.add_argument("--question")
            p.add_argument("--context")
            p.add_argument("--null-threshold", type=float, default=None,
                           help="a SQuAD 2.0 model abstains where the question's null odds exceed this (default: the "
                                "threshold chosen at fine-tuning, in the model's finetune.json)")
        p.add_argument("--file", help="one text per line (classify pairs: text<TAB>pair; answer: a JSON object "
                                      "with question and context), - for standard input; JSON lines out")
        p.add_argument("--batch-size", type=int, default=32)
        p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                       help="bf16 autocast (default: where it measures faster here, see litebert.calibrate)")
        p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
        p.add_argument("--backend", choices=BACKENDS, default="torch",
                       help="torch (default); torch-int8 (int8 matmuls in PyTorch, CPU); onnxruntime on the CPU with "
                            "fp32 or int8 weights (exported once, cached)")
        p.set_defaults(func=_command, pipeline_task={"fill-mask": "fill-mask", "classify": "text-classification",
                                                      "tag": "token-classification",
                                                      "answer": "question-answering"}[name])


CHUNK = 4096
"""Texts per pipeline call when a command reads --file: each chunk's results are printed (and flushed) before
the next is read, so memory stays bounded by the chunk and an interrupted run keeps every line it printed."""


def _command(args: argparse.Namespace) -> int:
    if args.pipeline_task == "question-answering" and not args.file:
        if args.question is None or args.context is None:
            raise ValueError("give --question and --context, or --file")
        p = pipeline(args.pipeline_task, args.model, args.device, args.bf16, args.batch_size, args.backend)
        print(json.dumps(p(args.question, args.context, null_threshold=args.null_threshold), ensure_ascii=False))
        return 0
    if args.file == "-":  # a pipe: kept in a temporary file named "stdin" for the two passes below
        with tempfile.TemporaryDirectory() as tmp:
            kept = Path(tmp) / "stdin"
            with open(kept, "wb") as f:
                shutil.copyfileobj(sys.stdin.buffer, f)
            try:
                return _command(argparse.Namespace(**{**vars(args), "file": str(kept)}))
            except ValueError as err:  # named as the user knows it: stdin:LINE
                raise ValueError(str(err).replace(str(kept), "stdin")) from None
    if args.file:
        count, paired = _scan(Path(args.file), args.pipeline_task)
        chunks = _file_chunks(Path(args.file), paired and args.pipeline_task == "text-classification",
                              args.pipeline_task == "question-answering")
    else:
        texts = [*getattr(args, "texts", []), *(args.text or [])]
        count = len(texts)
        chunks = [(texts, getattr(args, "text_pair", None))]
    if not count:
        raise ValueError(f"give texts to {args.command} (arguments, --text or --file)")
    p = pipeline(args.pipeline_task, args.model, args.device, args.bf16, args.batch_size, args.backend)
    bar = None
    if args.file:
        from litebert.runlog import counter

        bar = counter(count, "text")
    for texts, text_pairs in chunks:
        if args.pipeline_task == "fill-mask":
            results = fill_mask(p, texts, args.top_k)
        elif args.pipeline_task == "token-classification":
            results = tag(p, texts, args.aggregation)
        elif args.pipeline_task == "question-answering":
            results = answer(p, texts, text_pairs, null_threshold=args.null_threshold)
        else:
            results = classify(p, texts, text_pairs, top_k=args.top_k or None)
        key = "question" if args.pipeline_task == "question-answering" else "text"
        for text, result in zip(texts, results):
            print(json.dumps({key: text, "result": result}, ensure_ascii=False))
        sys.stdout.flush()
        if bar is not None:
            bar.update(len(texts))
    if bar is not None:
        bar.close()
    return 0


def _scan(path: Path, task: str) -> tuple[int, bool]:
    """A first pass over --file before anything runs: the number of texts (blank lines are skipped, and counted
    in a warning), whether any line holds a tab (classify: text<TAB>pair), and, for fill-mask, one [MASK] per
    line, for answer a question and a context per line (an error names the line)."""
    count = blank = 0
    first_of = {}  # True / False -> the first line with / without a tab
    with open_text(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                blank += 1
                continue
            count += 1
            first_of.setdefault("\t" in line, number)
            if task == "fill-mask" and (masks := line.count("[MASK]")) != 1:
                raise ValueError(f"{path}:{number}: {masks} [MASK] in the line, expected 1")
            if task == "question-answering":
                _question_and_context(line, f"{path}:{number}")
    if task == "text-classification" and len(first_of) == 2:
        raise ValueError(f"{path}:{first_of[False]}: no tab, but line {first_of[True]} is a pair (text<TAB>pair): "
                         f"give every line as a pair, or none")
    if blank:
        log.warning("%s: %d blank line(s) skipped", path, blank)
    return count, True in first_of


def _file_chunks(path: Path, paired: bool, questions: bool = False):
    """(texts, pairs or None) of up to CHUNK non-blank lines at a time, in file order; with `questions`,
    (questions, contexts) of JSON lines."""
    with open_text(path) as f:
        lines = (line.rstrip("\n") for line in f if line.strip())
        while chunk := list(itertools.islice(lines, CHUNK)):
            if questions:
                pairs = [_question_and_context(line, str(path)) for line in chunk]
                yield [q for q, _ in pairs], [c for _, c in pairs]
            elif paired:
                yield [ln.split("\t", 1)[0] for ln in chunk], [ln.split("\t", 1)[-1] for ln in chunk]
            else:
                yield chunk, None


def _question_and_context(line: str, where: str) -> tuple[str, str]:
    """(question, context) of a line of `answer --file`: a JSON object with string fields question and context."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not JSON ({err.msg}); expected {{\"question\": ..., \"context\": ...}}") from None
    if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("question", "context")):
        raise ValueError(f"{where}: expected a JSON object with string fields question and context")
    return row["question"], row["context"]
