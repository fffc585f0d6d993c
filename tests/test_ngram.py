"""The n-gram baseline: exact normalisation, hand-computed probabilities, the RNN's targets, real text."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.data.corpora import TinyShakespeareDataModule
from rnnlab.data.streams import BPTTWindows, batchify
from rnnlab.errors import ConfigError
from rnnlab.models.ngram import NGramLM, estimate_discounts

A, B, C, D = 0, 1, 2, 3  # a toy vocabulary of four tokens; D never occurs in training


def random_corpus(seed: int, vocab_size: int, length: int) -> np.ndarray:
    """Zipf-ish tokens with some repeated phrases, so that every order has seen and unseen contexts."""
    rng = np.random.default_rng(seed)
    p = 1 / np.arange(1, vocab_size + 1)
    tokens = rng.choice(vocab_size, size=length, p=p / p.sum())
    phrase = rng.choice(vocab_size, size=6)
    for start in rng.integers(0, length - 6, size=length // 20):
        tokens[start:start + 6] = phrase
    return tokens


MODELS = [(order, smoothing, extra) for order in range(1, 6)
          for smoothing, extra in (("kneser_ney", {}), ("kneser_ney", {"discount": 0.75}),
                                   ("add_k", {"k": 1.0}), ("add_k", {"k": 0.05}))]


@pytest.mark.parametrize(("order", "smoothing", "extra"), MODELS,
                         ids=[f"{s}{e or ''}-n{o}" for o, s, e in MODELS])
def test_distribution_sums_to_one_over_the_vocabulary(order, smoothing, extra):
    vocab_size = 12  # token 11 never occurs: the distribution still covers it
    model = NGramLM(vocab_size, order, smoothing, **extra).fit(random_corpus(order, vocab_size - 1, 3000))
    rng = np.random.default_rng(100 + order)
    contexts = [rng.integers(0, vocab_size, size=rng.integers(0, 7)) for _ in range(40)]
    contexts += [[], [11] * 4, [0, 0, 0, 0]]
    for context in contexts:
        p = model.distribution(context)
        assert p.shape == (vocab_size,)
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
        assert (p > 0).all()  # every token possible, even one never seen in training


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 5), st.sampled_from(["kneser_ney", "add_k"]))
def test_nll_is_minus_log_of_the_distribution_at_each_target(seed, order, smoothing):
    """The vectorised scorer and the per-context distribution agree, context cut at the row start."""
    vocab_size = 7
    model = NGramLM(vocab_size, order, smoothing, k=0.5).fit(random_corpus(seed % 1000, vocab_size, 400))
    row = np.random.default_rng(seed).integers(0, vocab_size, size=30)
    nll = model.nll(row)
    assert nll.shape == (29,)
    for t in range(1, 30):
        context = row[max(0, t - order + 1):t]
        assert nll[t - 1] == pytest.approx(-math.log(model.distribution(context)[row[t]]), rel=1e-10)
        assert model.log_prob(context, row[t]) == pytest.approx(-nll[t - 1], rel=1e-10)


def test_bigram_add_one_perplexity_by_hand():
    # train "a b a b a c": bigrams ab ×2, ba ×2, ac ×1; c(a·) = 3, c(b·) = 2, V = 3
    model = NGramLM(3, order=2, smoothing="add_k", k=1.0).fit([A, B, A, B, A, C])
    # test "a b c": p(b|a) = (2 + 1)/(3 + 3) = 1/2,  p(c|b) = (0 + 1)/(2 + 3) = 1/5
    assert model.nll([A, B, C]) == pytest.approx([math.log(2), math.log(5)])
    assert model.perplexity([A, B, C]) == pytest.approx(math.sqrt(2 * 5))


def test_bigram_kneser_ney_by_hand():
    """Interpolated Kneser–Ney, one discount d = 1/2, V = 4 (d unseen), train "a b a b c a"."""
    model = NGramLM(4, order=2, smoothing="kneser_ney", discount=0.5).fit([A, B, A, B, C, A])
    V, d = 4, 0.5
    # unigram level, continuation counts N1+(·w): a after {b, c} = 2, b after {a} = 1, c after {b} = 1,
    # d = 0; total 4; three word types are discounted, so γ·total = 3d
    total, mass = 4, 3 * d
    p1 = {A: (2 - d + mass / V) / total,   # 0.46875
          B: (1 - d + mass / V) / total,   # 0.21875
          C: (1 - d + mass / V) / total,   # 0.21875
          D: (0 + mass / V) / total}       # 0.09375: unseen, from the uniform base
    assert sum(p1.values()) == pytest.approx(1)
    # bigram level, raw counts: after a: ab ×2 (the final a has no successor); after b: ba, bc; after c: ca
    p_b_after_a = (2 - d + d * p1[B]) / 2             # c(a·) = 2, one type discounted
    p_c_after_b = (1 - d + 2 * d * p1[C]) / 2         # c(b·) = 2, two types discounted
    p_d_after_c = (0 + d * p1[D]) / 1                 # c(c·) = 1
    p_a_after_d = p1[A]                               # context d never seen: the unigram level as it is
    expected = [p_b_after_a, p_c_after_b, p_d_after_c, p_a_after_d]
    assert expected == pytest.approx([0.8046875, 0.359375, 0.046875, 0.46875])  # the arithmetic, spelt out
    assert model.nll([A, B, C, D, A]) == pytest.approx([-math.log(p) for p in expected])
    assert model.perplexity([A, B, C, D, A]) == pytest.approx(math.exp(-np.mean(np.log(expected))))
    assert model.distribution([A]) == pytest.approx(
        [d * p1[A] / 2, p_b_after_a, d * p1[C] / 2, d * p1[D] / 2])


def test_modified_discounts_follow_chen_goodman():
    # counts-of-counts n1..n4 = 4, 2, 2, 1
    counts = np.array([1, 1, 1, 1, 2, 2, 3, 3, 4, 7])
    y = 4 / (4 + 2 * 2)
    assert estimate_discounts(counts) == pytest.approx([1 - 2 * y * 2 / 4, 2 - 3 * y * 2 / 2, 3 - 4 * y * 1 / 2])
    # no counts of 1 to 4: every formula is 0/0, and every discount falls back to 1/2
    assert estimate_discounts(np.array([5, 9])) == pytest.approx([0.5, 0.5, 0.5])
    # n1..n4 = 2, 0, 1, 1: Y = 1, D_1 = 1; D_2 = 2 − 3·1/0 and D_3+ = 3 − 4 = −1 are unusable: Y
    assert estimate_discounts(np.array([1, 1, 3, 4])) == pytest.approx([1, 1, 1])


def test_scores_exactly_the_rnn_targets_within_each_stream():
    """On a (B, L) split matrix: the BPTT windows' targets, each row's context never reaching into another."""
    stream = torch.from_numpy(random_corpus(3, 9, 2000))
    model = NGramLM(9, order=4).fit(stream[:1500])
    matrix = batchify(stream[1500:], 5)  # (5, 100)
    nll = model.nll(matrix)
    windows = BPTTWindows(matrix, bptt=16)
    targets = torch.cat([windows[i]["targets"] for i in range(len(windows))], dim=1)
    assert nll.shape == tuple(targets.shape) == (5, 99)
    for b in range(5):  # each row scored as a stream of its own
        assert nll[b] == pytest.approx(model.nll(matrix[b]))
    changed = matrix.clone()
    changed[0, -3:] = (changed[0, -3:] + 1) % 9  # the end of row 0 is not the context of row 1
    assert model.nll(changed)[1:] == pytest.approx(nll[1:])


def test_fit_on_rows_counts_no_ngram_across_rows():
    model = NGramLM(4, order=2, smoothing="add_k", k=1.0).fit(np.array([[A, B], [C, A]]))
    # bigrams ab and ca only; b→c would cross rows, so the context b is unseen and p(c | b) is the
    # unigram's (c(c) + 1)/(N + 4) = 2/8, not the bigram's (1 + 1)/(1 + 4) it would be across rows
    assert model.distribution([B])[C] == pytest.approx(2 / 8)
    assert model.distribution([A])[B] == pytest.approx((1 + 1) / (1 + 4))


def test_sampling_is_reproducible_and_follows_the_counts():
    model = NGramLM(4, order=2, smoothing="add_k", k=1e-6).fit([A, B, C] * 50)
    assert model.sample([A], 12, seed=1) == model.sample([A], 12, seed=1)
    assert model.sample([A], 6, seed=2) == [B, C, A, B, C, A]  # a near-deterministic chain


def test_bad_settings_name_the_key():
    with pytest.raises(ConfigError, match="model.order=0 is invalid"):
        NGramLM(5, order=0)
    with pytest.raises(ConfigError, match="model.smoothing='witten_bell' is invalid"):
        NGramLM(5, smoothing="witten_bell")
    with pytest.raises(ConfigError, match=r"model.discount=1.5 is invalid: must be in \(0, 1\]"):
        NGramLM(5, discount=1.5)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 5\)"):
        NGramLM(5).fit([1, 2, 7])


@pytest.fixture(scope="module")
def shakespeare():
    data = TinyShakespeareDataModule(root=str(SHARED_DATA / "tinyshakespeare"), download=False, cache_dir=None)
    data.setup()
    return data


@pytest.mark.parametrize("order", [3, 5])
def test_kneser_ney_beats_add_k_on_held_out_shakespeare(order, shakespeare):
    train, val = shakespeare.streams["train"], shakespeare.splits["val"].tokens
    kneser_ney = NGramLM(shakespeare.vocab_size, order).fit(train).nll(val).mean()
    for k in (1.0, 0.1, 0.01):
        add_k = NGramLM(shakespeare.vocab_size, order, "add_k", k=k).fit(train).nll(val).mean()
        assert kneser_ney < add_k, k
    # and it is a real language model of the text: far below uniform (log 66 = 4.19 nats/char)
    assert kneser_ney < {3: 2.1, 5: 1.6}[order]
