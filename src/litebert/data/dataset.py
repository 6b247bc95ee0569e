"""Pretraining examples read back from shards: shuffled per epoch, sliced per rank, resumable, collated.

`PretrainingDataset` is an `IterableDataset` whose position (epoch, cursor) is part of its state: one pass
of `iter()` yields the rest of the current epoch for this rank and then moves to the next epoch, and
`state_dict()` taken between batches resumes at exactly the next example. Use it with `DataLoader(dataset,
batch_size=B, collate_fn=dataset.collator(), num_workers=0)`: the shards are memory-mapped and an example
costs a slice (plus numpy masking when dynamic), so worker processes would buy little and would hold
the cursor out of reach of `state_dict()`.

Order: epoch e visits the examples in `default_rng([seed, e]).permutation(N)`; rank r of W takes every
W-th of the first `(N // W) * W` of them, so all ranks take the same number of steps and together see each
example of the epoch at most once.

Dynamic masking draws the masks of example i in epoch e from `default_rng([seed, 2, e, i])`: the same for
a given seed, epoch and example whatever the rank, batch size or resume point, and new each epoch.
"""
from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from litebert.data.masking import MaskingOptions, MaskingVocab, mask_ngrams
from litebert.data.shards import open_shard, read_manifest, shard_infos

MASK_STREAM = 2  # after create's SPLIT_STREAM (0) and INSTANCE_STREAM (1)


@dataclass
class Example:
    """One example before batching.

    input_ids: (T,) int64, masks applied. token_type_ids: (T,) int64, 0 on `[CLS] A [SEP]`, 1 on `B [SEP]`.
    masked_lm_positions: (P,) int64 ascending. masked_lm_ids: (P,) int64, the original pieces there.
    sentence_order_label: SOP 1 = swapped / NSP 1 = random next / 0; -100 without a sentence task.
    """

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    masked_lm_positions: np.ndarray
    masked_lm_ids: np.ndarray
    sentence_order_label: int


@dataclass(frozen=True)
class Collator:
    """Pads a list of Examples into the batch pretraining takes.

    pad_token_id: id filling input_ids past each example's end.
    max_predictions: P, the width of the masked-LM tensors (max_predictions_per_seq).
    pad_to: T when given (e.g. max_seq_length, for fixed shapes); otherwise the longest example of the batch.

    Returns int64 tensors input_ids, attention_mask (1 = real piece), token_type_ids: (B, T);
    masked_lm_positions, masked_lm_ids: (B, P), 0 past the example's predictions; masked_lm_weights: (B, P)
    float32, 1.0 for a real prediction and 0.0 for padding; sentence_order_label: (B,) int64.
    """

    pad_token_id: int = 0
    max_predictions: int = 20
    pad_to: int | None = None

    def __call__(self, examples: list[Example]) -> dict[str, torch.Tensor]:
        longest = max(len(e.input_ids) for e in examples)
        length = self.pad_to if self.pad_to is not None else longest
        if longest > length:
            raise ValueError(f"an example has {longest} pieces, more than pad_to={length}")
        batch, predictions = len(examples), self.max_predictions
        input_ids = np.full((batch, length), self.pad_token_id, dtype=np.int64)
        attention_mask = np.zeros((batch, length), dtype=np.int64)
        token_type_ids = np.zeros((batch, length), dtype=np.int64)
        positions = np.zeros((batch, predictions), dtype=np.int64)
        ids = np.zeros((batch, predictions), dtype=np.int64)
        weights = np.zeros((batch, predictions), dtype=np.float32)
        for row, e in enumerate(examples):
            t, p = len(e.input_ids), len(e.masked_lm_positions)
            if p > predictions:
                raise ValueError(f"an example has {p} predictions, more than max_predictions={predictions}")
            input_ids[row, :t] = e.input_ids
            attention_mask[row, :t] = 1
            token_type_ids[row, :t] = e.token_type_ids
            positions[row, :p] = e.masked_lm_positions
            ids[row, :p] = e.masked_lm_ids
            weights[row, :p] = 1.0
        return {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(attention_mask),
            "token_type_ids": torch.from_numpy(token_type_ids),
            "masked_lm_positions": torch.from_numpy(positions),
            "masked_lm_ids": torch.from_numpy(ids),
            "masked_lm_weights": torch.from_numpy(weights),
            "sentence_order_label": torch.tensor([e.sentence_order_label for e in examples], dtype=torch.int64),
        }


class PretrainingDataset(IterableDataset):
    """The examples of one split of a `litebert data create` directory, for one rank.

    directory: the output of `data create`. split: "train" or "eval".
    seed: seed of the epoch order and of dynamic masks. shuffle: False reads in stored (corpus) order.
    rank, world_size: this process's slice for data parallelism.
    tokenizer: if given, its fingerprint and vocab_size must match the data's.
    vocab_size: if given (the model's), it must equal the data's.
    verify: check each shard's sha256 on open (its size is always checked).
    """

    def __init__(
        self,
        directory: str | Path,
        split: str = "train",
        *,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        tokenizer=None,
        vocab_size: int | None = None,
        verify: bool = True,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)
        self._check_vocabulary(tokenizer, vocab_size)
        self.split, self.seed, self.shuffle = split, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.shards = [open_shard(self.directory, info, verify) for info in shard_infos(self.manifest, split)]
        self._shard_starts = list(itertools.accumulate((s.num_examples for s in self.shards), initial=0))
        self.num_examples = self._shard_starts[-1]
        settings = self.manifest["settings"]
        self.static_masks = settings["masking"] == "static"
        self.max_seq_length = settings["max_seq_length"]
        self.masking_options = MaskingOptions(settings["masked_lm_prob"], settings["max_predictions_per_seq"],
                                              settings["ngram"], settings.get("whole_word", True))
        special = self.manifest["special_ids"]
        self.pad_token_id = special["pad"]
        self.masking_vocab = MaskingVocab.build(self.manifest["tokenizer"]["vocab_size"], special["mask"],
                                                list(special.values()))
        self.epoch, self.cursor = 0, 0
        self._order_epoch, self._order = -1, np.zeros(0, dtype=np.int64)

    def _check_vocabulary(self, tokenizer, vocab_size: int | None) -> None:
        data = self.manifest["tokenizer"]
        if tokenizer is not None and tokenizer.fingerprint() != data["fingerprint"]:
            given = getattr(tokenizer, "vocab_file", "the tokenizer given")
            raise ValueError(f"{self.directory} was made with another tokenizer than {given} (fingerprint "
                             f"{data['fingerprint'][:12]}, given {tokenizer.fingerprint()[:12]})")
        for name, size in (("tokenizer", getattr(tokenizer, "vocab_size", None)), ("model", vocab_size)):
            if size is not None and size != data["vocab_size"]:
                raise ValueError(f"{self.directory} has vocab_size {data['vocab_size']}, the {name} has {size}")

    def __len__(self) -> int:
        """Examples this rank sees per epoch."""
        return self.num_examples // self.world_size

    def order(self, epoch: int) -> np.ndarray:
        """Global indexes of this rank's examples in `epoch`, in visiting order. Shape (len(self),)."""
        if epoch != self._order_epoch:
            if self.shuffle:
                order = np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)
            else:
                order = np.arange(self.num_examples)
            self._order = order[: len(self) * self.world_size][self.rank::self.world_size]
            self._order_epoch = epoch
        return self._order

    def example(self, index: int, epoch: int = 0) -> Example:
        """Example `index` (0..num_examples-1, stored order), masked as in `epoch`."""
        shard_id = bisect.bisect_right(self._shard_starts, index) - 1
        shard, local = self.shards[shard_id], index - self._shard_starts[shard_id]
        arrays = shard.arrays
        start, end = int(arrays["offsets"][local]), int(arrays["offsets"][local + 1])
        ids = np.asarray(arrays["input_ids"][start:end], dtype=np.int64)
        if self.static_masks:
            m0, m1 = int(arrays["mask_offsets"][local]), int(arrays["mask_offsets"][local + 1])
            positions = np.asarray(arrays["masked_positions"][m0:m1], dtype=np.int64)
            shown = np.asarray(arrays["masked_inputs"][m0:m1], dtype=np.int64)
        else:
            rng = np.random.default_rng([self.seed, MASK_STREAM, epoch, index])
            word_start = np.asarray(arrays["word_start"][start:end], dtype=bool)
            spans = mask_ngrams(ids, word_start, self.masking_options, self.masking_vocab, rng)
            positions, shown = spans.positions, spans.replacement_ids
        inputs = ids.copy()
        inputs[positions] = shown
        token_type_ids = np.zeros(len(ids), dtype=np.int64)
        token_type_ids[int(arrays["a_lengths"][local]):] = 1
        return Example(inputs, token_type_ids, positions, ids[positions], int(arrays["labels"][local]))

    def __iter__(self):
        """The rest of the current epoch for this rank; then the epoch advances and the cursor resets."""
        if get_worker_info() is not None:
            # A loader worker would advance its own copy of the cursor, out of reach of state_dict().
            raise RuntimeError("PretrainingDataset keeps its position in the main process: use num_workers=0")
        order = self.order(self.epoch)
        while self.cursor < len(order):
            index = int(order[self.cursor])
            self.cursor += 1
            yield self.example(index, self.epoch)
        self.epoch, self.cursor = self.epoch + 1, 0

    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` from its first example."""
        self.epoch, self.cursor = epoch, 0

    def state_dict(self) -> dict:
        """Position after the last example yielded; with the same data, seed, rank and world size,
        `load_state_dict` makes the next example yielded the one that would have come next."""
        return {"epoch": self.epoch, "cursor": self.cursor, "seed": self.seed, "rank": self.rank,
                "world_size": self.world_size, "num_examples": self.num_examples}

    def load_state_dict(self, state: dict) -> None:
        for key in ("seed", "rank", "world_size", "num_examples"):
            if state[key] != getattr(self, key):
                raise ValueError(f"cannot resume: the saved position has {key}={state[key]}, "
                                 f"this dataset has {getattr(self, key)}")
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])

    def piece_counts(self) -> np.ndarray:
        """How often each piece occurs in this split's stored (unmasked) sequences, all ranks' examples
        together; special pieces count 0 (they are never predicted). Shape (vocab_size,) int64."""
        vocab_size = self.manifest["tokenizer"]["vocab_size"]
        counts = np.zeros(vocab_size, dtype=np.int64)
        for shard in self.shards:
            counts += np.bincount(np.asarray(shard.arrays["input_ids"]), minlength=vocab_size)[:vocab_size]
        counts[self.masking_vocab.special_ids] = 0
        return counts

    def most_frequent_piece(self) -> int:
        """The non-special piece that occurs most often in this split (the unigram model's one guess)."""
        return int(np.argmax(self.piece_counts()))

    def collator(self, pad_to_max_length: bool = False) -> Collator:
        """The Collator for this data: P = max_predictions_per_seq, T = max_seq_length or the batch max."""
        return Collator(self.pad_token_id, self.masking_options.max_predictions_per_seq,
                        self.max_seq_length if pad_to_max_length else None)

