"""Variational ("locked") dropout: one mask per sequence, shared by every time step; and word dropout.

Standard dropout draws a new mask at each step, so over a sequence every unit is dropped some of the
time and the recurrent signal is noise-averaged rather than regularised. Gal & Ghahramani (2016) derive
dropout for RNNs as variational inference with one mask per sequence; Merity et al. (2018, AWD-LSTM)
apply it to the embeddings, between layers and on the outputs. With truncated BPTT a "sequence" here is
one window: a fresh mask per batch, as AWD-LSTM does.

    y_{b,t,:} = x_{b,t,:} ⊙ m_b / (1 − p),   m_b ~ Bernoulli(1 − p)^F, the same for every t
"""

from __future__ import annotations

import torch
from torch import nn

from rnnlab.errors import ConfigError


class LockedDropout(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout={p} must be in [0, 1)")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, F) → the same shape; identity in eval mode."""
        if not self.training or self.p == 0:
            return x
        mask = x.new_empty(x.size(0), 1, x.size(2)).bernoulli_(1 - self.p)
        return x * mask / (1 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def make_dropout(p: float, locked: bool) -> nn.Module:
    return LockedDropout(p) if locked else nn.Dropout(p)


def drop_words(tokens: torch.Tensor, p: float, unk_id: int) -> torch.Tensor:
    """Word dropout (Iyyer et al., 2015; Kiperwasser & Goldberg, 2016): each word id reads as <unk> with probability
    p, so the model learns the <unk> embedding and does not lean on memorised words (a tagger reads an unseen word by
    its characters, which are left as they are). Padding is unchanged where it shares <unk>'s id."""
    if p == 0:
        return tokens
    return tokens.masked_fill(torch.rand(tokens.shape, device=tokens.device) < p, unk_id)


def check_word_dropout(p: float) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ConfigError(f"task.word_dropout={p!r} is invalid: a probability in [0, 1)")
