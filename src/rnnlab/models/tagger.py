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

With intents (task.intent=joint|conditioned, for data that labels each sentence as a whole: SNIPS's intents), the
same states also classify the sentence, as the joint intent and slot models of spoken language understanding do
(Liu & Lane, 2016; Goo et al., 2018):

    u = max_t h_t                               each feature's largest value over the sentence's real words
    p(intent | x) = softmax(W_u · dropout(u) + b_u)

and with task.intent=conditioned each word's tag scores also read the intent the sentence is predicted to have
(Goo et al.'s slot gate and Qin et al.'s stack-propagation, in their simplest differentiable form):

    scores_t = W_o · [dropout(h_t); Σ_i p(intent = i | x) v_i] + b_o      v_i a learned vector per intent

so a name's slot type can follow what the request is for (a playlist to add to, an album or a track to play).

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
from rnnlab.nn.padding import real_tokens

INTENT_SIZE = 32  # the size of each intent's vector v_i that conditioned tag scores read


class RNNTagger(nn.Module):
    def __init__(self, vocab_size: int, num_tags: int, pad_id: int = 0, cell: str = "lstm", embedding_size: int = 128,
                 hidden_size: int = 256, num_layers: int = 1, dropout: float = 0.0, bidirectional: bool = True,
                 tie_weights: bool = False, nonlinearity: str = "tanh", forget_bias: float | str | None = None,
                 backend: str = "fused", learn_initial_state: bool = False, gru_form: str | None = None,
                 leak: float | None = None, learn_leak: bool = False, skip: int | None = None,
                 locked_dropout: bool = False, num_chars: int = 0, char_features: str = "none", char_dim: int = 32,
                 char_hidden: int = 64, char_kernel: int = 3, recurrent_init: str = "default",
                 chrono_max: float | None = None, num_intents: int = 0, condition_on_intent: bool = False):
        """num_intents > 0 adds the sentence's intent classifier (the task sets it for task.intent), and
        condition_on_intent makes each word's tag scores read the predicted intent."""
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
        self.intent_out = nn.Linear(self.rnn.output_size, num_intents) if num_intents else None
        self.intent_vectors = None
        if condition_on_intent:
            if not num_intents:
                raise ValueError("condition_on_intent reads the predicted intent: give num_intents > 0")
            self.intent_vectors = nn.Linear(num_intents, INTENT_SIZE, bias=False)  # Σ_i p_i v_i as p @ V
        self.out = nn.Linear(self.rnn.output_size + (INTENT_SIZE if condition_on_intent else 0), num_tags)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, chars: torch.Tensor | None = None,
                intents: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """tokens (B, T), lengths (B,), chars (B, T, L) each word's character ids (with char_features) → logits
        (B, T, K); positions past a sentence's length are not tags. With `intents` (a tagger built with
        num_intents), also the intent logits (B, I): (tag logits, intent logits)."""
        embedded = self.embedding(tokens)  # (B, T, E)
        if self.chars is not None:
            if chars is None:
                raise ValueError("model.char_features reads each word's characters: pass chars (B, T, L)")
            embedded = torch.cat([embedded, word_char_vectors(self.chars, chars, lengths)], -1)  # (B, T, E + C)
        states, _ = self.rnn(self.dropout(embedded), lengths=lengths, final=False)  # (B, T, D·H)
        if self.intent_out is None:
            if intents:
                raise ValueError("this tagger has no intent classifier (built without num_intents)")
            return self.out(self.dropout(states))
        real = real_tokens(lengths, tokens.size(1), states.device).unsqueeze(-1)
        pooled = states.masked_fill(~real, float("-inf")).max(1).values  # (B, D·H): u = max over the real words
        intent_logits = self.intent_out(self.dropout(pooled))  # (B, I)
        features = self.dropout(states)
        if self.intent_vectors is not None:
            intent = self.intent_vectors(intent_logits.softmax(-1))  # (B, INTENT_SIZE): Σ_i p(i | x) v_i
            features = torch.cat([features, intent[:, None, :].expand(-1, features.size(1), -1)], -1)
        tag_logits = self.out(features)
        return (tag_logits, intent_logits) if intents else tag_logits


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
