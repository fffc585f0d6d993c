"""`data=synthetic_translation`: an embedded language pair with systematic reordering (no download).

The source is a small English; the target a made-up language whose grammar moves words around,
so a model must look back and forth across the source, not translate word by word in order:

    source:  the old man painted a red boat in the park at 8:00 a.m. today .
    target:  today' at' 8:00 a.m.' the'ₘ man' oldₘ' the'ₙ park' in' a'ₙ boat' redₙ' painted' .
             ╰─ time first ───────╯╰─ subject ───────╯╰─ place ────────╯╰─ object ─────╯╰ verb last

(primes stand for the target's own words; ₘ, ₙ for the forms of two genders). Per clause the target has
1. the time expression first, with the day before the clock ("at 8:00 a.m. today" → "today at 8:00 a.m."),
2. verb-final order: time, subject, place, object, verb (S V O → S O V),
3. nouns before their adjectives ("the old man" → "the man old"),
4. postpositions ("in the park" → "the park in"),
5. gender agreement: every noun has a gender, and the determiner and adjectives in front of /
   after it take that gender's form, so choosing the determiner means looking ahead at the noun.
Clock times (8:00) are copied; every other word has its own target word (pseudo-words drawn
from syllables by `grammar_seed`). Clauses joined by "and" / "but" / "while" keep their order.

Each source sentence has a length L (words, not counting the final ".") drawn uniformly from
[min_words, max_words]: the sentence gets enough clauses, which are then filled with adjectives,
places and times until exactly L words, so long sentences (where attention matters) are there in
a known proportion. Splits come from independent random streams of one seed, so a run is
reproducible; identical short sentences can still occur in two splits by chance.

The pairs are raw text and go through the same subword/batching pipeline as Multi30k (the
default `tokenizer: word` keeps each word one token, so attention heatmaps read as words).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from rnnlab.data.translation import ParallelSplit, TranslationDataModule
from rnnlab.errors import ConfigError

NOUNS = ("man", "woman", "child", "dog", "cat", "bird", "horse", "teacher", "doctor", "farmer", "girl", "boy",
         "student", "artist", "ball", "book", "car", "bicycle", "letter", "apple", "cake", "guitar", "camera",
         "boat", "hat", "flower", "picture", "window", "door", "key", "chair", "lamp")
PLACES = ("park", "house", "garden", "kitchen", "station", "river", "market", "library", "school", "forest",
          "beach", "city")
ADJECTIVES = ("big", "small", "old", "young", "red", "blue", "green", "happy", "tired", "quiet", "tall", "clever",
              "angry", "yellow", "brown", "black", "white", "new", "strange", "heavy")
VERBS = ("saw", "found", "painted", "carried", "bought", "sold", "washed", "opened", "read", "drew", "held", "lost",
         "chased", "followed", "visited", "helped", "met", "called", "liked", "watched", "took", "cleaned", "fixed",
         "moved", "dropped")
DETERMINERS = ("the", "a")
PREPOSITIONS = ("in", "near", "behind", "under", "beside")
CONJUNCTIONS = ("and", "but", "while")
DAYS = (("today",), ("yesterday",), ("tonight",), ("this", "morning"), ("this", "evening"), ("last", "night"),
        ("on", "monday"), ("on", "friday"), ("on", "sunday"))
CLOCK_WORDS = ("at", "a.m.", "p.m.")
MAX_ADJECTIVES = 3  # per noun phrase
MIN_CLAUSE_WORDS = 5  # det noun verb det noun
MAX_CLAUSE_WORDS = 1 + 5 + 1 + 5 + 6 + 5  # conjunction, subject, verb, object, place, time (all full)


@dataclass
class NounPhrase:
    determiner: str
    noun: str
    adjectives: list[str] = field(default_factory=list)


@dataclass
class Clause:
    subject: NounPhrase
    verb: str
    object: NounPhrase
    place: tuple[str, NounPhrase] | None = None  # (preposition, noun phrase)
    clock: tuple[str, str] | None = None  # ("8:00", "a.m.")
    day: tuple[str, ...] | None = None  # ("this", "morning")

    def noun_phrases(self) -> list[NounPhrase]:
        return [self.subject, self.object] + ([self.place[1]] if self.place else [])


class LanguagePair:
    """The two lexicons and grammars, fixed by `grammar_seed`; renders clauses on each side."""

    def __init__(self, grammar_seed: int = 1234):
        rng = random.Random(grammar_seed)
        onsets = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "sh", "kr", "tl"]
        vowels = ["a", "e", "i", "o", "u", "ai", "ou"]
        taken = set()

        def pseudo_word(syllables: int) -> str:
            while True:
                word = "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(syllables))
                word += rng.choice(["", "n", "r", "k"])
                if word not in taken:
                    taken.add(word)
                    return word

        self.gender = {noun: rng.randrange(2) for noun in NOUNS + PLACES}
        plain = NOUNS + PLACES + VERBS + PREPOSITIONS + CONJUNCTIONS + CLOCK_WORDS + tuple(
            {word for day in DAYS for word in day})
        self.lexicon = {word: pseudo_word(1 + len(word) // 4) for word in sorted(plain)}
        # a determiner has one form per gender; an adjective a stem plus the gender's ending
        self.determiners = {(det, g): pseudo_word(1) for det in DETERMINERS for g in (0, 1)}
        self.adjective_stems = {adjective: pseudo_word(1 + len(adjective) // 5) for adjective in ADJECTIVES}
        self.endings = ("o", "e")

    # source: English order
    def source_words(self, clause: Clause) -> list[str]:
        words = self._english_np(clause.subject) + [clause.verb] + self._english_np(clause.object)
        if clause.place:
            words += [clause.place[0], *self._english_np(clause.place[1])]
        if clause.clock:
            words += ["at", *clause.clock]
        if clause.day:
            words += list(clause.day)
        return words

    @staticmethod
    def _english_np(phrase: NounPhrase) -> list[str]:
        return [phrase.determiner, *phrase.adjectives, phrase.noun]

    # target: time first (day before clock), subject, place (postposition), object, verb last
    def target_words(self, clause: Clause) -> list[str]:
        words = [self.lexicon[w] for w in clause.day] if clause.day else []
        if clause.clock:
            words += [self.lexicon["at"], clause.clock[0], self.lexicon[clause.clock[1]]]
        words += self._target_np(clause.subject)
        if clause.place:
            words += [*self._target_np(clause.place[1]), self.lexicon[clause.place[0]]]
        return words + self._target_np(clause.object) + [self.lexicon[clause.verb]]

    def _target_np(self, phrase: NounPhrase) -> list[str]:
        gender = self.gender[phrase.noun]
        return ([self.determiners[phrase.determiner, gender], self.lexicon[phrase.noun]]
                + [self.adjective_stems[a] + self.endings[gender] for a in phrase.adjectives])

    def sample_pair(self, rng: random.Random, length: int) -> tuple[str, str]:
        """One sentence pair whose source has exactly `length` words before the final "."."""
        clauses = None
        while clauses is None:  # the fill almost always lands on `length`; when it cannot, draw again
            clauses = self._sample_clauses(rng, length)
        source, target = [], []
        for i, clause in enumerate(clauses):
            if i:
                conjunction = rng.choice(CONJUNCTIONS)
                source.append(conjunction)
                target.append(self.lexicon[conjunction])
            source += self.source_words(clause)
            target += self.target_words(clause)
        return _sentence(_articles(source)), _sentence(target)

    def _sample_clauses(self, rng: random.Random, length: int) -> list[Clause] | None:
        # enough clauses to reach `length` when full, few enough that bare ones fit in it
        fewest = math.ceil((length + 1) / MAX_CLAUSE_WORDS)
        most = max(fewest, (length + 1) // (MIN_CLAUSE_WORDS + 1))
        count = rng.randint(fewest, most)

        def noun_phrase(nouns: tuple[str, ...]) -> NounPhrase:
            return NounPhrase(rng.choice(DETERMINERS), rng.choice(nouns))

        clauses = [Clause(noun_phrase(NOUNS), rng.choice(VERBS), noun_phrase(NOUNS)) for _ in range(count)]
        # open slots: (what, where); a slot that does not fit the words left never will, so it goes
        open_slots = [(what, clause) for clause in clauses for what in ("place", "clock", "day")]
        open_slots += [("adjective", phrase) for clause in clauses for phrase in clause.noun_phrases()
                       for _ in range(MAX_ADJECTIVES)]
        remaining = length - (count * (MIN_CLAUSE_WORDS + 1) - 1)
        while remaining > 0:
            if not open_slots:
                return None
            k = rng.randrange(len(open_slots))
            what, where = open_slots[k]
            open_slots[k] = open_slots[-1]
            open_slots.pop()
            if what == "adjective":
                where.adjectives.append(rng.choice(ADJECTIVES))
                remaining -= 1
            elif what == "place" and remaining >= 3:
                where.place = (rng.choice(PREPOSITIONS), noun_phrase(PLACES))
                open_slots += [("adjective", where.place[1])] * MAX_ADJECTIVES
                remaining -= 3
            elif what == "clock" and remaining >= 3:
                where.clock = (f"{rng.randint(1, 12)}:{rng.choice(('00', '15', '30', '45'))}",
                               rng.choice(("a.m.", "p.m.")))
                remaining -= 3
            elif what == "day":
                where.day = rng.choice([day for day in DAYS if len(day) <= remaining])
                remaining -= len(where.day)
        return clauses


def _articles(words: list[str]) -> list[str]:
    """English "a" before a vowel is "an" (the target's determiner does not care)."""
    return ["an" if word == "a" and following[0] in "aeiou" else word
            for word, following in zip(words, [*words[1:], "."])]


def _sentence(words: list[str]) -> str:
    """Words joined by spaces, with the final full stop on the last word (once, after "a.m.")."""
    text = " ".join(words)
    return text if text.endswith(".") else text + "."


class SyntheticTranslationDataModule(TranslationDataModule):
    """The pair above, generated in memory from `seed` (0.4 s for the default 22k pairs, plus the vocabulary)."""

    option = "synthetic_translation"

    def __init__(self, train_pairs: int = 20_000, val_pairs: int = 1000, test_pairs: int = 1000,
                 min_words: int = 5, max_words: int = 30, grammar_seed: int = 1234, **common: object):
        common = {"tokenizer": "word", "min_frequency": 1, **common}
        super().__init__(**common)
        for key, value in (("train_pairs", train_pairs), ("val_pairs", val_pairs), ("test_pairs", test_pairs),
                           ("max_words", max_words)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"data.{key}={value} is invalid: must be a positive integer")
        if not isinstance(min_words, int) or not MIN_CLAUSE_WORDS <= min_words <= max_words:
            raise ConfigError(f"data.min_words={min_words} is invalid with data.max_words={max_words}: need "
                              f"{MIN_CLAUSE_WORDS} <= min_words <= max_words (a clause has at least "
                              f"{MIN_CLAUSE_WORDS} words)")
        self.split_pairs = {"train": train_pairs, "val": val_pairs, "test": test_pairs}
        self.min_words, self.max_words = min_words, max_words
        self.language = LanguagePair(grammar_seed)

    def load_splits(self) -> dict[str, ParallelSplit]:
        splits = {}
        for split, count in self.split_pairs.items():
            rng = random.Random(f"{self.seed}/{split}")  # one stream per split, fixed by the seed
            pairs = [self.language.sample_pair(rng, rng.randint(self.min_words, self.max_words))
                     for _ in range(count)]
            splits[split] = ParallelSplit([source for source, _ in pairs], [target for _, target in pairs])
        return splits
