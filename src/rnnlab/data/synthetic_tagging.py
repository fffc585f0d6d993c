"""`data=synthetic_tagging`: generated sentences in which a word's tag is decided by a word AFTER it, with the
Bayes-optimal token accuracy and the best left-to-right accuracy both known exactly (no download).

Most words have one tag (`the` DET, `old` ADJ, `we` PRON, ...). An ambiguous word (`duck`, `saw`, `watch`, ...) is
a NOUN or a VERB, and which one only a cue word up to `max_distance` words AFTER it says:

    the   duck  old  red  is    very     a noun: "is", "was", "seems" (AUX) follow a NOUN reading
    DET   NOUN  ADJ  ADJ  AUX   ADV
    duck  the   quickly                  a verb: "quickly", "again", "away" (ADV) follow a VERB reading
    VERB  DET   ADV

(real samples are word salad: the words between are drawn i.i.d., which keeps the optima exact). A sentence of L
words (L uniform in [min_words, max_words]) is written left to right: at each position, if at least two words are
left, an ambiguous segment starts with probability `ambiguous_share` (a), else one filler word. A segment is an
ambiguous word w, its reading (NOUN with probability p_w, the word's own prior, AMBIGUOUS below), d filler words
(d uniform in [0, min(max_distance, words left − 2)]) and a cue word of that reading. The gold tag of w is its
reading, flipped with probability ε (`tag_noise`), so no tagger can be always right. Fillers (Zipf-like
frequencies, ranks shuffled by `grammar_seed`) and cues are never ambiguous, and they are never each other.

**The Bayes optimum.** Ambiguous words occur only as segment starts, and cue words only as their segment's end,
so the first cue after an ambiguous word is its own: the sentence determines every reading, and
p(gold = reading | sentence) = 1 − ε. Every other word's tag is its own. So per word max_y p(y | sentence) is
1 − ε for an ambiguous word, 1 for the others; `optimal_accuracy(split)` is the mean over the split's words.

**The left-to-right optimum.** A tagger that tags word t having read only words 1..t (a unidirectional RNN) has
not seen the cue. The reading is drawn after w and independently of everything before it (earlier segments, the
choice to start this one), so p(reading = NOUN | words 1..t) = p_w exactly, and with the noise
p(gold = NOUN | words 1..t) = q_w = p_w (1 − ε) + (1 − p_w) ε. Per ambiguous word the best it can do is
max(q_w, 1 − q_w); `left_to_right_optimal_accuracy(split)` is the mean over the split's words. With the defaults
(a = 0.3, ε = 0.05) about 16 % of the words are ambiguous (share s) and, the ten ambiguous words drawn uniformly,
mean max(q_w, 1 − q_w) = 0.05 + 0.9 · 0.7 = 0.68, so the two optima are 1 − ε s ≈ 0.992 and 1 − 0.32 s ≈ 0.948
(each split has its exact values): a bidirectional tagger can reach the first, a unidirectional one is capped at
the second. Both are expectations given the words: a finite split's score can beat them by luck, by a few tenths
of a percent on 500 sentences.

`tests/test_tagging_data.py` checks both formulas against every sentence the generator can write, enumerated
exactly with their probabilities (`AmbiguityLanguage.generate` takes the random choices as a function for this).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence

from rnnlab.data.tagging import Tagged, TaggingDataModule
from rnnlab.errors import ConfigError

FILLERS = {
    "the": "DET", "a": "DET", "this": "DET", "every": "DET",
    "old": "ADJ", "red": "ADJ", "small": "ADJ", "happy": "ADJ", "quiet": "ADJ",
    "we": "PRON", "they": "PRON", "it": "PRON", "she": "PRON",
    "very": "ADV", "often": "ADV", "still": "ADV",
    "in": "ADP", "on": "ADP", "with": "ADP", "near": "ADP",
    "and": "CCONJ", "or": "CCONJ",
    "man": "NOUN", "city": "NOUN", "garden": "NOUN", "river": "NOUN",
    "sees": "VERB", "likes": "VERB", "finds": "VERB",
}
AMBIGUOUS = {"duck": 0.5, "fish": 0.5, "watch": 0.6, "saw": 0.4, "park": 0.7, "ring": 0.3, "book": 0.8, "run": 0.2,
             "fly": 0.9, "cut": 0.1}  # the word's prior p(NOUN); p(VERB) = 1 − p
READINGS = ("NOUN", "VERB")
CUES = {"NOUN": (("is", "AUX"), ("was", "AUX"), ("seems", "AUX")),
        "VERB": (("quickly", "ADV"), ("again", "ADV"), ("away", "ADV"))}  # the words that say a reading, their tags

Choose = Callable[[Sequence[float]], int]  # weights → the index chosen


class AmbiguityLanguage:
    """The grammar above: writes tagged sentences, and gives each word's two optimal accuracies exactly."""

    def __init__(self, grammar_seed: int = 1234, ambiguous_share: float = 0.3, max_distance: int = 4,
                 tag_noise: float = 0.05, fillers: dict[str, str] | None = None,
                 ambiguous: dict[str, float] | None = None):
        self.fillers = dict(fillers or FILLERS)
        self.ambiguous = dict(ambiguous or AMBIGUOUS)
        ranked = sorted(self.fillers)
        random.Random(grammar_seed).shuffle(ranked)
        self.filler_words = ranked
        self.filler_weights = [1 / rank for rank in range(1, len(ranked) + 1)]  # Zipf-like, ranks shuffled
        self.ambiguous_share, self.max_distance, self.tag_noise = ambiguous_share, max_distance, tag_noise
        self.cue_reading = {word: reading for reading, cues in CUES.items() for word, _ in cues}

    # --- writing ------------------------------------------------------------------------------------
    def generate(self, length: int, choose: Choose) -> tuple[list[str], list[str]]:
        """One sentence of exactly `length` words and its gold tags; every random choice is `choose(weights)`."""
        words: list[str] = []
        tags: list[str] = []
        while len(words) < length:
            left = length - len(words)
            if left >= 2 and choose([1 - self.ambiguous_share, self.ambiguous_share]) == 1:
                self._segment(words, tags, left, choose)
            else:
                self._filler(words, tags, choose)
        return words, tags

    def _segment(self, words: list[str], tags: list[str], left: int, choose: Choose) -> None:
        names = list(self.ambiguous)
        word = names[choose([1.0] * len(names))]
        p_noun = self.ambiguous[word]
        reading = READINGS[choose([p_noun, 1 - p_noun])]
        flipped = choose([1 - self.tag_noise, self.tag_noise]) == 1
        words.append(word)
        tags.append(READINGS[1 - READINGS.index(reading)] if flipped else reading)
        for _ in range(choose([1.0] * (min(self.max_distance, left - 2) + 1))):
            self._filler(words, tags, choose)
        cue, cue_tag = CUES[reading][choose([1.0] * len(CUES[reading]))]
        words.append(cue)
        tags.append(cue_tag)

    def _filler(self, words: list[str], tags: list[str], choose: Choose) -> None:
        word = self.filler_words[choose(self.filler_weights)]
        words.append(word)
        tags.append(self.fillers[word])

    def sample(self, rng: random.Random, length: int) -> tuple[list[str], list[str]]:
        return self.generate(length, lambda weights: rng.choices(range(len(weights)), weights=weights)[0])

    # --- the two optima ----------------------------------------------------------------------------------
    def p_noun(self, words: Sequence[str], t: int, left_to_right: bool) -> float | None:
        """p(gold tag of word t = NOUN | the sentence, or only words 0..t), for an ambiguous word; None otherwise."""
        if words[t] not in self.ambiguous:
            return None
        if left_to_right:
            p = self.ambiguous[words[t]]
        else:
            cue = next((word for word in words[t + 1:] if word in self.cue_reading), None)
            if cue is None:
                raise ValueError(f"{' '.join(words)!r}: the ambiguous word {words[t]!r} has no cue after it, so it is "
                                 f"not a sentence of the grammar")
            p = float(self.cue_reading[cue] == "NOUN")
        return (1 - self.tag_noise) * p + self.tag_noise * (1 - p)

    def best_accuracies(self, words: Sequence[str], left_to_right: bool) -> list[float]:
        """Per word, max_y p(y | what the tagger has read): 1 for a word with one tag."""
        return [1.0 if p is None else max(p, 1 - p)
                for p in (self.p_noun(words, t, left_to_right) for t in range(len(words)))]


class SyntheticTaggingDataModule(TaggingDataModule):
    """The sentences above, generated in memory from `seed`, one random stream per split."""

    option = "synthetic_tagging"

    def __init__(self, train_examples: int = 4000, val_examples: int = 500, test_examples: int = 500,
                 min_words: int = 5, max_words: int = 25, ambiguous_share: float = 0.3, max_distance: int = 4,
                 tag_noise: float = 0.05, grammar_seed: int = 1234, **options: object):
        super().__init__(**options)
        for key, value in (("train_examples", train_examples), ("val_examples", val_examples),
                           ("test_examples", test_examples), ("min_words", min_words), ("max_words", max_words)):
            if not _is_int(value) or value < 1:
                raise ConfigError(f"data.{key}={value!r} is invalid: must be a positive integer")
        if min_words > max_words:
            raise ConfigError(f"data.min_words={min_words} is above data.max_words={max_words}: sentence lengths are "
                              f"drawn from [min_words, max_words]")
        if not _is_number(ambiguous_share) or not 0 <= ambiguous_share <= 1:
            raise ConfigError(f"data.ambiguous_share={ambiguous_share!r} is invalid: must be a probability in [0, 1]")
        if not _is_int(max_distance) or max_distance < 0:
            raise ConfigError(f"data.max_distance={max_distance!r} is invalid: must be an integer ≥ 0 (the most "
                              f"words between an ambiguous word and its cue)")
        if not _is_number(tag_noise) or not 0 <= tag_noise < 0.5:
            raise ConfigError(f"data.tag_noise={tag_noise!r} is invalid: must be in [0, 0.5) (0.5 would make every "
                              f"ambiguous word's tag a coin flip)")
        if not _is_int(grammar_seed) or grammar_seed < 0:
            raise ConfigError(f"data.grammar_seed={grammar_seed!r} is invalid: must be a non-negative integer")
        self.split_examples = {"train": train_examples, "val": val_examples, "test": test_examples}
        self.min_words, self.max_words = min_words, max_words
        self.language = AmbiguityLanguage(grammar_seed, ambiguous_share, max_distance, tag_noise)

    def load_splits(self) -> dict[str, Tagged]:
        splits = {}
        for split, count in self.split_examples.items():
            rng = random.Random(f"{self.seed}/{split}")  # one stream per split, fixed by the seed
            sentences = [self.language.sample(rng, rng.randint(self.min_words, self.max_words)) for _ in range(count)]
            splits[split] = Tagged([words for words, _ in sentences], [tags for _, tags in sentences])
        return splits

    def optimal_accuracy(self, split: str) -> float:
        """The Bayes-optimal token accuracy on the split: the mean over its words of max_y p(y | sentence)."""
        return self._mean_best(split, left_to_right=False)

    def left_to_right_optimal_accuracy(self, split: str) -> float:
        """The best token accuracy of a left-to-right tagger on the split: mean of max_y p(y | words up to it)."""
        return self._mean_best(split, left_to_right=True)

    def _mean_best(self, split: str, left_to_right: bool) -> float:
        self.setup()
        best = [self.language.best_accuracies(words, left_to_right) for words in self.sentences(split)]
        return sum(itertools.chain.from_iterable(best)) / sum(map(len, best))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
