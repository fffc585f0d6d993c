"""The lecture's hidden Markov model tagger (`model=hmm`, task=tagging), counted from the training split as TnT
does it (Brants, 2000), first or second order, decoded with Viterbi.

    order 1:  p(w, y) = Π_{i=1..n} p(y_i | y_{i−1}) p(w_i | y_i) · p(EOS | y_n)                      y_0 = BOS
    order 2:  p(w, y) = Π_{i=1..n} p(y_i | y_{i−2}, y_{i−1}) p(w_i | y_i) · p(EOS | y_{n−1}, y_n)    y_{−1} = y_0 = BOS

Transitions: maximum-likelihood estimates from the tag n-gram counts f (the sentence boundary counted as a tag),
linearly interpolated so that no sequence is impossible,

    order 2:  p(y_3 | y_1, y_2) = λ_1 p̂(y_3) + λ_2 p̂(y_3 | y_2) + λ_3 p̂(y_3 | y_1, y_2)
    order 1:  p(y_3 | y_2)      = λ_1 p̂(y_3) + λ_2 p̂(y_3 | y_2)

with p̂(y_3 | h) = f(h y_3) / f(h) (a history never seen falls back to the next shorter one) and the λ by deleted
interpolation: each n-gram's count goes to the λ of the order whose estimate, without that one occurrence,
(f(h y) − 1) / (f(h) − 1), is largest; then the λ are normalised. (Each λ starts from one vote instead of Brants'
zero, so that even on a tiny corpus no tag sequence is impossible and every sentence has a finite loss.)

Emissions: p(w | y) = p(y | w) p(w) / p(y), and p(w) is the same for every tag of a word, so the decoder scores
each word by log p(y | w) − log p(y) (log p(w | y) up to a constant per word, which no decision depends on), with

    p(y | w) = (f(w, y) + α p_suffix(y | w)) / (f(w) + α)                            α = `emission_prior`

the word's own tag counts, smoothed towards what its ending says. α = 0 is TnT's lexicon (a word seen in training
only ever gets the tags it had there); an unseen word (f(w) = 0) is tagged by its ending alone.

The suffix model (TnT's, for unknown words): p̂(y | s) counted over the training tokens of rare words (seen at most
`rare_threshold` times, the words most like unseen ones), for every ending s of up to `suffix_length` characters,
separately for capitalised and lower-case words; then from the empty ending (p̂(y) of rare words, add-one smoothed
so that no tag is impossible) to the longest ending l_{n−i+1}..l_n of the word seen in training,

    p(y | l_{n−i+1}..l_n) = (p̂(y | l_{n−i+1}..l_n) + θ p(y | l_{n−i+2}..l_n)) / (1 + θ),

θ the standard deviation of the tags' unconditioned probabilities p̂(y) (Brants' choice).

`forward` gives each word's tag posterior log p(y_i | w) (forward–backward, rnnlab.nn.chain), so task=tagging's loss
is the same cross-entropy as for an RNN; `viterbi` gives the most probable tag sequence, which the task scores. The
counts travel in the state_dict (what a checkpoint holds); everything else is estimated from them again.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.nn.chain import marginals, viterbi

ORDERS = (1, 2)


class HMMTagger(nn.Module):
    def __init__(self, vocab_size: int, num_tags: int, pad_id: int = 0, num_chars: int = 0, order: int = 1,
                 suffix_length: int = 10, rare_threshold: int = 10, emission_prior: float = 1.0):
        """vocab_size, pad_id and num_chars (what the data gives every tagger) are unused: the HMM reads the words."""
        super().__init__()
        if order not in ORDERS:
            raise ConfigError(f"model.order={order!r} is invalid: 1 (a tag depends on the one before) or 2 (on the "
                              f"two before)")
        for key, value in (("suffix_length", suffix_length), ("rare_threshold", rare_threshold)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"model.{key}={value!r} is invalid: must be an integer ≥ 0")
        if not isinstance(emission_prior, (int, float)) or isinstance(emission_prior, bool) or emission_prior < 0:
            raise ConfigError(f"model.emission_prior={emission_prior!r} is invalid: must be ≥ 0 (0: TnT's lexicon)")
        self.num_tags, self.order = num_tags, order
        self.suffix_length, self.rare_threshold, self.emission_prior = suffix_length, rare_threshold, emission_prior
        self.words: list[str] = []  # the lexicon: the training words
        self.word_tags = np.zeros((0, num_tags))  # (V, K) f(w, y)
        self.tag_trigrams = np.zeros((num_tags + 1,) * 3)  # f(y_1 y_2 y_3), index K the boundary
        self.fitted = False
        self._estimate()

    # --- counting ------------------------------------------------------------------------------
    def fit(self, sentences: list[list[str]], tags: list[list[int]]) -> HMMTagger:
        """Count the tagged training sentences (tags as ids 0..K−1)."""
        K = self.num_tags
        lexicon: dict[str, int] = {}
        pairs: Counter[tuple[int, int]] = Counter()
        trigrams = np.zeros((K + 1,) * 3)
        for words, ys in zip(sentences, tags, strict=True):
            for word, y in zip(words, ys, strict=True):
                pairs[lexicon.setdefault(word, len(lexicon)), y] += 1
            history = [K, K, *ys, K]
            np.add.at(trigrams, (history[:-2], history[1:-1], history[2:]), 1)
        self.words = list(lexicon)
        self.word_tags = np.zeros((len(lexicon), K))
        for (w, y), count in pairs.items():
            self.word_tags[w, y] = count
        self.tag_trigrams, self.fitted = trigrams, True
        self._estimate()
        return self

    # --- estimating -----------------------------------------------------------------------------
    def _estimate(self) -> None:
        """Transitions, the lexicon's emission scores and the suffix model, from the counts."""
        self._lexicon = {word: k for k, word in enumerate(self.words)}
        self._unknown: dict[str, np.ndarray] = {}  # emission scores of words outside the lexicon, as they come
        K = self.num_tags
        if not self.fitted:  # every tag sequence equally likely
            self.transitions = torch.zeros((K + 1,) * (self.order + 1))
            self._lexicon_scores = np.zeros((0, K))
            return
        self.transitions = torch.from_numpy(np.log(interpolated_transitions(self.tag_trigrams, self.order))).float()
        tag_counts = self.tag_trigrams.sum((0, 1))[:K]
        self.tag_prior = tag_counts / tag_counts.sum()  # p̂(y) over the training words
        self.theta = float(np.std(self.tag_prior, ddof=1)) if K > 1 else 0.0
        self._suffixes = suffix_counts(self.words, self.word_tags, self.rare_threshold, self.suffix_length)
        suffix = np.stack([self.suffix_distribution(word) for word in self.words]) if self.words else np.zeros((0, K))
        self._lexicon_scores = self._scores(self.word_tags, suffix)

    def suffix_distribution(self, word: str) -> np.ndarray:
        """p_suffix(y | word): TnT's interpolation over the word's endings (see the module docstring)."""
        counts = self._suffixes[word[:1].isupper()]
        base = counts.get("", np.zeros(self.num_tags)) + 1
        p = base / base.sum()
        for i in range(1, min(self.suffix_length, len(word)) + 1):
            seen = counts.get(word[-i:])
            if seen is None:
                break
            p = (seen / seen.sum() + self.theta * p) / (1 + self.theta)
        return p

    def _scores(self, word_tags: np.ndarray, suffix: np.ndarray) -> np.ndarray:
        """log p(y | w) − log p(y) for words with these tag counts and suffix distributions, (N, K)."""
        alpha, frequency = self.emission_prior, word_tags.sum(1, keepdims=True)
        # an unseen word (f(w) = 0) is its ending's alone, whatever α
        posterior = np.where(frequency > 0, (word_tags + alpha * suffix) / np.maximum(frequency + alpha, 1e-300),
                             suffix)
        with np.errstate(divide="ignore"):  # α = 0: a tag the word never had is impossible (log 0 = −inf)
            return np.log(posterior) - np.log(self.tag_prior)

    def emissions(self, sentences: list[list[str]], T: int) -> torch.Tensor:
        """(B, T, K) emission scores of each word (0 past a sentence's end)."""
        scores = np.zeros((len(sentences), T, self.num_tags), dtype=np.float32)
        if not self.fitted:
            return torch.from_numpy(scores)
        for b, words in enumerate(sentences):
            for t, word in enumerate(words):
                k = self._lexicon.get(word)
                scores[b, t] = self._lexicon_scores[k] if k is not None else self._unknown_scores(word)
        return torch.from_numpy(scores)

    def _unknown_scores(self, word: str) -> np.ndarray:
        if word not in self._unknown:
            self._unknown[word] = self._scores(np.zeros((1, self.num_tags)), self.suffix_distribution(word)[None])[0]
        return self._unknown[word]

    # --- tagging ----------------------------------------------------------------------------------
    def forward(self, sentences: list[list[str]], lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, K) log p(y_i | the sentence), T the longest length: the posterior of each word's tag."""
        T = int(lengths.max())
        return marginals(self.emissions(sentences, T), self.transitions, lengths.cpu()).to(lengths.device)

    def viterbi(self, sentences: list[list[str]], lengths: torch.Tensor) -> torch.Tensor:
        """(B, T) the most probable tag sequence of each sentence (0 past its end)."""
        T = int(lengths.max())
        return viterbi(self.emissions(sentences, T), self.transitions, lengths.cpu()).to(lengths.device)

    # the counts are this model's weights: a checkpoint's state_dict carries them (tensors and a list of
    # strings, which torch.load(weights_only=True) reads)
    def get_extra_state(self) -> dict[str, Any]:
        w, y = np.nonzero(self.word_tags)
        return {"fitted": self.fitted, "words": list(self.words),
                "word_tag_pairs": torch.from_numpy(np.stack([w, y], 1)), "word_tag_counts":
                torch.from_numpy(self.word_tags[w, y]), "tag_trigrams": torch.from_numpy(self.tag_trigrams)}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.words, self.fitted = list(state["words"]), bool(state["fitted"])
        self.word_tags = np.zeros((len(self.words), self.num_tags))
        pairs = state["word_tag_pairs"].numpy()
        self.word_tags[pairs[:, 0], pairs[:, 1]] = state["word_tag_counts"].numpy()
        self.tag_trigrams = state["tag_trigrams"].numpy()
        self._estimate()


def interpolated_transitions(trigrams: np.ndarray, order: int) -> np.ndarray:
    """p(y | history): (K+1, K+1) for order 1, (K+1, K+1, K+1) for order 2, from the counts f(y_1 y_2 y_3) (index K
    the boundary: BOS in a history, EOS as the next tag)."""
    bigrams = trigrams.sum(0)  # f(y_2 y_3): each position's pair once
    unigrams = bigrams.sum(0)  # f(y_3) over every next tag, EOS included
    p1 = unigrams / unigrams.sum()
    p2 = _conditional(bigrams, p1[None, :])
    lambdas = deleted_interpolation(trigrams, order)
    if order == 1:
        return lambdas[0] * p1[None, :] + lambdas[1] * p2
    p3 = _conditional(trigrams, p2[None, :, :])
    return lambdas[0] * p1[None, None, :] + lambdas[1] * p2[None, :, :] + lambdas[2] * p3


def _conditional(counts: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """counts normalised over the last axis; a history never seen takes the fallback (the shorter history's)."""
    totals = counts.sum(-1, keepdims=True)
    return np.where(totals > 0, counts / np.maximum(totals, 1), np.broadcast_to(fallback, counts.shape))


def deleted_interpolation(trigrams: np.ndarray, order: int) -> list[float]:
    """(λ_1, ..., λ_{order+1}) by Brants' deleted interpolation over the n-grams of order + 1 tags."""
    bigrams = trigrams.sum(0)
    unigrams = bigrams.sum(0)
    total = unigrams.sum()
    counts = bigrams if order == 1 else trigrams
    lambdas = [1.0] * (order + 1)  # one vote each to start with, so that no tag sequence is impossible
    for ngram in zip(*np.nonzero(counts)):
        count = counts[ngram]
        estimates = [_held_out(unigrams[ngram[-1]], total), _held_out(bigrams[ngram[-2:]], bigrams[ngram[-2]].sum())]
        if order == 2:
            estimates.append(_held_out(count, trigrams[ngram[:2]].sum()))
        lambdas[int(np.argmax(estimates))] += count
    return [value / sum(lambdas) for value in lambdas]


def _held_out(count: float, total: float) -> float:
    """(f − 1) / (N − 1): the estimate without the occurrence being weighed (0 where N = 1)."""
    return (count - 1) / (total - 1) if total > 1 else 0.0


def suffix_counts(words: list[str], word_tags: np.ndarray, rare_threshold: int, suffix_length: int
                  ) -> dict[bool, dict[str, np.ndarray]]:
    """{capitalised?: {ending: tag counts}} over the tokens of the rare words, endings of 0..suffix_length chars."""
    tries: dict[bool, dict[str, np.ndarray]] = {False: {}, True: {}}
    frequency = word_tags.sum(1)
    for k in np.nonzero(frequency <= rare_threshold)[0]:
        word, counts = words[k], word_tags[k]
        trie = tries[word[:1].isupper()]
        for i in range(min(suffix_length, len(word)) + 1):
            ending = word[len(word) - i:]
            trie[ending] = trie[ending] + counts if ending in trie else counts.copy()
    return tries

