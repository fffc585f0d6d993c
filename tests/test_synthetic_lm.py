"""The synthetic corpus's Bayes-optimal NLL, checked against independent computations."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
import torch

from rnnlab.data.synthetic_lm import AgreementSource, SourceSpec, SyntheticLMDataModule
from rnnlab.errors import ConfigError

SMALL = SourceSpec(agreement_classes=2, subjects_per_class=2, verbs_per_class=3, filler_classes=2,
                   filler_vocab=3, distance_min=0, distance_max=3, emission_concentration=1.0)


def brute_force_sentence_probability(source: AgreementSource, sentence: list[int]) -> float:
    """p(sentence) straight from the generative story, summing the HMM over every class path."""
    s = source.spec
    subject, *fillers, verb, eos = sentence
    assert eos == source.eos_id
    a = (subject - source.subject_offset) // s.subjects_per_class
    if (verb - source.verb_offset) // s.verbs_per_class != a:
        return 0.0
    words = [w - source.filler_offset for w in fillers]
    p_words = 0.0
    for path in itertools.product(range(s.filler_classes), repeat=len(words)):
        p = source.initial[path[0]] if path else 1.0
        for i, (c, w) in enumerate(zip(path, words)):
            if i:
                p *= source.transition[path[i - 1], c]
            p *= source.emission[c, w]
        p_words += p
    return (1 / (s.agreement_classes * s.subjects_per_class) * source.distance_probs[len(words)]
            * p_words / s.verbs_per_class)


def split_sentences(tokens, eos_id):
    sentence = []
    for token in tokens:
        sentence.append(int(token))
        if token == eos_id:
            yield sentence
            sentence = []


def test_forward_filter_equals_brute_force_per_sentence():
    source = AgreementSource(SMALL)
    tokens, nll = source.sample_streams(1, 400, seed=3)
    position = 0
    checked = 0
    for sentence in split_sentences(tokens[0], source.eos_id):
        exact = -math.log(brute_force_sentence_probability(source, sentence))
        assert nll[0, position: position + len(sentence)].sum() == pytest.approx(exact, rel=1e-9)
        position += len(sentence)
        checked += 1
    assert checked > 30


def test_sample_mean_nll_matches_enumerated_entropy_rate():
    source = AgreementSource(SMALL)
    rate = source.entropy_rate_by_enumeration()
    tokens, nll = source.sample_streams(8, 25_000, seed=11)
    # i.i.d. sentences: a ratio estimator with a standard error from per-sentence sums
    per_sentence_nll, per_sentence_len = [], []
    for b in range(len(tokens)):
        ends = np.flatnonzero(tokens[b] == source.eos_id)
        starts = np.r_[0, ends[:-1] + 1]
        per_sentence_nll += [nll[b, s:e + 1].sum() for s, e in zip(starts, ends)]
        per_sentence_len += list(ends - starts + 1)
    x, n = np.array(per_sentence_nll), np.array(per_sentence_len, dtype=float)
    estimate = x.sum() / n.sum()
    stderr = np.std(x - estimate * n, ddof=1) / (n.mean() * math.sqrt(len(x)))
    assert abs(estimate - rate) < 4 * stderr, (estimate, rate, stderr)
    assert 0 < rate < math.log(source.vocab_size)


def test_distance_distribution_and_hazard():
    source = AgreementSource(SourceSpec(distance_min=2, distance_max=5))
    assert source.distance_probs[:2].sum() == 0
    assert source.distance_probs[2:] == pytest.approx(np.full(4, 0.25))
    assert source.hazard[5] == pytest.approx(1.0)  # at the maximum the verb must come
    geometric = AgreementSource(SourceSpec(distance_min=1, distance_max=40,
                                           distance_distribution="geometric", geometric_p=0.2))
    # truncated at 40: h(k) = p / (1 − (1 − p)^(max − k + 1)), rising to 1 at the cap
    k = np.arange(1, 41)
    assert geometric.hazard[1:] == pytest.approx(0.2 / (1 - 0.8 ** (40 - k + 1)), rel=1e-9)


def test_streams_start_at_sentence_boundaries_and_agree():
    source = AgreementSource(SourceSpec())
    tokens, _ = source.sample_streams(4, 500, seed=0)
    s = source.spec
    for row in tokens:
        assert source.subject_offset <= row[0] < source.filler_offset
        for sentence in split_sentences(row, source.eos_id):
            subject_class = (sentence[0] - source.subject_offset) // s.subjects_per_class
            verb_class = (sentence[-2] - source.verb_offset) // s.verbs_per_class
            assert verb_class == subject_class
            assert s.distance_min <= len(sentence) - 3 <= s.distance_max


def test_distance_buckets_partition_the_verbs_by_their_distance():
    data = SyntheticLMDataModule(train_tokens=4000, val_tokens=3000, test_tokens=800, distance_min=1,
                                 distance_max=24, distance_buckets=[8, 16])
    data.setup()
    assert data.distance_ranges == [(1, 8), (9, 16), (17, 24)]
    val = data.splits["val"]
    buckets = [val.groups[f"agree_d{lo:02d}-{hi:02d}"].mask for lo, hi in data.distance_ranges]
    assert not (buckets[0] & buckets[1]).any() and not (buckets[1] & buckets[2]).any()
    every_verb = val.groups["agreement"].mask.clone()
    every_verb[:, 0] = False  # a stream's first token has no subject before it
    assert torch.equal(buckets[0] | buckets[1] | buckets[2], every_verb)
    # each bucketed verb sits exactly D fillers after its subject, D in the bucket's range
    source = data.source
    for (lo, hi), mask in zip(data.distance_ranges, buckets):
        for b, t in mask.nonzero().tolist()[:50]:
            row = val.tokens[b].tolist()
            start = max(i for i in range(t) if row[i] < source.filler_offset)  # the subject
            assert lo <= t - start - 1 <= hi
            assert all(source.filler_offset <= w < source.verb_offset for w in row[start + 1 : t])
    classes = val.groups["agreement"].choice_classes
    assert classes.tolist() == [c for c in range(4) for _ in range(4)]


def test_datamodule_is_reproducible_and_splits_differ():
    first, second = SyntheticLMDataModule(train_tokens=4000, val_tokens=800, test_tokens=800), \
        SyntheticLMDataModule(train_tokens=4000, val_tokens=800, test_tokens=800)
    first.setup(), second.setup()
    assert torch.equal(first.splits["train"].tokens, second.splits["train"].tokens)
    assert not torch.equal(first.splits["val"].tokens, first.splits["test"].tokens)
    assert first.optimal_nll("val") == second.optimal_nll("val")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"bptt": 0}, "data.bptt=0 is invalid"),
    ({"distance_min": 5, "distance_max": 2}, "data.distance_min=5, data.distance_max=2 are invalid"),
    ({"distance_distribution": "zipf"}, "data.distance_distribution='zipf' is invalid"),
    ({"distnce_max": 3}, "data.distnce_max is not an option of data=synthetic_lm"),
    ({"distance_buckets": [0]}, "data.distance_buckets=[0] is invalid"),
])
def test_bad_data_settings(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        SyntheticLMDataModule(**kwargs)
