"""`data=conll`: your own tagged sentences, in CoNLL-U or in two columns (`word tag`); the readers data=ud_ewt shares,
and the CoNLL-U writer of tag.py (`conllu_sentence`).

Each split is one file (gzip if its name ends in .gz, UTF-8), in one of two formats, `data.format`:

- `conllu` (https://universaldependencies.org/format.html): one word per line, 10 tab-separated columns
  ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC; a blank line ends a sentence; `#` lines are comments. The
  words are the syntactic words, lines whose ID is an integer: a multiword token's line (ID a range, `3-4`, the
  surface form "don't" over the words "do" and "n't") and an empty node's line (ID a decimal, `5.1`) are not words
  and are skipped. The tag is the UPOS column (`data.tagset=upos`) or the XPOS column (`xpos`, e.g. the Penn
  Treebank tags of English treebanks);
- `columns`: one word per line, whitespace-separated columns, the word first and its tag last (`word tag`, or
  CoNLL-2003's `word POS chunk NER`, whose last column is then the tag), every line with as many columns as the
  first; a blank line between sentences. `-DOCSTART-` lines (CoNLL-2003's document breaks) are skipped.
- `auto` (the default): a name ending in .conllu (or .conllu.gz) is CoNLL-U, any other file is CoNLL-U if its first
  word line has 10 tab-separated columns and an integer ID, else columns.

    python train.py task=tagging data=conll data.train_path=ner/train.txt data.val_path=ner/dev.txt

train and val are required, test optional (without it the test split is the validation split). Bad input is one
line naming the file, the line and the fix: a line with too few or too many columns (ragged), a word without a tag
(a missing column, or `_` in the UPOS/XPOS column), a val/test tag the training split never has (rnnlab.data.tagging).
"""

from __future__ import annotations

import re
from pathlib import Path

from rnnlab.data.download import DataError
from rnnlab.data.tagging import Tagged, TaggingDataModule
from rnnlab.data.translation import read_lines
from rnnlab.errors import ConfigError

FORMATS = ("auto", "conllu", "columns")
TAGSETS = {"upos": 3, "xpos": 4}  # the tag's column in CoNLL-U (0-based)
CONLLU_COLUMNS = "ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC"
DOCSTART = "-DOCSTART-"
SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}


class Sentences:
    """Collects words, tags and line numbers into sentences, for the readers below."""

    def __init__(self, path: Path):
        self.path, self.words, self.tags, self.lines = path, [], [], []
        self._words: list[str] = []
        self._tags: list[str] = []
        self._lines: list[int] = []

    def add(self, word: str, tag: str, line: int) -> None:
        self._words.append(word)
        self._tags.append(tag)
        self._lines.append(line)

    def end(self) -> None:
        """A blank line: the sentence so far (if any) is complete."""
        if self._words:
            self.words.append(self._words)
            self.tags.append(self._tags)
            self.lines.append(self._lines)
            self._words, self._tags, self._lines = [], [], []

    def tagged(self) -> Tagged:
        self.end()  # the last sentence needs no blank line after it
        return Tagged(self.words, self.tags, self.path, self.lines)


def read_conllu(path: str | Path, tagset: str = "upos") -> Tagged:
    """The syntactic words of a CoNLL-U file, each tagged with its UPOS or XPOS (see the module docstring)."""
    if tagset not in TAGSETS:
        raise ConfigError(f"data.tagset={tagset!r} is invalid: choose upos (universal tags) or xpos (the treebank's "
                          f"own, e.g. Penn Treebank tags)")
    path, column = Path(path), TAGSETS[tagset]
    sentences = Sentences(path)
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            sentences.end()
            continue
        if line.startswith("#"):
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 10:
            raise DataError(f"{path} line {number}: {len(fields)} tab-separated columns where CoNLL-U has 10 "
                            f"({CONLLU_COLUMNS}); fix the line (columns are separated by tabs, not spaces), or give "
                            f"data.format=columns for a `word tag` file")
        if "-" in fields[0] or "." in fields[0]:
            continue  # a multiword token (3-4) or an empty node (5.1): not a syntactic word
        if not fields[0].isdigit():
            raise DataError(f"{path} line {number}: the ID {fields[0]!r} is not a word index (1, 2, ...), a range "
                            f"(3-4) or a decimal (5.1); fix the line")
        if fields[column] == "_":
            raise DataError(f"{path} line {number}: the word {fields[1]!r} has no {tagset.upper()} ('_' in column "
                            f"{column + 1}); tag it, or choose the tag set the file has (data.tagset=upos|xpos)")
        sentences.add(fields[1], fields[column], number)
    return sentences.tagged()


def conllu_sentence(words: list[str], tags: list[str], tagset: str = "upos", sent_id: int | str | None = None,
                    intent: str | None = None) -> str:
    """One tagged sentence as CoNLL-U, as read_conllu reads it back: `# sent_id` and `# text` comments (and
    `# intent`, when given), a line per word with its ID, FORM and the tag in the UPOS or XPOS column (`tagset`),
    every other column `_`, and the blank line that ends the sentence."""
    comments = ([f"# sent_id = {sent_id}"] if sent_id is not None else []) + [f"# text = {' '.join(words)}"]
    comments += [f"# intent = {intent}"] if intent is not None else []
    rows = []
    for index, (word, tag) in enumerate(zip(words, tags, strict=True), start=1):
        fields = [str(index), word] + ["_"] * 8
        fields[TAGSETS[tagset]] = tag
        rows.append("\t".join(fields))
    return "\n".join([*comments, *rows, ""]) + "\n"


def read_columns(path: str | Path) -> Tagged:
    """The sentences of a whitespace-separated `word ... tag` file (see the module docstring)."""
    path = Path(path)
    sentences, width, first_line = Sentences(path), None, None
    for number, line in enumerate(read_lines(path), start=1):
        fields = line.split()
        if not fields:
            sentences.end()
            continue
        if fields[0] == DOCSTART:
            sentences.end()
            continue
        if width is None:
            width, first_line = len(fields), number
            if width < 2:
                raise DataError(f"{path} line {number}: {fields[0]!r} has no tag column; every line must be "
                                f"`word tag` (whitespace-separated), a blank line between sentences")
        elif len(fields) != width:
            problem = "no tag column" if len(fields) == 1 else f"{len(fields)} columns"
            raise DataError(f"{path} line {number}: {problem}, but line {first_line} has {width}; every line must "
                            f"have the same columns, the word first and its tag last (`word tag`)")
        sentences.add(fields[0], fields[-1], number)
    return sentences.tagged()


def detect_format(path: Path) -> str:
    """conllu or columns: by the name, else by the first word line (see the module docstring)."""
    if path.name.removesuffix(".gz").endswith(".conllu"):
        return "conllu"
    for line in read_lines(path):
        if line.strip() and not line.startswith("#"):
            fields = line.split("\t")
            return "conllu" if len(fields) == 10 and re.fullmatch(r"\d+(-\d+|\.\d+)?", fields[0]) else "columns"
    return "columns"


def read_tagged(path: Path, format: str = "auto", tagset: str = "upos") -> Tagged:
    """A file in `format` (auto: detected)."""
    format = detect_format(path) if format == "auto" else format
    return read_conllu(path, tagset) if format == "conllu" else read_columns(path)


class ConllDataModule(TaggingDataModule):
    """Train/val(/test) tagged sentences given by path, CoNLL-U or `word tag` columns."""

    option = "conll"

    def __init__(self, train_path: str | None = None, val_path: str | None = None, test_path: str | None = None,
                 format: str = "auto", tagset: str = "upos", **options: object):
        super().__init__(**options)
        if format not in FORMATS:
            raise ConfigError(f"data.format={format!r} is invalid: choose auto, conllu or columns")
        if tagset not in TAGSETS:
            raise ConfigError(f"data.tagset={tagset!r} is invalid: choose upos or xpos (CoNLL-U's columns 4 and 5)")
        self.format, self.tagset = format, tagset
        self.files = {split: self._file(split, path) for split, path in
                      (("train", train_path), ("val", val_path), ("test", test_path))}

    def _file(self, split: str, path: str | None) -> Path | None:
        if path is None:
            if split == "test":
                return None
            raise ConfigError(f"data.{split}_path is not set: give the {SPLIT_NAMES[split]} split's file (CoNLL-U, "
                              f"or `word tag` lines with a blank line between sentences)")
        resolved = Path(path).expanduser()
        if not resolved.is_file():
            raise DataError(f"data.{split}_path={path} does not exist (resolved to {resolved.resolve()}): give the "
                            f"path of the {SPLIT_NAMES[split]} split's file")
        return resolved

    def load_splits(self) -> dict[str, Tagged | None]:
        return {split: None if path is None else read_tagged(path, self.format, self.tagset)
                for split, path in self.files.items()}
