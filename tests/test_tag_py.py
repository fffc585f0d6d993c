"""tag.py: what it prints is the task's own prediction for the same sentences (an RNN tagger and the HMM), CoNLL-U that
the project's reader reads back to the same tags (in the XPOS column for an XPOS tagger), stdin, and bad input as one
line. In-process (runpy) on tiny checkpoints fitted here, so the whole file takes a few seconds."""

from __future__ import annotations

import io
import runpy
import sys

import lightning.pytorch as L
import pytest
import torch
from conftest import ROOT
from hydra.core.global_hydra import GlobalHydra

from rnnlab.data.conll import conllu_sentence, read_conllu
from rnnlab.data.synthetic_tagging import SyntheticTaggingDataModule
from rnnlab.data.tagging import IGNORE, untagged
from rnnlab.models import registry
from rnnlab.tasks.tagging import TaggingTask

pytestmark = pytest.mark.usefixtures("one_thread")

GRU = {"cell": "gru", "embedding_size": 8, "hidden_size": 8, "num_layers": 1, "bidirectional": True}
OLD_LM = ROOT / "tests" / "data" / "checkpoints_v0_1" / "lm" / "checkpoints" / "last.ckpt"  # a task=lm checkpoint


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """The generated data, and a .ckpt of a GRU tagger after 10 steps (softmax per word; a CRF over char-CNN features)
    and of the HMM counted from the same sentences."""
    directory = tmp_path_factory.mktemp("taggers")
    torch.manual_seed(0)
    data = SyntheticTaggingDataModule(train_examples=120, val_examples=30, test_examples=10, max_words=10,
                                      batch_size=16, eval_batch_size=8)
    data.setup("fit")
    checkpoints = {}
    rnn_steps = {"max_steps": 10, "limit_val_batches": 0}
    for name, model, steps, crf in [("rnn", GRU, rnn_steps, False),
                                    ("crf_chars", {**GRU, "char_features": "cnn", "char_dim": 4, "char_hidden": 8},
                                     rnn_steps, True),
                                    ("hmm", {"family": "hmm"}, {"max_epochs": 2}, False)]:  # the HMM counts at val
        task = registry.task_class(TaggingTask, model)(**data.task_inputs, model=model, num_examples=0, crf=crf,
                                                       confusion_tags=0, tokenizer=data.tokenizer_state(),
                                                       optimizer={"_target_": "torch.optim.Adam", "lr": 0.03})
        trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, default_root_dir=directory / name, num_sanity_val_steps=0,
                            **steps)
        trainer.fit(task, datamodule=data)
        checkpoints[name] = directory / f"{name}.ckpt"
        trainer.save_checkpoint(checkpoints[name], weights_only=False)
    return data, checkpoints


def evaluation_predictions(task: TaggingTask, data: SyntheticTaggingDataModule) -> list[list[str]]:
    """The val sentences' tags as the task's evaluation predicts them (its validation step's scores, then predict)."""
    predicted = {}
    with torch.no_grad():
        for batch in data.val_dataloader():
            tags = task.predict(batch, task.scores(batch).float())
            for row, (index, n) in enumerate(zip(batch["index"].tolist(), batch["tokens_lengths"].tolist())):
                predicted[index] = [task.tags[k] for k in tags[row, :n].tolist()]
    return [predicted[k] for k in range(len(predicted))]


def tag_py(*overrides: str, stdin: str = "") -> str:
    """tag.py's stdout, run in this process as `python tag.py <overrides>` runs it."""
    GlobalHydra.instance().clear()
    out, saved = io.StringIO(), (sys.argv, sys.stdin, sys.stdout)
    sys.argv, sys.stdin, sys.stdout = ["tag.py", *overrides], io.StringIO(stdin), out
    try:
        runpy.run_path(str(ROOT / "tag.py"), run_name="__main__")
    finally:
        sys.argv, sys.stdin, sys.stdout = saved
        GlobalHydra.instance().clear()
    return out.getvalue()


@pytest.mark.parametrize("model", ["rnn", "crf_chars", "hmm"])
def test_tag_py_prints_the_tasks_own_predictions_a_line_per_sentence(fitted, model, tmp_path):
    data, checkpoints = fitted
    task = TaggingTask.from_checkpoint(checkpoints[model], model)
    assert type(task).__name__ == {"rnn": "TaggingTask", "crf_chars": "TaggingTask", "hmm": "HMMTaggingTask"}[model]
    if model == "crf_chars":
        assert type(task.output).__name__ == "CRF" and type(task.model.chars).__name__ == "CharCNN"
    sentences, expected = data.sentences("val"), evaluation_predictions(task, data)
    assert len(set(map(tuple, expected))) > 1  # not one tag sequence for everything
    lines = [" ".join(words) for words in sentences]
    (tmp_path / "in.txt").write_text("\n".join([lines[0], "", *lines[1:]]) + "\n")
    printed = tag_py(f"ckpt={checkpoints[model]}", f"input={tmp_path / 'in.txt'}", "batch_size=7").split("\n")
    pairs = [" ".join(f"{word}/{tag}" for word, tag in zip(words, tags)) for words, tags in zip(sentences, expected)]
    assert printed == [pairs[0], "", *pairs[1:], ""]  # the empty line echoed; "\n" after the last
    assert tag_py(f"ckpt={checkpoints[model]}", "input=-", stdin=lines[2] + "\n" + lines[3]) == \
        f"{pairs[2]}\n{pairs[3]}\n"
    assert tag_py(f"ckpt={checkpoints[model]}", stdin=lines[2]) == f"{pairs[2]}\n"  # input= left out: stdin too
    if model == "hmm":
        assert task.model.fitted
    unknown = ["Zebra", "crossed", *sentences[0][2:]]  # words the training split never has
    tags = task.tag([unknown, []])
    assert len(tags[0]) == len(unknown) and tags[1] == []


def test_new_words_are_read_as_the_training_data_read_them():
    tokenizer = {"words": ["<unk>", "the", "duck"], "tags": ["DET", "NOUN"], "lowercase": True}
    read = untagged([["The", "Duck", "zebra"], []], tokenizer)
    assert read.token_ids == [[1, 2, 0], []] and read.words == [["the", "duck", "zebra"], []]  # unknown: <unk>
    assert read.unseen == [[False, False, True], []] and read.tag_ids == [[IGNORE] * 3, []]
    assert untagged([["The"]], {**tokenizer, "lowercase": False}).token_ids == [[0]]  # case kept: not "the"


def test_conllu_reads_back_to_the_same_tags_in_the_column_the_tagger_was_trained_on(fitted, tmp_path):
    data, checkpoints = fitted
    task = TaggingTask.from_checkpoint(checkpoints["rnn"], "rnn")
    sentences = data.sentences("val")[:4]
    lines = [" ".join(words) for words in sentences]
    (tmp_path / "in.txt").write_text("\n".join([lines[0], "", *lines[1:]]) + "\n")
    conllu = tag_py(f"ckpt={checkpoints['rnn']}", f"input={tmp_path / 'in.txt'}", "format=conllu")
    assert conllu.startswith(f"# sent_id = 1\n# text = {lines[0]}\n1\t{sentences[0][0]}\t_\t")
    assert "# sent_id = 2\n" not in conllu and "# sent_id = 3\n" in conllu  # the input's line numbers
    (tmp_path / "out.conllu").write_text(conllu)
    read = read_conllu(tmp_path / "out.conllu")
    assert read.words == sentences and read.tags == task.tag(sentences)

    checkpoint = torch.load(checkpoints["rnn"], weights_only=False)  # as if trained with data.tagset=xpos
    checkpoint["hyper_parameters"]["tokenizer"]["tagset"] = "xpos"
    torch.save(checkpoint, tmp_path / "xpos.ckpt")
    (tmp_path / "xpos.conllu").write_text(tag_py(f"ckpt={tmp_path / 'xpos.ckpt'}", f"text={lines[1]}",
                                                 "format=conllu"))
    assert read_conllu(tmp_path / "xpos.conllu", "xpos").tags == task.tag(sentences[1:2])
    assert (tmp_path / "xpos.conllu").read_text().splitlines()[2].split("\t")[3] == "_"  # UPOS left empty


def test_the_conllu_writer_puts_the_tag_in_the_upos_or_xpos_column():
    assert conllu_sentence(["The", "boats", "."], ["DT", "NNS", "."], "xpos", sent_id=7) == (
        "# sent_id = 7\n# text = The boats .\n1\tThe\t_\t_\tDT\t_\t_\t_\t_\t_\n2\tboats\t_\t_\tNNS\t_\t_\t_\t_\t_\n"
        "3\t.\t_\t_\t.\t_\t_\t_\t_\t_\n\n")
    assert conllu_sentence(["Hi"], ["INTJ"]) == "# text = Hi\n1\tHi\t_\tINTJ\t_\t_\t_\t_\t_\t_\n\n"


def test_a_conllu_tagger_keeps_its_tagset_and_eval_py_still_accepts_one_written_before(tmp_path):
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from rnnlab.errors import ConfigError
    from rnnlab.evaluation import _datamodule

    (tmp_path / "train.conllu").write_text(conllu_sentence(["The", "boats", "."], ["DT", "NNS", "."], "xpos"))
    cfg = OmegaConf.create({"data": {"_target_": "rnnlab.data.conll.ConllDataModule", "tagset": "xpos",
                                     "train_path": str(tmp_path / "train.conllu"),
                                     "val_path": str(tmp_path / "train.conllu")}})
    state = _datamodule(cfg, SimpleNamespace(hparams={}), "x", tmp_path, str(tmp_path)).tokenizer_state()
    assert state["tagset"] == "xpos" and state["tags"] == [".", "DT", "NNS"]
    assert "tagset" not in SyntheticTaggingDataModule().tokenizer_state()  # no CoNLL-U column: nothing to keep
    before = {key: value for key, value in state.items() if key != "tagset"}  # a checkpoint older than the key
    _datamodule(cfg, SimpleNamespace(hparams={"tokenizer": before}), "x", tmp_path, str(tmp_path))
    with pytest.raises(ConfigError, match="is not the checkpoint's"):
        _datamodule(cfg, SimpleNamespace(hparams={"tokenizer": {**state, "tagset": "upos"}}), "x", tmp_path,
                    str(tmp_path))


def test_bad_input_is_one_line_naming_the_fix(fitted, tmp_path, capsys):
    _, checkpoints = fitted
    for overrides, message in [
        ([], "ckpt is missing: give ckpt=<path of a .ckpt file> or ckpt=<the MLflow run id that train.py printed>"),
        ([f"ckpt={OLD_LM}", "text=the boats"], f"ckpt={OLD_LM} is not a task=tagging checkpoint (it lacks the "
                                               f"hyperparameters vocab_size, num_tags, pad_id, num_chars, num_intents, "
                                               f"model); give one that `python train.py task=tagging` wrote"),
        ([f"ckpt={checkpoints['rnn']}", f"input={tmp_path / 'no.txt'}"],
         f"input={tmp_path / 'no.txt'}: no such file; give a text file with one sentence per line"),
        ([f"ckpt={checkpoints['rnn']}", "text= "], 'text is empty: give a sentence, e.g. text="The old man the '
                                                   'boats ."'),
        ([f"ckpt={checkpoints['hmm']}", "format=xml"], "format=xml is invalid: choose pairs (word/TAG) or conllu"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            tag_py(*overrides)
        assert exit_.value.code == 2 and capsys.readouterr().err == f"error: {message}\n"
