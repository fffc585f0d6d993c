"""Attention: a decoder query h_d reads a context vector c from the encoder states h_e (`attention=...`).

One interface for every variant (the shape of OpenNMT-py's GlobalAttention: one score() switch, the
masks applied in one place):

    memory = attention.remember(encoder_states (B, S, M), lengths (B,))   once per sentence
    context, weights = attention(queries (B, T, Q), memory)               T decoder steps at once (T = 1 per step)

    a_t(s) = softmax_s(score(h_d, h_e(s)))        over the real source positions s = 1..S_b of each sentence
    c_t    = Σ_s a_t(s) h_e(s)                    context (B, T, M); weights a_t (B, T, S)

Padding gets score −∞ before the softmax, so its weight is exactly 0 and the weights of every
query sum to 1 over the sentence's own tokens.

Scores, h_d the query (B, Q), h_e(s) an encoder state (B, M):

    none            no attention: the decoder has no context; the model outputs from h_t alone
    bahdanau        v^T tanh(W_e h_e + W_d h_d)     additive (Bahdanau et al. 2015); h_d = s_{t-1}, the decoder's
                                                    previous state, and c_t then enters the decoder's input
    luong_dot       h_d^T h_e                       Luong et al. 2015; h_d = h_t, the current state; needs Q == M
    luong_general   h_d^T W_a h_e
    luong_concat    v^T tanh(W_a [h_d; h_e])        = v^T tanh(W_a^d h_d + W_a^e h_e), W_a split into its two blocks
    local           Luong's local-p (below), on top of the dot, general (default) or concat score

bahdanau and luong_concat share the score function; they differ in which query the model passes
(s_{t-1} or h_t) and where it uses c_t (rnnlab/models/seq2seq.py).

Local-p (Luong et al. 2015, §3.2), window D, σ = D/2, S_b the length of sentence b (not the padded S):

    p_t   = S_b · sigmoid(v_p^T tanh(W_p h_t))      predicted source position, in (0, S_b)
    a_t(s) = softmax(score)(s) · exp(−(s − p_t)² / (2σ²))   for the positions s = 1..S_b with |s − p_t| ≤ D

Luong leaves these weights unnormalised (the Gaussian shrinks them). Here they are renormalised over
the window, so they sum to 1 like every other variant:

    a_t(s) = exp(score_s − (s − p_t)²/(2σ²)) / Σ_{s' in window} exp(score_s' − (s' − p_t)²/(2σ²))

which is softmax(score)·Gaussian divided by its sum (the softmax's own denominator cancels), computed
as one softmax of score − (s − p_t)²/(2σ²) over the window. Positions count from 1 as in the paper;
since p_t ∈ (0, S_b), some s lies within 1 of p_t, so with D ≥ 1 the window is never empty.

Everything that depends on h_e alone (W_e h_e, W_a h_e, W_a^e h_e) is computed once per sentence by
remember(), not at every decoding step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rnnlab.nn.padding import real_tokens

ATTENTION_TYPES = ("none", "bahdanau", "luong_dot", "luong_general", "luong_concat", "local")
LOCAL_SCORES = ("dot", "general", "concat")


@dataclass
class Memory:
    """The encoder's side of attention for a batch of sentences."""

    states: torch.Tensor  # (B, S, M) h_e, 0 on padding
    mask: torch.Tensor  # (B, S) True at real source tokens
    lengths: torch.Tensor  # (B,) S_b
    keys: torch.Tensor | None = None  # (B, S, ·) the score's h_e-side projection, None for dot

    @classmethod
    def of(cls, states: torch.Tensor, lengths: torch.Tensor, keys: torch.Tensor | None = None) -> Memory:
        lengths = lengths.to(states.device)
        mask = real_tokens(lengths, states.size(1))
        return cls(states, mask, lengths, keys)

    def index_select(self, index: torch.Tensor) -> Memory:
        """Sentences reordered or repeated (beam search: one copy per beam)."""
        keys = None if self.keys is None else self.keys.index_select(0, index)
        return Memory(self.states.index_select(0, index), self.mask.index_select(0, index),
                      self.lengths.index_select(0, index), keys)


class Attention(nn.Module):
    """Every variant of the module docstring behind one interface; `type` picks the score.

    query_size Q: the decoder state's size; memory_size M: the encoder state's size (D·H).
    window (local only): D, a positive integer. score (local only): dot | general | concat.
    """

    def __init__(self, type: str, query_size: int, memory_size: int, window: int | None = None,
                 score: str | None = None):
        super().__init__()
        if type not in ATTENTION_TYPES or type == "none":
            raise ValueError(f"type={type!r} is invalid: choose one of {', '.join(ATTENTION_TYPES[1:])} "
                             "(none builds no attention module)")
        if type != "local" and (window is not None or score is not None):
            key = "window" if window is not None else "score"
            raise ValueError(f"{key} applies to type=local only, not type={type}; remove it")
        self.type = type
        self.local = type == "local"
        if self.local:
            window = 5 if window is None else window
            if not isinstance(window, int) or isinstance(window, bool) or window < 1:
                raise ValueError(f"window={window} is invalid: D must be a positive integer (half-width in tokens)")
            score = score or "general"
            if score not in LOCAL_SCORES:
                raise ValueError(f"score={score!r} is invalid: choose one of {', '.join(LOCAL_SCORES)}")
            self.window, self.sigma = window, window / 2
            self.W_p = nn.Linear(query_size, query_size, bias=False)
            self.v_p = nn.Linear(query_size, 1, bias=False)
        else:
            score = {"bahdanau": "concat", "luong_dot": "dot", "luong_general": "general",
                     "luong_concat": "concat"}[type]
        self.score_kind = score
        if score == "dot" and query_size != memory_size:
            raise ValueError(f"type={type} with the dot score needs the decoder's hidden size ({query_size}) to "
                             f"equal the encoder's output size ({memory_size}); use luong_general, or an encoder "
                             "of matching size (bidirectional: encoder_hidden_size = hidden_size / 2)")
        if score == "general":
            self.W_a = nn.Linear(memory_size, query_size, bias=False)
        if score == "concat":
            self.W_e = nn.Linear(memory_size, query_size, bias=False)  # W_e, or W_a's h_e block
            self.W_d = nn.Linear(query_size, query_size, bias=False)  # W_d, or W_a's h_d block
            self.v = nn.Linear(query_size, 1, bias=False)

    def remember(self, encoder_states: torch.Tensor, lengths: torch.Tensor) -> Memory:
        """h_e (B, S, M) → Memory, with the score's h_e-side projection computed once."""
        keys = None
        if self.score_kind == "general":
            keys = self.W_a(encoder_states)  # W_a h_e (B, S, Q)
        elif self.score_kind == "concat":
            keys = self.W_e(encoder_states)  # W_e h_e (B, S, Q)
        return Memory.of(encoder_states, lengths, keys)

    def score(self, queries: torch.Tensor, memory: Memory) -> torch.Tensor:
        """score(h_d, h_e(s)) for every query and position: (B, T, Q) → (B, T, S)."""
        if self.score_kind == "dot":
            return queries @ memory.states.transpose(1, 2)  # h_d^T h_e
        if self.score_kind == "general":
            return queries @ memory.keys.transpose(1, 2)  # h_d^T (W_a h_e)
        # v^T tanh(W_e h_e + W_d h_d), broadcast to (B, T, S, Q)
        return self.v(torch.tanh(memory.keys[:, None] + self.W_d(queries)[:, :, None])).squeeze(-1)

    def forward(self, queries: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """queries h_d (B, T, Q) → context c (B, T, M), weights a (B, T, S)."""
        scores = self.score(queries, memory)
        allowed = memory.mask[:, None, :]  # (B, 1, S)
        if self.local:
            p = memory.lengths[:, None] * torch.sigmoid(self.v_p(torch.tanh(self.W_p(queries)))).squeeze(-1)
            positions = torch.arange(1, scores.size(-1) + 1, device=scores.device, dtype=scores.dtype)
            distance = positions - p[..., None]  # s − p_t (B, T, S)
            scores = scores - distance.square() / (2 * self.sigma**2)
            allowed = allowed & (distance.abs() <= self.window)
        weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
        return weights @ memory.states, weights
