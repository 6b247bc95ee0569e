"""Statistics of n-gram whole-word masking over >= 100k pieces, on a synthetic vocabulary."""
import numpy as np
import pytest

from litebert.data.masking import MaskingOptions, MaskingVocab, choose_spans, mask_ngrams, word_boundaries

VOCAB_SIZE = 1000
PAD, UNK, CLS, SEP, MASK = range(5)
SPECIALS = [PAD, UNK, CLS, SEP, MASK]
# Pieces 5..599 begin a word ("▁the"), 600..999 continue one ("ing"): words of 1.7 pieces on average.
WORD_START = np.zeros(VOCAB_SIZE, dtype=bool)
WORD_START[:600] = True


def random_pair(rng: np.random.Generator, length: int) -> np.ndarray:
    """`[CLS] A [SEP] B [SEP]` of random pieces, split at a random point. Shape (length,)."""
    ids = rng.integers(5, VOCAB_SIZE, size=length)
    split = int(rng.integers(2, length - 2))
    ids[0], ids[split], ids[-1] = CLS, SEP, SEP
    return ids


def reference_words(ids: np.ndarray) -> list[list[int]]:
    """Words as position lists, by a plain loop: a start piece or the piece after a special opens a word."""
    words: list[list[int]] = []
    previous_special = True
    for position, piece in enumerate(ids):
        if piece in SPECIALS:
            previous_special = True
            continue
        if WORD_START[piece] or previous_special:
            words.append([position])
        else:
            words[-1].append(position)
        previous_special = False
    return words


def run_masking(options: MaskingOptions, length: int, total_pieces: int, seed: int = 0):
    """Mask random sequences until `total_pieces` pieces; return (sequences, spans) lists."""
    rng = np.random.default_rng(seed)
    vocab = MaskingVocab.build(VOCAB_SIZE, MASK, SPECIALS)
    sequences, results = [], []
    for _ in range(total_pieces // length):
        ids = random_pair(rng, length)
        sequences.append(ids)
        results.append(mask_ngrams(ids, WORD_START[ids], options, vocab, rng))
    return sequences, results


@pytest.fixture(scope="module")
def bert_128():
    """BERT's phase-1 setting: length 128, 20 predictions (target 19), 600k pieces (~30k spans, so a
    share's standard error is ~0.25 point)."""
    return run_masking(MaskingOptions(0.15, 20, 3), length=128, total_pieces=600_000)


def test_masked_fraction_is_15_percent(bert_128):
    sequences, results = bert_128
    masked = sum(len(r.positions) for r in results)
    pieces = sum(len(s) for s in sequences)
    assert abs(masked / pieces - 0.15) < 0.005


def test_replacement_80_10_10(bert_128):
    sequences, results = bert_128
    shown = np.concatenate([r.replacement_ids for r in results])
    original = np.concatenate([s[r.positions] for s, r in zip(sequences, results)])
    mask = np.mean(shown == MASK)
    kept = np.mean(shown == original)
    random = 1.0 - mask - kept
    assert abs(mask - 0.8) < 0.01 and abs(kept - 0.1) < 0.01 and abs(random - 0.1) < 0.01
    # Random replacements are real pieces, never specials.
    assert not np.isin(shown[(shown != MASK) & (shown != original)], SPECIALS).any()


def test_ngram_lengths_follow_one_over_n(bert_128):
    _, results = bert_128
    lengths = np.concatenate([r.ngram_lengths for r in results])
    shares = np.bincount(lengths, minlength=4)[1:] / len(lengths)
    np.testing.assert_allclose(shares, np.array([6, 3, 2]) / 11, atol=0.01)


def test_ngram_lengths_at_length_512_with_80_predictions():
    _, results = run_masking(MaskingOptions(0.15, 80, 3), length=512, total_pieces=307_200, seed=1)
    lengths = np.concatenate([r.ngram_lengths for r in results])
    shares = np.bincount(lengths, minlength=4)[1:] / len(lengths)
    np.testing.assert_allclose(shares, np.array([6, 3, 2]) / 11, atol=0.01)


def test_no_word_partly_masked_and_specials_never(bert_128):
    sequences, results = bert_128
    for ids, result in zip(sequences, results):
        masked = set(result.positions.tolist())
        assert not masked & set(np.flatnonzero(np.isin(ids, SPECIALS)).tolist())
        for word in reference_words(ids):
            covered = [p in masked for p in word]
            assert all(covered) or not any(covered), (ids[word], covered)


def test_cap_binds_at_512_and_is_filled_exactly():
    # ALBERT's setting: round(512 * 0.15) = 77 > 20, so every sequence gets exactly 20 predictions.
    _, results = run_masking(MaskingOptions(0.15, 20, 3), length=512, total_pieces=51_200, seed=2)
    assert {len(r.positions) for r in results} == {20}


def test_positions_sorted_unique_and_deterministic():
    options = MaskingOptions(0.15, 20, 3)
    vocab = MaskingVocab.build(VOCAB_SIZE, MASK, SPECIALS)
    ids = random_pair(np.random.default_rng(5), 128)
    a = mask_ngrams(ids, WORD_START[ids], options, vocab, np.random.default_rng(7))
    b = mask_ngrams(ids, WORD_START[ids], options, vocab, np.random.default_rng(7))
    c = mask_ngrams(ids, WORD_START[ids], options, vocab, np.random.default_rng(8))
    assert np.array_equal(a.positions, b.positions) and np.array_equal(a.replacement_ids, b.replacement_ids)
    assert not np.array_equal(a.positions, c.positions)
    assert np.all(np.diff(a.positions) > 0)


def test_every_sequence_gets_a_prediction():
    options = MaskingOptions(0.15, 20, 3)
    vocab = MaskingVocab.build(VOCAB_SIZE, MASK, SPECIALS)
    rng = np.random.default_rng(3)
    for _ in range(200):
        ids = random_pair(rng, 6)
        assert len(mask_ngrams(ids, WORD_START[ids], options, vocab, rng).positions) >= 1


def test_words_do_not_cross_sep():
    # A continuation piece right after [SEP] (B truncated from the front) starts its own word.
    ids = np.array([CLS, 10, 700, SEP, 701, 11, SEP])
    starts, ends, segment = word_boundaries(WORD_START[ids], np.isin(ids, SPECIALS))
    assert (starts, ends, segment) == ([1, 4, 5], [3, 5, 6], [1, 2, 2])


def test_spans_are_placed_uniformly_among_the_free_windows_of_one_segment():
    # Ten one-piece words, segments A = words 0-4 and B = 5-9. A first span of 2 words has 8 windows
    # that stay in one segment (never at word 4 or 9, which would cross [SEP]), each equally likely.
    starts, ends, segment = list(range(10)), list(range(1, 11)), [1] * 5 + [2] * 5
    rng = np.random.default_rng(0)
    firsts = np.zeros(10, dtype=np.int64)
    for _ in range(16_000):
        spans, _ = choose_spans(starts, ends, segment, target=4, cap=4, ngram=2, rng=rng)
        covered = [w for first, n in spans for w in range(first, first + n)]
        assert len(covered) == len(set(covered)) <= 4
        assert all(segment[first] == segment[first + n - 1] for first, n in spans)
        if spans[0][1] == 2:
            firsts[spans[0][0]] += 1
    assert firsts[4] == firsts[9] == 0
    shares = firsts[[0, 1, 2, 3, 5, 6, 7, 8]] / firsts.sum()
    # p(n=2) = 1/3: ~5,300 spans, so each share's standard error is ~0.45 point around 12.5%.
    assert np.abs(shares - 1 / 8).max() < 0.02


def test_zero_probability_masks_nothing():
    options = MaskingOptions(0.0, 20, 3)
    vocab = MaskingVocab.build(VOCAB_SIZE, MASK, SPECIALS)
    ids = random_pair(np.random.default_rng(0), 64)
    assert len(mask_ngrams(ids, WORD_START[ids], options, vocab, np.random.default_rng(0)).positions) == 0
