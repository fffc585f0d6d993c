"""Sequence tagger (`task=tagging`, model=rnn|lstm|gru): the lecture's many-to-many RNN, one tag per word.

    e_t = dropout([E x_t; c(x_t)])              embedding, and with model.char_features=cnn|lstm the word's
                                                vector c from its characters (rnnlab/nn/characters.py)
    h_1..h_T = recurrent stack(e_1..e_T)        rnn | lstm | gru, num_layers deep, bidirectional by default for
                                                tagging: h_t = [→h_t; ←h_t], the words before t and after it
    p(y_t | x) = softmax(W_o · dropout(h_t) + b_o)

"In POS tagging the hidden state at every timestep is classified": the output layer reads each h_t. A
unidirectional stack (`model.bidirectional=false`) tags word t having read only words 1..t, which caps it where a
tag depends on a later word (data=synthetic_tagging measures by how much). Padding is never read: the stack packs
by length or reverses each sentence within it (rnnlab.nn.recurrent, final=False), so the backward direction starts
at each sentence's last real word, and a batch padded to any length gives the same logits on the real words.

Character features help where a word is rare or unseen (its vocabulary id is <unk>, or one seen too rarely to have
learned much): its spelling still reaches the stack. The data gives each word's characters (`chars`, (B, T, L)) and
the size of its character vocabulary (`num_chars`).
"""

from __future__ import annotations

import torch
from torch import nn

from rnnlab.errors import ConfigError, group_keys
from rnnlab.models.language_model import check_architecture
from rnnlab.nn import recurrent_layer
from rnnlab.nn.characters import KINDS, char_encoder, word_char_vectors


class RNNTagger(nn.Module):
    def __init__(self, vocab_size: int, num_tags: int, pad_id: int = 0, cell: str = "lstm", embedding_size: int = 128,
                 hidden_size: int = 256, num_layers: int = 1, dropout: float = 0.0, bidirectional: bool = True,
                 tie_weights: bool = False, nonlinearity: str = "tanh", forget_bias: float | str | None = None,
                 backend: str = "fused", learn_initial_state: bool = False, gru_form: str | None = None,
                 leak: float | None = None, learn_leak: bool = False, skip: int | None = None,
                 locked_dropout: bool = False, num_chars: int = 0, char_features: str = "none", char_dim: int = 32,
                 char_hidden: int = 64, char_kernel: int = 3, recurrent_init: str = "default",
                 chrono_max: float | None = None):
        super().__init__()
        check_architecture(cell=cell, embedding_size=embedding_size, hidden_size=hidden_size, num_layers=num_layers,
                           dropout=dropout, nonlinearity=nonlinearity)
        check_char_features(char_features, num_chars, char_dim=char_dim, char_hidden=char_hidden,
                            char_kernel=char_kernel)
        if tie_weights:
            raise ConfigError("model.tie_weights=true ties a language model's output layer to its embedding; a "
                              "tagger's outputs are tags, not words: set model.tie_weights=false")
        if locked_dropout:
            raise ConfigError("model.locked_dropout=true is implemented for task=lm only; set "
                              "model.locked_dropout=false for task=tagging")
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.chars = char_encoder(char_features, num_chars, char_dim, char_hidden, char_kernel)
        input_size = embedding_size + (self.chars.output_size if self.chars else 0)
        self.dropout = nn.Dropout(dropout)
        with group_keys("model"):
            self.rnn = recurrent_layer(cell, input_size, hidden_size, num_layers, dropout=dropout,
                                       bidirectional=bidirectional, nonlinearity=nonlinearity, forget_bias=forget_bias,
                                       backend=backend, learn_initial_state=learn_initial_state, gru_form=gru_form,
                                       leak=leak, learn_leak=learn_leak, skip=skip, recurrent_init=recurrent_init,
                                       chrono_max=chrono_max)
        self.out = nn.Linear(self.rnn.output_size, num_tags)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, chars: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, T), lengths (B,), chars (B, T, L) each word's character ids (with char_features) → logits
        (B, T, K); positions past a sentence's length are not tags."""
        embedded = self.embedding(tokens)  # (B, T, E)
        if self.chars is not None:
            if chars is None:
                raise ValueError("model.char_features reads each word's characters: pass chars (B, T, L)")
            embedded = torch.cat([embedded, word_char_vectors(self.chars, chars, lengths)], -1)  # (B, T, E + C)
        states, _ = self.rnn(self.dropout(embedded), lengths=lengths, final=False)  # (B, T, D·H)
        return self.out(self.dropout(states))


def check_char_features(kind: str, num_chars: int, **sizes: int) -> None:
    """Raise ConfigError naming the first invalid character-feature setting."""
    if kind not in KINDS:
        raise ConfigError(f"model.char_features={kind!r} is invalid: choose one of {', '.join(KINDS)}")
    if kind == "none":
        return
    for key, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"model.{key}={value!r} is invalid: must be a positive integer")
    if num_chars < 3:  # padding, unknown, and one character at least
        raise ConfigError(f"model.char_features={kind} reads characters, but this data gives no character "
                          f"vocabulary (num_chars={num_chars}); use a task=tagging data set, or "
                          f"model.char_features=none")
