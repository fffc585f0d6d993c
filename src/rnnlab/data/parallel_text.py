"""`data=parallel_text`: your own aligned files, through the same pipeline as Multi30k.

Six plain-text files (gzip if the name ends in .gz), UTF-8, one sentence per line, line i of a
split's source file translating line i of its target file:

    python train.py task=translation data=parallel_text \\
        data.train_src=corpus/train.de data.train_tgt=corpus/train.en \\
        data.val_src=corpus/dev.de data.val_tgt=corpus/dev.en \\
        data.test_src=corpus/test.de data.test_tgt=corpus/test.en

Sentences should be raw (untokenized) text: the subword vocabulary is learned from the training
files and scores are computed on detokenized output against the raw references. A missing file
is reported at once by its `data.*` key; mismatched line counts name both files and both counts;
empty and over-long training pairs are dropped and counted (`filter_report`, and the log).
"""

from __future__ import annotations

from pathlib import Path

from rnnlab.data.download import DataError
from rnnlab.data.translation import ParallelSplit, TranslationDataModule, read_aligned

ROLES = {"src": "source", "tgt": "target"}


class ParallelTextDataModule(TranslationDataModule):
    """Train/val/test pairs of aligned files given by path."""

    option = "parallel_text"

    def __init__(self, train_src: str | None = None, train_tgt: str | None = None, val_src: str | None = None,
                 val_tgt: str | None = None, test_src: str | None = None, test_tgt: str | None = None,
                 **common: object):
        super().__init__(**common)
        given = {"train_src": train_src, "train_tgt": train_tgt, "val_src": val_src, "val_tgt": val_tgt,
                 "test_src": test_src, "test_tgt": test_tgt}
        self.paths: dict[str, Path] = {}
        for key, value in given.items():
            split, side = key.split("_")
            if value is None:
                raise DataError(f"data.{key} is not set: give the path of the {split} split's {ROLES[side]}-language "
                                f"file (one sentence per line), e.g. data.{key}=corpus/{split}.{side}")
            path = Path(value).expanduser()
            if not path.is_file():
                raise DataError(f"data.{key}={value} does not exist (resolved to {path.resolve()}): give the path "
                                f"of the {split} split's {ROLES[side]}-language file")
            self.paths[key] = path

    def load_splits(self) -> dict[str, ParallelSplit]:
        return {split: read_aligned(self.paths[f"{split}_src"], self.paths[f"{split}_tgt"])
                for split in ("train", "val", "test")}
