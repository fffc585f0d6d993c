"""task=classification's data base (rnnlab/data/classification.py): labels from the training split, a word
vocabulary, empty texts skipped and counted, unknown labels refused in one line, padded length-bucketed batches."""

from __future__ import annotations

import pytest
import torch

from rnnlab.data.classification import PAD_ID, ClassificationDataModule, Labelled, reader_from_state
from rnnlab.data.download import DataError
from rnnlab.errors import ConfigError


class Given(ClassificationDataModule):
    option = "given"

    def __init__(self, splits, **options):
        super().__init__(**options)
        self.splits = splits

    def load_splits(self):
        return self.splits


TRAIN = Labelled(["a good film", "a bad film", "  not   good ", "bad", ""], ["pos", "neg", "neg", "neg", "pos"])
VAL = Labelled(["good", "very bad film"], ["pos", "neg"])


def test_labels_vocabulary_and_batches():
    data = Given({"train": TRAIN, "val": VAL, "test": None}, batch_size=2, eval_batch_size=8)
    data.setup("fit")
    assert data.classes == ["neg", "pos"] and data.task_inputs == {"vocab_size": 7, "num_classes": 2, "pad_id": 0}
    assert data.skipped == {"train": 1, "val": 0, "test": 0}  # the empty text, counted
    assert data.texts("train") == ["a good film", "a bad film", "not good", "bad"]  # whitespace normalised
    assert data.texts("test") == data.texts("val")  # no test split: the validation split
    (batch,) = list(data.val_dataloader())
    assert batch["label"].tolist() == [0, 1] and batch["index"].tolist() == [1, 0]  # longest first
    assert batch["tokens_lengths"].tolist() == [3, 1] and batch["tokens"][1, 1:].eq(PAD_ID).all()
    unk = data.tokenizer.unk_id
    assert batch["tokens"][0].tolist() == [unk, data.tokenizer.vocab.index("bad"), data.tokenizer.vocab.index("film")]
    seen = torch.cat([b["index"] for b in data.train_dataloader()]).sort().values.tolist()
    assert seen == [0, 1, 2, 3]
    reader = reader_from_state(data.tokenizer_state())
    assert reader.encode("very  bad film") == batch["tokens"][0].tolist() and reader.classes == ["neg", "pos"]


def test_bad_data_is_one_line():
    with pytest.raises(DataError, match="the val split has the label 'meh', which the training split never has"):
        Given({"train": TRAIN, "val": Labelled(["ok"], ["meh"]), "test": None}).setup("fit")
    with pytest.raises(DataError, match="2 texts but 1 labels"):
        Labelled(["a", "b"], ["x"])
    with pytest.raises(DataError, match="has 1 label\\(s\\); a classifier needs at least two"):
        Given({"train": Labelled(["a", "b"], ["x", "x"]), "val": VAL, "test": None}).setup("fit")
    with pytest.raises(ConfigError, match="data.batch_size=0 is invalid: must be a positive integer"):
        Given({}, batch_size=0)
    with pytest.raises(ConfigError, match="data.batchsize is not an option of data=given; valid: splits, batch_size"):
        Given({}, batchsize=3)
