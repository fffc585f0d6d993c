"""Recurrent language model: p(x_{t+1} | x_≤t) = softmax(W_o · dropout(h_t) + b_o).

    e_t = dropout(E x_t)                      embedding (V → embedding_size)
    h_t = recurrent stack(e_t, h_{t-1})        rnn | lstm | gru, num_layers deep
    logits_t = W_o · dropout(h_t) + b_o        W_o = E when tie_weights (Press & Wolf, 2017)

locked_dropout: the three dropouts (embeddings, between layers, outputs) draw one mask per sequence
instead of one per step (variational dropout, rnnlab/nn/dropout.py).
"""

from __future__ import annotations

from torch import nn

from rnnlab.errors import ConfigError, group_keys
from rnnlab.nn import CELLS, RecurrentState, recurrent_layer
from rnnlab.nn.dropout import make_dropout
from rnnlab.nn.recurrent import NONLINEARITIES


class RNNLanguageModel(nn.Module):
    def __init__(self, vocab_size: int, cell: str = "lstm", embedding_size: int = 128,
                 hidden_size: int = 256, num_layers: int = 2, dropout: float = 0.0,
                 bidirectional: bool = False, tie_weights: bool = False, nonlinearity: str = "tanh",
                 forget_bias: float | str | None = None, backend: str = "fused", learn_initial_state: bool = False,
                 gru_form: str | None = None, leak: float | None = None, learn_leak: bool = False,
                 skip: int | None = None, locked_dropout: bool = False, recurrent_init: str = "default",
                 chrono_max: float | None = None):
        super().__init__()
        check_architecture(cell=cell, embedding_size=embedding_size, hidden_size=hidden_size,
                           num_layers=num_layers, dropout=dropout, nonlinearity=nonlinearity)
        if bidirectional:
            raise ConfigError("model.bidirectional=true is not meaningful for a left-to-right language "
                              "model (the backward direction would read the token it must predict); "
                              "set model.bidirectional=false")
        if tie_weights and embedding_size != hidden_size:
            raise ConfigError(f"model.tie_weights=true needs model.embedding_size == model.hidden_size, got "
                              f"{embedding_size} and {hidden_size}; set them equal or tie_weights=false")
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.dropout = make_dropout(dropout, locked_dropout)
        with group_keys("model"):
            self.rnn = recurrent_layer(cell, embedding_size, hidden_size, num_layers, dropout,
                                       nonlinearity=nonlinearity, forget_bias=forget_bias, backend=backend,
                                       learn_initial_state=learn_initial_state, gru_form=gru_form, leak=leak,
                                       learn_leak=learn_leak, skip=skip, locked_dropout=locked_dropout,
                                       recurrent_init=recurrent_init, chrono_max=chrono_max)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        if tie_weights:
            self.decoder.weight = self.embedding.weight
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, tokens, state: RecurrentState | None = None):
        """tokens (B, T) → logits (B, T, V), final state."""
        embedded = self.dropout(self.embedding(tokens))  # (B, T, E)
        hidden, state = self.rnn(embedded, state)  # (B, T, H)
        return self.decoder(self.dropout(hidden)), state


def check_architecture(*, cell: str, embedding_size: int, hidden_size: int, num_layers: int,
                       dropout: float, nonlinearity: str) -> None:
    """Raise ConfigError naming the first invalid `model.*` value."""
    if cell not in CELLS:
        raise ConfigError(f"model.cell={cell!r} is invalid: choose one of {', '.join(CELLS)}")
    if nonlinearity not in NONLINEARITIES:
        raise ConfigError(f"model.nonlinearity={nonlinearity!r} is invalid: "
                          f"choose one of {', '.join(NONLINEARITIES)}")
    for key, value in (("embedding_size", embedding_size), ("hidden_size", hidden_size),
                       ("num_layers", num_layers)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"model.{key}={value} is invalid: must be a positive integer")
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ConfigError(f"model.dropout={dropout} is invalid: must be in [0, 1)")
