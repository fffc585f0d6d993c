"""task=classification: the classifiers (pooling, padding never read, the bag of words' features), the scores
against scikit-learn's, and a tiny fit that learns, writes its artifacts and scores the same from its checkpoint."""

from __future__ import annotations

import random
import re
import sys

import lightning.pytorch as L
import numpy as np
import pytest
import torch
from conftest import ROOT, run_owned
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from rnnlab.data.classification import ClassificationDataModule, Labelled
from rnnlab.errors import ConfigError
from rnnlab.models import registry
from rnnlab.models.classifier import BagOfWordsClassifier, RNNClassifier
from rnnlab.tasks import load
from rnnlab.tasks.classification import ClassificationTask, class_scores, misclassified_table

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"cell": "lstm", "embedding_size": 6, "hidden_size": 5, "num_layers": 2}


def padded_three_times(tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The batch padded to 3× its length with random ids: padding that a model must not read."""
    garbage = torch.randint(0, 20, (tokens.size(0), 2 * tokens.size(1)))
    wide = torch.cat([tokens, garbage], dim=1)
    for row, n in enumerate(lengths.tolist()):
        wide[row, n:] = torch.randint(0, 20, (wide.size(1) - n,))
    return wide


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "attention"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_padding_never_changes_a_prediction(pooling, cell, bidirectional):
    torch.manual_seed(0)
    model = RNNClassifier(20, 3, pooling=pooling, **{**SMALL, "cell": cell}, bidirectional=bidirectional).eval()
    lengths = torch.tensor([5, 2, 4])
    tokens = torch.randint(1, 20, (3, 5))
    logits = model(tokens, lengths)
    torch.testing.assert_close(model(padded_three_times(tokens, lengths), lengths), logits, atol=1e-6, rtol=0)
    for row, n in enumerate(lengths.tolist()):  # and each text alone, unpadded
        torch.testing.assert_close(model(tokens[row:row + 1, :n], lengths[row:row + 1]), logits[row:row + 1],
                                   atol=1e-6, rtol=0)


def test_last_pooling_reads_the_last_forward_and_the_first_backward_state():
    torch.manual_seed(0)
    model = RNNClassifier(20, 3, pooling="last", **SMALL, bidirectional=True).eval()
    tokens, lengths = torch.randint(1, 20, (1, 4)), torch.tensor([4])
    states, _ = model.rnn(model.embedding(tokens), lengths=lengths)  # (1, 4, 2H): last layer, both directions
    H = SMALL["hidden_size"]
    expected = torch.cat([states[0, -1, :H], states[0, 0, H:]])
    torch.testing.assert_close(model(tokens, lengths), model.out(expected)[None], atol=1e-6, rtol=0)


def test_attention_weights_sum_to_one_over_the_real_tokens():
    torch.manual_seed(0)
    model = RNNClassifier(20, 2, pooling="attention", **SMALL).eval()
    lengths = torch.tensor([4, 2])
    _, weights = model(torch.randint(1, 20, (2, 4)), lengths, return_attention=True)
    torch.testing.assert_close(weights.sum(1), torch.ones(2))
    assert weights[1, 2:].eq(0).all() and weights[1, :2].gt(0).all()


def test_bag_of_words_features():
    tokens, lengths = torch.tensor([[3, 1, 3, 0], [2, 2, 9, 9]]), torch.tensor([3, 2])
    bow = BagOfWordsClassifier(5, 2)
    counts = bow.features(tokens, lengths)
    assert counts.tolist() == [[0, 1, 0, 2, 0], [0, 0, 2, 0, 0]]  # padding (0, 9, 9) counts nothing
    assert BagOfWordsClassifier(5, 2, weighting="binary").features(tokens, lengths)[0].tolist() == [0, 1, 0, 1, 0]
    torch.testing.assert_close(BagOfWordsClassifier(5, 2, weighting="log_counts").features(tokens, lengths),
                               torch.log1p(counts))
    pairs = BagOfWordsClassifier(5, 2, ngrams=2, bigram_buckets=7).features(tokens, lengths)[:, 5:]
    # row 0: pairs (3,1) → 16 % 7 = 2 and (1,3) → 8 % 7 = 1; row 1: (2,2) → 12 % 7 = 5; pairs into padding: none
    assert pairs.tolist() == [[0, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1, 0]]
    assert torch.equal(bow(padded_three_times(tokens, lengths), lengths), bow(tokens, lengths))


def test_tfidf_features_equal_scikit_learns():
    from sklearn.feature_extraction.text import TfidfTransformer

    texts = [[3, 1, 3], [2, 2], [1, 4, 4, 4, 2], [3]]
    bow = BagOfWordsClassifier(5, 2, weighting="tfidf", ngrams=2, bigram_buckets=7)
    with pytest.raises(ConfigError, match="model.weighting=tfidf: the idf was never fitted; call fit_idf"):
        bow.features(torch.tensor([[1]]), torch.tensor([1]))
    bow.fit_idf(texts, batch_size=3)  # in two batches
    tokens = torch.tensor([[3, 1, 3, 0, 0], [2, 2, 0, 0, 0], [1, 4, 4, 4, 2], [3, 0, 0, 0, 0]])
    lengths = torch.tensor([3, 2, 5, 1])
    counts = BagOfWordsClassifier(5, 2, ngrams=2, bigram_buckets=7).features(tokens, lengths)
    expected = TfidfTransformer().fit(counts.numpy()).transform(counts.numpy()).toarray()
    torch.testing.assert_close(bow.features(tokens, lengths), torch.tensor(expected, dtype=torch.float32))
    again = BagOfWordsClassifier(5, 2, weighting="tfidf", ngrams=2, bigram_buckets=7)
    again.load_state_dict(bow.state_dict())  # a checkpoint keeps the training split's idf
    assert torch.equal(again.features(tokens, lengths), bow.features(tokens, lengths))


def test_the_bag_of_words_runs_beside_the_rnns_in_one_sweep():
    """A preset sizes the recurrent models (hidden_size, cell, ...): the bag of words ignores those, keeps dropout."""
    model = registry.build({"family": "bow", "hidden_size": 64, "cell": "gru", "dropout": 0.3}, "classifier",
                           vocab_size=9, num_classes=2, pad_id=0, pooling="mean")
    assert isinstance(model, BagOfWordsClassifier) and model.classify[0].p == 0.3
    assert registry.ignored_keys({"family": "bow", "hidden_size": 64, "dropout": 0.3}, "classifier") == ["hidden_size"]
    with pytest.raises(ConfigError, match="model=bow has no lm network: it fits task=classification"):
        registry.build({"family": "bow"}, "lm", vocab_size=9)
    with pytest.raises(ConfigError, match="task.pooling='sum' is invalid: choose one of last, mean, max, attention"):
        registry.build(SMALL, "classifier", vocab_size=9, num_classes=2, pad_id=0, pooling="sum")
    with pytest.raises(ConfigError, match="model.tie_weights=true ties a language model's output layer"):
        registry.build({**SMALL, "tie_weights": True}, "classifier", vocab_size=9, num_classes=2, pad_id=0)
    with pytest.raises(ConfigError, match="model.forget_bias applies to lstm only, not gru"):  # the layer's check
        registry.build({**SMALL, "cell": "gru", "forget_bias": 1.0}, "classifier", vocab_size=9, num_classes=2,
                       pad_id=0)


def test_scores_equal_scikit_learns():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 4, 300)
    predicted = np.where(rng.random(300) < 0.6, gold, rng.integers(0, 3, 300))  # class 3 never predicted
    confusion = torch.zeros(4, 4, dtype=torch.float64)
    for g, p in zip(gold, predicted):
        confusion[g, p] += 1
    scores = class_scores(confusion, ["a", "b", "c", "d"], "val")
    assert scores["val/acc"].item() == pytest.approx(accuracy_score(gold, predicted))
    assert scores["val/macro_f1"].item() == pytest.approx(f1_score(gold, predicted, average="macro", zero_division=0))
    precision, recall, f1, _ = precision_recall_fscore_support(gold, predicted, zero_division=0)
    for k, name in enumerate("abcd"):
        assert scores[f"val/precision/{name}"].item() == pytest.approx(precision[k])
        assert scores[f"val/recall/{name}"].item() == pytest.approx(recall[k])
        assert scores[f"val/f1/{name}"].item() == pytest.approx(f1[k])


def test_misclassified_table_shows_the_surest_mistakes_first():
    table = misclassified_table(["a b", "c | d", "e", "f"], [0, 1, 0, 1], {0: (1, 0.6), 1: (0, 0.9), 2: (0, 0.99),
                                                                             3: (0, 0.7)}, ["neg", "pos"], 2, "t")
    rows = table.splitlines()[4:]
    assert rows == ["| 1 | c \\| d | pos | neg | 0.900 |", "| 3 | f | pos | neg | 0.700 |"]


# --- a tiny fit -------------------------------------------------------------------------------------------------
class WordOrder(ClassificationDataModule):
    """Positive when "good" comes before "bad": the words are the same in both classes, only their order differs."""

    option = "word_order"

    def load_splits(self):
        def split(n, seed):
            rng = random.Random(seed)
            texts, labels = [], []
            for _ in range(n):
                words = [rng.choice("xyzw") for _ in range(rng.randint(0, 3))]
                first, second = rng.sample(["good", "bad"], 2)
                words[rng.randint(0, len(words)):rng.randint(0, len(words))] = [first]
                words.insert(words.index(first) + 1 + rng.randint(0, 1), second)
                texts.append(" ".join(words))
                labels.append("pos" if first == "good" else "neg")
            return Labelled(texts, labels)

        return {"train": split(400, 1), "val": split(100, 2), "test": None}


def fit(model: dict, tmp_path, **task) -> tuple[ClassificationTask, WordOrder, L.Trainer]:
    torch.manual_seed(0)
    data = WordOrder(batch_size=16, eval_batch_size=64)
    data.setup("fit")
    classifier = ClassificationTask(**data.task_inputs, model=model, tokenizer=data.tokenizer_state(),
                                    optimizer={"_target_": "torch.optim.Adam", "lr": 0.02}, **task)
    trainer = L.Trainer(max_epochs=6, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0)
    trainer.fit(classifier, datamodule=data)
    return classifier, data, trainer


@pytest.mark.slow  # ~13 s: two trainings; the default data's optima are checked through train.py in make test
def test_a_recurrent_classifier_learns_word_order_a_bag_of_words_cannot(tmp_path):
    rnn, data, trainer = fit({**SMALL, "cell": "gru", "hidden_size": 16, "embedding_size": 8}, tmp_path,
                             pooling="last")
    assert trainer.callback_metrics["val/acc"] > 0.95 and trainer.callback_metrics["val/macro_f1"] > 0.95
    assert set(data.texts("val")) and (tmp_path / "confusion" / "val_epoch_005.png").stat().st_size > 0
    assert (tmp_path / "misclassified" / "val_epoch_005.md").read_text().startswith("# val: the most confident")
    assert not (tmp_path / "attention").exists()  # pooling=last: no attention to show
    _, _, attentive = fit({**SMALL, "cell": "gru", "hidden_size": 16, "embedding_size": 8}, tmp_path / "attention",
                          pooling="attention", num_attention_examples=5)
    page = (tmp_path / "attention" / "attention" / "val_epoch_005.html").read_text()
    assert page.count("<tr>") == 5 and data.texts("val")[0].split()[0] in page
    weights = [float(w) for w in re.findall(r"title='([0-9.]+)'", page)]
    assert len(weights) == sum(len(t.split()) for t in data.texts("val")[:5])
    assert sum(weights) == pytest.approx(5, abs=0.02)  # each text's weights sum to one (shown to 3 decimals)
    bow, _, bow_trainer = fit({"family": "bow", "weighting": "tfidf"}, tmp_path / "bow")
    assert bow_trainer.callback_metrics["val/acc"] < 0.75  # the same words in both classes: order is all there is
    assert bow.model.idf_fitted and bow.model.idf.max() > 1  # fitted on the training split before training

    path = tmp_path / "rnn.ckpt"
    trainer.save_checkpoint(path, weights_only=False)
    again = load(path, "rnn.ckpt")
    assert isinstance(again, ClassificationTask) and again.classes == ["neg", "pos"]
    scored = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                       default_root_dir=tmp_path / "again").validate(again, datamodule=data, verbose=False)[0]
    assert scored["val/acc"] == pytest.approx(float(trainer.callback_metrics["val/acc"]))

    texts = ["x good y bad", "", "bad good", "unseen words only"]
    probabilities = again.classify(texts)
    assert probabilities[1] is None and all(sum(p) == pytest.approx(1) for p in probabilities if p is not None)
    assert probabilities[0][1] > 0.5 > probabilities[2][1]  # good before bad: pos; bad before good: neg
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    done = run_owned([sys.executable, "classify.py", f"ckpt={path}", f"input={tmp_path / 'texts.txt'}"], cwd=ROOT,
                     timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    assert rows[0] == ["text", "label", "p(neg)", "p(pos)"] and rows[2] == [""]
    assert rows[1][:2] == ["x good y bad", "pos"] and rows[3][:2] == ["bad good", "neg"]
    assert float(rows[1][3]) == pytest.approx(probabilities[0][1], abs=1e-4)
    empty = run_owned([sys.executable, "classify.py", f"ckpt={path}", "text= "], cwd=ROOT, timeout=120)
    assert empty.returncode == 2 and empty.stderr.strip() == 'error: text is empty: give a sentence, e.g. ' \
        'text="a gorgeous, witty film"'


def test_train_py_classifies_the_default_data_against_its_optima(tmp_path):
    """task=classification through train(): its MLflow run, the two optima beside the accuracy, its artifacts, and
    eval.py on the run id giving the run's own test score."""
    from conftest import tracked_fit
    from test_task_family import compose_eval

    from rnnlab.evaluation import evaluate

    run = tracked_fit(["task=classification", "model=gru", "model.num_layers=1", "model.hidden_size=32",
                       "model.embedding_size=16", "data.train_examples=800", "data.val_examples=200",
                       "data.test_examples=200", "trainer.max_epochs=2", "callbacks.progress_bar=null"],
                      tmp_path)
    metrics = run["metrics"]
    assert metrics["val/acc_optimal"] == pytest.approx(0.95) and metrics["val/acc_bow_optimal"] < 0.8
    assert 0 <= metrics["val/acc"] <= 1 and {"test/macro_f1", "test/f1/positive"} <= set(metrics)
    artifacts = {a.path for a in run["client"].list_artifacts(run["run_id"])}
    assert {"confusion", "misclassified"} <= artifacts
    scored = evaluate(compose_eval(f"ckpt={run['run_id']}", tmp_path=tmp_path, uri=run["uri"]))
    assert scored["test/acc"] == pytest.approx(metrics["test/acc"])


def test_word_dropout_reads_training_words_as_unk_and_leaves_evaluation_alone():
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, tokens, lengths):
            seen.append(tokens.clone())
            return self.bias.expand(len(tokens), 2)

        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(2))

    optimizer = {"_target_": "torch.optim.Adam", "lr": 0.01}
    task = ClassificationTask(vocab_size=50, num_classes=2, pad_id=0, model=SMALL, optimizer=optimizer,
                              word_dropout=0.25)
    task.model = Recorder()
    tokens = torch.randint(1, 50, (200, 50))
    batch = {"tokens": tokens, "tokens_lengths": torch.full((200,), 50), "label": torch.zeros(200, dtype=torch.long),
             "index": torch.arange(200)}
    torch.manual_seed(0)
    task.training_step(batch, 0)
    dropped = seen[-1].eq(0)
    assert dropped.float().mean().item() == pytest.approx(0.25, abs=0.01)  # <unk> is id 0
    assert torch.equal(seen[-1][~dropped], tokens[~dropped]) and torch.equal(batch["tokens"], tokens)  # a copy
    task.eval()
    task._eval_step(batch, "val")
    assert torch.equal(seen[-1], tokens)  # evaluation reads every word
    with pytest.raises(ConfigError, match=r"task.word_dropout=1.0 is invalid: a probability in \[0, 1\)"):
        ClassificationTask(vocab_size=50, num_classes=2, pad_id=0, model=SMALL, optimizer=optimizer, word_dropout=1.0)
