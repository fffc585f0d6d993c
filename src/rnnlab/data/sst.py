"""`data=sst2`, `data=sst5`: the Stanford Sentiment Treebank (Socher et al., 2013), movie-review sentences; and
`data=sst_text`, the same sentences without labels as a language-modelling corpus (task=lm).

Files under `data.root` (gzip or not; nothing is downloaded: no public copy of these files has a published
checksum to pin):

- `trees/{train,dev,test}.txt[.gz]`: one sentence per line as a binary parse tree in PTB bracket form, every node
  labelled 0 (very negative) .. 4 (very positive): `(3 (2 It) (4 (4 (2 's) ...`. The trees/ folder of Stanford's
  trainDevTestTrees_PTB.zip (https://nlp.stanford.edu/sentiment/). 8,544 / 1,101 / 2,210 sentences.
- `glue_sst2/train.tsv[.gz]` (only for `data.phrases=true`): GLUE's SST-2 training set, 67,349 phrases of the
  training trees, `sentence<TAB>label` (0 negative, 1 positive) with a header line; the train.tsv of GLUE's
  SST-2.zip (https://gluebenchmark.com/tasks).

SST-5 is each sentence's root label (with `data.phrases=true` training reads every distinct labelled phrase of the
training trees instead: 159,274 of them, each once — a phrase's label is the same wherever it occurs); SST-2 drops
sentences whose root is 2 (neutral; counted in the log) and maps 0-1 to negative, 3-4 to positive (6,920 / 872 /
1,821 sentences). A text is the tree's leaves joined by spaces, PTB-escaped as the trees give them (`-LRB-`, `\\/`);
with `data.phrases=true` training reads GLUE's phrases, which are lowercased and unescaped, so the dev/test
sentences are put in that same form (`glue_form`): the dev sentences are then exactly GLUE's dev.tsv. The test split
is read when `trees/test.txt[.gz]` is there.

`data=sst_text` reads every sentence of the training trees (8,544, neutral ones too) as the training text, the dev
trees as validation, one sentence per line (`<eos>` after each), in the form a classifier of the same files reads
them, so that `model.init_from` finds the same words in both vocabularies: `form: glue` (lowercased, unescaped: what
`data=sst2 data.phrases=true` reads, as experiment=sst2_best does) or `trees` (as the trees give them: data=sst2
and data=sst5 without phrases; `lowercase: true` for a classifier with data.lowercase=true). GLUE's phrases are
substrings of the training sentences: they add no text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rnnlab.data.classification import ClassificationDataModule, Labelled
from rnnlab.data.download import DataError, find_local
from rnnlab.data.text import TextCorpusDataModule
from rnnlab.data.text_classification import read_table
from rnnlab.data.translation import read_lines
from rnnlab.errors import ConfigError

log = logging.getLogger(__name__)

TREE_FILES = {"train": ("trees/train.txt.gz", "trees/train.txt"), "val": ("trees/dev.txt.gz", "trees/dev.txt"),
              "test": ("trees/test.txt.gz", "trees/test.txt")}
GLUE_TRAIN = ("glue_sst2/train.tsv.gz", "glue_sst2/train.tsv")
TREES_SOURCE = "Stanford's trainDevTestTrees_PTB.zip, https://nlp.stanford.edu/sentiment/"
GLUE_SOURCE = "GLUE's SST-2.zip, https://gluebenchmark.com/tasks"
SOURCE = f"trees/: {TREES_SOURCE}; glue_sst2/: {GLUE_SOURCE}"
SENTENCES = {"train": 8544, "val": 1101, "test": 2210}  # the published split (Socher et al., 2013)
GLUE_PHRASES = 67349

SST5_CLASSES = ("very negative", "negative", "neutral", "positive", "very positive")  # root labels 0..4
SST2_CLASSES = ("negative", "positive")
SST5_OF_ROOT = dict(enumerate(SST5_CLASSES))
SST2_OF_ROOT = {0: "negative", 1: "negative", 2: None, 3: "positive", 4: "positive"}  # None: dropped
SST2_OF_GLUE = {"0": "negative", "1": "positive"}


# -- trees --------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Tree:
    """A labelled node: a leaf holds a word (which may hold spaces: `8 1\\/2`), an inner node its children."""

    label: int
    children: list[Tree] = field(default_factory=list)
    word: str | None = None

    def leaves(self) -> list[str]:
        return [node.word for node in self.subtrees() if node.word is not None]

    def text(self) -> str:
        return " ".join(self.leaves())

    def subtrees(self) -> Iterator[Tree]:
        """This node and every node below it, parents before children, left to right."""
        yield self
        for child in self.children:
            yield from child.subtrees()


_PIECES = re.compile(r"[()]|[^()]+")  # a bracket, or the text between brackets


def parse_tree(line: str) -> Tree:
    """One PTB-bracketed tree, `(label word)` or `(label child child ...)`; ValueError says where it is malformed."""
    stack: list[Tree] = []
    root = None
    opened = False  # the piece after "(" is "label[ word]"
    for piece in _PIECES.finditer(line):
        text, column = piece.group(), piece.start() + 1
        if text == "(":
            if root is not None and not stack:
                raise ValueError(f"a second tree at column {column}")
            opened = True
        elif text == ")":
            if opened:
                raise ValueError(f"a node without a label at column {column}")
            if not stack:
                raise ValueError(f"an unmatched ')' at column {column}")
            node = stack.pop()
            if node.word is None and not node.children:
                raise ValueError(f"a node with neither a word nor children before column {column}")
        elif opened:
            label, _, word = text.strip().partition(" ")
            if not label.isdigit():
                raise ValueError(f"the label {label!r} at column {column} is not a number")
            node = Tree(int(label), [], word.strip() or None)
            if stack:
                if stack[-1].word is not None:
                    raise ValueError(f"a node with both a word and children at column {column}")
                stack[-1].children.append(node)
            else:
                root = node
            stack.append(node)
            opened = False
        elif text.strip():
            raise ValueError(f"{text.strip()!r} outside a node at column {column}")
    if opened or stack or root is None:
        raise ValueError("an unclosed '('" if root is not None else "no tree")
    return root


def read_trees(path: Path) -> Iterator[Tree]:
    """The trees of a file, one per non-blank line, one at a time: kept in a list, the 330,000 nodes of the
    training trees would cost more in garbage-collector passes than the parsing itself."""
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            tree = parse_tree(line)
        except ValueError as error:
            raise DataError(f"{path} line {number} is not a labelled PTB tree: {error}; restore the file from "
                            f"{TREES_SOURCE}") from None
        yield tree


def glue_form(text: str) -> str:
    """A tree's text as GLUE's SST-2 writes it: PTB escapes undone (-LRB- -> "(", \\/ -> "/"), lowercased."""
    text = text.replace("-LRB-", "(").replace("-RRB-", ")")
    return re.sub(r"\\(.)", r"\1", text).lower()


# -- data modules ---------------------------------------------------------------------------------------------------


class _SSTDataModule(ClassificationDataModule):
    """The treebank's files under `root`; a subclass names its classes in order and the class of each root label
    (None: the sentence is dropped)."""

    classes_in_order: tuple[str, ...] = ()
    class_of_root: dict[int, str | None] = {}

    def __init__(self, root: str = "data/sst", phrases: bool = False, **options: object):
        super().__init__(**options)
        self.root = Path(root).expanduser()
        self.phrases = phrases  # train on labelled phrases instead of whole sentences (each subclass: which)
        self.dropped: dict[str, int] = {}

    def label_names(self, train_labels: Sequence[str]) -> list[str]:
        return list(self.classes_in_order)

    def tree_paths(self, wanted: dict[str, tuple[str, ...]]) -> dict[str, Path | None]:
        return find_local(wanted, self.root, f"data={self.option}", SOURCE, optional=("test",))

    def sentences(self, split: str, path: Path, form: Callable[[str], str] = str) -> Labelled:
        """The split's sentences (in `form`) with their classes, in file order; dropped sentences are counted."""
        labelled = [(tree.text(), tree.label) for tree in read_trees(path)]
        unknown = sorted({label for _, label in labelled} - set(self.class_of_root))
        if unknown:
            raise DataError(f"{path}: a root label {unknown[0]} is not one of SST's 0..4; restore the file from "
                            f"{TREES_SOURCE}")
        if len(labelled) != SENTENCES[split]:
            log.warning("data=%s: %s holds %d sentences, the published %s split %d: another version of SST, whose "
                        "scores do not compare with published ones", self.option, path, len(labelled), split,
                        SENTENCES[split])
        classes = [(form(text), self.class_of_root[label]) for text, label in labelled]
        kept = [(text, label) for text, label in classes if label is not None]
        self.dropped[split] = len(labelled) - len(kept)
        if self.dropped[split]:
            log.info("data=%s %s: %d neutral sentences (root label 2) dropped", self.option, split,
                     self.dropped[split])
        return Labelled([text for text, _ in kept], [label for _, label in kept])

    def load_splits(self) -> dict[str, Labelled | None]:
        paths = self.tree_paths(TREE_FILES)
        return {split: None if path is None else self.sentences(split, path) for split, path in paths.items()}

    def evaluated(self, paths: dict[str, Path | None], form: Callable[[str], str] = str) -> dict[str, Labelled | None]:
        """The dev and test sentences (test None when absent), in `form`."""
        return {split: None if paths[split] is None else self.sentences(split, paths[split], form)
                for split in ("val", "test")}

    def phrases_of(self, path: Path) -> Labelled:
        """Every distinct phrase (subtree) of the trees with its class, in first-seen order; the treebank labels a
        phrase once (its dictionary), so repeats agree — a disagreement is counted and the first label kept."""
        labels: dict[str, int] = {}
        disagreements = 0
        for tree in read_trees(path):
            for node in tree.subtrees():
                label = labels.setdefault(node.text(), node.label)
                disagreements += label != node.label
        if disagreements:
            log.warning("data=%s: %d repeated phrases of %s disagree with their first label (kept)", self.option,
                        disagreements, path)
        kept = [(text, self.class_of_root[label]) for text, label in labels.items()
                if self.class_of_root.get(label) is not None]
        log.info("data=%s train: %d distinct labelled phrases of %s (%d dropped as neutral)", self.option, len(kept),
                 path, len(labels) - len(kept))
        return Labelled([text for text, _ in kept], [label for _, label in kept])


class SST5DataModule(_SSTDataModule):
    """`data=sst5`: five classes, the sentence's root label, very negative (0) .. very positive (4); optionally
    trained on every labelled phrase of the training trees."""

    option = "sst5"
    classes_in_order = SST5_CLASSES
    class_of_root = SST5_OF_ROOT

    def load_splits(self) -> dict[str, Labelled | None]:
        if not self.phrases:
            return super().load_splits()
        paths = self.tree_paths(TREE_FILES)  # the training trees read once, as phrases
        return {"train": self.phrases_of(paths["train"]), **self.evaluated(paths)}


class SST2DataModule(_SSTDataModule):
    """`data=sst2`: negative / positive sentences (neutral ones dropped), optionally trained on GLUE's phrases."""

    option = "sst2"
    classes_in_order = SST2_CLASSES
    class_of_root = SST2_OF_ROOT

    def load_splits(self) -> dict[str, Labelled | None]:
        if not self.phrases:
            return super().load_splits()
        paths = self.tree_paths({"phrases": GLUE_TRAIN, "val": TREE_FILES["val"], "test": TREE_FILES["test"]})
        phrases = read_table(paths["phrases"], header=True)
        if len(phrases) != GLUE_PHRASES:
            log.warning("data=sst2: %s holds %d phrases, GLUE's SST-2 %d: another version", paths["phrases"],
                        len(phrases), GLUE_PHRASES)
        unknown = sorted(set(phrases.labels) - set(SST2_OF_GLUE))
        if unknown:
            raise DataError(f"{paths['phrases']}: the label {unknown[0]!r} is not GLUE SST-2's 0 or 1; restore the "
                            f"file from {GLUE_SOURCE}")
        train = Labelled(phrases.texts, [SST2_OF_GLUE[label] for label in phrases.labels])
        return {"train": train, **self.evaluated(paths, glue_form)}


class SSTTextDataModule(TextCorpusDataModule):
    """`data=sst_text`: the treebank's sentences, unlabelled, as a word-level corpus for task=lm (module docstring)."""

    corpus = "sst_text"
    FORMS = ("glue", "trees")

    def __init__(self, root: str = "data/sst", form: str = "glue", lowercase: bool = False, min_frequency: int = 1,
                 max_vocab_size: int | None = None, cache_dir: str | None = None, batch_size: int = 32,
                 eval_batch_size: int = 16, bptt: int = 64):
        super().__init__(level="word", batch_size=batch_size, eval_batch_size=eval_batch_size, bptt=bptt,
                         min_frequency=min_frequency, max_vocab_size=max_vocab_size, cache_dir=cache_dir)
        if form not in self.FORMS:
            raise ConfigError(f"data.form={form!r} is invalid: glue (lowercased, unescaped: data=sst2 "
                              f"data.phrases=true) or trees (as the trees give them)")
        self.root, self.form, self.lowercase = Path(root).expanduser(), form, lowercase
        self.paths: dict[str, Path | None] = {}

    def text_of(self, tree: Tree) -> str:
        text = glue_form(tree.text()) if self.form == "glue" else tree.text()
        return text.lower() if self.lowercase else text

    def read_splits(self) -> dict[str, str]:
        self.paths = find_local(TREE_FILES, self.root, f"data={self.corpus}", TREES_SOURCE, optional=("test",))
        return {split: "".join(self.text_of(tree) + "\n" for tree in read_trees(path))
                for split, path in self.paths.items() if path is not None}

    def describe_split(self, split: str) -> str:
        return f"the {split} split ({self.paths.get(split) or self.root})"
