"""The encoder–decoder: masking, the one-call path against the step path, bridge, source reversal, options."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F
from conftest import CONF
from omegaconf import OmegaConf

from rnnlab.decoding import greedy
from rnnlab.errors import ConfigError
from rnnlab.models.seq2seq import Seq2Seq
from rnnlab.nn.padding import reverse_padded

pytestmark = pytest.mark.usefixtures("one_thread")


SRC_VOCAB, TGT_VOCAB, PAD, BOS, EOS = 13, 11, 0, 1, 2
ATTENTIONS = [None, {"type": "bahdanau"}, {"type": "luong_dot"}, {"type": "luong_general"},
              {"type": "luong_concat"}, {"type": "local", "window": 2}]
ATTENTION_IDS = ["none", "bahdanau", "luong_dot", "luong_general", "luong_concat", "local"]


def tiny_model(attention=None, seed=0, **options) -> Seq2Seq:
    """A small random model in eval mode; a bidirectional encoder gets H/2 per direction so luong_dot fits."""
    settings = dict(cell="lstm", embedding_size=8, hidden_size=12, num_layers=2)
    settings.update(options)
    if settings.get("bidirectional") and "encoder_hidden_size" not in settings:
        settings["encoder_hidden_size"] = settings["hidden_size"] // 2
    torch.manual_seed(seed)
    return Seq2Seq(SRC_VOCAB, TGT_VOCAB, PAD, BOS, EOS, attention=attention, **settings).eval()


def padded(lengths: list[int], vocab: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random sentences of ordinary tokens (ids ≥ 3), padded with PAD → (B, max length), lengths (B,)."""
    tokens = torch.randint(3, vocab, (len(lengths), max(lengths)), generator=generator)
    lengths = torch.tensor(lengths)
    return tokens.masked_fill(torch.arange(tokens.size(1))[None, :] >= lengths[:, None], PAD), lengths


def batch(generator, src_lengths=(5, 2, 7, 1), tgt_lengths=(4, 6, 3, 2)):
    src, src_lengths = padded(list(src_lengths), SRC_VOCAB, generator)
    tgt_in, tgt_lengths = padded(list(tgt_lengths), TGT_VOCAB, generator)
    tgt_in[:, 0] = BOS
    return src, src_lengths, tgt_in, tgt_lengths


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("attention", ATTENTIONS, ids=ATTENTION_IDS)
def test_padded_batch_equals_each_sentence_alone(attention, cell):
    model = tiny_model(attention, cell=cell, bidirectional=True, reverse_source=True)
    src, src_lengths, tgt_in, tgt_lengths = batch(torch.Generator().manual_seed(0))
    with torch.no_grad():
        together = model(src, src_lengths, tgt_in)
        for b, (S_b, T_b) in enumerate(zip(src_lengths.tolist(), tgt_lengths.tolist())):
            alone = model(src[b : b + 1, :S_b], src_lengths[b : b + 1], tgt_in[b : b + 1, :T_b])
            torch.testing.assert_close(together.logits[b, :T_b], alone.logits[0])
            if attention is None:
                assert together.attention is None and alone.attention is None
                continue
            torch.testing.assert_close(together.attention[b, :T_b, :S_b], alone.attention[0])
            assert (together.attention[b, :, S_b:] == 0).all()
            torch.testing.assert_close(together.attention[b].sum(-1), torch.ones(tgt_in.size(1)))


@pytest.mark.parametrize("options", [dict(input_feeding=True), dict(backend="scratch", cell="gru"),
                                     dict(backend="scratch", cell="lstm", bidirectional=True, input_feeding=True)],
                         ids=["input_feeding", "scratch-gru", "scratch-bilstm-feeding"])
@pytest.mark.parametrize("attention", [{"type": "bahdanau"}, {"type": "local", "window": 1, "score": "concat"}],
                         ids=["bahdanau", "local-concat"])
def test_padded_batch_equals_each_sentence_alone_in_the_step_path(attention, options):
    model = tiny_model(attention, reverse_source=True, **options)
    src, src_lengths, tgt_in, tgt_lengths = batch(torch.Generator().manual_seed(1))
    with torch.no_grad():
        together = model(src, src_lengths, tgt_in)
        for b, (S_b, T_b) in enumerate(zip(src_lengths.tolist(), tgt_lengths.tolist())):
            alone = model(src[b : b + 1, :S_b], src_lengths[b : b + 1], tgt_in[b : b + 1, :T_b])
            torch.testing.assert_close(together.logits[b, :T_b], alone.logits[0])
            torch.testing.assert_close(together.attention[b, :T_b, :S_b], alone.attention[0])


def decode_step_by_step(model, src, src_lengths, tgt_in):
    memory, state = model.encode(src, src_lengths)
    logits, weights = [], []
    for t in range(tgt_in.size(1)):
        logits_t, state, a_t = model.step(tgt_in[:, t], state, memory)
        logits.append(logits_t)
        weights.append(a_t)
    return torch.stack(logits, 1), (None if weights[0] is None else torch.stack(weights, 1))


@pytest.mark.parametrize("backend", ["fused", "scratch"])
@pytest.mark.parametrize("attention", ATTENTIONS, ids=ATTENTION_IDS)
def test_one_call_teacher_forcing_equals_step_by_step(attention, backend):
    model = tiny_model(attention, backend=backend, bidirectional=True)
    src, src_lengths, tgt_in, _ = batch(torch.Generator().manual_seed(2))
    with torch.no_grad():
        output = model(src, src_lengths, tgt_in)
        logits, weights = decode_step_by_step(model, src, src_lengths, tgt_in)
    torch.testing.assert_close(output.logits, logits)
    if attention is not None:
        torch.testing.assert_close(output.attention, weights)


@pytest.mark.parametrize("attention", [{"type": "bahdanau"}, {"type": "luong_general"}], ids=["bahdanau", "luong"])
def test_bahdanau_queries_the_previous_state_and_luong_the_current_one(attention):
    model = tiny_model(attention, cell="lstm", input_feeding=True)
    src, src_lengths, tgt_in, _ = batch(torch.Generator().manual_seed(13))
    with torch.no_grad():
        memory, state = model.encode(src, src_lengths)
        for t in range(tgt_in.size(1)):
            previous = state.rnn[0][-1]  # the top layer's h, s_{t-1}
            _, state, weights = model.step(tgt_in[:, t], state, memory)
            query = previous if attention["type"] == "bahdanau" else state.rnn[0][-1]
            torch.testing.assert_close(weights, model.attention(query[:, None], memory)[1][:, 0])


def test_teacher_forcing_below_one_feeds_own_predictions_in_training_only():
    model = tiny_model({"type": "luong_general"}, teacher_forcing=0.0, dropout=0.0)
    src, src_lengths, tgt_in, _ = batch(torch.Generator().manual_seed(3))
    other_tgt_in = tgt_in.clone()
    other_tgt_in[:, 1:] = (tgt_in[:, 1:] + 1 - 3) % (TGT_VOCAB - 3) + 3  # every gold input after bos changed
    model.train()
    free = model(src, src_lengths, tgt_in).logits
    torch.testing.assert_close(model(src, src_lengths, other_tgt_in).logits, free)  # the gold is never read
    with torch.no_grad():  # it is the free-running decoder: each input is the previous step's argmax
        memory, state = model.encode(src, src_lengths)
        prev, expected = tgt_in[:, 0], []
        for _ in range(tgt_in.size(1)):
            logits_t, state, _ = model.step(prev, state, memory)
            expected.append(logits_t)
            prev = logits_t.argmax(-1)
    torch.testing.assert_close(free, torch.stack(expected, 1))
    model.eval()  # validation perplexity is teacher-forced whatever the training ratio
    with torch.no_grad():
        torch.testing.assert_close(model(src, src_lengths, tgt_in).logits,
                                   decode_step_by_step(model, src, src_lengths, tgt_in)[0])


def test_bridge_concatenates_directions_per_layer_when_sizes_match():
    model = tiny_model(None, cell="lstm", bidirectional=True, encoder_hidden_size=6, hidden_size=12)
    assert model.bridge_h is None
    src, src_lengths, _, _ = batch(torch.Generator().manual_seed(4))
    with torch.no_grad():
        _, (h, C) = model.encoder(model.src_embedding(src), lengths=src_lengths)  # (L·D, B, H_e)
        _, state = model.encode(src, src_lengths)
    for layer in range(2):
        torch.testing.assert_close(state.rnn[0][layer], torch.cat([h[2 * layer], h[2 * layer + 1]], -1))
        torch.testing.assert_close(state.rnn[1][layer], torch.cat([C[2 * layer], C[2 * layer + 1]], -1))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bridge_maps_a_size_mismatch_through_linear_and_tanh(cell):
    model = tiny_model(None, cell=cell, bidirectional=True, encoder_hidden_size=12, hidden_size=12)
    src, src_lengths, _, _ = batch(torch.Generator().manual_seed(5))
    with torch.no_grad():
        _, final = model.encoder(model.src_embedding(src), lengths=src_lengths)
        _, state = model.encode(src, src_lengths)
    h = final[0] if cell == "lstm" else final
    joined = torch.cat([h[0::2], h[1::2]], -1)  # (L, B, 2·H_e): [h→; h←] per layer
    torch.testing.assert_close(state.rnn[0] if cell == "lstm" else state.rnn, torch.tanh(model.bridge_h(joined)))
    if cell == "lstm":
        torch.testing.assert_close(state.rnn[1], model.bridge_C(torch.cat([final[1][0::2], final[1][1::2]], -1)))


def test_unidirectional_encoder_hands_its_final_state_over_unchanged():
    model = tiny_model(None, cell="gru")
    src, src_lengths, _, _ = batch(torch.Generator().manual_seed(6))
    with torch.no_grad():
        _, final = model.encoder(model.src_embedding(src), lengths=src_lengths)
        _, state = model.encode(src, src_lengths)
    torch.testing.assert_close(state.rnn, final)


def test_reverse_padded_keeps_padding_at_the_end():
    tokens = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0], [4, 0, 0, 0]])
    assert reverse_padded(tokens, torch.tensor([3, 2, 1])).tolist() == [[7, 6, 5, 0], [9, 8, 0, 0],
                                                                               [4, 0, 0, 0]]


def test_reverse_source_reads_the_source_backwards_and_attends_in_source_order():
    reversing = tiny_model({"type": "luong_general"}, reverse_source=True)
    plain = tiny_model({"type": "luong_general"})
    plain.load_state_dict(reversing.state_dict())
    src, src_lengths, _, _ = batch(torch.Generator().manual_seed(7))
    with torch.no_grad():
        memory, state = reversing.encode(src, src_lengths)
        expected_memory, expected_state = plain.encode(reverse_padded(src, src_lengths), src_lengths)
    torch.testing.assert_close(state.rnn, expected_state.rnn)  # the encoder ended on the first source word
    torch.testing.assert_close(memory.states, reverse_padded(expected_memory.states, src_lengths))


def test_tied_weights_share_the_target_embedding():
    model = tiny_model(None, tie_weights=True, embedding_size=12, hidden_size=12)
    assert model.W_s.weight is model.tgt_embedding.weight


@pytest.mark.parametrize("options", [dict(attention={"type": "bahdanau"}, input_feeding=True, cell="gru"),
                                     dict(attention={"type": "local", "window": 2}, teacher_forcing=0.5),
                                     dict(attention={"type": "luong_concat"}, bidirectional=True)],
                         ids=["bahdanau-feeding", "local-tf0.5", "concat-bi"])
def test_every_parameter_learns(options):
    model = tiny_model(dropout=0.2, **options).train()
    src, src_lengths, tgt_in, _ = batch(torch.Generator().manual_seed(8))
    output = model(src, src_lengths, tgt_in)
    F.cross_entropy(output.logits.flatten(0, 1), tgt_in.roll(-1, 1).flatten(), ignore_index=PAD).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


BAD = [
    (dict(cell="transformer"), "model.cell='transformer' is invalid: choose one of rnn, lstm, gru"),
    (dict(hidden_size=0), "model.hidden_size=0 is invalid: must be a positive integer"),
    (dict(dropout=1.0), r"model.dropout=1.0 is invalid: must be in \[0, 1\)"),
    (dict(teacher_forcing=1.5), r"model.teacher_forcing=1.5 is invalid: must be in \[0, 1\]"),
    (dict(encoder_hidden_size=0), "model.encoder_hidden_size=0 is invalid: must be a positive integer"),
    (dict(reverse_source="yes"), "model.reverse_source=yes is invalid: must be true or false"),
    (dict(tie_weights=True, embedding_size=8, hidden_size=12),
     "model.tie_weights=true needs model.embedding_size == model.hidden_size"),
    (dict(backend="cuda"), "model.backend='cuda' is not one of fused, scratch"),
    (dict(cell="gru", forget_bias=1.0), "model.forget_bias applies to lstm only"),
    (dict(recurrent_init="eye"), "model.recurrent_init='eye' is not one of default, orthogonal"),
    (dict(attention={"type": "luong_mlp"}), "attention.type='luong_mlp' is invalid: choose one of none, bahdanau"),
    (dict(attention={"window": 3}), "attention.type is missing"),
    (dict(attention={"type": "local", "widow": 3}), "attention.widow is not an option here; valid: type, window"),
    (dict(attention={"type": "local", "window": 0}), "attention.window=0 is invalid"),
    (dict(attention={"type": "local", "score": "mlp"}), "attention.score='mlp' is invalid"),
    (dict(attention={"type": "bahdanau", "window": 3}), "attention.window applies to type=local only"),
    (dict(attention={"type": "none", "score": "dot"}), "attention.score applies to attention=local only"),
    (dict(attention={"type": "luong_dot"}, bidirectional=True, encoder_hidden_size=12),
     "attention.type=luong_dot with the dot score needs the decoder's hidden size"),
    (dict(bos_id=11), "bos_id=11 is outside the target vocabulary"),
    (dict(cell="rnn", backend="scratch", skip=4), "model.skip=4 is not supported by the encoder–decoder"),
]


@pytest.mark.parametrize(("options", "message"), BAD, ids=[m.split(" ")[0] for _, m in BAD])
def test_bad_options_give_one_line_config_errors(options, message):
    arguments = dict(src_vocab_size=SRC_VOCAB, tgt_vocab_size=TGT_VOCAB, pad_id=PAD, bos_id=BOS, eos_id=EOS)
    arguments.update(options)
    with pytest.raises(ConfigError, match=message) as error:
        Seq2Seq(**arguments)
    assert "\n" not in str(error.value)


def test_attention_none_is_no_attention():
    model = tiny_model({"type": "none"})
    assert model.attention is None
    src, src_lengths, tgt_in, _ = batch(torch.Generator().manual_seed(9))
    assert model(src, src_lengths, tgt_in).attention is None


@pytest.mark.parametrize("attention", [{"type": "luong_general"}, {"type": "bahdanau"}], ids=["general", "bahdanau"])
def test_tiny_model_memorises_twenty_sentence_pairs(attention):
    """Random pairs have no structure to learn: only memorising each one gets them right."""
    g = torch.Generator().manual_seed(10)
    vocab = 24
    src, src_lengths = padded(torch.randint(4, 9, (20,), generator=g).tolist(), vocab, g)
    tgt, tgt_lengths = padded(torch.randint(3, 8, (20,), generator=g).tolist(), vocab, g)
    tgt_in = F.pad(tgt, (1, 0), value=BOS)  # [bos, y_1 .. y_n]
    tgt_out = F.pad(tgt, (0, 1), value=PAD).scatter(1, tgt_lengths[:, None], EOS)  # [y_1 .. y_n, eos]
    torch.manual_seed(0)
    model = Seq2Seq(vocab, vocab, PAD, BOS, EOS, cell="gru", embedding_size=32, hidden_size=64,
                    attention=attention)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    start = time.perf_counter()
    for _ in range(100):
        logits = model(src, src_lengths, tgt_in).logits
        loss = F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    model.eval()
    hypotheses = greedy(model, src, src_lengths, max_len=12)
    references = [row[:n] for row, n in zip(tgt.tolist(), tgt_lengths.tolist())]
    correct = sum(h[i] == r[i] for h, r in zip(hypotheses.tokens, references) for i in range(min(len(h), len(r))))
    accuracy = correct / sum(tgt_lengths.tolist())
    assert accuracy >= 0.95, (accuracy, loss.item(), seconds)
    assert sum(len(h) == len(r) for h, r in zip(hypotheses.tokens, references)) >= 19


def test_every_model_option_builds_an_encoder_decoder(make_cfg):
    """The model group's recurrent YAMLs are shared with the language model: their keys must all be accepted here."""
    lm_keys = set(OmegaConf.load(CONF / "task" / "lm.yaml").model)  # task=lm's own model keys (make_cfg's task)
    for option in sorted(p.stem for p in (CONF / "model").glob("*.yaml")):
        options = OmegaConf.to_container(make_cfg(f"model={option}", tiny=False).model)
        options = {key: value for key, value in options.items() if key not in lm_keys}
        if "family" in options:  # a model that is not a recurrent network (the n-gram LM)
            continue
        if options.get("skip") is not None:
            with pytest.raises(ConfigError, match="model.skip"):
                Seq2Seq(SRC_VOCAB, TGT_VOCAB, PAD, BOS, EOS, **options)
            continue
        model = Seq2Seq(SRC_VOCAB, TGT_VOCAB, PAD, BOS, EOS, attention={"type": "luong_general"}, **options)
        src, src_lengths, tgt_in, _ = batch(torch.Generator().manual_seed(12))
        assert model(src, src_lengths, tgt_in).logits.shape == (*tgt_in.shape, TGT_VOCAB), option
