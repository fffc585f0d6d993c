"""Sequence tagger (`task=tagging`, model=rnn|lstm|gru): the lecture's many-to-many RNN, one tag per word.

    e_t = dropout(E x_t)                        embedding
    h_1..h_T = recurrent stack(e_1..e_T)        rnn | lstm | gru, num_layers deep, bidirectional by default for
                                                tagging: h_t = [→h_t; ←h_t], the words before t and after it
    p(y_t | x) = softmax(W_o · dropout(h_t) + b_o)

"In POS tagging the hidden state at every timestep is classified": the output layer reads each h_t. A
unidirectional stack (`model.bidirectional=false`) tags word t having read only words 1..t, which caps it where a
tag depends on a later word (data=synthetic_tagging measures by how much). Padding is never read: the stack packs
by length (rnnlab.nn.recurrent), so the backward direction starts at each sentence's last real word, and a batch
padded to any length gives the same logits on the real words.
"""

from __future__ import annotations

import torch
from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.models.language_model import check_architecture
from rnnlab.nn import recurrent_layer


class RNNTagger(nn.Module):
    def __init__(self, vocab_size: int, num_tags: int, pad_id: int = 0, cell: str = "lstm", embedding_size: int = 128,
                 hidden_size: int = 256, num_layers: int = 1, dropout: float = 0.0, bidirectional: bool = True,
                 tie_weights: bool = False, nonlinearity: str = "tanh", forget_bias: float | None = None,
                 backend: str = "fused", learn_initial_state: bool = False, gru_form: str | None = None,
                 leak: float | None = None, learn_leak: bool = False, skip: int | None = None,
                 locked_dropout: bool = False):
        super().__init__()
        check_architecture(cell=cell, embedding_size=embedding_size, hidden_size=hidden_size, num_layers=num_layers,
                           dropout=dropout, nonlinearity=nonlinearity)
        if tie_weights:
            raise ConfigError("model.tie_weights=true ties a language model's output layer to its embedding; a "
                              "tagger's outputs are tags, not words: set model.tie_weights=false")
        if locked_dropout:
            raise ConfigError("model.locked_dropout=true is implemented for task=lm only; set "
                              "model.locked_dropout=false for task=tagging")
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.dropout = nn.Dropout(dropout)
        self.rnn = recurrent_layer(cell, embedding_size, hidden_size, num_layers, dropout=dropout,
                                   bidirectional=bidirectional, nonlinearity=nonlinearity, forget_bias=forget_bias,
                                   backend=backend, learn_initial_state=learn_initial_state, gru_form=gru_form,
                                   leak=leak, learn_leak=learn_leak, skip=skip)
        self.out = nn.Linear(self.rnn.output_size, num_tags)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """tokens (B, T), lengths (B,) → logits (B, T, K); positions past a sentence's length are not tags."""
        states, _ = self.rnn(self.dropout(self.embedding(tokens)), lengths=lengths)  # (B, T, D·H)
        return self.out(self.dropout(states))
