"""On which words a tagger errs: each evaluated word's class given the training split's counts, and accuracy by
class (experiments/tagging/words.py; any tagger's predictions, the HMM's or a network's).

A word's class is what the training split says of it (the words as they are written, no lowercasing):

  seen, one tag        the training split has it, always with the same tag (unambiguous there)
  seen, several tags   the training split has it with two or more tags (ambiguous there)
  unseen               the training split never has it (what task=tagging's `acc_unseen` counts)

and an unseen word's shape, the first of: `digit` (has a digit: 2016, 3rd, 555-1234), `hyphen` (has a hyphen:
well-known), `capitalised` (starts with an upper-case letter: Nauvoo), `lower-case` (has a letter: upsell,
www.x.com), `other` (no letter: symbols, emoticons). `frequency_band` groups seen words by their training count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence

ONE_TAG, SEVERAL_TAGS, UNSEEN = "seen, one tag", "seen, several tags", "unseen"
CLASSES = (ONE_TAG, SEVERAL_TAGS, UNSEEN)
SHAPES = ("digit", "hyphen", "capitalised", "lower-case", "other")
BANDS = ("1", "2–10", "11–100", "> 100")


def training_tags(sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]]) -> dict[str, Counter[str]]:
    """Each training word's tag counts: {word: Counter({tag: times})}."""
    lexicon: dict[str, Counter[str]] = {}
    for words, labels in zip(sentences, tags, strict=True):
        for word, tag in zip(words, labels, strict=True):
            lexicon.setdefault(word, Counter())[tag] += 1
    return lexicon


def word_class(word: str, lexicon: dict[str, Counter[str]]) -> str:
    """ONE_TAG, SEVERAL_TAGS or UNSEEN: what the training counts (`training_tags`) say of the word."""
    seen = lexicon.get(word)
    if not seen:
        return UNSEEN
    return ONE_TAG if len(seen) == 1 else SEVERAL_TAGS


def unseen_shape(word: str) -> str:
    """The word's shape, one of SHAPES (the first that applies, in that order)."""
    if any(character.isdigit() for character in word):
        return "digit"
    if "-" in word:
        return "hyphen"
    if word[:1].isupper():
        return "capitalised"
    return "lower-case" if any(character.isalpha() for character in word) else "other"


def frequency_band(count: int) -> str:
    """A seen word's training count as one of BANDS (count ≥ 1)."""
    if count < 1:
        raise ValueError(f"frequency_band: {count} is no training count of a seen word")
    return "1" if count == 1 else "2–10" if count <= 10 else "11–100" if count <= 100 else "> 100"


def tally(keys: Iterable[Hashable], right: Iterable[bool]) -> dict[Hashable, tuple[int, int]]:
    """{key: (words, words tagged right)} over aligned per-word keys and right/wrong flags."""
    counts: dict[Hashable, tuple[int, int]] = {}
    for key, ok in zip(keys, right, strict=True):
        words, correct = counts.get(key, (0, 0))
        counts[key] = (words + 1, correct + bool(ok))
    return counts


def error_shares(counts: dict[Hashable, tuple[int, int]]) -> dict[Hashable, float]:
    """Each key's share of all the errors in `counts` (a `tally`); 0 everywhere when there is no error."""
    errors = {key: words - correct for key, (words, correct) in counts.items()}
    total = sum(errors.values())
    return {key: error / total if total else 0.0 for key, error in errors.items()}
