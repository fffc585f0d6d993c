"""`data=synthetic_classification`: generated sentiment sentences whose label depends on word ORDER, with the
Bayes-optimal accuracy and the best bag-of-words accuracy both known exactly (no download).

A sentence is one or two clauses. Each clause has exactly one sentiment word (a positive or a negative lexicon),
at most one negator ("not", "never"), and filler words drawn i.i.d. around them. Two rules give the label:

- scope: a negator flips the sentiment word that FOLLOWS it in its clause (fillers may sit between them); a
  negator after the sentiment word, or in another clause, does nothing;
- contrast: in "X but Y" the clause after "but" decides, and the two clauses mean opposite things.

Three kinds of sentence, mixed by `order_share` (s) and `contrast_share` (c):

    plain (1 − s)        that long so director bland is        negative  the sentiment word decides
    negation (s(1 − c))  camera not excellent movie too        negative  "not" before "excellent": in scope
                         brilliant overall not scenes plot a   positive  "not" after "brilliant": no effect
    contrast (s c)       not dreadful but never charming       negative  the clause after "but" decides
                         never charming but not dreadful       positive  the same words, the other order

(real samples: the fillers are i.i.d., so sentences read as word salad, which keeps the optima exact). In a
contrast each clause is negated with probability 1/2 (in or out of scope with equal chance), and the clause
meanings are opposite: the second's meaning is the label. Then each label is flipped with probability ε
(`label_noise`), so no classifier can be always right. The sentence length L (words) is drawn uniformly from
[min_words, max_words], independently of the kind; the fillers fill the L words (each joins a clause at random;
within a clause the negator and the sentiment word take random slots in the order their scope says).
`grammar_seed` fixes the word frequencies (Zipf-like, ranks shuffled): every seed and split speak one language.

**The Bayes optimum.** The text determines its structure (`parse`: split at "but", find each clause's
sentiment word and whether a negator precedes it), so the noise-free label y*(text) is a function of the text
and p(y | text) = 1 − ε for y = y*(text), ε otherwise. `optimal_accuracy(split)` is the mean over the split of
max_y p(y | text) = 1 − ε.

**The bag-of-words optimum.** A bag of words (the multiset of words) keeps only the signature
(number of clauses, the polarities of the sentiment words, the number of negators). The rest of a bag is the
filler multiset, whose size is L minus the signature's words (L drawn independently of the structure), and the
identities of the words: every filler, sentiment word (given its polarity) and negator is drawn independently of
the structure and of its position. So given its signature a bag says nothing more about the label, and exactly

    p(y | bag) = Σ_{structures S with the bag's signature} p(S) [label(S) = y] / Σ_{same S} p(S)   (then noise),

enumerated from the same table of structures the generator samples from (`structures`). For a plain sentence
p(y | bag) = 1 − ε; for every order-dependent one it is exactly 1/2: "not funny" and "funny … not" share a bag,
and swapping the two clauses of a contrast (its bag unchanged) flips its label, with the same probability.
`bow_optimal_accuracy(split)` is the mean over the split of max_y p(y | bag), the split's estimate of the
expected accuracy of the best classifier that sees only bags:

    Bayes optimum   1 − ε                            (0.95 at the defaults)
    bag of words    (1 − ε)(1 − s) + s / 2           (0.725 at the defaults, s = 0.5), per split with s the
                                                     split's share of order-dependent sentences

A recurrent model that tracks scope and "but" can reach the first; any bag-of-words model (unigram counts,
mean of embeddings, …) is capped at the second, up to sampling error on a finite split.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from rnnlab.data.classification import ClassificationDataModule, Labelled
from rnnlab.errors import ConfigError

FILLERS = ("the", "a", "film", "movie", "plot", "story", "acting", "cast", "music", "ending", "script", "was",
           "is", "seemed", "felt", "really", "quite", "rather", "very", "so", "too", "and", "this", "that", "its",
           "with", "of", "in", "at", "director", "scenes", "characters", "dialogue", "camera", "it", "overall",
           "honestly", "still", "long", "first")
POSITIVE = ("good", "great", "excellent", "wonderful", "brilliant", "moving", "funny", "charming", "superb",
            "delightful")
NEGATIVE = ("bad", "awful", "boring", "dull", "terrible", "weak", "tedious", "clumsy", "bland", "dreadful")
NEGATORS = ("not", "never")
CONTRAST = "but"
LABELS = {-1: "negative", +1: "positive"}

NONE, BEFORE, AFTER = "none", "before", "after"  # a clause's negator: absent, in scope (flips), out of scope
CONTRAST_NEGATION = {NONE: 0.5, BEFORE: 0.25, AFTER: 0.25}  # each clause of a contrast
MAX_STRUCTURE_WORDS = 5  # "not good but bad never": two sentiment words, two negators, "but"


@dataclass(frozen=True)
class Clause:
    polarity: int  # the sentiment word's own polarity, ±1
    negation: str = NONE

    @property
    def meaning(self) -> int:
        return -self.polarity if self.negation == BEFORE else self.polarity

    @classmethod
    def meaning_of(cls, meaning: int, negation: str) -> Clause:
        """The clause that means `meaning` with this negation (a negator in scope needs the opposite word)."""
        return cls(-meaning if negation == BEFORE else meaning, negation)


Structure = tuple[Clause, ...]
Signature = tuple[int, tuple[int, ...], int]  # clauses, sorted sentiment polarities, negators: what a bag keeps


def structures(order_share: float, contrast_share: float) -> list[tuple[float, Structure]]:
    """Every sentence structure with its probability p(S); the generator samples from this very table."""
    s, c = order_share, contrast_share
    table = []
    for polarity in (-1, +1):
        table.append(((1 - s) / 2, (Clause(polarity),)))
        table += [(s * (1 - c) / 4, (Clause(polarity, negation),)) for negation in (BEFORE, AFTER)]
    for label in (-1, +1):  # contrast: opposite meanings, the second is the label
        for first, second in itertools.product(CONTRAST_NEGATION, repeat=2):
            p = s * c / 2 * CONTRAST_NEGATION[first] * CONTRAST_NEGATION[second]
            table.append((p, (Clause.meaning_of(-label, first), Clause.meaning_of(label, second))))
    return [(p, structure) for p, structure in table if p > 0]


def signature(structure: Structure) -> Signature:
    return (len(structure), tuple(sorted(clause.polarity for clause in structure)),
            sum(clause.negation != NONE for clause in structure))


def _zipf(words: Sequence[str], rng: random.Random) -> tuple[list[str], list[float]]:
    """The words with cumulative Zipf weights 1/rank, the ranks shuffled by `rng`."""
    ranked = list(words)
    rng.shuffle(ranked)
    return ranked, list(itertools.accumulate(1 / rank for rank in range(1, len(ranked) + 1)))


class SentimentLanguage:
    """The grammar above: samples labelled sentences, and gives p(y | text) and p(y | bag of words) exactly."""

    def __init__(self, grammar_seed: int = 1234, order_share: float = 0.5, contrast_share: float = 0.5,
                 label_noise: float = 0.05, fillers: Sequence[str] = FILLERS, positive: Sequence[str] = POSITIVE,
                 negative: Sequence[str] = NEGATIVE):
        rng = random.Random(grammar_seed)
        self.fillers = _zipf(fillers, rng)
        self.sentiment_words = {+1: _zipf(positive, rng), -1: _zipf(negative, rng)}
        self.polarity = {**{word: +1 for word in positive}, **{word: -1 for word in negative}}
        self.label_noise = label_noise
        self.structures = structures(order_share, contrast_share)
        self._cumulative = list(itertools.accumulate(p for p, _ in self.structures))
        # p(noise-free label = +1 | signature): the bag-of-words posterior, one entry per signature
        mass: dict[Signature, list[float]] = {}
        for p, structure in self.structures:
            total = mass.setdefault(signature(structure), [0.0, 0.0])
            total[0] += p
            total[1] += p * (structure[-1].meaning == +1)
        self._positive_given_signature = {sig: positive / total for sig, (total, positive) in mass.items()}

    # --- sampling ------------------------------------------------------------------------------------
    def sample(self, rng: random.Random, length: int) -> tuple[str, str]:
        """One sentence of exactly `length` words (>= MAX_STRUCTURE_WORDS) and its (noisy) label."""
        ((_, structure),) = rng.choices(self.structures, cum_weights=self._cumulative)
        structural = sum(1 + (clause.negation != NONE) for clause in structure) + len(structure) - 1
        fillers_per_clause = [0] * len(structure)
        for _ in range(length - structural):
            fillers_per_clause[rng.randrange(len(structure))] += 1
        words = []
        for k, (clause, fillers) in enumerate(zip(structure, fillers_per_clause)):
            words += [CONTRAST] if k else []
            words += self._clause_words(rng, clause, fillers)
        label = structure[-1].meaning
        return " ".join(words), LABELS[-label if rng.random() < self.label_noise else label]

    def _clause_words(self, rng: random.Random, clause: Clause, fillers: int) -> list[str]:
        words = rng.choices(*self.fillers, k=fillers + 1 + (clause.negation != NONE))
        if clause.negation == NONE:
            sentiment_at = rng.randrange(len(words))
        else:
            first, second = sorted(rng.sample(range(len(words)), 2))
            negator_at, sentiment_at = (first, second) if clause.negation == BEFORE else (second, first)
            words[negator_at] = rng.choice(NEGATORS)
        words[sentiment_at] = rng.choices(*self.sentiment_words[clause.polarity])[0]
        return words

    # --- the two posteriors -----------------------------------------------------------------------------
    def parse(self, text: str) -> Structure:
        """The structure that generated the text (there is exactly one): what y*(text) depends on."""
        structure = []
        for clause in " ".join(text.split()).split(f" {CONTRAST} "):
            words = clause.split()
            sentiment = [k for k, word in enumerate(words) if word in self.polarity]
            negators = [k for k, word in enumerate(words) if word in NEGATORS]
            if len(sentiment) != 1 or len(negators) > 1 or CONTRAST in words:
                raise ValueError(f"{text!r} is not a sentence of the grammar: each clause between 'but's needs "
                                 f"one sentiment word and at most one negator")
            negation = NONE if not negators else BEFORE if negators[0] < sentiment[0] else AFTER
            structure.append(Clause(self.polarity[words[sentiment[0]]], negation))
        return tuple(structure)

    def posterior(self, text: str) -> float:
        """p(positive | text): 1 − ε when the clause after "but" means positive, else ε."""
        return self._noisy(float(self.parse(text)[-1].meaning == +1))

    def bag_posterior(self, text: str) -> float:
        """p(positive | the text's bag of words): the structures with the bag's signature, weighted by p(S)."""
        words = text.split()
        bag = (1 + words.count(CONTRAST), tuple(sorted(self.polarity[w] for w in words if w in self.polarity)),
               sum(word in NEGATORS for word in words))
        if bag not in self._positive_given_signature:
            raise ValueError(f"{text!r}: no structure of the grammar has its bag of words")
        return self._noisy(self._positive_given_signature[bag])

    def _noisy(self, positive: float) -> float:
        """p(observed positive) from p(noise-free positive): the label is flipped with probability ε."""
        return (1 - self.label_noise) * positive + self.label_noise * (1 - positive)


def expected_best_accuracy(positives: Sequence[float]) -> float:
    """Mean over examples of max_y p(y | what the classifier sees), given p(positive | ...) per example."""
    return math.fsum(max(p, 1 - p) for p in positives) / len(positives)


class SyntheticClassificationDataModule(ClassificationDataModule):
    """The sentences above, generated in memory from `seed` (≈0.5 s for the default 10k), one stream per split."""

    option = "synthetic_classification"

    def __init__(self, train_examples: int = 8000, val_examples: int = 1000, test_examples: int = 1000,
                 min_words: int = 5, max_words: int = 25, order_share: float = 0.5, contrast_share: float = 0.5,
                 label_noise: float = 0.05, grammar_seed: int = 1234, **options: object):
        super().__init__(**options)
        for key, value in (("train_examples", train_examples), ("val_examples", val_examples),
                           ("test_examples", test_examples), ("max_words", max_words)):
            if not _is_int(value) or value < 1:
                raise ConfigError(f"data.{key}={value!r} is invalid: must be a positive integer")
        if not _is_int(min_words) or not MAX_STRUCTURE_WORDS <= min_words <= max_words:
            raise ConfigError(f"data.min_words={min_words!r} is invalid with data.max_words={max_words}: need "
                              f"{MAX_STRUCTURE_WORDS} <= min_words <= max_words (a contrast with two negators has "
                              f"{MAX_STRUCTURE_WORDS} words before any filler)")
        for key, value in (("order_share", order_share), ("contrast_share", contrast_share)):
            if not _is_number(value) or not 0 <= value <= 1:
                raise ConfigError(f"data.{key}={value!r} is invalid: must be a probability in [0, 1]")
        if not _is_number(label_noise) or not 0 <= label_noise < 0.5:
            raise ConfigError(f"data.label_noise={label_noise!r} is invalid: must be in [0, 0.5) (0.5 would make "
                              f"every label a coin flip)")
        if not _is_int(grammar_seed) or grammar_seed < 0:
            raise ConfigError(f"data.grammar_seed={grammar_seed!r} is invalid: must be a non-negative integer")
        self.split_examples = {"train": train_examples, "val": val_examples, "test": test_examples}
        self.min_words, self.max_words = min_words, max_words
        self.language = SentimentLanguage(grammar_seed, order_share, contrast_share, label_noise)

    def load_splits(self) -> dict[str, Labelled]:
        splits = {}
        for split, count in self.split_examples.items():
            rng = random.Random(f"{self.seed}/{split}")  # one stream per split, fixed by the seed
            examples = [self.language.sample(rng, rng.randint(self.min_words, self.max_words)) for _ in range(count)]
            splits[split] = Labelled([text for text, _ in examples], [label for _, label in examples])
        return splits

    def optimal_accuracy(self, split: str) -> float:
        """The Bayes-optimal accuracy on the split's texts: mean of max_y p(y | text) (= 1 − label_noise)."""
        self.setup()
        return expected_best_accuracy([self.language.posterior(text) for text in self.texts(split)])

    def bow_optimal_accuracy(self, split: str) -> float:
        """The best bag-of-words accuracy on the split's texts: mean of max_y p(y | bag of words)."""
        self.setup()
        return expected_best_accuracy([self.language.bag_posterior(text) for text in self.texts(split)])


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
