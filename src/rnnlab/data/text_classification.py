"""`data=text_classification`: your own labelled texts, one text and one label (any string) per example.

Each split is given in one of two forms (gzip if a name ends in .gz, UTF-8):

- a table, `data.{split}_path`: one example per line, `text<TAB>label` (a .tsv, or any file whose first line holds
  a tab) or `text,label` (a .csv, or a first line without a tab; a text holding commas is quoted as in any CSV, and
  one example is one line: a quoted text may not hold a line break).
  A first line of two columns, one of them reading `label`, `sentiment` or `intent`, is a header (or say so with
  `data.header=true`, or that there is none with `data.header=false`); with a header the label column may come
  first: the label is the column with one of those names (else the second), the text the other one;
- two files, `data.{split}_texts` and `data.{split}_labels`: line i of the labels file is the label of line i of
  the texts file.

    python train.py task=classification data=text_classification \\
        data.train_path=reviews/train.tsv data.val_path=reviews/dev.tsv

train and val are required, test optional (without it the test split is the validation split). Bad input is
one line naming the key or the file and line, and the fix; an empty text is skipped and counted by the base
(`rnnlab.data.classification`).
"""

from __future__ import annotations

import csv
from pathlib import Path

from rnnlab.data.classification import ClassificationDataModule, Labelled
from rnnlab.data.download import DataError
from rnnlab.data.translation import read_lines
from rnnlab.errors import ConfigError

SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}
LABEL_HEADERS = ("label", "sentiment", "intent")  # a two-column first row with one of these names is a header


def read_table(path: str | Path, header: bool | None = None) -> Labelled:
    """The (text, label) rows of a TSV or CSV file; `header` None: detected (see the module docstring)."""
    path, name = Path(path), Path(path).name.removesuffix(".gz")
    lines = read_lines(path)
    tab = name.endswith(".tsv") or (not name.endswith(".csv") and bool(lines) and "\t" in lines[0])
    rows = [line.split("\t") if tab else next(csv.reader([line]), []) for line in lines]
    form = "text<TAB>label" if tab else "text,label (a text holding commas in double quotes)"
    names = [column.strip().lower() for column in rows[0]] if rows else []
    if header is None:
        header = len(names) == 2 and any(column in LABEL_HEADERS for column in names)
    text_column, label_column, first = 0, 1, 0
    if header and rows:
        if len(names) != 2:
            raise DataError(f"{path} line 1: the header has {len(names)} columns; every line must be {form}")
        label_column = 0 if names[0] in LABEL_HEADERS and names[1] not in LABEL_HEADERS else 1
        text_column, first = 1 - label_column, 1
    texts, labels = [], []
    for number, row in enumerate(rows[first:], start=first + 1):
        if len(row) != 2:
            problem = "no label column" if len(row) < 2 else f"{len(row)} columns"
            raise DataError(f"{path} line {number}: {problem}; every line must be {form}")
        label = row[label_column].strip()
        if not label:
            raise DataError(f"{path} line {number}: the label is empty; every line must be {form}")
        texts.append(row[text_column])
        labels.append(label)
    return Labelled(texts, labels)


def read_text_and_labels(texts_path: str | Path, labels_path: str | Path) -> Labelled:
    """Line i of `texts_path` labelled by line i of `labels_path`."""
    texts, labels = read_lines(texts_path), [label.strip() for label in read_lines(labels_path)]
    if len(texts) != len(labels):
        shorter, longer = (texts_path, labels_path) if len(texts) < len(labels) else (labels_path, texts_path)
        raise DataError(f"{texts_path} has {len(texts)} lines but {labels_path} has {len(labels)}: {shorter} ends "
                        f"at line {min(len(texts), len(labels))} while {longer} goes on; line i of the labels file "
                        f"must be the label of line i of the texts file")
    if "" in labels:
        raise DataError(f"{labels_path} line {labels.index('') + 1} is empty: every text needs a label")
    return Labelled(texts, labels)


class TextClassificationDataModule(ClassificationDataModule):
    """Train/val(/test) labelled texts given by path: a table per split, or a texts file and a labels file."""

    option = "text_classification"

    def __init__(self, train_path: str | None = None, val_path: str | None = None, test_path: str | None = None,
                 train_texts: str | None = None, train_labels: str | None = None, val_texts: str | None = None,
                 val_labels: str | None = None, test_texts: str | None = None, test_labels: str | None = None,
                 header: bool | None = None, **options: object):
        super().__init__(**options)
        if header not in (None, True, False):
            raise ConfigError(f"data.header={header!r} is invalid: null (detect), true or false")
        given = {"train": (train_path, train_texts, train_labels), "val": (val_path, val_texts, val_labels),
                 "test": (test_path, test_texts, test_labels)}
        self.header = header
        self.files: dict[str, dict[str, Path] | None] = {split: self._files(split, *values)
                                                         for split, values in given.items()}

    def _files(self, split: str, path: str | None, texts: str | None, labels: str | None) -> dict[str, Path] | None:
        """The split's file(s) by `data.` key, checked to exist; None for an absent test split."""
        keys = {f"{split}_path": path, f"{split}_texts": texts, f"{split}_labels": labels}
        if path is not None and (texts is not None or labels is not None):
            raise ConfigError(f"data.{split}_path and data.{split}_{'texts' if texts is not None else 'labels'} are "
                              f"both set: give the {SPLIT_NAMES[split]} split either as one table or as two files")
        if (texts is None) != (labels is None):
            have, lack = (f"{split}_texts", f"{split}_labels") if labels is None else (f"{split}_labels",
                                                                                       f"{split}_texts")
            raise ConfigError(f"data.{have} is set but data.{lack} is not: give both (one text, one label per "
                              f"line) or data.{split}_path")
        if path is None and texts is None:
            if split == "test":
                return None
            raise ConfigError(f"data.{split}_path is not set: give the {SPLIT_NAMES[split]} split's text<TAB>label "
                              f"file (or data.{split}_texts and data.{split}_labels)")
        files = {}
        for key, value in keys.items():
            if value is None:
                continue
            resolved = Path(value).expanduser()
            if not resolved.is_file():
                raise DataError(f"data.{key}={value} does not exist (resolved to {resolved.resolve()}): give the "
                                f"path of the {SPLIT_NAMES[split]} split's file")
            files[key.removeprefix(f"{split}_")] = resolved
        return files

    def load_splits(self) -> dict[str, Labelled | None]:
        return {split: None if files is None
                else read_table(files["path"], self.header) if "path" in files
                else read_text_and_labels(files["texts"], files["labels"])
                for split, files in self.files.items()}
