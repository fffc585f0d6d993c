"""task.intent: a tagger that also classifies each sentence's intent (joint intent detection and slot filling, as on
SNIPS): intents read with the slots and checked like tags, the intent head's padding invariance, tag scores that read
the predicted intent only when conditioned, intent and frame accuracy counted as by hand, the one-line errors, and a
tiny fit whose checkpoint predicts the same once restored."""

from __future__ import annotations

import random

import lightning.pytorch as L
import pytest
import torch
from test_tag_py import tag_py
from test_tagging import SMALL
from test_tagging_data import write

from rnnlab.data.download import DataError
from rnnlab.data.snips_slots import SnipsSlotsDataModule
from rnnlab.data.synthetic_tagging import SyntheticTaggingDataModule
from rnnlab.errors import ConfigError
from rnnlab.models.tagger import RNNTagger
from rnnlab.tasks import load
from rnnlab.tasks.tagging import TaggingTask

pytestmark = pytest.mark.usefixtures("one_thread")

ADAM = {"_target_": "torch.optim.Adam", "lr": 0.03}


def snips_folder(root, sentences: dict[str, list[tuple[str, str, str]]]):
    """A SNIPS-layout folder: per split, (utterance, intent, slot tags) lines."""
    for folder, rows in sentences.items():
        write(root / folder / "seq.in", "".join(f"{text}\n" for text, _, _ in rows))
        write(root / folder / "label", "".join(f"{intent}\n" for _, intent, _ in rows))
        write(root / folder / "seq.out", "".join(f"{tags}\n" for _, _, tags in rows))
    return root


def generated(n: int, seed: int) -> list[tuple[str, str, str]]:
    """Requests whose name is an artist when played and a playlist when added to: the slot's type is the intent's."""
    rng, names = random.Random(seed), ["jazz", "rock", "blue", "red", "sun", "moon", "star", "sea"]
    rows = []
    for _ in range(n):
        name = rng.choice(names)
        if rng.random() < 0.5:
            rows.append((f"play {name} now", "PlayMusic", "O B-artist O"))
        else:
            rows.append((f"add it to {name} please", "AddToPlaylist", "O O O B-playlist O"))
    return rows


# --- the data ------------------------------------------------------------------------------------------------------
def test_snips_slots_batches_carry_each_sentences_intent_aligned_after_a_skipped_empty_line(tmp_path):
    rows = [("play jazz", "PlayMusic", "O B-genre"), ("", "PlayMusic", ""), ("will it rain", "GetWeather", "O O O")]
    data = SnipsSlotsDataModule(root=str(snips_folder(tmp_path, {"train": rows, "valid": rows})), batch_size=8)
    data.setup()
    assert data.intents == ["GetWeather", "PlayMusic"] and data.task_inputs["num_intents"] == 2
    assert data.tokenizer_state()["intents"] == ["GetWeather", "PlayMusic"]
    batch = data.collate([data.bucket_dataset("val")[k] for k in range(2)])
    assert [data.intents[k] for k in batch["intent"].tolist()] == ["PlayMusic", "GetWeather"]  # the empty one skipped


def test_an_intent_the_training_split_never_has_names_its_line(tmp_path):
    train = [("play jazz", "PlayMusic", "O B-genre"), ("will it rain", "GetWeather", "O O O")]
    valid = [("play jazz", "PlayMusic", "O B-genre"), ("book a table", "BookRestaurant", "O O O")]
    data = SnipsSlotsDataModule(root=str(snips_folder(tmp_path, {"train": train, "valid": valid})))
    with pytest.raises(DataError, match=rf"^data=snips_slots: {tmp_path / 'valid' / 'label'} line 2 \(val split\): "
                                        r"the intent 'BookRestaurant' never occurs in the training split \(its 2: "
                                        r"GetWeather, PlayMusic\); fix the intent"):
        data.setup()


def test_data_without_intents_gives_none_and_batches_say_so():
    data = SyntheticTaggingDataModule(train_examples=20, val_examples=5, test_examples=5)
    data.setup()
    assert data.task_inputs["num_intents"] == 0 and "intents" not in data.tokenizer_state()
    assert data.collate([data.bucket_dataset("val")[0]])["intent"].tolist() == [-100]


# --- the network -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("conditioned", [False, True], ids=["joint", "conditioned"])
def test_padding_changes_neither_the_intent_nor_a_tag(conditioned):
    torch.manual_seed(0)
    model = RNNTagger(20, 4, **SMALL, num_intents=3, condition_on_intent=conditioned).eval()
    lengths = torch.tensor([5, 2, 4])
    tokens = torch.randint(1, 20, (3, 5))
    tags, intents = model(tokens, lengths, intents=True)
    wide = torch.cat([tokens, torch.randint(1, 20, (3, 10))], dim=1)  # padded to 3× with random (real) ids
    padded_tags, padded_intents = model(wide, lengths, intents=True)
    torch.testing.assert_close(padded_intents, intents, atol=1e-6, rtol=0)
    for row, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(padded_tags[row, :n], tags[row, :n], atol=1e-6, rtol=0)
        alone_tags, alone_intent = model(tokens[row:row + 1, :n], lengths[row:row + 1], intents=True)
        torch.testing.assert_close(alone_intent[0], intents[row], atol=1e-6, rtol=0)
        torch.testing.assert_close(alone_tags[0], tags[row, :n], atol=1e-6, rtol=0)
    assert torch.equal(model(tokens, lengths), tags)  # without `intents`: the tag scores alone


def test_tag_scores_read_the_predicted_intent_only_when_conditioned():
    tokens, lengths = torch.randint(1, 20, (2, 4)), torch.tensor([4, 3])
    for conditioned in (False, True):
        torch.manual_seed(0)
        model = RNNTagger(20, 4, **SMALL, num_intents=3, condition_on_intent=conditioned).eval()
        before = model(tokens, lengths)
        with torch.no_grad():
            model.intent_out.bias.copy_(torch.tensor([20.0, 0.0, 0.0]))  # now surely intent 0
        after, intents = model(tokens, lengths, intents=True)
        assert intents.argmax(-1).tolist() == [0, 0]
        assert torch.equal(after, before) != conditioned
        if conditioned:  # scores_t = W_o [h_t; Σ_i p_i v_i] + b_o, and p is now one-hot on intent 0 (to 1e-8)
            v0 = model.intent_vectors.weight[:, 0]
            states, _ = model.rnn(model.embedding(tokens), lengths=lengths, final=False)
            expected = model.out(torch.cat([states, v0.expand(2, 4, -1)], -1))
            torch.testing.assert_close(after[0], expected[0], atol=1e-5, rtol=0)


# --- the task: metrics, errors, a fit ----------------------------------------------------------------------------
def test_intent_and_frame_accuracy_are_counted_as_by_hand():
    task = TaggingTask(vocab_size=9, num_tags=2, pad_id=0, num_chars=0, num_intents=3, intent="joint", model=SMALL,
                       optimizer=ADAM, num_examples=0, confusion_tags=0)
    # 4 sentences: tags all right in 0, 1 and 3; intents right in 0, 2 and 3 → frames right: 0 and 3
    gold_tags = torch.tensor([[0, 1], [1, -100], [0, 0], [1, 1]])
    tag_scores = torch.tensor([[[5.0, 0], [0, 5]], [[0, 5], [5, 0]], [[0, 5], [5, 0]], [[0, 5], [0, 5]]])
    intent_scores = torch.tensor([[3.0, 0, 0], [0, 0, 3], [0, 3, 0], [0, 0, 3]])
    gold_intents = torch.tensor([0, 1, 1, 2])
    batch = {"tokens": torch.ones(4, 2, dtype=torch.long), "tokens_lengths": torch.tensor([2, 1, 2, 2]),
             "tags": gold_tags, "intent": gold_intents, "unseen": torch.zeros(4, 2, dtype=torch.bool),
             "words": [["a", "b"], ["a"], ["a", "b"], ["a", "b"]], "index": torch.arange(4)}
    task.scores_and_intents = lambda batch: (tag_scores, intent_scores)
    task._start_evaluation()
    task._eval_step(batch)
    metrics = {key: float(value) for key, value in task._metrics("val", task._totals, task._tagged).items()}
    assert metrics["val/sentence_acc"] == 0.75 and metrics["val/intent_acc"] == 0.75
    assert metrics["val/frame_acc"] == 0.5
    expected_loss = -sum(torch.log_softmax(intent_scores, -1)[k, gold_intents[k]] for k in range(4)) / 4
    assert metrics["val/intent_loss"] == pytest.approx(float(expected_loss), rel=1e-6)
    assert metrics["val/acc"] == pytest.approx(6 / 7, rel=1e-6)  # 7 real words, 6 right


def test_bad_intent_settings_are_one_line():
    common = {"vocab_size": 9, "num_tags": 3, "pad_id": 0, "num_chars": 0, "optimizer": ADAM}
    with pytest.raises(ConfigError, match=r"^task.intent='both' is invalid: choose one of none, joint, conditioned$"):
        TaggingTask(**common, num_intents=3, intent="both", model=SMALL)
    with pytest.raises(ConfigError, match=r"^task.intent_weight=0 is invalid: must be a number > 0$"):
        TaggingTask(**common, num_intents=3, intent="joint", intent_weight=0, model=SMALL)
    with pytest.raises(ConfigError, match=r"^task.intent=joint classifies each sentence's intent, and this data "
                                          r"gives none \(data=snips_slots gives SNIPS's 7\); set task.intent=none"):
        TaggingTask(**common, num_intents=0, intent="joint", model=SMALL)
    with pytest.raises(ConfigError, match=r"^task.intent=conditioned trains an intent classifier beside the tagger, "
                                          r"and model=hmm is counted, with none: set task.intent=none$"):
        TaggingTask(**common, num_intents=3, intent="conditioned", model={"family": "hmm"})


def test_a_conditioned_tagger_learns_intents_and_slots_and_tag_py_prints_both_from_its_checkpoint(tmp_path):
    torch.manual_seed(0)
    root = snips_folder(tmp_path / "data", {"train": generated(200, 1), "valid": generated(40, 2)})
    data = SnipsSlotsDataModule(root=str(root), batch_size=16)
    data.setup()
    task = TaggingTask(**data.task_inputs, model=SMALL | {"hidden_size": 16}, optimizer=ADAM, crf=True,
                       intent="conditioned", num_examples=0, confusion_tags=0, tokenizer=data.tokenizer_state())
    trainer = L.Trainer(max_epochs=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0)
    trainer.fit(task, datamodule=data)
    metrics = {key: float(value) for key, value in trainer.callback_metrics.items()}
    assert metrics["val/intent_acc"] == 1.0 and metrics["val/span_f1"] == 1.0 and metrics["val/frame_acc"] == 1.0
    path = tmp_path / "joint.ckpt"
    trainer.save_checkpoint(path, weights_only=False)
    again = load(path, "joint.ckpt")
    assert again.intents == ["AddToPlaylist", "PlayMusic"] and again.hparams.intent == "conditioned"
    batch = data.collate([data.bucket_dataset("val")[k] for k in range(10)])
    task.eval()
    with torch.no_grad():
        for mine, theirs in zip(task.scores_and_intents(batch), again.scores_and_intents(batch)):
            torch.testing.assert_close(theirs, mine, atol=0, rtol=0)
    # tag.py: the intent first on each line, a tab, then the pairs; an empty line stays empty; CoNLL-U: a comment
    write(tmp_path / "in.txt", "play sea now\n\nadd it to rock please\n")
    assert tag_py(f"ckpt={path}", f"input={tmp_path / 'in.txt'}") == (
        "PlayMusic\tplay/O sea/B-artist now/O\n\nAddToPlaylist\tadd/O it/O to/O rock/B-playlist please/O\n")
    assert again.tag_and_classify([["play", "sea", "now"], []]) == ([["O", "B-artist", "O"], []], ["PlayMusic", ""])
    conllu = tag_py(f"ckpt={path}", "text=play sea now", "format=conllu")
    assert conllu.startswith("# sent_id = 1\n# text = play sea now\n# intent = PlayMusic\n1\tplay\t")
