"""Every attention variant: its formula, weights that sum to 1 and are exactly 0 on padding, local-p's window."""

from __future__ import annotations

import pytest
import torch

from rnnlab.nn.attention import Attention

pytestmark = pytest.mark.usefixtures("one_thread")


B, S, T, Q = 3, 6, 4, 8
LENGTHS = torch.tensor([6, 3, 1])
VARIANTS = [
    ("bahdanau", {}), ("luong_dot", {}), ("luong_general", {}), ("luong_concat", {}),
    ("local", {"window": 2}), ("local", {"window": 1, "score": "dot"}), ("local", {"window": 3, "score": "concat"}),
]
IDS = [f"{kind}-{options.get('score', '')}{options.get('window', '')}" for kind, options in VARIANTS]


def padded_states(generator, M=Q):
    states = torch.randn(B, S, M, generator=generator)
    return states * (torch.arange(S)[None, :, None] < LENGTHS[:, None, None])  # 0 on padding, as encoders give


@pytest.mark.parametrize(("kind", "options"), VARIANTS, ids=IDS)
def test_weights_are_a_distribution_over_real_tokens_only(kind, options):
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    attention = Attention(kind, Q, Q, **options)
    states, queries = padded_states(g), torch.randn(B, T, Q, generator=g)
    context, weights = attention(queries, attention.remember(states, LENGTHS))
    assert weights.shape == (B, T, S) and context.shape == (B, T, Q)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, T))
    padding = torch.arange(S)[None, None, :] >= LENGTHS[:, None, None]
    assert (weights[padding.expand_as(weights)] == 0).all()
    assert (weights >= 0).all()
    # whatever sits in the padded positions changes nothing
    noisy = states + 100 * padding.transpose(1, 2) * torch.randn(B, S, Q, generator=g)
    context_noisy, weights_noisy = attention(queries, attention.remember(noisy, LENGTHS))
    torch.testing.assert_close(weights_noisy, weights)
    torch.testing.assert_close(context_noisy, context)
    torch.testing.assert_close(context, weights @ states)


@pytest.mark.parametrize(("kind", "options"), VARIANTS, ids=IDS)
def test_all_steps_at_once_equal_one_step_at_a_time(kind, options):
    g = torch.Generator().manual_seed(1)
    attention = Attention(kind, Q, Q, **options)
    memory = attention.remember(padded_states(g), LENGTHS)
    queries = torch.randn(B, T, Q, generator=g)
    context, weights = attention(queries, memory)
    for t in range(T):
        c_t, a_t = attention(queries[:, t : t + 1], memory)
        torch.testing.assert_close(c_t[:, 0], context[:, t])
        torch.testing.assert_close(a_t[:, 0], weights[:, t])


def test_scores_are_the_documented_formulas():
    g = torch.Generator().manual_seed(2)
    M = 5  # encoder size ≠ decoder size for the variants that allow it
    states, h_d = torch.randn(1, S, M, generator=g), torch.randn(1, 1, Q, generator=g)
    lengths = torch.tensor([S])
    h_e = states[0]  # (S, M)

    general = Attention("luong_general", Q, M)
    expected = torch.stack([h_d[0, 0] @ general.W_a.weight @ h_e[s] for s in range(S)])
    torch.testing.assert_close(general(h_d, general.remember(states, lengths))[1][0, 0], expected.softmax(0))

    for kind in ("bahdanau", "luong_concat"):
        additive = Attention(kind, Q, M)
        W_a = torch.cat([additive.W_d.weight, additive.W_e.weight], dim=1)  # W_a [h_d; h_e]
        v = additive.v.weight[0]
        expected = torch.stack([v @ torch.tanh(W_a @ torch.cat([h_d[0, 0], h_e[s]])) for s in range(S)])
        torch.testing.assert_close(additive(h_d, additive.remember(states, lengths))[1][0, 0], expected.softmax(0))

    dot = Attention("luong_dot", M, M)
    query = torch.randn(1, 1, M, generator=g)
    torch.testing.assert_close(dot(query, dot.remember(states, lengths))[1][0, 0], (h_e @ query[0, 0]).softmax(0))


def test_precomputed_keys_are_the_encoder_side_projection():
    g = torch.Generator().manual_seed(3)
    states = padded_states(g)
    general, concat = Attention("luong_general", Q, Q), Attention("bahdanau", Q, Q)
    torch.testing.assert_close(general.remember(states, LENGTHS).keys, states @ general.W_a.weight.T)
    torch.testing.assert_close(concat.remember(states, LENGTHS).keys, states @ concat.W_e.weight.T)
    assert Attention("luong_dot", Q, Q).remember(states, LENGTHS).keys is None


def local_reference(attention: Attention, h_t: torch.Tensor, states: torch.Tensor, length: int):
    """Luong's local-p for one query of one unpadded sentence, written out: softmax(score)·Gaussian, renormalised."""
    p = length * torch.sigmoid(attention.v_p.weight[0] @ torch.tanh(attention.W_p.weight @ h_t))
    scores = attention.score(h_t[None, None], attention.remember(states[None], torch.tensor([length])))[0, 0]
    distance = torch.arange(1, length + 1) - p
    sigma = attention.window / 2
    align = scores.softmax(0) * torch.exp(-distance**2 / (2 * sigma**2)) * (distance.abs() <= attention.window)
    return align / align.sum(), p


def test_local_p_is_luongs_formula_renormalised_within_the_window():
    g = torch.Generator().manual_seed(4)
    attention = Attention("local", Q, Q, window=2)
    states = padded_states(g)
    queries = 3 * torch.randn(B, T, Q, generator=g)
    _, weights = attention(queries, attention.remember(states, LENGTHS))
    for b, length in enumerate(LENGTHS.tolist()):
        for t in range(T):
            expected, p = local_reference(attention, queries[b, t], states[b, :length], length)
            torch.testing.assert_close(weights[b, t, :length], expected)
            assert 0 < p < length  # p_t uses the sentence's own length, not the padded S
            outside = (torch.arange(1, S + 1) - p).abs() > 2
            assert (weights[b, t][outside] == 0).all()


def test_local_p_window_is_never_empty_at_the_edges():
    """p_t saturated at 0 or S_b: one real position always lies within D = 1."""
    g = torch.Generator().manual_seed(5)
    attention = Attention("local", Q, Q, window=1)
    states = padded_states(g)
    memory = attention.remember(states, LENGTHS)
    with torch.no_grad():
        attention.W_p.weight.copy_(torch.eye(Q))
        attention.v_p.weight.fill_(1e4)
    for sign in (1.0, -1.0):
        _, weights = attention(sign * torch.ones(B, 1, Q), memory)
        torch.testing.assert_close(weights.sum(-1), torch.ones(B, 1))
        for b, length in enumerate(LENGTHS.tolist()):
            # p_t = S_b: positions S_b − 1 and S_b (1-based) are within 1; p_t = 0: position 1 alone
            window = {length - 2, length - 1} if sign > 0 else {0}
            assert set(weights[b, 0].nonzero().flatten().tolist()) == {s for s in window if s >= 0}


def test_memory_index_select_repeats_sentences():
    g = torch.Generator().manual_seed(6)
    attention = Attention("luong_general", Q, Q)
    memory = attention.remember(padded_states(g), LENGTHS)
    repeated = memory.index_select(torch.tensor([2, 2, 0]))
    assert repeated.lengths.tolist() == [1, 1, 6]
    assert torch.equal(repeated.keys[0], memory.keys[2]) and torch.equal(repeated.mask[2], memory.mask[0])


@pytest.mark.parametrize(("args", "message"), [
    (("none", Q, Q), "type='none' is invalid"),
    (("luong_mlp", Q, Q), "type='luong_mlp' is invalid: choose one of bahdanau"),
    (("bahdanau", Q, Q, 5), "window applies to type=local only"),
    (("luong_general", Q, Q, None, "dot"), "score applies to type=local only"),
    (("local", Q, Q, 0), "window=0 is invalid: D must be a positive integer"),
    (("local", Q, Q, 2.5), "window=2.5 is invalid"),
    (("local", Q, Q, 2, "mlp"), "score='mlp' is invalid: choose one of dot, general, concat"),
    (("luong_dot", Q, 2 * Q), "needs the decoder's hidden size \\(8\\) to equal the encoder's output size \\(16\\)"),
    (("local", Q, 2 * Q, 2, "dot"), "type=local with the dot score needs"),
])
def test_bad_options_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        Attention(*args)
