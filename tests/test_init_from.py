"""model.init_from: a classifier's (or tagger's) encoder started from a task=lm checkpoint — embedding rows copied
by word, recurrent layers into the forward direction, the backward direction and the LM's missing words left at
their init, every mismatch refused in one line — and data=sst_text, the treebank's sentences as an LM corpus in the
classifier's form."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import pytest
import torch
from conftest import compose_train, tracked_fit

from rnnlab.checkpoints import resolve_checkpoint
from rnnlab.data.sst import SST2DataModule, SSTTextDataModule, glue_form, parse_tree
from rnnlab.errors import ConfigError
from rnnlab.models.classifier import RNNClassifier
from rnnlab.models.language_model import RNNLanguageModel
from rnnlab.models.tagger import RNNTagger
from rnnlab.models.transfer import copy_language_model
from rnnlab.tasks import load
from rnnlab.tasks.classification import ClassificationTask
from rnnlab.tasks.tagging import TaggingTask

pytestmark = pytest.mark.usefixtures("one_thread")

LM_WORDS = ["<unk>", "<eos>", "the", "film", "good", "plot", "dull"]
# the classifier's own vocabulary, in its own order; "bad" and "acting" are not the LM's
WORDS = ["<unk>", "<eos>", "good", "bad", "the", "dull", "acting"]
LM = {"cell": "lstm", "embedding_size": 6, "hidden_size": 5, "num_layers": 2, "backend": "fused"}
LM_TASK = "rnnlab.tasks.language_modeling.LanguageModelingTask"
ADAM = {"_target_": "torch.optim.Adam", "lr": 0.01}


def language_model(**model):
    torch.manual_seed(1)
    config = {**LM, **model}
    return config, RNNLanguageModel(len(LM_WORDS), **config)


def classifier(**model):
    torch.manual_seed(2)
    config = {**LM, **model}
    return config, RNNClassifier(len(WORDS), 2, **config)


def save_lm(path: Path, model: dict | None = None, network=None, task: str = LM_TASK,
            tokenizer: dict | None = None) -> Path:
    """A checkpoint as train.py writes a task=lm run's (the state dict under the task's `model.`)."""
    model = model or LM
    path.parent.mkdir(parents=True, exist_ok=True)
    network = network or RNNLanguageModel(len(LM_WORDS), **model)
    torch.save({"task": task, "hyper_parameters": {"vocab_size": len(LM_WORDS), "model": model,
                                                   "tokenizer": tokenizer or {"format": 1, "level": "word",
                                                                              "vocab": LM_WORDS}},
                "state_dict": {f"model.{name}": value for name, value in network.state_dict().items()}}, path)
    return path


def copy(network, model, lm_model, lm):
    return copy_language_model(network, model, WORDS, lm_model, LM_WORDS, lm.state_dict(), "lm.ckpt")


def test_embedding_rows_are_copied_by_word_and_a_word_the_lm_lacks_keeps_its_init():
    lm_model, lm = language_model()
    model, network = classifier()
    before = network.embedding.weight.detach().clone()
    transferred = copy(network, model, lm_model, lm)
    for word in ("good", "the", "dull", "<unk>"):  # other ids in each vocabulary
        torch.testing.assert_close(network.embedding.weight[WORDS.index(word)],
                                   lm.embedding.weight[LM_WORDS.index(word)], rtol=0, atol=0)
    for word in ("bad", "acting"):
        torch.testing.assert_close(network.embedding.weight[WORDS.index(word)], before[WORDS.index(word)])
    assert (transferred.words, transferred.covered) == (5, 3)  # <unk> and <eos> are not counted as words
    assert transferred.metrics()["init_from/vocab_coverage"] == pytest.approx(0.6)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("backend", ["fused", "scratch"])
def test_a_unidirectional_encoder_then_reads_a_sentence_into_the_lms_states(cell, backend):
    lm_model, lm = language_model(cell=cell, backend=backend)
    model, network = classifier(cell=cell, backend=backend)
    copy(network, model, lm_model, lm)
    sentence = ["the", "dull", "good", "the"]
    lm_states, _ = lm.rnn(lm.embedding(torch.tensor([[LM_WORDS.index(w) for w in sentence]])))
    states, _ = network.rnn(network.embedding(torch.tensor([[WORDS.index(w) for w in sentence]])))
    torch.testing.assert_close(states, lm_states, rtol=0, atol=1e-6)


@pytest.mark.parametrize("backend", ["fused", "scratch"])
def test_a_bidirectional_encoder_gets_the_forward_direction_and_keeps_its_backward_one(backend):
    lm_model, lm = language_model(backend=backend, num_layers=3)  # deeper: its first two layers are copied
    model, network = classifier(backend=backend, num_layers=2, bidirectional=True)
    before = {name: value.detach().clone() for name, value in network.rnn.named_parameters()}
    transferred = copy(network, model, lm_model, lm)
    assert (transferred.layers, transferred.directions) == (2, 2)
    lm_params, params, H = dict(lm.rnn.named_parameters()), dict(network.rnn.named_parameters()), LM["hidden_size"]
    if backend == "fused":
        forward = {name: name for name in lm_params if not name.endswith("_l2")}
        backward = [name for name in params if name.endswith("_reverse")]
    else:  # cells l·D + direction: forward 0 and 2, backward 1 and 3
        forward = {f"cells.{2 * layer}.{p}": f"cells.{layer}.{p}" for layer in (0, 1) for p in ("W_in", "W_rec", "b")}
        backward = [name for name in params if name.startswith(("cells.1.", "cells.3."))]
    for name, lm_name in forward.items():
        if params[name].shape == lm_params[lm_name].shape:
            torch.testing.assert_close(params[name], lm_params[lm_name], rtol=0, atol=0)
        else:  # layer 2 reads [→h; ←h]: the LM's input weights are the →h columns, the ←h ones keep their init
            torch.testing.assert_close(params[name][:, :H], lm_params[lm_name], rtol=0, atol=0)
            torch.testing.assert_close(params[name][:, H:], before[name][:, H:], rtol=0, atol=0)
    assert backward and all(torch.equal(params[name], before[name]) for name in backward)


def test_a_tagger_with_character_features_gets_the_word_columns_of_its_first_layer():
    lm_model, lm = language_model()
    model = {**LM, "bidirectional": True, "char_features": "cnn"}
    torch.manual_seed(3)
    tagger = RNNTagger(len(WORDS), 4, num_chars=10, **model)
    before = tagger.rnn.module.weight_ih_l0.detach().clone()
    copy(tagger, model, lm_model, lm)
    E = LM["embedding_size"]
    torch.testing.assert_close(tagger.rnn.module.weight_ih_l0[:, :E], lm.rnn.module.weight_ih_l0, rtol=0, atol=0)
    torch.testing.assert_close(tagger.rnn.module.weight_ih_l0[:, E:], before[:, E:], rtol=0, atol=0)


@pytest.mark.parametrize("change, message", [
    ({"cell": "gru"}, "is a language model with model.cell=lstm, this model has model.cell=gru: set model.cell=lstm "
                      "(or give a language model trained with model.cell=gru)"),
    ({"embedding_size": 8, "hidden_size": 7},
     "is a language model with model.embedding_size=6 model.hidden_size=5, this model has model.embedding_size=8 "
     "model.hidden_size=7: set model.embedding_size=6 model.hidden_size=5"),
    ({"backend": "scratch"}, "model.backend=fused, this model has model.backend=scratch"),
    ({"cell": "rnn", "nonlinearity": "relu"}, "with model.cell=lstm, this model has model.cell=rnn: set"),
    ({"num_layers": 3}, "has 2 recurrent layer(s), this model model.num_layers=3: set model.num_layers=2 or fewer "
                        "(the first ones are copied), or give a deeper language model"),
])
def test_a_language_model_that_does_not_fit_is_refused_naming_the_keys(change, message):
    lm_model, lm = language_model()
    model, network = classifier(**change)
    with pytest.raises(ConfigError, match=re.escape(message)) as refused:
        copy(network, model, lm_model, lm)
    assert str(refused.value).startswith("model.init_from=lm.ckpt ") and "\n" not in str(refused.value)


def test_the_form_of_the_cell_must_match_too():
    lm_model, lm = language_model(cell="rnn", nonlinearity="tanh")
    model, network = classifier(cell="rnn", nonlinearity="relu")
    with pytest.raises(ConfigError, match="with model.nonlinearity=tanh, this model has model.nonlinearity=relu: "):
        copy(network, model, lm_model, lm)
    lm_model, lm = language_model(cell="gru", backend="scratch", gru_form="torch")
    model, network = classifier(cell="gru", backend="scratch")  # the lecture's form by default
    with pytest.raises(ConfigError, match="with model.gru_form=torch, this model has model.gru_form=lecture: "):
        copy(network, model, lm_model, lm)


def task_config(path, **model):
    tokenizer = {"format": 1, "level": "word", "vocab": WORDS, "classes": ["neg", "pos"], "lowercase": False}
    return dict(vocab_size=len(WORDS), num_classes=2, pad_id=0, model={**LM, "init_from": str(path), **model},
                optimizer=ADAM, tokenizer=tokenizer)


def test_the_classifier_checkpoint_holds_the_copied_weights_and_never_needs_the_lm_again(tmp_path):
    lm_model, lm = language_model()
    path = save_lm(tmp_path / "run" / "checkpoints" / "epoch000-step9.ckpt", network=lm)
    (tmp_path / "run" / "checkpoints" / "last.ckpt").write_bytes(path.read_bytes())  # not the best: not read
    task = ClassificationTask(**task_config(tmp_path / "run"))  # a run directory
    torch.testing.assert_close(task.model.rnn.module.weight_hh_l1, lm.rnn.module.weight_hh_l1, rtol=0, atol=0)
    assert task.transferred.covered == 3
    checkpoint = {"task": "rnnlab.tasks.classification.ClassificationTask", "state_dict": task.state_dict(),
                  "hyper_parameters": dict(task.hparams)}
    torch.save(checkpoint, tmp_path / "classifier.ckpt")
    shutil.rmtree(tmp_path / "run")
    restored = load(tmp_path / "classifier.ckpt", "classifier.ckpt")
    assert restored.hparams.model["init_from"] is None and restored.transferred is None
    torch.testing.assert_close(restored.model.embedding.weight, task.model.embedding.weight, rtol=0, atol=0)


def test_what_is_not_a_word_level_recurrent_language_model_is_refused(tmp_path):
    classifier_ckpt = save_lm(tmp_path / "c.ckpt", task="rnnlab.tasks.classification.ClassificationTask")
    with pytest.raises(ConfigError, match=r"^model.init_from=\S+c.ckpt is a task=classification checkpoint, not a "
                                          r"language model's: give a task=lm run"):
        ClassificationTask(**task_config(classifier_ckpt))
    chars = save_lm(tmp_path / "chars.ckpt", tokenizer={"format": 1, "level": "char", "vocab": LM_WORDS})
    with pytest.raises(ConfigError, match="is a character-level language model: embeddings are copied word by word"):
        ClassificationTask(**task_config(chars))
    transformer = {"family": "transformer", "d_model": 8}
    torch.save({"task": LM_TASK, "hyper_parameters": {"vocab_size": 7, "model": transformer}, "state_dict": {}},
               tmp_path / "t.ckpt")
    with pytest.raises(ConfigError, match="is a model=transformer language model; an encoder starts from a recurrent"):
        ClassificationTask(**task_config(tmp_path / "t.ckpt"))
    lm = save_lm(tmp_path / "lm.ckpt")
    with pytest.raises(ConfigError, match="^model.init_from=.* starts a recurrent encoder from a language model, and "
                                          "model=bow has none: set model.init_from=null"):
        ClassificationTask(**task_config(lm, family="bow"))
    with pytest.raises(ConfigError, match=r"^model.init_from=nope: no such file, and not an MLflow run id"):
        ClassificationTask(**task_config("nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no best checkpoint"):
        ClassificationTask(**task_config(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="model=hmm has none"):
        TaggingTask(vocab_size=7, num_tags=3, pad_id=0, num_chars=0, optimizer=ADAM,
                    model={"family": "hmm", "init_from": str(lm)}, tokenizer={"words": WORDS, "tags": ["A", "B", "C"]})


def test_a_run_directory_names_its_best_checkpoint_not_last_ckpt(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    for name in ("last.ckpt", "epoch003-step40.ckpt"):
        (checkpoints / name).write_bytes(b"")
    assert resolve_checkpoint(str(tmp_path), None, tmp_path) == checkpoints / "epoch003-step40.ckpt"
    (checkpoints / "epoch001-step20.ckpt").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"holds 2 checkpoints \(epoch001-step20.ckpt, epoch003-step40.ckpt\); give"):
        resolve_checkpoint(str(tmp_path), None, tmp_path)


def test_sst_text_reads_the_sentences_as_the_sst2_classifier_reads_them(tmp_path):
    trees = [r"(3 (2 It) (4 (3 (2 8 1\/2) (4 Good)) (2 -LRB-sic-RRB-)))", "(1 (1 Dull) (2 .))", "(2 (2 So) (2 so))"]
    (tmp_path / "trees").mkdir()
    for name in ("train", "dev"):
        with gzip.open(tmp_path / "trees" / f"{name}.txt.gz", "wt") as file:
            file.write("\n".join(trees) + "\n")
    corpus = SSTTextDataModule(root=str(tmp_path), batch_size=1, eval_batch_size=1)
    corpus.setup()
    assert corpus.decode(corpus.streams["train"]).split("\n")[:3] == [glue_form(parse_tree(t).text()) for t in trees]
    assert corpus.decode(corpus.streams["train"]).split("\n")[0] == "it 8 1/2 good (sic)"
    (tmp_path / "glue_sst2").mkdir()
    (tmp_path / "glue_sst2" / "train.tsv").write_text("sentence\tlabel\nit 8 1/2 good \t1\ndull . \t0\n")
    sst2 = SST2DataModule(root=str(tmp_path), phrases=True)
    sst2.setup()
    assert sst2.texts("val") == corpus.decode(corpus.streams["val"]).split("\n")[:2]  # the neutral one is dropped
    assert set(sst2.tokenizer.vocab) <= set(corpus.vocab)
    trees_form = SSTTextDataModule(root=str(tmp_path), form="trees", batch_size=1, eval_batch_size=1)
    trees_form.setup()
    assert trees_form.decode(trees_form.streams["train"]).split("\n")[1] == "Dull ."
    with pytest.raises(ConfigError, match="data.form='ptb' is invalid: glue"):
        SSTTextDataModule(root=str(tmp_path), form="ptb")


def test_train_py_fits_a_tiny_lm_then_a_classifier_from_its_run_directory(tmp_path):
    from rnnlab.data.synthetic_classification import SyntheticClassificationDataModule
    from rnnlab.training import train

    data = SyntheticClassificationDataModule(train_examples=400, val_examples=100, test_examples=100)
    data.setup()
    for split in ("train", "val"):
        (tmp_path / f"{split}.txt").write_text("\n".join(data.texts(split)) + "\n")
    sizes = ["model.embedding_size=8", "model.hidden_size=8", "model.num_layers=1", "callbacks.progress_bar=null",
             "callbacks.gradient_diagnostics=null"]
    lm_dir = tmp_path / "lm" / "run"  # the LM's run directory (no MLflow run: quicker)
    train(compose_train(["task=lm", "data=text", f"data.train_path={tmp_path / 'train.txt'}",
                         f"data.val_path={tmp_path / 'val.txt'}", "data.cache_dir=null", "data.batch_size=8",
                         "data.bptt=16", "callbacks.samples=null", "logger=none", "test=false", *sizes,
                         "trainer.max_epochs=1"],
                        tmp_path / "lm"))
    classifier = ["task=classification", "model=lstm", "model.bidirectional=true", f"model.init_from={lm_dir}",
                  "data.train_examples=400", "data.val_examples=100", "data.test_examples=100", *sizes]
    run = tracked_fit([*classifier, "trainer.max_epochs=1"], tmp_path / "classifier")
    logged = run["client"].get_run(run["run_id"]).data
    assert logged.params["model.init_from"] == str(lm_dir)
    assert logged.metrics["init_from/vocab_coverage"] == 1.0  # the LM read the same texts
    assert logged.metrics["init_from/words_covered"] > 10 and logged.metrics["init_from/layers"] == 1
    shutil.rmtree(lm_dir)  # the classifier's checkpoint stands alone
    task = load(resolve_checkpoint(str(run["dir"]), None, tmp_path), "classifier")
    assert task.classify(["not good"])[0] is not None
    # and resume= goes on from it (its weights are the checkpoint's), without the language model it started from
    resumed = tracked_fit([*classifier, "trainer.max_epochs=2", f"resume={run['dir']}"], tmp_path / "classifier")
    assert resumed["run_id"] == run["run_id"]  # the same MLflow run went on, one epoch further
    assert run["client"].get_run(run["run_id"]).data.metrics["epoch"] == logged.metrics["epoch"] + 1
