"""data=synthetic_classification (rnnlab/data/synthetic_classification.py): reproducible sentences whose label
depends on word order, the Bayes optimum and the bag-of-words optimum against sampled data, and an order-aware
rule that reaches the first while rules that see only bags stay under the second."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest
from conftest import CONF
from hydra.utils import instantiate
from omegaconf import OmegaConf

from rnnlab.data.synthetic_classification import (
    NEGATIVE,
    POSITIVE,
    SentimentLanguage,
    SyntheticClassificationDataModule,
    expected_best_accuracy,
)
from rnnlab.errors import ConfigError

SMALL = {"train_examples": 300, "val_examples": 100, "test_examples": 100}


def generated(**options) -> SyntheticClassificationDataModule:
    data = SyntheticClassificationDataModule(**options)
    data.setup()
    return data


def test_same_seeds_give_the_same_sentences_and_other_seeds_or_splits_others():
    data = generated(**SMALL)
    assert generated(**SMALL).texts("train") == data.texts("train")
    assert generated(**SMALL).labels("val") == data.labels("val")
    assert generated(**SMALL, seed=1).texts("train") != data.texts("train")
    assert generated(**SMALL, grammar_seed=7).texts("train") != data.texts("train")  # other word frequencies
    assert data.texts("val") != data.texts("test") != data.texts("train")[:100]
    lengths = [len(text.split()) for split in ("train", "val", "test") for text in data.texts(split)]
    assert min(lengths) == 5 and max(lengths) == 25
    assert data.classes == ["negative", "positive"] and data.task_inputs["num_classes"] == 2


def test_the_config_file_builds_the_data_module():
    cfg = OmegaConf.load(CONF / "data" / "synthetic_classification.yaml")
    data = instantiate(cfg, **SMALL)
    data.setup()
    assert data.task_inputs["vocab_size"] == 63 + 2  # every word of the language, <unk> and <eos>
    assert data.optimal_accuracy("val") == pytest.approx(1 - cfg.label_noise)


def sample(language: SentimentLanguage, count: int, lengths: tuple[int, int], seed: int = 0):
    rng = random.Random(seed)
    return [language.sample(rng, rng.randint(*lengths)) for _ in range(count)]


def tiny_language(fillers: tuple[str, ...]) -> SentimentLanguage:
    return SentimentLanguage(label_noise=0.1, order_share=0.6, fillers=fillers, positive=("good", "great"),
                             negative=("bad",))


def assert_frequencies_match(groups: dict[str, list[bool]], posterior, min_count: int) -> None:
    """Each group's share of positive labels is its posterior, within 4 standard errors."""
    checked = [key for key, positives in groups.items() if len(positives) >= min_count]
    for key in checked:
        p, positives = posterior(key), groups[key]
        assert abs(sum(positives) / len(positives) - p) < 4 * (p * (1 - p) / len(positives)) ** 0.5, key
    assert len(checked) >= 20


def test_both_posteriors_match_label_frequencies_in_sampled_data_of_a_tiny_language():
    """Sampled often enough, every text and every bag of words shows the share of positive labels its posterior
    says, and the Bayes classifiers of texts and of bags score the two optima on fresh data."""
    one_filler = tiny_language(("x",))
    by_text = defaultdict(list)
    for text, label in sample(one_filler, 40_000, (5, 6)):
        by_text[text].append(label == "positive")
    assert_frequencies_match(by_text, one_filler.posterior, min_count=100)

    language = tiny_language(("x", "y"))  # two fillers: a bag's filler counts vary too
    examples = sample(language, 60_000, (5, 6))
    by_bag = defaultdict(list)
    for text, label in examples:
        by_bag[" ".join(sorted(text.split()))].append(label == "positive")
    assert_frequencies_match(by_bag, language.bag_posterior, min_count=300)

    fit, held_out = examples[:30_000], examples[30_000:]
    bayes = [(language.posterior(text) > 0.5) == (label == "positive") for text, label in held_out]
    assert sum(bayes) / len(bayes) == pytest.approx(expected_best_accuracy(
        [language.posterior(text) for text, _ in held_out]), abs=0.005)
    # the best classifier of bags, fitted on one half (its majority label per bag), scores the optimum on the other
    votes = defaultdict(Counter)
    for text, label in fit:
        votes[" ".join(sorted(text.split()))][label] += 1
    hits = [votes[" ".join(sorted(text.split()))].most_common(1)[0][0] == label for text, label in held_out]
    bow_optimum = expected_best_accuracy([language.bag_posterior(text) for text, _ in held_out])
    assert bow_optimum == pytest.approx((1 - 0.1) * (1 - 0.6) + 0.6 / 2, abs=0.01)  # (1 − ε)(1 − s) + s/2
    assert sum(hits) / len(hits) == pytest.approx(bow_optimum, abs=0.01)


def test_the_bag_of_words_optimum_is_more_than_ten_points_below_the_bayes_optimum_at_the_defaults():
    data = generated()
    for split in ("train", "val", "test"):
        texts = data.texts(split)
        order_dependent = sum("but" in t.split() or "not" in t.split() or "never" in t.split() for t in texts)
        share = order_dependent / len(texts)
        assert data.optimal_accuracy(split) == pytest.approx(0.95)
        assert data.bow_optimal_accuracy(split) == pytest.approx(0.95 * (1 - share) + share / 2)
        assert data.bow_optimal_accuracy(split) == pytest.approx(0.725, abs=0.02)  # (1 − ε)(1 − s) + s/2
        assert data.optimal_accuracy(split) - data.bow_optimal_accuracy(split) >= 0.2
    # the bag posterior reads only the bag: shuffling a sentence's words never changes it
    rng = random.Random(0)
    for text in data.texts("val")[:200]:
        words = text.split()
        rng.shuffle(words)
        assert data.language.bag_posterior(" ".join(words)) == data.language.bag_posterior(text)


POLARITY = {**{word: "positive" for word in POSITIVE}, **{word: "negative" for word in NEGATIVE}}
FLIP = {"positive": "negative", "negative": "positive"}


def order_aware_rule(text: str) -> str:
    """The clause after the last "but" decides; a "not"/"never" before its sentiment word flips it."""
    clause = text.split(" but ")[-1].split()
    at = next(k for k, word in enumerate(clause) if word in POLARITY)
    negated = any(word in ("not", "never") for word in clause[:at])
    return FLIP[POLARITY[clause[at]]] if negated else POLARITY[clause[at]]


def what_a_bag_tells(words: Counter) -> tuple:
    polarities = tuple(sorted(POLARITY[w] for w in words.elements() if w in POLARITY))
    return words["but"], polarities, words["not"] + words["never"]


def bag_rules(train_texts: list[str], train_labels: list[str]) -> dict:
    """Rules that see only the multiset of words; the last fitted on the training split (majority per signature)."""
    def count_votes(words: Counter) -> str:
        score = sum((1 if POLARITY[w] == "positive" else -1) * n for w, n in words.items() if w in POLARITY)
        return "positive" if score > 0 else "negative"

    def odd_negators_flip(words: Counter) -> str:
        return FLIP[count_votes(words)] if (words["not"] + words["never"]) % 2 else count_votes(words)

    votes = defaultdict(Counter)
    for text, label in zip(train_texts, train_labels):
        votes[what_a_bag_tells(Counter(text.split()))][label] += 1
    majority = {signature: counts.most_common(1)[0][0] for signature, counts in votes.items()}
    return {"count_votes": count_votes, "odd_negators_flip": odd_negators_flip,
            "fitted_majority": lambda words: majority.get(what_a_bag_tells(words), "positive")}


def test_an_order_aware_rule_reaches_the_bayes_optimum_and_bag_rules_stay_under_the_bag_of_words_optimum():
    data = generated(label_noise=0.0, test_examples=4000)
    texts, labels = data.texts("test"), [data.classes[k] for k in data.labels("test")]
    assert data.optimal_accuracy("test") == 1.0
    assert [order_aware_rule(text) for text in texts] == labels
    bow_optimum = data.bow_optimal_accuracy("test")
    assert bow_optimum == pytest.approx(0.75, abs=0.02)  # 1 − s/2 without noise
    rules = bag_rules(data.texts("train"), [data.classes[k] for k in data.labels("train")])
    for name, rule in rules.items():
        accuracy = sum(rule(Counter(text.split())) == label for text, label in zip(texts, labels)) / len(texts)
        # sampling tolerance: on ~2000 order-dependent sentences a bag rule is a coin, σ ≈ 0.006 of the split
        assert accuracy <= bow_optimum + 0.02, (name, accuracy, bow_optimum)


@pytest.mark.parametrize(("option", "message"), [
    ({"train_examples": 0}, "data.train_examples=0 is invalid: must be a positive integer"),
    ({"val_examples": 2.5}, "data.val_examples=2.5 is invalid"),
    ({"min_words": 4}, "data.min_words=4 is invalid with data.max_words=25: need 5 <= min_words <= max_words"),
    ({"min_words": 30}, "data.min_words=30 is invalid"),
    ({"order_share": 1.5}, r"data.order_share=1.5 is invalid: must be a probability in \[0, 1\]"),
    ({"contrast_share": -0.1}, "data.contrast_share=-0.1 is invalid"),
    ({"label_noise": 0.5}, r"data.label_noise=0.5 is invalid: must be in \[0, 0.5\)"),
    ({"grammar_seed": -1}, "data.grammar_seed=-1 is invalid"),
    ({"batch_size": 0}, "data.batch_size=0 is invalid"),
    ({"noise": 0.1}, "data.noise is not an option of data=synthetic_classification; valid: train_examples"),
])
def test_bad_options_are_one_line_config_errors(option, message):
    with pytest.raises(ConfigError, match=message) as error:
        SyntheticClassificationDataModule(**option)
    assert "\n" not in str(error.value)
