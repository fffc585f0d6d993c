"""rnnlab.sampling: temperature, top-k and nucleus filtering, the draw, and the one validator of their settings."""

from __future__ import annotations

import math
import re

import pytest
import torch

from rnnlab.errors import ConfigError
from rnnlab.sampling import check_sampling, draw, filter_logits

PROBS = torch.tensor([0.15, 0.5, 0.05, 0.3])  # sorted: 0.5 (id 1), 0.3 (id 3), 0.15 (id 0), 0.05 (id 2)


def kept(logits: torch.Tensor | None = None, **settings) -> set[int]:
    logits = PROBS.log() if logits is None else logits
    return set(torch.isfinite(filter_logits(logits, **settings)).nonzero().flatten().tolist())


def test_top_p_keeps_the_smallest_nucleus_and_top_k_the_k_largest():
    assert kept(top_p=0.45) == {1}  # the most probable token alone holds 0.5 ≥ 0.45
    assert kept(top_p=0.6) == {1, 3}
    assert kept(top_p=0.9) == {1, 3, 0}
    assert kept(top_p=0.99) == {0, 1, 2, 3}
    assert kept(top_k=2) == {1, 3}
    assert kept(top_k=3) == {1, 3, 0}
    assert kept(top_k=2, top_p=0.45) == {1}
    assert kept(top_k=10) == {0, 1, 2, 3}  # k beyond the vocabulary: all of it


def test_null_zero_and_one_mean_no_limit_and_leave_the_logits_as_they_are():
    logits = torch.randn(3, 7)
    for settings in ({}, {"top_k": None, "top_p": None}, {"top_k": 0}, {"top_p": 1.0}, {"top_k": 0, "top_p": 1}):
        assert torch.equal(filter_logits(logits, **settings), logits)


def test_filtering_is_per_row_of_a_batch():
    logits = torch.stack([PROBS.log(), PROBS.flip(0).log()])  # the second row: ids reversed
    kept_rows = torch.isfinite(filter_logits(logits, top_p=0.6))
    assert kept_rows.tolist() == [[False, True, False, True], [True, False, True, False]]


def test_the_nucleus_keeps_at_least_the_most_probable_token():
    logits = torch.randn(50, 30) * 5
    for top_p in (1e-9, 0.01):
        kept_rows = torch.isfinite(filter_logits(logits, top_p=top_p))
        assert kept_rows.sum(-1).tolist() == [1] * 50
        assert kept_rows.float().argmax(-1).tolist() == logits.argmax(-1).tolist()
    dominant = torch.tensor([10.0, 0.0, 0.0])  # p ≈ 0.9999: the nucleus is that token for any top_p < 1
    assert kept(dominant, top_p=0.999) == {0}


def test_draws_follow_the_renormalised_nucleus():
    generator = torch.Generator().manual_seed(0)
    draws = draw(PROBS.log().expand(4000, 4), top_p=0.6, generator=generator).tolist()
    assert set(draws) == {1, 3}
    assert draws.count(1) / len(draws) == pytest.approx(0.5 / 0.8, abs=0.03)  # 0.5 / 0.8 and 0.3 / 0.8


def test_the_nucleus_is_taken_of_the_tempered_distribution():
    logits = PROBS.log().expand(500, 4)
    # τ = 0.5: p² ∝ 0.25, 0.09, 0.0225, 0.0025, so token 1 alone holds 0.25 / 0.365 ≈ 0.68 ≥ 0.6
    assert set(draw(logits, 0.5, top_p=0.6, generator=torch.Generator().manual_seed(0)).tolist()) == {1}
    assert set(draw(logits, 1.0, top_p=0.6, generator=torch.Generator().manual_seed(0)).tolist()) == {1, 3}


def test_temperature_zero_is_the_argmax_and_its_limit():
    logits = torch.randn(2, 5, 40) * 3  # (B, T, V)
    argmax = logits.argmax(-1)
    assert torch.equal(draw(logits, temperature=0), argmax)
    assert torch.equal(draw(logits, temperature=0, top_k=3, top_p=0.2), argmax)
    assert torch.equal(draw(logits, temperature=1e-4, generator=torch.Generator().manual_seed(1)), argmax)
    assert torch.equal(draw(logits, top_k=1, generator=torch.Generator().manual_seed(1)), argmax)
    assert not torch.equal(draw(logits, temperature=1.0, generator=torch.Generator().manual_seed(1)), argmax)


def test_a_seeded_generator_repeats_the_draws():
    logits = torch.randn(8, 30)
    first = draw(logits, 1.5, generator=torch.Generator().manual_seed(3))
    assert first.shape == (8,) and first.dtype == torch.long
    assert torch.equal(draw(logits, 1.5, generator=torch.Generator().manual_seed(3)), first)


@pytest.mark.parametrize("prefix", ["", "task."])
def test_each_bad_setting_is_a_one_line_error_naming_the_key_with_its_prefix(prefix):
    bad = [({"temperature": -1}, "temperature=-1 is invalid: must be a number ≥ 0 (0 = greedy)"),
           ({"temperature": math.nan}, "temperature=nan is invalid"),
           ({"temperature": math.inf}, "temperature=inf is invalid"),
           ({"temperature": "hot"}, "temperature=hot is invalid"),
           ({"temperature": True}, "temperature=True is invalid"),
           ({"top_k": -2}, "top_k=-2 is invalid: must be a positive integer (null or 0: no limit)"),
           ({"top_k": 2.5}, "top_k=2.5 is invalid"),
           ({"top_k": True}, "top_k=True is invalid"),
           ({"top_p": 0}, "top_p=0 is invalid: must be in (0, 1] (null or 1: no limit)"),
           ({"top_p": 1.5}, "top_p=1.5 is invalid"),
           ({"top_p": math.nan}, "top_p=nan is invalid")]
    for settings, message in bad:
        with pytest.raises(ConfigError, match="^" + re.escape(prefix + message)) as error:
            check_sampling(**{"temperature": 1.0, **settings}, prefix=prefix)
        assert "\n" not in str(error.value)


def test_the_edge_values_are_accepted():
    for temperature, top_k, top_p in ((0, None, None), (0.0, 0, 1), (2, 1, 1.0), (1.0, 50, 1e-3)):
        check_sampling(temperature, top_k, top_p)
