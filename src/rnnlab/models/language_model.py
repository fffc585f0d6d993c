"""Recurrent language model: p(x_{t+1} | x_≤t) = softmax(W_o · dropout(h_t) + b_o).

    e_t = dropout(E x_t)                      embedding (V → embedding_size)
    h_t = recurrent stack(e_t, h_{t-1})        rnn | lstm | gru, num_layers deep
    logits_t = W_o · dropout(h_t) + b_o        W_o = E when tie_weights (Press & Wolf, 2017)

locked_dropout: the three dropouts (embeddings, between layers, outputs) draw one mask per sequence
instead of one per step (variational dropout, rnnlab/nn/dropout.py).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rnnlab.errors import ConfigError, group_keys
from rnnlab.nn import CELLS, RecurrentState, recurrent_layer
from rnnlab.nn.dropout import make_dropout
from rnnlab.nn.recurrent import NONLINEARITIES

EMBEDDING_INITS = ("unit", "uniform", "normal")


def init_embedding_(weight: torch.Tensor, how: str, hidden_size: int) -> None:
    """The word vectors' scale at init, which is the scale of everything the first recurrent layer reads:

        unit     e ~ N(0, 3H/E): each first-layer pre-activation W_ih·e starts with variance 1, since torch (and
                 rnnlab/nn/cells.py) draws W_ih from U(±1/√H), of variance 1/(3H)
        uniform  e ~ U(±0.1): Zaremba et al. (2014) and the PyTorch word-LM example
        normal   e ~ N(0, 1): torch's nn.Embedding

    Why unit is the default: under U(±0.1) (E = 128, H = 256) the pre-activations start at std 0.024, every gate
    sits at σ(0) = ½ whatever the word, and the 2-layer LSTM of `make train` stayed at chance agreement for 7
    epochs; at unit scale it starts carrying the subject in its 3rd (experiments/rnn_vs_transformer/embedding_init).
    """
    E = weight.shape[1]
    if how == "unit":
        nn.init.normal_(weight, std=math.sqrt(3 * hidden_size / E))
    elif how == "uniform":
        nn.init.uniform_(weight, -0.1, 0.1)
    else:
        nn.init.normal_(weight)


class RNNLanguageModel(nn.Module):
    def __init__(self, vocab_size: int, cell: str = "lstm", embedding_size: int = 128,
                 hidden_size: int = 256, num_layers: int = 2, dropout: float = 0.0,
                 bidirectional: bool = False, tie_weights: bool = False, nonlinearity: str = "tanh",
                 forget_bias: float | str | None = None, backend: str = "fused", learn_initial_state: bool = False,
                 gru_form: str | None = None, leak: float | None = None, learn_leak: bool = False,
                 skip: int | None = None, locked_dropout: bool = False, recurrent_init: str = "default",
                 chrono_max: float | None = None, embedding_init: str = "unit"):
        super().__init__()
        if embedding_init not in EMBEDDING_INITS:
            raise ConfigError(f"model.embedding_init={embedding_init!r} is invalid: choose one of "
                              f"{', '.join(EMBEDDING_INITS)}")
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
        init_embedding_(self.embedding.weight, "uniform" if tie_weights else embedding_init, hidden_size)
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
