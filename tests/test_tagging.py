"""task=tagging: the tagger never reads padding, Viterbi and forward–backward against brute-force enumeration, the
HMM's counts against hand-computed ones, the span scores against conlleval's, a tiny fit in which the bidirectional
tagger beats the left-to-right optimum it must, and train.py / eval.py end to end for the RNN and the HMM."""

from __future__ import annotations

import itertools
import re

import lightning.pytorch as L
import numpy as np
import pytest
import torch
from conftest import tracked_fit

from rnnlab.data.synthetic_tagging import SyntheticTaggingDataModule
from rnnlab.errors import ConfigError
from rnnlab.models import registry
from rnnlab.models.hmm import HMMTagger, deleted_interpolation, interpolated_transitions
from rnnlab.models.tagger import RNNTagger
from rnnlab.nn.chain import log_partition, marginals, path_score, viterbi
from rnnlab.tasks import load
from rnnlab.tasks.tagging import TaggingTask, is_bio, metric_name, most_confused, span_scores, tagged_examples

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"cell": "lstm", "embedding_size": 6, "hidden_size": 5, "num_layers": 2}


# --- the network -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_padding_never_changes_a_tag(cell, bidirectional):
    torch.manual_seed(0)
    model = RNNTagger(20, 4, **{**SMALL, "cell": cell}, bidirectional=bidirectional).eval()
    lengths = torch.tensor([5, 2, 4])
    tokens = torch.randint(1, 20, (3, 5))
    logits = model(tokens, lengths)  # (3, 5, 4)
    wide = torch.cat([tokens, torch.randint(0, 20, (3, 10))], dim=1)  # padded to 3× with random ids
    for row, n in enumerate(lengths.tolist()):
        wide[row, n:] = torch.randint(0, 20, (15 - n,))
    padded = model(wide, lengths)
    for row, n in enumerate(lengths.tolist()):  # the real words: the same logits, padded or alone
        torch.testing.assert_close(padded[row, :n], logits[row, :n], atol=1e-6, rtol=0)
        torch.testing.assert_close(model(tokens[row:row + 1, :n], lengths[row:row + 1])[0], logits[row, :n],
                                   atol=1e-6, rtol=0)


def test_the_registry_builds_the_tagger_and_the_hmm_and_refuses_the_rest():
    assert isinstance(registry.build(SMALL, "tagger", vocab_size=9, num_tags=3, pad_id=0), RNNTagger)
    hmm = registry.build({"family": "hmm", "order": 2, "hidden_size": 64, "bidirectional": True}, "tagger",
                         vocab_size=9, num_tags=3, pad_id=0)  # a preset's sizes for the RNNs: ignored
    assert isinstance(hmm, HMMTagger) and hmm.order == 2 and not registry.trains({"family": "hmm"})
    assert registry.ignored_keys({"family": "hmm", "hidden_size": 64, "order": 1}, "tagger") == ["hidden_size"]
    for model, shape, message in [
        ({"family": "hmm"}, "classifier", "model=hmm has no classifier network: it fits task=tagging"),
        ({"family": "bow"}, "tagger", "model=bow has no tagger network: it fits task=classification"),
        ({"family": "hmm", "order": 3}, "tagger", "model.order=3 is invalid: 1 (a tag depends on the one before)"),
        ({"family": "hmm", "smoothing": "kn"}, "tagger", "model.smoothing is not an option here; valid: "),
        ({**SMALL, "tie_weights": True}, "tagger", "model.tie_weights=true ties a language model's output layer"),
        ({**SMALL, "recurrent_init": "eye"}, "tagger", "model.recurrent_init='eye' is not one of default, orthogonal"),
        ({**SMALL, "forget_bias": "chrono"}, "tagger", "model.forget_bias=chrono needs chrono_max=T_max"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            registry.build(model, shape, vocab_size=9, num_tags=3, pad_id=0, **({"num_classes": 2, "pooling": "last"}
                                                                                 if shape == "classifier" else {}))
    with pytest.raises(ConfigError, match=r"^task.num_examples=-1 is invalid: must be an integer ≥ 0$"):
        TaggingTask(9, 3, 0, 0, SMALL, {"_target_": "torch.optim.Adam"}, num_examples=-1)


def test_another_tasks_data_is_one_line(make_cfg):
    from rnnlab.training import build

    with pytest.raises(ConfigError) as error:
        build(make_cfg("task=tagging", "data=synthetic_classification", "data.train_examples=20", tiny=False))
    assert str(error.value) == ("data=synthetic_classification is not data for task=tagging: it gives vocab_size, "
                                "num_classes, pad_id where the task needs vocab_size, num_tags, pad_id, num_chars, "
                                "num_intents; "
                                "pick a data= made for task=tagging, or leave data= out for its default")


# --- Viterbi and forward–backward ----------------------------------------------------------------------------------
def brute_force(emissions: torch.Tensor, transitions: torch.Tensor, n: int) -> dict[tuple[int, ...], float]:
    """The score of every tag sequence of n words (the module docstring's s(y)), by enumeration."""
    K, order = emissions.size(-1), transitions.dim() - 1
    scores = {}
    for tags in itertools.product(range(K), repeat=n):
        history = [K] * order + list(tags) + [K]  # BOS before, EOS after
        scores[tags] = float(sum(emissions[i, y] for i, y in enumerate(tags))
                             + sum(transitions[tuple(history[i - order: i + 1])] for i in range(order, len(history))))
    return scores


@pytest.mark.parametrize("order", [1, 2])
def test_viterbi_marginals_log_partition_and_path_scores_equal_brute_force_enumeration(order):
    torch.manual_seed(order)
    K, lengths = 3, torch.tensor([5, 1, 3, 2])
    emissions = torch.randn(4, 5, K, dtype=torch.float64)
    transitions = torch.randn(*[K + 1] * (order + 1), dtype=torch.float64)
    tags = torch.randint(0, K, (4, 5))
    best, posterior = viterbi(emissions, transitions, lengths), marginals(emissions, transitions, lengths)
    log_partitions, gold = log_partition(emissions, transitions, lengths), path_score(emissions, transitions, tags,
                                                                                       lengths)
    for b, n in enumerate(lengths.tolist()):
        scores = brute_force(emissions[b], transitions, n)
        assert tuple(best[b, :n].tolist()) == max(scores, key=scores.get) and best[b, n:].eq(0).all()
        log_z = torch.logsumexp(torch.tensor(list(scores.values()), dtype=torch.float64), 0)
        assert float(log_partitions[b]) == pytest.approx(float(log_z), abs=1e-9)  # the CRF's log Z
        assert float(gold[b]) == pytest.approx(scores[tuple(tags[b, :n].tolist())], abs=1e-9)  # a path's score
        for i, k in itertools.product(range(n), range(K)):
            by_hand = torch.logsumexp(torch.tensor([s for y, s in scores.items() if y[i] == k], dtype=torch.float64),
                                      0) - log_z
            assert float(posterior[b, i, k]) == pytest.approx(float(by_hand), abs=1e-9)


# --- the HMM -------------------------------------------------------------------------------------------------------
def test_hmm_transitions_are_interpolated_by_deleted_interpolation_as_by_hand():
    # tags A = 0, B = 1 in the sentences "A B" and "A A B"; the boundary is index 2
    hmm = HMMTagger(vocab_size=1, num_tags=2).fit([["x", "y"], ["x", "x", "y"]], [[0, 1], [0, 0, 1]])
    # bigrams (BOS A) 2, (A B) 2, (B EOS) 2, (A A) 1; f(A) = 3, f(B) = 2, f(EOS) = 2 of N = 7 next tags.
    # (A A): (f(A A) − 1)/(f(A·) − 1) = 0 < (f(A) − 1)/(N − 1) = 1/3, its count to λ_1; the three others to λ_2;
    # each λ starts with one vote
    assert deleted_interpolation(hmm.tag_trigrams, 1) == pytest.approx([2 / 9, 7 / 9])
    p = interpolated_transitions(hmm.tag_trigrams, 1)
    assert p[0, 1] == pytest.approx(2 / 9 * 2 / 7 + 7 / 9 * 2 / 3)  # p(B | A) = λ_1 p̂(B) + λ_2 p̂(B | A)
    assert p.sum(1) == pytest.approx(np.ones(3)) and interpolated_transitions(hmm.tag_trigrams, 2).sum(2) == \
        pytest.approx(np.ones((3, 3)))
    assert hmm.transitions.exp()[0, 1].item() == pytest.approx(p[0, 1], rel=1e-6)


def test_hmm_tags_unknown_words_by_their_ending_and_survives_its_checkpoint():
    NOUN, VERB, DET = 0, 1, 2
    sentences = [["the", "table"], ["the", "running"], ["the", "jumping"], ["the", "chair"], ["the", "walking"]]
    tags = [[DET, NOUN], [DET, VERB], [DET, VERB], [DET, NOUN], [DET, VERB]]
    hmm = HMMTagger(vocab_size=1, num_tags=3, emission_prior=0.0).fit(sentences, tags)
    assert hmm.suffix_distribution("singing").argmax() == VERB  # "-ing" was a verb each time
    assert hmm.suffix_distribution("cable").argmax() == NOUN  # "-le" like "table"
    lengths = torch.tensor([2, 2])
    assert hmm.viterbi([["the", "singing"], ["the", "cable"]], lengths).tolist() == [[DET, VERB], [DET, NOUN]]
    # α = 0: a known word keeps only the tags it had (TnT's lexicon); "the" was never a verb
    assert hmm.emissions([["the"]], 1)[0, 0, VERB] == -np.inf
    posterior = hmm([["the", "singing"]], torch.tensor([2]))
    assert posterior.exp().sum(-1)[0].tolist() == pytest.approx([1, 1])
    again = HMMTagger(vocab_size=1, num_tags=3, emission_prior=0.0)
    again.load_state_dict(hmm.state_dict())  # the counts are the extra state
    assert torch.equal(again([["the", "singing"]], torch.tensor([2])), posterior)
    unfitted = HMMTagger(vocab_size=1, num_tags=3)
    torch.testing.assert_close(unfitted([["a", "b"]], torch.tensor([2])).exp(), torch.full((1, 2, 3), 1 / 3))


# --- the metrics ---------------------------------------------------------------------------------------------------
def test_span_scores_are_conllevals_on_a_hand_counted_case():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-LOC", "I-LOC"],
            ["I-LOC", "O"]]
    predicted = [["B-PER", "I-PER", "O", "B-ORG"],  # PER right; LOC found as ORG: wrong type
                 ["O", "I-MISC", "I-MISC", "O", "O"],  # I- after O starts a span (conlleval), but it ends too early
                 ["B-LOC", "B-LOC"],  # two spans where there is one
                 ["I-LOC", "O"]]  # a span of its own, not the end of the sentence before's: right
    # gold spans 2 + 1 + 1 + 1 = 5, found 2 + 1 + 2 + 1 = 6, right 2 (perl conlleval.pl says the same)
    scores = span_scores(gold, predicted)
    assert scores == pytest.approx({"precision": 2 / 6, "recall": 2 / 5, "f1": 4 / 11})
    assert span_scores([["O"]], [["O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert is_bio(["B-x", "I-x", "O"]) and not is_bio(["NOUN", "VERB"]) and not is_bio(["O", "I-x"])


def test_tag_names_artifacts_and_the_confusion_of_the_most_confused_tags():
    assert [metric_name(tag) for tag in ("PRP$", ".", "``", "-LRB-", "B-time_range")] == [
        "PRP_dollar_sign", "full_stop", "grave_accent_grave_accent", "-LRB-", "B-time_range"]
    confusion = torch.tensor([[5.0, 2, 0, 0], [1, 7, 0, 0], [0, 0, 9, 0], [0, 0, 1, 4]])
    matrix, names = most_confused(confusion, ["a", "b", "c", "d"], 2)
    assert names == ["a", "b", "(other)"] and matrix.tolist() == [[5, 2, 0], [1, 7, 0], [0, 0, 14]]
    assert most_confused(torch.eye(2), ["a", "b"], 5)[1] == ["a", "b"]  # no error: the most frequent, no "(other)"
    page = tagged_examples([(["the", "old", "man"], [0, 1, 2], [0, 2, 2])], ["DET", "ADJ", "NOUN"], "t")
    assert page.splitlines()[-1] == "1. the/DET old/**NOUN**≠ADJ man/NOUN  (1 wrong)"


# --- a tiny fit ----------------------------------------------------------------------------------------------------
def fit(bidirectional: bool, tmp_path) -> tuple[TaggingTask, SyntheticTaggingDataModule, L.Trainer]:
    torch.manual_seed(0)
    data = SyntheticTaggingDataModule(train_examples=300, val_examples=100, test_examples=100, max_words=12,
                                      max_distance=0, tag_noise=0.0, batch_size=16)
    data.setup("fit")
    tagger = TaggingTask(**data.task_inputs, model={**SMALL, "cell": "gru", "hidden_size": 16, "num_layers": 1,
                                                     "bidirectional": bidirectional},
                         optimizer={"_target_": "torch.optim.Adam", "lr": 0.03}, num_examples=3,
                         tokenizer=data.tokenizer_state())
    trainer = L.Trainer(max_epochs=6, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0)
    trainer.fit(tagger, datamodule=data)
    return tagger, data, trainer


def test_a_bidirectional_tagger_reads_the_cue_after_a_word_a_left_to_right_one_cannot(tmp_path):
    _, data, bi = fit(True, tmp_path / "bi")
    metrics = bi.callback_metrics
    assert metrics["val/acc_optimal"] == 1 and metrics["val/acc"] > 0.99  # tag_noise=0: the cue decides
    left = float(metrics["val/acc_left_to_right_optimal"])
    _, _, uni = fit(False, tmp_path / "uni")
    assert left < 0.97 and float(uni.callback_metrics["val/acc"]) <= left + 0.01  # capped where it must be
    assert (tmp_path / "bi" / "confusion" / "val_epoch_005.png").stat().st_size > 0
    examples = (tmp_path / "bi" / "examples" / "val_epoch_005.md").read_text().splitlines()
    assert examples[0] == "# val: tagged sentences, epoch 5, step 114" and examples[-1].startswith("3. ")
    path = tmp_path / "bi.ckpt"
    bi.save_checkpoint(path, weights_only=False)
    again = load(path, "bi.ckpt")
    assert isinstance(again, TaggingTask) and again.tags == data.tags
    scored = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                       default_root_dir=tmp_path / "again").validate(again, datamodule=data, verbose=False)[0]
    assert scored["val/acc"] == pytest.approx(float(metrics["val/acc"]))


# --- train.py and eval.py ------------------------------------------------------------------------------------------
TINY_DATA = ["data.train_examples=200", "data.val_examples=50", "data.test_examples=50", "data.max_words=12",
             "trainer.log_every_n_steps=1", "callbacks.progress_bar=null"]


def test_train_py_tags_the_default_data_against_its_optima_and_eval_py_scores_it_again(tmp_path):
    from test_task_family import compose_eval

    from rnnlab.evaluation import evaluate

    run = tracked_fit(["task=tagging", "model=gru", "model.num_layers=1", "model.hidden_size=16",
                       "model.embedding_size=8", "trainer.max_epochs=1", *TINY_DATA], tmp_path)
    metrics = run["metrics"]
    assert run["cfg"].model.bidirectional is True  # the task's default
    assert 0.85 < metrics["val/acc_left_to_right_optimal"] < metrics["val/acc_optimal"] < 1
    assert 0 <= metrics["val/acc"] <= 1 and {"test/acc", "test/sentence_acc", "test/macro_f1", "test/f1/NOUN",
                                             "val/loss"} <= set(metrics)
    assert "val/span_f1" not in metrics and "val/acc_unseen" not in metrics  # POS tags; every word seen
    assert run["client"].get_experiment_by_name("tagging-synthetic_tagging") is not None
    assert {"confusion", "examples"} <= {a.path for a in run["client"].list_artifacts(run["run_id"])}
    scored = evaluate(compose_eval(f"ckpt={run['run_id']}", tmp_path=tmp_path, uri=run["uri"]))
    assert scored["test/acc"] == pytest.approx(metrics["test/acc"])


def test_the_hmm_is_counted_in_one_epoch_and_scored_with_the_same_metrics_from_its_checkpoint(tmp_path):
    data = SyntheticTaggingDataModule(train_examples=300, val_examples=100, test_examples=100, max_words=12)
    data.setup("fit")
    model = {"family": "hmm", "bidirectional": True}  # conf/task/tagging.yaml's key for the RNNs: ignored
    task_class = registry.task_class(TaggingTask, model)
    hmm = task_class(**data.task_inputs, model=model, optimizer={"_target_": "torch.optim.Adam"}, num_examples=0,
                     confusion_tags=0, tokenizer=data.tokenizer_state())
    trainer = L.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(hmm, datamodule=data)
    metrics = {key: float(value) for key, value in trainer.callback_metrics.items()}
    assert trainer.current_epoch == 1 and metrics["train/sentences"] == 300  # counted once, then stopped
    assert "train/grad_norm" not in metrics and {"val/loss", "val/sentence_acc", "val/macro_f1"} <= set(metrics)
    # a first-order HMM links a word to the next tag only: it reads a cue right after the word, not one further on
    assert metrics["val/acc_left_to_right_optimal"] - 0.05 < metrics["val/acc"] < metrics["val/acc_optimal"]
    path = tmp_path / "hmm.ckpt"
    trainer.save_checkpoint(path, weights_only=False)
    again = load(path, "hmm.ckpt")  # the counts travel in the state_dict
    assert type(again).__name__ == "HMMTaggingTask" and again.model.fitted
    scored = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                       default_root_dir=tmp_path / "again").validate(again, datamodule=data, verbose=False)[0]
    assert scored["val/acc"] == pytest.approx(metrics["val/acc"]) and scored["val/loss"] == pytest.approx(
        metrics["val/loss"], rel=1e-5)
