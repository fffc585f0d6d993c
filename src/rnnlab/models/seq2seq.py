"""Encoder–decoder with attention: p(y_t | y_<t, x) = softmax(W_s h̃_t + b_s).

    encoder    h_e(1..S), final = recurrent stack(dropout(E_src x))       x reversed within its length if
                                                                           reverse_source; h_e back in source order
    bridge     h_0 = tanh(W_b [h→; h←] + b_b) per layer                   both directions' finals concatenated;
               C_0 = W_bC [C→; C←] + b_bC   (LSTM)                        the linear map only if D·H_e ≠ H
    decoder    h_t = recurrent stack(input_t, h_{t-1})
               input_t = [dropout(E_tgt y_{t-1}); c_t (bahdanau); h̃_{t-1} (input_feeding, h̃_0 = 0)]
    attention  c_t, a_t = attention(query, h_e)                           query h_t (Luong) or h_{t-1} (Bahdanau),
                                                                           rnnlab/nn/attention.py
    output     h̃_t = tanh(W_c [c_t; h_t])                                 attentional state; h̃_t = h_t without attention
               logits_t = W_s dropout(h̃_t) + b_s                          W_s = E_tgt when tie_weights

C_0 gets no tanh: the cell state is unbounded memory, and squashing it would change what it carries.

Two ways through the decoder, one set of weights:

  * one call: teacher forcing with gold inputs, Luong-style attention (or none) and no input feeding —
    the decoder stack runs over the whole target in one recurrent call, and attention for all steps is
    two batched matmuls (B, T, S). Training and teacher-forced perplexity take this path.
  * step by step (`step`): Bahdanau (c_t is an input to h_t), input feeding (h̃_{t-1} is), teacher
    forcing < 1 in training (y_{t-1} may be the model's own prediction), and every decoder in
    rnnlab/decoding.py. A step runs the same decoder stack on a length-1 sequence, so both paths use
    the very same modules (fused or scratch, dropout between layers included) and agree to rounding.

With teacher_forcing < 1 each sentence at each step t > 1 gets its gold y_{t-1} with that probability,
else the argmax of the model's previous prediction (Bengio et al. 2015, with argmax in place of sampling).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rnnlab.errors import ConfigError, group_keys
from rnnlab.models.language_model import check_architecture
from rnnlab.nn import RecurrentState, recurrent_layer
from rnnlab.nn.attention import ATTENTION_TYPES, Attention, Memory
from rnnlab.nn.padding import reverse_padded

ATTENTION_OPTIONS = ("type", "window", "score")


@dataclass
class DecoderState:
    """What the decoder carries from step to step."""

    rnn: RecurrentState  # (L, B, H), or (h, C) for an LSTM
    feed: torch.Tensor | None = None  # h̃_{t-1} (B, H) with input feeding

    def index_select(self, index: torch.Tensor) -> DecoderState:
        """Sentences reordered or repeated (beam search)."""
        rnn = (tuple(s.index_select(1, index) for s in self.rnn) if isinstance(self.rnn, tuple)
               else self.rnn.index_select(1, index))
        return DecoderState(rnn, None if self.feed is None else self.feed.index_select(0, index))


@dataclass
class Seq2SeqOutput:
    logits: torch.Tensor  # (B, T, V)
    attention: torch.Tensor | None  # (B, T, S) a_t over source positions; None without attention


class Seq2Seq(nn.Module):
    """See the module docstring. Sizes and special ids come from the data; the rest are `model.*` options.

    encoder_hidden_size: H_e per encoder direction (default hidden_size); e.g. hidden_size / 2 with a
    bidirectional encoder gives encoder states of the decoder's size, as luong_dot needs.
    attention: None or {"type": one of ATTENTION_TYPES, "window": D, "score": ...} (the `attention` group).
    learn_initial_state: the encoder's h_0 (the decoder's comes from the bridge). The cell options
    (backend, nonlinearity, forget_bias, chrono_max, recurrent_init, gru_form, leak, learn_leak) apply to encoder
    and decoder alike.
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, pad_id: int, bos_id: int, eos_id: int,
                 cell: str = "lstm", embedding_size: int = 256, hidden_size: int = 256, num_layers: int = 1,
                 dropout: float = 0.0, bidirectional: bool = False, encoder_hidden_size: int | None = None,
                 reverse_source: bool = False, input_feeding: bool = False, tie_weights: bool = False,
                 teacher_forcing: float = 1.0, attention: dict | None = None, backend: str = "fused",
                 nonlinearity: str = "tanh", forget_bias: float | str | None = None, gru_form: str | None = None,
                 leak: float | None = None, learn_leak: bool = False, learn_initial_state: bool = False,
                 skip: int | None = None, locked_dropout: bool = False, recurrent_init: str = "default",
                 chrono_max: float | None = None):
        super().__init__()
        if locked_dropout:
            # the decoder runs one step per call while decoding: a per-sequence mask would need threading
            # through every step; not built (yet) for translation
            raise ConfigError("model.locked_dropout=true is implemented for task=lm only; set "
                              "model.locked_dropout=false for task=translation")
        check_architecture(cell=cell, embedding_size=embedding_size, hidden_size=hidden_size,
                           num_layers=num_layers, dropout=dropout, nonlinearity=nonlinearity)
        encoder_hidden_size = hidden_size if encoder_hidden_size is None else encoder_hidden_size
        _check_options(bidirectional=bidirectional, reverse_source=reverse_source, input_feeding=input_feeding,
                       tie_weights=tie_weights, teacher_forcing=teacher_forcing,
                       encoder_hidden_size=encoder_hidden_size, embedding_size=embedding_size,
                       hidden_size=hidden_size)
        if skip is not None:
            raise ConfigError(f"model.skip={skip} is not supported by the encoder–decoder: its decoder runs one step "
                              "at a time and cannot reach h_{t-d}; set model.skip=null (e.g. model=rnn)")
        for key, value in (("pad_id", pad_id), ("bos_id", bos_id), ("eos_id", eos_id)):
            if not 0 <= value < tgt_vocab_size:
                raise ConfigError(f"{key}={value} is outside the target vocabulary (size {tgt_vocab_size}); "
                                  "check the data's special tokens")
        attention = _attention_options(attention)
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.cell, self.num_layers, self.hidden_size = cell, num_layers, hidden_size
        self.reverse_source, self.input_feeding, self.teacher_forcing = reverse_source, input_feeding, teacher_forcing

        directions = 2 if bidirectional else 1
        memory_size = directions * encoder_hidden_size  # M, the size of h_e
        self.bahdanau = attention is not None and attention["type"] == "bahdanau"
        # input_t = [E_tgt y_{t-1}; c_t (bahdanau); h̃_{t-1} (input feeding)]
        decoder_input_size = embedding_size + self.bahdanau * memory_size + input_feeding * hidden_size
        cell_options = dict(nonlinearity=nonlinearity, forget_bias=forget_bias, chrono_max=chrono_max,
                            recurrent_init=recurrent_init, backend=backend, gru_form=gru_form, leak=leak,
                            learn_leak=learn_leak)
        with group_keys("model"):
            self.encoder = recurrent_layer(cell, embedding_size, encoder_hidden_size, num_layers, dropout,
                                           bidirectional=bidirectional, learn_initial_state=learn_initial_state,
                                           **cell_options)
            self.decoder = recurrent_layer(cell, decoder_input_size, hidden_size, num_layers, dropout, **cell_options)
        self.attention = None
        if attention is not None:
            with group_keys("attention"):
                self.attention = Attention(query_size=hidden_size, memory_size=memory_size, **attention)

        self.src_embedding = nn.Embedding(src_vocab_size, embedding_size)
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, embedding_size)
        self.dropout = nn.Dropout(dropout)
        self.bridge_h = self.bridge_C = None
        if memory_size != hidden_size:
            self.bridge_h = nn.Linear(memory_size, hidden_size)
            self.bridge_C = nn.Linear(memory_size, hidden_size) if cell == "lstm" else None
        self.W_c = nn.Linear(memory_size + hidden_size, hidden_size, bias=False) if self.attention else None
        self.W_s = nn.Linear(hidden_size, tgt_vocab_size)
        nn.init.uniform_(self.src_embedding.weight, -0.1, 0.1)
        nn.init.uniform_(self.tgt_embedding.weight, -0.1, 0.1)
        if tie_weights:
            self.W_s.weight = self.tgt_embedding.weight
        nn.init.zeros_(self.W_s.bias)

    # ---- encoder and bridge ----

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[Memory, DecoderState]:
        """src (B, S) padded, src_lengths (B,) ≥ 1 → the attention memory and the decoder's initial state."""
        if self.reverse_source:
            src = reverse_padded(src, src_lengths)
        states, final = self.encoder(self.dropout(self.src_embedding(src)), lengths=src_lengths)  # (B, S, M)
        if self.reverse_source:
            states = reverse_padded(states, src_lengths)  # attention weights then index x as written
        memory = self.attention.remember(states, src_lengths) if self.attention else Memory.of(states, src_lengths)
        if isinstance(final, tuple):
            rnn = (self._bridge(final[0], self.bridge_h, torch.tanh), self._bridge(final[1], self.bridge_C, None))
        else:
            rnn = self._bridge(final, self.bridge_h, torch.tanh)
        feed = states.new_zeros(src.size(0), self.hidden_size) if self.input_feeding else None
        return memory, DecoderState(rnn, feed)

    def _bridge(self, final: torch.Tensor, linear: nn.Linear | None, squash) -> torch.Tensor:
        """Encoder finals (L·D, B, H_e), torch's layout → decoder initial states (L, B, H)."""
        L, B = self.num_layers, final.size(1)
        # layer l's directions sit at rows l·D .. l·D + D − 1: concatenate them, [h→; h←]
        joined = final.reshape(L, -1, B, final.size(-1)).transpose(1, 2).reshape(L, B, -1)  # (L, B, D·H_e)
        if linear is None:
            return joined.contiguous()
        return squash(linear(joined)) if squash else linear(joined)

    # ---- decoder ----

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor) -> Seq2SeqOutput:
        """Teacher-forced decoding: src (B, S), src_lengths (B,), tgt_in (B, T) = [bos, y_1 .. y_{T-1}].

        Returns logits (B, T, V) for y_1 .. y_T and the attention weights (B, T, S) (None without attention).
        """
        memory, state = self.encode(src, src_lengths)
        own_predictions = self.training and self.teacher_forcing < 1
        if own_predictions or self.bahdanau or self.input_feeding:
            return self._decode_steps(tgt_in, state, memory, own_predictions)
        decoded, _ = self.decoder(self.dropout(self.tgt_embedding(tgt_in)), state.rnn)  # h_t (B, T, H)
        weights = None
        if self.attention is not None:
            context, weights = self.attention(decoded, memory)  # (B, T, M), (B, T, S)
            decoded = torch.tanh(self.W_c(torch.cat([context, decoded], dim=-1)))  # h̃_t
        return Seq2SeqOutput(self.output(decoded), weights)

    def _decode_steps(self, tgt_in, state, memory, own_predictions: bool) -> Seq2SeqOutput:
        # one embedding lookup for the whole target: each lookup's backward fills a dense (V, E) gradient,
        # which per step cost ~80 ms of a ~600 ms batch (V = 8000, E = 256, T = 20, one CPU core)
        embedded = self.dropout(self.tgt_embedding(tgt_in)).unbind(1)  # T × (B, E)
        attentional, weights, logits = [], [], []
        for t in range(tgt_in.size(1)):
            input_t = embedded[t]
            if own_predictions and t > 0:
                use_own = torch.rand(tgt_in.size(0), 1, device=tgt_in.device) >= self.teacher_forcing
                own = self.dropout(self.tgt_embedding(logits[-1].detach().argmax(-1)))
                input_t = torch.where(use_own, own, input_t)
            h_tilde, state, a_t = self._step(input_t, state, memory)
            attentional.append(h_tilde)
            weights.append(a_t)
            if own_predictions:
                logits.append(self.output(h_tilde))
        # without own predictions, W_s (the largest matmul) runs once over all steps
        logits = torch.stack(logits, 1) if own_predictions else self.output(torch.stack(attentional, 1))
        return Seq2SeqOutput(logits, torch.stack(weights, 1) if self.attention is not None else None)

    def step(self, prev_tokens: torch.Tensor, state: DecoderState, memory: Memory
             ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """One decoder step: y_{t-1} (B,) → logits (B, V), the new state, a_t (B, S) (None without attention)."""
        h_tilde, state, weights = self._step(self.dropout(self.tgt_embedding(prev_tokens)), state, memory)
        return self.output(h_tilde), state, weights

    def _step(self, embedded: torch.Tensor, state: DecoderState, memory: Memory):
        """dropout(E_tgt y_{t-1}) (B, E) → h̃_t (B, H), new state, a_t (B, S) or None."""
        inputs = [embedded]
        context = weights = None
        if self.bahdanau:  # query s_{t-1}: the top layer's previous state
            previous = state.rnn[0][-1] if isinstance(state.rnn, tuple) else state.rnn[-1]
            context, weights = self.attention(previous[:, None], memory)
            inputs.append(context[:, 0])
        if self.input_feeding:
            inputs.append(state.feed)
        decoded, rnn = self.decoder(torch.cat(inputs, dim=-1)[:, None], state.rnn)  # h_t (B, 1, H)
        if self.attention is not None and not self.bahdanau:
            context, weights = self.attention(decoded, memory)
        if self.attention is not None:
            decoded = torch.tanh(self.W_c(torch.cat([context, decoded], dim=-1)))  # h̃_t
        h_tilde = decoded[:, 0]
        weights = None if weights is None else weights[:, 0]
        return h_tilde, DecoderState(rnn, h_tilde if self.input_feeding else None), weights

    def output(self, attentional: torch.Tensor) -> torch.Tensor:
        """logits = W_s dropout(h̃) + b_s."""
        return self.W_s(self.dropout(attentional))


def _check_options(*, bidirectional, reverse_source, input_feeding, tie_weights, teacher_forcing,
                   encoder_hidden_size, embedding_size, hidden_size) -> None:
    """Raise ConfigError naming the first invalid translation-specific `model.*` value."""
    for key, value in (("bidirectional", bidirectional), ("reverse_source", reverse_source),
                       ("input_feeding", input_feeding), ("tie_weights", tie_weights)):
        if not isinstance(value, bool):
            raise ConfigError(f"model.{key}={value} is invalid: must be true or false")
    if not isinstance(encoder_hidden_size, int) or isinstance(encoder_hidden_size, bool) or encoder_hidden_size < 1:
        raise ConfigError(f"model.encoder_hidden_size={encoder_hidden_size} is invalid: must be a positive integer "
                          "(or null for hidden_size)")
    if isinstance(teacher_forcing, bool) or not isinstance(teacher_forcing, (int, float)) \
            or not 0 <= teacher_forcing <= 1:
        raise ConfigError(f"model.teacher_forcing={teacher_forcing} is invalid: must be in [0, 1] "
                          "(the probability of feeding the gold previous token)")
    if tie_weights and embedding_size != hidden_size:
        raise ConfigError(f"model.tie_weights=true needs model.embedding_size == model.hidden_size (E_tgt is W_s), "
                          f"got {embedding_size} and {hidden_size}; set them equal or tie_weights=false")


def _attention_options(attention: dict | None) -> dict | None:
    """The `attention` group's dict, checked; None for no attention."""
    if attention is None:
        return None
    unknown = [key for key in attention if key not in ATTENTION_OPTIONS and not key.startswith("_")]
    if unknown:
        raise ConfigError(f"attention.{unknown[0]} is not an option here; valid: {', '.join(ATTENTION_OPTIONS)}")
    if "type" not in attention:
        raise ConfigError(f"attention.type is missing: choose one of {', '.join(ATTENTION_TYPES)}")
    if attention["type"] not in ATTENTION_TYPES:
        raise ConfigError(f"attention.type={attention['type']!r} is invalid: choose one of "
                          f"{', '.join(ATTENTION_TYPES)}")
    if attention["type"] == "none":
        extra = [key for key in attention if key in ("window", "score") and attention[key] is not None]
        if extra:
            raise ConfigError(f"attention.{extra[0]} applies to attention=local only, not none; remove it")
        return None
    return {key: value for key, value in attention.items() if key in ATTENTION_OPTIONS}
