"""rnnlab.tasks.word_classes (experiments/tagging/words.py's counting): word classes from training counts, unseen
shapes, frequency bands and accuracy by class, on a hand-made example whose numbers are counted by hand."""

from __future__ import annotations

from collections import Counter

import pytest

from rnnlab.tasks.word_classes import (
    ONE_TAG,
    SEVERAL_TAGS,
    UNSEEN,
    error_shares,
    frequency_band,
    tally,
    training_tags,
    unseen_shape,
    word_class,
)

TRAIN = [["the", "dog", "runs"], ["the", "runs", "Paris"]]
TRAIN_TAGS = [["DET", "NOUN", "VERB"], ["DET", "NOUN", "PROPN"]]
DEV = ["the", "runs", "well-known", "Oslo", "2016", "dog", "upsell", ":)", "The"]
RIGHT = [True, False, False, True, True, True, False, True, False]


def test_classes_shapes_and_accuracy_by_class_counted_by_hand():
    lexicon = training_tags(TRAIN, TRAIN_TAGS)
    assert lexicon == {"the": Counter(DET=2), "dog": Counter(NOUN=1), "runs": Counter(VERB=1, NOUN=1),
                       "Paris": Counter(PROPN=1)}
    classes = [word_class(word, lexicon) for word in DEV]
    # "The" is not "the": the words as written, no lowercasing
    assert classes == [ONE_TAG, SEVERAL_TAGS, UNSEEN, UNSEEN, UNSEEN, ONE_TAG, UNSEEN, UNSEEN, UNSEEN]
    assert [unseen_shape(word) for word, kind in zip(DEV, classes) if kind == UNSEEN] == \
        ["hyphen", "capitalised", "digit", "lower-case", "other", "capitalised"]
    assert unseen_shape("3-D") == "digit"  # the first shape that applies

    counts = tally(classes, RIGHT)  # one tag: the ✓ dog ✓; several: runs ✗; unseen: 3 ✓ of 6
    assert counts == {ONE_TAG: (2, 2), SEVERAL_TAGS: (1, 0), UNSEEN: (6, 3)}
    assert error_shares(counts) == {ONE_TAG: 0.0, SEVERAL_TAGS: 0.25, UNSEEN: 0.75}  # 4 errors: 1 and 3
    assert error_shares({ONE_TAG: (2, 2)}) == {ONE_TAG: 0.0}  # no error at all: no share


def test_frequency_bands():
    assert [frequency_band(n) for n in (1, 2, 10, 11, 100, 101)] == ["1", "2–10", "2–10", "11–100", "11–100",
                                                                      "> 100"]
    with pytest.raises(ValueError):
        frequency_band(0)
