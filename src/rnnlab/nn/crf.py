"""A tagger's output layer: each word's tag on its own (softmax per word), or the sentence's tags together (a
linear-chain CRF, Lafferty et al. 2001; over a bi-LSTM as in Huang et al. 2015 and Lample et al. 2016).

Both read the scores E (B, T, K) a network gives each word's tags and answer the same two questions: the negative
log-likelihood of the gold tags of each sentence, `nll(E, tags, lengths)` (B,), and the best tags, `decode(E,
lengths)` (B, T), 0 past a sentence's end. Positions past a sentence's length are never read.

    per word:  p(y | x) = Π_i softmax(E_i)[y_i]                 decode: argmax_k E[i, k] at each word
    CRF:       p(y | x) = exp s(y) / Z(x)                       decode: argmax_y s(y)  (Viterbi)
               s(y) = A[BOS, y_1] + Σ_{i=2..n} A[y_{i−1}, y_i] + A[y_n, EOS] + Σ_i E[i, y_i]
               Z(x) = Σ_y exp s(y)                              (the forward algorithm, in log space)

The CRF learns A, (K+1, K+1) with index K the sentence boundary (row K: the start scores, column K: the end scores),
so that a tag can depend on its neighbours' (I-x follows B-x or I-x, never O); the recursions are rnnlab.nn.chain's,
which the HMM decodes with too. A starts at 0, where the CRF's p(y | x) is the per-word softmax's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rnnlab.nn.chain import log_partition, path_score, viterbi
from rnnlab.nn.padding import real_tokens


class PerWordSoftmax(nn.Module):
    """Each word's tag independently: cross-entropy per word, argmax per word. No parameters."""

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Σ_i −log softmax(E_i)[y_i] over each sentence's words, (B,)."""
        real = _real(emissions, lengths)
        per_word = F.cross_entropy(_wide(emissions).transpose(1, 2), torch.where(real, tags, 0), reduction="none")
        return torch.where(real, per_word, 0).sum(1)  # padding never scored, whatever it holds

    def decode(self, emissions: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.where(_real(emissions, lengths), emissions.argmax(-1), 0)


class CRF(nn.Module):
    """A linear-chain CRF over K tags: transitions A (K+1, K+1), the boundary at index K (see the module docstring)."""

    def __init__(self, num_tags: int):
        super().__init__()
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.zeros(num_tags + 1, num_tags + 1))  # A[K, K] (BOS → EOS) unused

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """−log p(tags | x) = log Z(x) − s(tags) of each sentence, (B,)."""
        emissions, transitions = _wide(emissions), _wide(self.transitions)
        return log_partition(emissions, transitions, lengths) - path_score(emissions, transitions, tags, lengths)

    def decode(self, emissions: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The highest-scoring tag sequence of each sentence (Viterbi), (B, T)."""
        return viterbi(_wide(emissions), _wide(self.transitions), lengths)

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}"


def _real(emissions: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T): True on each sentence's words, False on its padding."""
    return real_tokens(lengths, emissions.size(1), emissions.device)


def _wide(scores: torch.Tensor) -> torch.Tensor:
    """float32 at least, whatever the autocast: a difference of log-sums over K^n sequences in bf16 is noise."""
    return scores.float() if scores.element_size() < 4 else scores
