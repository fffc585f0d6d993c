"""Greedy, sampling and batched beam search on small random models."""

from __future__ import annotations

import functools
import itertools

import pytest
import torch
import torch.nn.functional as F
from test_seq2seq import BOS, EOS, PAD, SRC_VOCAB, TGT_VOCAB, padded, tiny_model

from rnnlab.decoding import beam_search, greedy, length_limits, sample
from rnnlab.errors import ConfigError
from rnnlab.models.seq2seq import Seq2Seq

pytestmark = pytest.mark.usefixtures("one_thread")

MODELS = [
    (None, {}), ({"type": "bahdanau"}, {"input_feeding": True}), ({"type": "luong_general"}, {"bidirectional": True}),
    ({"type": "local", "window": 2}, {"reverse_source": True, "cell": "gru"}),
]
MODEL_IDS = ["none", "bahdanau-feeding", "general-bi", "local-reversed-gru"]


def eos_prone(attention=None, eos_bias=1.5, seed=0, **options):
    """A random model with its eos logit shifted: +large ends at once, −large never ends."""
    model = tiny_model(attention, seed=seed, **options)
    with torch.no_grad():
        model.W_s.bias[EOS] = eos_bias
    return model


@functools.cache
def partly_trained(index: int) -> Seq2Seq:
    """MODELS[index] after 30 Adam steps on random pairs whose target is one token shorter than the source:
    unlike a random model (which repeats one token or ends at once), it ends its outputs at lengths that
    follow the source, and is unsure enough that beam search and greedy differ."""
    attention, options = MODELS[index]
    model = tiny_model(attention, **options).train()
    g = torch.Generator().manual_seed(11)
    src, src_lengths = padded(torch.randint(1, 8, (16,), generator=g).tolist(), SRC_VOCAB, g)
    tgt, tgt_lengths = padded((src_lengths - 1).clamp(min=1).tolist(), TGT_VOCAB, g)
    tgt_in = F.pad(tgt, (1, 0), value=BOS)  # [bos, y_1 .. y_n]
    tgt_out = F.pad(tgt, (0, 1), value=PAD).scatter(1, tgt_lengths[:, None], EOS)  # [y_1 .. y_n, eos]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(30):
        logits = model(src, src_lengths, tgt_in).logits
        loss = F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def sources(seed=0, lengths=(5, 2, 7, 1, 4, 6)):
    return padded(list(lengths), SRC_VOCAB, torch.Generator().manual_seed(seed))


def model_log_probability(model, src, src_lengths, tokens: list[list[int]], ended: list[bool]) -> torch.Tensor:
    """Σ_t log p(y_t | y_<t, x) of given outputs by teacher forcing (the one-call path), bos and pad excluded."""
    scores = []
    for b, (output, with_eos) in enumerate(zip(tokens, ended)):
        target = output + ([EOS] if with_eos else [])
        tgt_in = torch.tensor([[BOS, *target[:-1]]])
        logits = model(src[b : b + 1, : src_lengths[b]], src_lengths[b : b + 1], tgt_in).logits[0]
        logits[:, [BOS, PAD]] = float("-inf")
        scores.append(logits.log_softmax(-1)[torch.arange(len(target)), target].sum())
    return torch.stack(scores)


def ended_and_lengths(tokens: list[list[int]], src_lengths, max_len) -> tuple[list[bool], torch.Tensor]:
    """Which outputs ended with eos (shorter than their cap), and their lengths n with that eos counted."""
    caps = length_limits(src_lengths, max_len).tolist()
    ended = [len(output) < cap for output, cap in zip(tokens, caps)]
    return ended, torch.tensor([len(output) + e for output, e in zip(tokens, ended)], dtype=torch.float)


@pytest.mark.parametrize("index", range(len(MODELS)), ids=MODEL_IDS)
def test_beam_size_one_is_greedy(index):
    model, attention = partly_trained(index), MODELS[index][0]
    src, src_lengths = sources()
    max_len = (0.5, 1)  # cuts some outputs short, so both ways of ending are exercised
    greedy_output = greedy(model, src, src_lengths, max_len=max_len, return_attention=True)
    for alpha in (0.0, 1.0):
        beam = beam_search(model, src, src_lengths, beam_size=1, length_penalty=alpha, max_len=max_len,
                           return_attention=True)
        assert beam.tokens == greedy_output.tokens
        _, lengths = ended_and_lengths(greedy_output.tokens, src_lengths, max_len)
        torch.testing.assert_close(beam.scores, greedy_output.scores / lengths**alpha)
        if attention is None:
            assert beam.attention is None and greedy_output.attention is None
        else:
            for a, b in zip(beam.attention, greedy_output.attention):
                torch.testing.assert_close(a, b)
    ended, _ = ended_and_lengths(greedy_output.tokens, src_lengths, max_len)
    assert any(ended) and not all(ended)


@pytest.mark.parametrize("index", range(len(MODELS)), ids=MODEL_IDS)
def test_batched_beam_search_equals_one_sentence_at_a_time(index):
    model, attention = partly_trained(index), MODELS[index][0]
    src, src_lengths = sources(seed=1)
    together = beam_search(model, src, src_lengths, beam_size=4, length_penalty=0.7, max_len=(1.5, 2),
                           return_attention=True)
    for b, S_b in enumerate(src_lengths.tolist()):
        alone = beam_search(model, src[b : b + 1, :S_b], src_lengths[b : b + 1], beam_size=4, length_penalty=0.7,
                            max_len=(1.5, 2), return_attention=True)
        assert together.tokens[b] == alone.tokens[0]
        torch.testing.assert_close(together.scores[b], alone.scores[0])
        if attention is not None:
            torch.testing.assert_close(together.attention[b], alone.attention[0])
            assert together.attention[b].shape == (len(alone.tokens[0]), S_b)


def test_beam_scores_are_the_models_length_normalised_log_probabilities():
    model = partly_trained(2)
    src, src_lengths = sources(seed=2)
    alpha, max_len = 0.6, (1.0, 2)
    beam = beam_search(model, src, src_lengths, beam_size=3, length_penalty=alpha, max_len=max_len)
    ended, lengths = ended_and_lengths(beam.tokens, src_lengths, max_len)
    with torch.no_grad():
        expected = model_log_probability(model, src, src_lengths, beam.tokens, ended) / lengths**alpha
    torch.testing.assert_close(beam.scores, expected)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_a_wide_beam_finds_the_best_hypothesis_by_exhaustive_search(alpha):
    """Target vocabulary: pad, bos, eos and two words; cap 4. K = 32 keeps every prefix, so nothing is pruned."""
    torch.manual_seed(3)
    model = Seq2Seq(SRC_VOCAB, 5, PAD, BOS, EOS, cell="gru", embedding_size=8, hidden_size=12,
                    attention={"type": "luong_concat"}).eval()
    with torch.no_grad():
        model.W_s.weight.mul_(8)  # sharper distributions: the best sequence is not simply the greedy one
    src, src_lengths = sources(seed=3, lengths=(4, 2, 6))
    beam = beam_search(model, src, src_lengths, beam_size=32, length_penalty=alpha, max_len=4)
    greedy_output = greedy(model, src, src_lengths, max_len=4)
    candidates = [(list(words), True) for n in range(4) for words in itertools.product([3, 4], repeat=n)]
    candidates += [(list(words), False) for words in itertools.product([3, 4], repeat=4)]  # cut at the cap
    with torch.no_grad():
        for b in range(3):
            one = (src[b : b + 1], src_lengths[b : b + 1])
            scores = [model_log_probability(model, *one, [words], [eos])[0] / (len(words) + eos) ** alpha
                      for words, eos in candidates]
            best = max(range(len(candidates)), key=lambda i: scores[i])
            assert beam.tokens[b] == candidates[best][0]
            torch.testing.assert_close(beam.scores[b], scores[best])
    # the search mattered: greedy missed the optimum somewhere (else this test could not tell them apart)
    assert alpha > 0 or beam.tokens != greedy_output.tokens


def test_search_stops_as_soon_as_every_sentence_has_ended():
    model = eos_prone({"type": "luong_dot"}, eos_bias=30.0)  # eos first, at every step
    src, src_lengths = sources()
    calls = []
    step = model.step
    model.step = lambda *args: calls.append(1) or step(*args)
    hypotheses = greedy(model, src, src_lengths, max_len=20)
    assert len(calls) == 1 and hypotheses.tokens == [[]] * 6
    calls.clear()
    hypotheses = beam_search(model, src, src_lengths, beam_size=3, max_len=20)
    # step 1: beam 0's eos finishes (1 of K = 3); step 2: the three live beams' eos finish → done
    assert len(calls) == 2 and hypotheses.tokens == [[]] * 6


def test_outputs_stop_at_the_length_cap_relative_to_the_source():
    model = eos_prone({"type": "bahdanau"}, eos_bias=-1e4)  # never ends on its own
    src, src_lengths = sources()
    caps = length_limits(src_lengths, (0.5, 1))
    assert caps.tolist() == [3, 2, 4, 1, 3, 4]  # ⌊0.5·S + 1⌋
    assert [len(t) for t in greedy(model, src, src_lengths, max_len=(0.5, 1)).tokens] == caps.tolist()
    beam = beam_search(model, src, src_lengths, beam_size=3, max_len=(0.5, 1), return_attention=True)
    assert [len(t) for t in beam.tokens] == caps.tolist()
    for weights, S_b in zip(beam.attention, src_lengths.tolist()):
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.size(0)))
        assert weights.size(1) == S_b
    assert length_limits(src_lengths, 7).tolist() == [7] * 6


def test_generated_tokens_are_never_bos_or_pad():
    model = eos_prone(None, eos_bias=-1e4)
    with torch.no_grad():
        model.W_s.bias[[BOS, PAD]] = 50.0  # the model's favourites, yet not outputs
    src, src_lengths = sources()
    for hypotheses in (greedy(model, src, src_lengths, max_len=5), beam_search(model, src, src_lengths, max_len=5),
                       sample(model, src, src_lengths, max_len=5, generator=torch.Generator().manual_seed(0))):
        tokens = {token for output in hypotheses.tokens for token in output}
        assert tokens and not tokens & {BOS, PAD}


def test_sampling():
    model = partly_trained(1)
    src, src_lengths = sources(seed=4)
    draw = lambda seed, **options: sample(model, src, src_lengths, max_len=(1.0, 3),  # noqa: E731
                                          generator=torch.Generator().manual_seed(seed), **options)
    assert draw(0).tokens == draw(0).tokens  # the generator makes it reproducible
    assert draw(0).tokens != draw(1).tokens
    argmax = greedy(model, src, src_lengths, max_len=(1.0, 3))
    assert draw(0, top_k=1).tokens == argmax.tokens
    assert draw(0, top_p=1e-9).tokens == argmax.tokens  # a nucleus of one token
    assert draw(0, temperature=1e-4).tokens == argmax.tokens
    cold = draw(0, temperature=0)  # greedy, the limit τ → 0: the same tokens and scores
    assert cold.tokens == argmax.tokens and torch.equal(cold.scores, argmax.scores)
    hot = draw(2, temperature=3.0, top_k=4, top_p=0.9)
    ended, _ = ended_and_lengths(hot.tokens, src_lengths, (1.0, 3))
    with torch.no_grad():  # scores are the model's own log-probabilities, whatever the sampling distribution
        torch.testing.assert_close(hot.scores, model_log_probability(model, src, src_lengths, hot.tokens, ended))
    with pytest.raises(ConfigError, match="^temperature=-1 is invalid"):
        draw(0, temperature=-1)


class Bigram:
    """A stand-in model for checking the search by hand: p(y_t | y_{t-1}) from a table, whatever the source.

    Tokens: 0 pad, 1 bos, 2 eos, then words. Row i of `probabilities` is p(· | y_{t-1} = i).
    """

    pad_id, bos_id, eos_id = 0, 1, 2

    def __init__(self, probabilities: list[list[float]]):
        self.log_probs = torch.tensor(probabilities).log()

    def encode(self, src, src_lengths):
        return Ignored(), Ignored()

    def step(self, prev_tokens, state, memory):
        return self.log_probs[prev_tokens], state, None


class Ignored:
    def index_select(self, index):
        return self


def test_length_penalty_decides_between_a_short_and_a_long_hypothesis():
    # p(eos | bos) = 0.5: [] scores log 0.5 = −0.69 (n = 1)
    # p(a | bos) = 0.5, p(eos | a) = 0.6: [a] scores log 0.5 + log 0.6 = −1.20, or −0.60 per token (n = 2)
    model = Bigram([[0, 0, 1, 0], [0, 0, 0.5, 0.5], [0, 0, 1, 0], [0, 0, 0.6, 0.4]])
    src, src_lengths = torch.zeros(2, 3, dtype=torch.long), torch.tensor([3, 3])
    short = beam_search(model, src, src_lengths, beam_size=2, length_penalty=0.0, max_len=5)
    assert short.tokens == [[], []]
    torch.testing.assert_close(short.scores, torch.tensor([0.5, 0.5]).log())
    long = beam_search(model, src, src_lengths, beam_size=2, length_penalty=1.0, max_len=5)
    assert long.tokens == [[3], [3]]
    torch.testing.assert_close(long.scores, torch.tensor([0.3, 0.3]).log() / 2)


def test_an_ending_that_is_not_among_the_best_k_does_not_finish_the_search():
    """Every step, eos is the runner-up (p = 0.4 against 0.6 for the next word a): with one beam the search
    follows a to the cap, exactly as greedy does, instead of stopping at the runner-up eos."""
    model = Bigram([[0, 0, 1, 0], [0, 0, 0.4, 0.6], [0, 0, 1, 0], [0, 0, 0.4, 0.6]])
    src, src_lengths = torch.zeros(1, 3, dtype=torch.long), torch.tensor([3])
    assert greedy(model, src, src_lengths, max_len=4).tokens == [[3, 3, 3, 3]]
    assert beam_search(model, src, src_lengths, beam_size=1, max_len=4).tokens == [[3, 3, 3, 3]]
    # with two beams, [] (0.4, n = 1) and [a] (0.6 · 0.4 = 0.24, n = 2) finish at steps 1 and 2: K = 2 ended
    for alpha, best, score in ((0.0, [], torch.tensor(0.4).log()), (1.0, [3], torch.tensor(0.24).log() / 2)):
        wide = beam_search(model, src, src_lengths, beam_size=2, length_penalty=alpha, max_len=4)
        assert wide.tokens == [best]
        torch.testing.assert_close(wide.scores[0], score)


@pytest.mark.parametrize("index", range(len(MODELS)), ids=MODEL_IDS)
def test_a_done_sentence_leaves_the_batch(index):
    """Each step runs the model on the beams of the sentences still searched only: the rows fall as sentences end,
    and what the batch finds is what each sentence finds alone (test above)."""
    model = partly_trained(index)
    src, src_lengths = sources()
    K, max_len = 3, (0.5, 1)
    rows, step = [], model.step
    model.step = lambda prev_tokens, *args: rows.append(prev_tokens.numel()) or step(prev_tokens, *args)
    try:
        beam = beam_search(model, src, src_lengths, beam_size=K, max_len=max_len)
    finally:
        del model.step
    caps = length_limits(src_lengths, max_len)  # [3, 2, 4, 1, 3, 4]: each sentence is done by its cap at the latest
    assert rows[0] == 6 * K and rows == sorted(rows, reverse=True)
    for t, n in enumerate(rows):  # sentences capped before step t + 1 are gone
        assert n <= K * int((caps > t).sum())
    assert len(rows) <= int(caps.max()) and all(len(y) <= cap for y, cap in zip(beam.tokens, caps.tolist()))
