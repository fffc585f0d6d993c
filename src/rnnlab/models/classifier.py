"""Sentence classifiers (`task=classification`): a recurrent encoder pooled into one vector, and the bag of words.

Recurrent (`model=rnn|lstm|gru`, the lecture's many-to-one RNN):

    e_t = dropout(E x_t)                        embedding
    h_1..h_T = recurrent stack(e_1..e_T)        rnn | lstm | gru, num_layers deep, optionally bidirectional
    s = pool(h_1..h_T)                          pooling, below
    p(y | x) = softmax(W_o · dropout(s) + b_o)

pooling: `last` — "treat the last output as prediction": the last layer's state at the last real token; for a
bidirectional encoder the forward direction's last state and the backward direction's first (each has read the
whole sentence). `mean`, `max` — over the real tokens. `attention` — a learned query over the states, as in
hierarchical attention networks: u_t = tanh(W h_t + b), a_t = softmax_t(u_t · q), s = Σ_t a_t h_t.
Padding is never read: the stack packs by length (rnnlab.nn.recurrent) and every pooling masks the padding, so a
batch padded to any length gives the same logits.

Bag of words (`model=bow`, the lecture's features): x = the counts of each vocabulary word in the text (or 0/1
presence, or log(1 + count)), with `ngrams: 2` also the counts of adjacent word pairs hashed into
`bigram_buckets` buckets; then a linear layer (`hidden_units: 0`) or one hidden layer (ReLU) to the classes.
Order is lost by design: that is the baseline's point.

`weighting: tfidf` weighs each count by how rare the feature is across the training texts, as scikit-learn's
TfidfTransformer does by default (smooth idf, then each text's vector scaled to unit length):

    idf_j = ln((1 + N) / (1 + df_j)) + 1        N training texts, df_j of them hold feature j
    x = tf ⊙ idf / ‖tf ⊙ idf‖₂

The document frequencies are counted once, before training, from the training split (`fit_idf`, called by the
task) and kept in the weights, so a checkpoint reads new text with the training split's idf.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rnnlab.errors import ConfigError, group_keys
from rnnlab.models.language_model import check_architecture
from rnnlab.nn import recurrent_layer
from rnnlab.nn.padding import real_tokens

POOLINGS = ("last", "mean", "max", "attention")
WEIGHTINGS = ("counts", "binary", "log_counts", "tfidf")


def check_pooling(pooling: str) -> None:
    if pooling not in POOLINGS:
        raise ConfigError(f"task.pooling={pooling!r} is invalid: choose one of {', '.join(POOLINGS)}")


class RNNClassifier(nn.Module):
    def __init__(self, vocab_size: int, num_classes: int, pad_id: int = 0, pooling: str = "last", cell: str = "lstm",
                 embedding_size: int = 128, hidden_size: int = 256, num_layers: int = 1, dropout: float = 0.0,
                 bidirectional: bool = False, tie_weights: bool = False, nonlinearity: str = "tanh",
                 forget_bias: float | str | None = None, backend: str = "fused", learn_initial_state: bool = False,
                 gru_form: str | None = None, leak: float | None = None, learn_leak: bool = False,
                 skip: int | None = None, locked_dropout: bool = False, recurrent_init: str = "default",
                 chrono_max: float | None = None):
        super().__init__()
        check_architecture(cell=cell, embedding_size=embedding_size, hidden_size=hidden_size, num_layers=num_layers,
                           dropout=dropout, nonlinearity=nonlinearity)
        check_pooling(pooling)
        if tie_weights:
            raise ConfigError("model.tie_weights=true ties a language model's output layer to its embedding; a "
                              "classifier's outputs are classes, not words: set model.tie_weights=false")
        if locked_dropout:
            raise ConfigError("model.locked_dropout=true is implemented for task=lm only; set "
                              "model.locked_dropout=false for task=classification")
        self.pooling, self.pad_id = pooling, pad_id
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.dropout = nn.Dropout(dropout)
        with group_keys("model"):
            self.rnn = recurrent_layer(cell, embedding_size, hidden_size, num_layers, dropout=dropout,
                                       bidirectional=bidirectional, nonlinearity=nonlinearity, forget_bias=forget_bias,
                                       backend=backend, learn_initial_state=learn_initial_state, gru_form=gru_form,
                                       leak=leak, learn_leak=learn_leak, skip=skip, recurrent_init=recurrent_init,
                                       chrono_max=chrono_max)
        size = self.rnn.output_size
        if pooling == "attention":
            self.attention_proj = nn.Linear(size, size)
            self.query = nn.Parameter(torch.randn(size) / size**0.5)
        self.out = nn.Linear(size, num_classes)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, return_attention: bool = False):
        """tokens (B, T), lengths (B,) → logits (B, C) (and the attention weights (B, T) when asked, else None)."""
        states, _ = self.rnn(self.dropout(self.embedding(tokens)), lengths=lengths, final=False)  # (B, T, D·H)
        mask = real_tokens(lengths, tokens.size(1))
        weights = None
        if self.pooling == "last":
            # the top layer's final states are among its outputs: the forward direction's at each sequence's last
            # word, the backward direction's at its first
            H, rows = self.rnn.hidden_size, torch.arange(tokens.size(0), device=states.device)
            last = states[rows, lengths.to(states.device) - 1]  # (B, D·H)
            pooled = torch.cat([last[:, :H], states[:, 0, H:]], dim=-1) if self.rnn.directions == 2 else last
        elif self.pooling == "mean":
            pooled = (states * mask.unsqueeze(-1)).sum(1) / lengths.to(states.dtype).unsqueeze(-1)
        elif self.pooling == "max":
            pooled = states.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(dim=1).values
        else:
            scores = torch.tanh(self.attention_proj(states)) @ self.query  # (B, T)
            weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=1)
            pooled = (weights.unsqueeze(-1) * states).sum(1)
        logits = self.out(self.dropout(pooled))
        return (logits, weights) if return_attention else logits


class BagOfWordsClassifier(nn.Module):
    def __init__(self, vocab_size: int, num_classes: int, pad_id: int = 0, pooling: str = "last",
                 weighting: str = "counts", ngrams: int = 1, bigram_buckets: int = 2**16, hidden_units: int = 0,
                 dropout: float = 0.0):
        super().__init__()
        check_pooling(pooling)  # a task key: the bag of words has no states to pool, but a sweep sets it for all
        if weighting not in WEIGHTINGS:
            raise ConfigError(f"model.weighting={weighting!r} is invalid: choose one of {', '.join(WEIGHTINGS)}")
        if ngrams not in (1, 2):
            raise ConfigError(f"model.ngrams={ngrams!r} is invalid: 1 (words) or 2 (words and adjacent pairs)")
        for key, value, least in (("bigram_buckets", bigram_buckets, 1), ("hidden_units", hidden_units, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ConfigError(f"model.{key}={value!r} is invalid: must be an integer ≥ {least}")
        if not 0 <= dropout < 1:
            raise ConfigError(f"model.dropout={dropout} is invalid: must be in [0, 1)")
        self.vocab_size, self.weighting = vocab_size, weighting
        self.ngrams, self.bigram_buckets = ngrams, bigram_buckets
        features = vocab_size + (bigram_buckets if ngrams == 2 else 0)
        if weighting == "tfidf":  # buffers: saved in checkpoints, fitted by fit_idf before training
            self.register_buffer("idf", torch.ones(features))
            self.register_buffer("idf_fitted", torch.tensor(False))
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden_units:
            layers += [nn.Linear(features, hidden_units), nn.ReLU(), nn.Dropout(dropout)]
        layers.append(nn.Linear(hidden_units or features, num_classes))
        self.classify = nn.Sequential(*layers)

    @torch.no_grad()
    def fit_idf(self, texts: list[list[int]], batch_size: int = 1024) -> None:
        """The smoothed inverse document frequency of every feature over `texts` (the training split's token ids)."""
        from rnnlab.data.batching import pad_sequences

        device = self.idf.device
        document_frequency = torch.zeros_like(self.idf)
        for start in range(0, len(texts), batch_size):
            tokens, lengths = pad_sequences(texts[start:start + batch_size], 0)
            document_frequency += (self.counts(tokens.to(device), lengths.to(device)) > 0).sum(0)
        self.idf.copy_(torch.log((1 + len(texts)) / (1 + document_frequency)) + 1)
        self.idf_fitted.fill_(True)

    def features(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, features): the weighted counts of the text's words (and adjacent pairs)."""
        counts = self.counts(tokens, lengths)
        if self.weighting == "binary":
            return (counts > 0).float()
        if self.weighting == "log_counts":
            return torch.log1p(counts)
        if self.weighting == "tfidf":
            if not self.idf_fitted:
                raise ConfigError("model.weighting=tfidf: the idf was never fitted; call fit_idf(training texts) "
                                  "first (task=classification does it before training)")
            return F.normalize(counts * self.idf, dim=1)
        return counts

    def counts(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, features): word counts (and hashed adjacent-pair counts); padding counts nothing."""
        real = real_tokens(lengths, tokens.size(1))
        tokens, mask = tokens.masked_fill(~real, 0), real.float()  # whatever the padding holds, it counts nothing
        counts = torch.zeros(tokens.size(0), self.vocab_size, device=tokens.device)
        counts.scatter_add_(1, tokens, mask)
        if self.ngrams == 2:
            pairs = (tokens[:, :-1] * self.vocab_size + tokens[:, 1:]) % self.bigram_buckets  # the hashing trick
            pair_counts = torch.zeros(tokens.size(0), self.bigram_buckets, device=tokens.device)
            pair_counts.scatter_add_(1, pairs, mask[:, 1:])  # a pair is real when its second word is
            counts = torch.cat([counts, pair_counts], dim=1)
        return counts

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, return_attention: bool = False):
        logits = self.classify(self.features(tokens, lengths))
        return (logits, None) if return_attention else logits
