"""An embedded language-modelling corpus whose Bayes-optimal perplexity is known exactly.

Each sentence is generated as

    subject  s ~ Uniform(subjects of agreement class a),  a ~ Uniform{1..A}
    D        ~ p(D)                      distance, on {distance_min..distance_max}
    w_1..w_D ~ HMM(π, T, E)              distractors: a hidden Markov chain over C word classes
    verb     v ~ Uniform(verbs of class a)  long-range agreement with the subject, D tokens back
    "."

Sentences are i.i.d. and concatenated into streams. Subjects, fillers, verbs and "." use disjoint
vocabularies, so every token's role is visible; the HMM's emissions overlap, so its class stays
latent and must be inferred from the whole span (forward filtering). A model that forgets the
subject pays log A extra nats on every verb, so the gap between cells grows with D.

The Bayes-optimal predictor knows (π, T, E, p(D), A) and conditions on the whole stream:

    p(s)                  = 1 / (A · N_s)
    p(w_{k+1} | prefix)   = (1 − h(k)) · Σ_c' β_k(c') E[c', w]     h(k) = p(D = k) / p(D ≥ k)
    p(verb v | prefix)    = h(k) · [v agrees with a] / N_v
    p("." | prefix)       = 1

where k is the number of fillers seen so far and β_k is the HMM's predictive class distribution
(π for k = 0, then filter-and-propagate). Summing −log p over the very tokens a model is scored on
gives that model's Bayes-optimal NLL on the same data (no sampling error between the two). The
entropy *rate* is H(sentence) / E|sentence|, which `entropy_rate_by_enumeration` computes
independently for small sources by listing every sentence; tests check the two agree.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, fields

import numpy as np
import torch

from rnnlab.data.streams import BPTTWindows, StreamDataModule, TokenGroup
from rnnlab.errors import ConfigError


@dataclass(frozen=True)
class SourceSpec:
    """The parameters of the generative source (everything but the sample sizes)."""

    agreement_classes: int = 4  # A
    subjects_per_class: int = 4  # N_s
    verbs_per_class: int = 4  # N_v
    filler_classes: int = 6  # C, latent HMM states
    filler_vocab: int = 48
    emission_concentration: float = 0.3  # Dirichlet α for E rows: small = peaky, overlapping classes
    transition_concentration: float = 0.5
    distance_min: int = 1
    distance_max: int = 24
    distance_distribution: str = "uniform"  # uniform | geometric
    geometric_p: float = 0.15
    grammar_seed: int = 1234  # fixes π, T, E: every split and seed share one language

    def __post_init__(self) -> None:
        for name in ("agreement_classes", "subjects_per_class", "verbs_per_class", "filler_classes",
                     "filler_vocab"):
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name}={getattr(self, name)} is invalid: must be a positive integer")
        if not 0 <= self.distance_min <= self.distance_max:
            raise ValueError(
                f"data.distance_min={self.distance_min}, data.distance_max={self.distance_max} are invalid: "
                "need 0 <= distance_min <= distance_max")
        if self.distance_distribution not in ("uniform", "geometric"):
            raise ValueError(f"data.distance_distribution={self.distance_distribution!r} is invalid: "
                             "choose uniform or geometric")
        if not 0 < self.geometric_p < 1:
            raise ValueError(f"data.geometric_p={self.geometric_p} is invalid: must be in (0, 1)")


class AgreementSource:
    """Samples streams of sentences and scores them with the exact Bayes-optimal predictor."""

    EOS = "."

    def __init__(self, spec: SourceSpec):
        self.spec = spec
        rng = np.random.default_rng(spec.grammar_seed)
        C, V = spec.filler_classes, spec.filler_vocab
        self.initial = rng.dirichlet(np.full(C, 1.0))  # π
        self.transition = rng.dirichlet(np.full(C, spec.transition_concentration), size=C)  # T[c, c']
        self.emission = rng.dirichlet(np.full(V, spec.emission_concentration), size=C)  # E[c, w]
        self.distance_probs = self._distance_probs()  # p(D = d), d = 0..distance_max
        survival = self.distance_probs[::-1].cumsum()[::-1]  # p(D ≥ k)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.hazard = np.where(survival > 0, self.distance_probs / survival, 1.0)  # h(k)

        A, Ns, Nv = spec.agreement_classes, spec.subjects_per_class, spec.verbs_per_class
        self.vocab = ([f"subj{a}_{i}" for a in range(A) for i in range(Ns)]
                      + [f"w{j}" for j in range(V)]
                      + [f"verb{a}_{i}" for a in range(A) for i in range(Nv)]
                      + [self.EOS])
        self.subject_offset = 0
        self.filler_offset = A * Ns
        self.verb_offset = self.filler_offset + V
        self.eos_id = len(self.vocab) - 1

    def _distance_probs(self) -> np.ndarray:
        s = self.spec
        support = np.arange(s.distance_max + 1)
        if s.distance_distribution == "uniform":
            weights = (support >= s.distance_min).astype(float)
        else:
            weights = np.where(support >= s.distance_min,
                               s.geometric_p * (1 - s.geometric_p) ** (support - s.distance_min), 0.0)
        return weights / weights.sum()

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def sample_streams(self, num_streams: int, stream_length: int, seed: int):
        """Return tokens (num_streams, stream_length) and the Bayes-optimal −log p of each token.

        Each stream starts at a sentence boundary. nll[:, 0] is the cost of the first token with
        no context; a language model is scored on tokens 1.., given everything before them.
        """
        rng = np.random.default_rng(seed)
        tokens = np.empty((num_streams, stream_length), dtype=np.int64)
        nll = np.empty((num_streams, stream_length), dtype=np.float64)
        sentences_needed = int(stream_length / self.mean_sentence_length() * 1.2) + 8
        for b in range(num_streams):
            stream_tokens, stream_nll = self._sample_sentences(rng, sentences_needed)
            while len(stream_tokens) < stream_length:
                more_tokens, more_nll = self._sample_sentences(rng, sentences_needed)
                stream_tokens = np.concatenate([stream_tokens, more_tokens])
                stream_nll = np.concatenate([stream_nll, more_nll])
            tokens[b], nll[b] = stream_tokens[:stream_length], stream_nll[:stream_length]
        return tokens, nll

    def _sample_sentences(self, rng: np.random.Generator, n: int):
        """n sentences as one flat token array, with each token's Bayes-optimal −log p.

        Vectorised over sentences: the HMM restarts in every sentence, so all chains step together.
        """
        s = self.spec
        A, Ns, Nv = s.agreement_classes, s.subjects_per_class, s.verbs_per_class
        agreement = rng.integers(A, size=n)
        distance = rng.choice(len(self.distance_probs), size=n, p=self.distance_probs)
        width = int(distance.max()) + 3  # subject, fillers, verb, "."
        tokens = np.full((n, width), -1, dtype=np.int64)
        nll = np.zeros((n, width))
        rows = np.arange(n)

        tokens[:, 0] = self.subject_offset + agreement * Ns + rng.integers(Ns, size=n)
        nll[:, 0] = math.log(A * Ns)

        with np.errstate(divide="ignore"):
            log_continue = np.log(1.0 - self.hazard)
            log_hazard = np.log(self.hazard)
        state = _sample_rows(rng, np.broadcast_to(self.initial, (n, len(self.initial))))
        predictive = np.broadcast_to(self.initial, (n, len(self.initial)))  # β_0
        for k in range(int(distance.max())):
            active = distance > k
            word = _sample_rows(rng, self.emission[state])
            p_word = (predictive * self.emission[:, word].T).sum(axis=1)  # Σ_c' β_k(c') E[c', w]
            tokens[active, 1 + k] = self.filler_offset + word[active]
            nll[active, 1 + k] = -log_continue[k] - np.log(p_word[active])
            # filter on the observed word, then propagate: β_{k+1} = normalise(β_k ⊙ E[:, w]) T
            posterior = predictive * self.emission[:, word].T
            predictive = (posterior / posterior.sum(axis=1, keepdims=True)) @ self.transition
            state = _sample_rows(rng, self.transition[state])

        tokens[rows, distance + 1] = self.verb_offset + agreement * Nv + rng.integers(Nv, size=n)
        nll[rows, distance + 1] = -log_hazard[distance] + math.log(Nv)
        tokens[rows, distance + 2] = self.eos_id
        present = tokens >= 0  # row-major flattening keeps sentence order
        return tokens[present], nll[present]

    def verb_distances(self, tokens: np.ndarray) -> np.ndarray:
        """For each position of streams (B, L): D, the distractors between the verb there and its
        subject (−1 where there is no verb, or where the stream started after the subject)."""
        positions = np.broadcast_to(np.arange(tokens.shape[1]), tokens.shape)
        is_subject = (tokens >= self.subject_offset) & (tokens < self.subject_offset + self.spec.agreement_classes
                                                         * self.spec.subjects_per_class)
        last_subject = np.maximum.accumulate(np.where(is_subject, positions, -1), axis=1)
        is_verb = (tokens >= self.verb_offset) & (tokens < self.eos_id)
        return np.where(is_verb & (last_subject >= 0), positions - last_subject - 1, -1)

    def mean_sentence_length(self) -> float:
        return float(self.distance_probs @ np.arange(len(self.distance_probs))) + 3.0

    def entropy_rate_by_enumeration(self, max_sentences: int = 2_000_000) -> float:
        """Entropy rate in nats/token, H(sentence) / E|sentence|, by listing every sentence.

        Independent of the forward filter: each sentence's probability is summed over all latent
        class paths by brute force. Only feasible for small sources (tests use one).
        """
        s = self.spec
        count = sum((s.filler_vocab ** d) for d in range(s.distance_max + 1)
                    if self.distance_probs[d] > 0)
        if count > max_sentences:
            raise ValueError(f"{count} filler spans is too many to enumerate; use a smaller source")
        A, Ns, Nv, C = s.agreement_classes, s.subjects_per_class, s.verbs_per_class, s.filler_classes
        entropy = 0.0  # −Σ p log p over whole sentences
        for d, p_d in enumerate(self.distance_probs):
            if p_d == 0:
                continue
            paths = list(itertools.product(range(C), repeat=d))
            path_probs = [self.initial[path[0]] * math.prod(self.transition[path[i], path[i + 1]]
                                                            for i in range(d - 1)) if d else 1.0
                          for path in paths]
            for words in itertools.product(range(s.filler_vocab), repeat=d):
                p_words = sum(pp * math.prod(self.emission[c, w] for c, w in zip(path, words))
                              for path, pp in zip(paths, path_probs))
                # subject, verb choice and distance are independent of the fillers: their entropies add
                entropy -= p_d * p_words * math.log(p_d * p_words)
        entropy += math.log(A * Ns) + math.log(Nv)
        return entropy / self.mean_sentence_length()


class SymbolTokenizer:
    """The corpus's words written separated by spaces, for reading prompts and writing samples.

    Every token is a word of the source, so there is no `<unk>`: a word outside the vocabulary is an
    error. "." ends a sentence: it plays the part of `<eos>`.
    """

    level = "symbols"
    unk_id = None

    def __init__(self, vocab: list[str], eos: str = AgreementSource.EOS):
        self.vocab = list(vocab)
        self.eos_id = self.vocab.index(eos)
        self._ids = {word: i for i, word in enumerate(self.vocab)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        unknown = [word for word in text.split() if word not in self._ids]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a word of the synthetic corpus (its words look like "
                             f"{self.vocab[0]}, w0, {self.vocab[-2]}, {self.vocab[-1]})")
        return [self._ids[word] for word in text.split()]

    def decode(self, ids) -> str:
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        return " ".join(self.vocab[i] for i in ids)

    def state(self) -> dict:
        """JSON-serialisable; `from_state` rebuilds the tokenizer (e.g. from a checkpoint)."""
        return {"level": self.level, "vocab": list(self.vocab), "eos": self.vocab[self.eos_id]}

    @classmethod
    def from_state(cls, state: dict) -> SymbolTokenizer:
        return cls(state["vocab"], state["eos"])


def _sample_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of probs (n, K), by inverting each row's CDF."""
    cdf = probs.cumsum(axis=1)
    u = rng.random(len(probs)) * cdf[:, -1]
    return (u[:, None] >= cdf).sum(axis=1).clip(max=probs.shape[1] - 1)


class SyntheticLMDataModule(StreamDataModule):
    """`data=synthetic_lm`: the agreement corpus above, generated in memory from a seed (≈1 s).

    Each split is `num_streams` independent streams, each starting at a sentence boundary, so the
    Bayes-optimal predictor and the model see exactly the same context for every scored token.
    """

    def __init__(
        self,
        batch_size: int = 32,
        eval_batch_size: int = 16,
        bptt: int = 64,
        train_tokens: int = 400_000,
        val_tokens: int = 40_000,
        test_tokens: int = 40_000,
        seed: int = 0,
        distance_buckets: list[int] | None = None,
        **source: object,
    ):
        super().__init__()
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size), ("bptt", bptt),
                           ("train_tokens", train_tokens), ("val_tokens", val_tokens),
                           ("test_tokens", test_tokens)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"data.{key}={value} is invalid: must be a positive integer")
        unknown = set(source) - {f.name for f in fields(SourceSpec)}
        if unknown:
            raise ConfigError(f"data.{sorted(unknown)[0]} is not an option of data=synthetic_lm; "
                              f"valid: {', '.join(f.name for f in fields(SourceSpec))}")
        try:
            self.source = AgreementSource(SourceSpec(**source))
        except ValueError as error:
            raise ConfigError(str(error)) from None
        self.batch_size, self.eval_batch_size, self.bptt = batch_size, eval_batch_size, bptt
        self.split_tokens = {"train": train_tokens, "val": val_tokens, "test": test_tokens}
        self.seed = seed
        edges = sorted(distance_buckets or [])
        if any(not isinstance(e, int) or e < 1 for e in edges):
            raise ConfigError(f"data.distance_buckets={distance_buckets} is invalid: positive integers (bucket "
                              "upper bounds), e.g. [8, 16]")
        # (lo, hi) distance ranges covering distance_min..distance_max, split after each edge
        lo, hi = self.source.spec.distance_min, self.source.spec.distance_max
        bounds = [lo] + [e + 1 for e in edges if lo <= e < hi] + [hi + 1]
        self.distance_ranges = [(a, b - 1) for a, b in zip(bounds, bounds[1:])] if edges else []
        self.splits: dict[str, BPTTWindows] = {}

    @property
    def vocab_size(self) -> int:
        return self.source.vocab_size

    @property
    def task_inputs(self) -> dict[str, int]:
        """What the task needs from the data to build its model."""
        return {"vocab_size": self.vocab_size}

    @property
    def vocab(self) -> list[str]:
        return self.source.vocab

    def tokenizer_state(self) -> dict:
        """What a checkpoint keeps to read prompts and write samples: `SymbolTokenizer.from_state`."""
        return SymbolTokenizer(self.vocab).state()

    def encode(self, text: str) -> list[int]:
        return SymbolTokenizer(self.vocab).encode(text)

    def decode(self, ids) -> str:
        return SymbolTokenizer(self.vocab).decode(ids)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        for offset, (split, total) in enumerate(self.split_tokens.items()):
            streams = self.batch_size if split == "train" else self.eval_batch_size
            if total // streams < 2:
                raise ConfigError(f"data.{split}_tokens={total} is too small for {streams} streams")
            # distinct, reproducible seeds per split: train/val/test never share a sample
            tokens, nll = self.source.sample_streams(streams, total // streams, seed=self.seed * 3 + offset)
            tokens = torch.from_numpy(tokens)
            verb_ids = torch.arange(self.source.verb_offset, self.source.eos_id)
            is_verb = torch.isin(tokens, verb_ids)
            verb_agreement = dict(choices=verb_ids,
                                  # once a verb comes, the optimum knows its class: uniform over N_v
                                  choice_optimal_nll=math.log(self.source.spec.verbs_per_class),
                                  choice_classes=torch.div(verb_ids - self.source.verb_offset,
                                                           self.source.spec.verbs_per_class, rounding_mode="floor"))
            groups = {"agreement": TokenGroup(mask=is_verb, **verb_agreement)}
            distance = self.source.verb_distances(tokens.numpy())
            for lo, hi in self.distance_ranges:
                in_range = torch.from_numpy((distance >= lo) & (distance <= hi))
                groups[f"agree_d{lo:02d}-{hi:02d}"] = TokenGroup(mask=is_verb & in_range, **verb_agreement)
            self.splits[split] = BPTTWindows(tokens, self.bptt, torch.from_numpy(nll).float(), groups=groups)

    def optimal_nll(self, split: str) -> float:
        """Bayes-optimal mean NLL (nats/token) over the whole split's scored tokens."""
        self.setup()
        return float(self.splits[split].optimal_nll[:, 1:].double().mean())
