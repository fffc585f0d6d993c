"""Sentence-classification corpora: the SST tree reader, SST-2/SST-5/SNIPS read from ../shared/data with their
published sizes and classes in order, a test split read when present, and the user's own files
(data=text_classification) with every bad input refused in one line."""

from __future__ import annotations

import gzip
import inspect
import logging
from collections import Counter
from pathlib import Path

import pytest
from conftest import CONF, SHARED_DATA
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from rnnlab.data.classification import ClassificationDataModule
from rnnlab.data.download import DataError
from rnnlab.data.snips import SnipsDataModule, read_split
from rnnlab.data.sst import SST2DataModule, SST5DataModule, glue_form, parse_tree, read_trees
from rnnlab.data.text_classification import TextClassificationDataModule, read_table
from rnnlab.errors import ConfigError

SST, SNIPS = SHARED_DATA / "sst", SHARED_DATA / "snips"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- the tree reader ------------------------------------------------------------------------------------------------


def test_a_tree_keeps_every_node_label_and_a_leaf_may_hold_spaces():
    tree = parse_tree(r"(3 (2 It) (4 (3 (2 8 1\/2) (4 good)) (2 .)))")
    assert tree.label == 3 and [child.label for child in tree.children] == [2, 4]
    assert [node.label for node in tree.subtrees()] == [3, 2, 4, 3, 2, 4, 2]  # parents first, left to right
    assert tree.leaves() == ["It", r"8 1\/2", "good", "."] and tree.text() == r"It 8 1\/2 good ."
    inner = tree.children[1].children[0]
    assert (inner.label, inner.word, inner.text()) == (3, None, r"8 1\/2 good")
    assert parse_tree("(0 bad)").leaves() == ["bad"]


@pytest.mark.parametrize(("line", "problem"), [
    ("(3 (2 It) (4 good)", "an unclosed '('"),
    ("(x It)", "the label 'x' at column 2 is not a number"),
    ("(2 It))", "an unmatched ')' at column 7"),
    ("(2 It) (3 so)", "a second tree at column 8"),
    ("(2 a (3 b))", "a node with both a word and children at column 7"),
    ("(2 (3 a) ())", "a node without a label at column 11"),
    ("(2 )", "a node with neither a word nor children before column 4"),
    ("2 (3 a)", "'2' outside a node at column 1"),
    ("", "no tree"),
])
def test_a_malformed_tree_says_what_and_where(line, problem):
    with pytest.raises(ValueError) as error:
        parse_tree(line)
    assert str(error.value) == problem


def test_a_malformed_tree_or_root_label_in_a_file_names_the_file(tmp_path):
    path = write(tmp_path / "train.txt", "(3 (2 It) (4 good))\n\n(2 (2 oops)\n")
    with pytest.raises(DataError, match=rf"^{path} line 3 is not a labelled PTB tree: an unclosed '\('; restore"):
        list(read_trees(path))
    write(tmp_path / "trees" / "train.txt", "(3 (2 It) (4 good))\n(7 (2 It) (4 good))\n")
    write(tmp_path / "trees" / "dev.txt", "(3 fine)\n")
    with pytest.raises(DataError, match=rf"^{tmp_path / 'trees' / 'train.txt'}: a root label 7 is not one of SST's "):
        SST5DataModule(root=str(tmp_path)).load_splits()


def test_glue_form_undoes_the_ptb_escapes_and_lowercases():
    assert glue_form(r"-LRB- 8 1\/2 -RRB- \*\*\* Good") == "( 8 1/2 ) *** good"


# -- the real corpora (../shared/data; sizes from its README.md unless said) ---------------------------------------


def test_sst2_sentences_from_the_trees(caplog):
    data = SST2DataModule(root=str(SST))
    with caplog.at_level(logging.INFO, logger="rnnlab.data.sst"):
        splits = data.load_splits()
    assert caplog.messages == ["data=sst2 train: 1624 neutral sentences (root label 2) dropped",
                               "data=sst2 val: 229 neutral sentences (root label 2) dropped"]
    assert (len(splits["train"]), len(splits["val"]), splits["test"]) == (6920, 872, None)  # README
    assert data.dropped == {"train": 8544 - 6920, "val": 1101 - 872}  # the neutral roots, README's SST-5 minus SST-2
    assert splits["train"].texts[0].startswith("The Rock is destined to be the 21st Century 's new `` Conan ''")
    assert splits["val"].texts[0] == "It 's a lovely film with lovely performances by Buy and Accorsi ."
    assert splits["train"].labels[0] == splits["val"].labels[0] == "positive"  # roots 3 and 3 (the files)
    assert data.label_names(["positive", "negative"]) == ["negative", "positive"]
    # the files: 428 negative and 444 positive dev sentences, the majority baseline 50.9 of the README
    assert Counter(splits["val"].labels) == {"negative": 428, "positive": 444}


def test_sst2_phrases_train_on_glue_and_evaluate_glues_dev_sentences():
    data = SST2DataModule(root=str(SST), phrases=True)
    splits = data.load_splits()
    assert len(splits["train"]) == 67349 and Counter(splits["train"].labels) == {"positive": 37569,  # README, files
                                                                                "negative": 29780}
    assert (splits["train"].texts[0], splits["train"].labels[0]) == ("hide new secretions from the parental units ",
                                                                     "negative")
    glue_dev = read_table(SST / "glue_sst2" / "dev.tsv")  # the README: the same sentences and labels as the trees'
    expected = {text.strip(): {"0": "negative", "1": "positive"}[label]
                for text, label in zip(glue_dev.texts, glue_dev.labels)}
    assert dict(zip(splits["val"].texts, splits["val"].labels)) == expected and len(splits["val"]) == 872


def test_sst5_root_labels_in_class_order_through_the_base():
    data = SST5DataModule(root=str(SST), max_vocab_size=100)
    data.setup("fit")
    assert data.classes == ["very negative", "negative", "neutral", "positive", "very positive"]
    assert (len(data.texts("train")), len(data.texts("val"))) == (8544, 1101)  # README
    assert data.texts("test") == data.texts("val")  # no test split here: the base evaluates on dev
    assert data.texts("val")[1] == "No one goes unindicted here , which is probably for the best ."
    # the files: dev roots 0..4 counted, read back from the ids the base gives (class order = label order)
    assert Counter(data.labels("val")) == {0: 139, 1: 289, 2: 229, 3: 279, 4: 165}


def test_snips_intents():
    splits = SnipsDataModule(root=str(SNIPS)).load_splits()
    assert (len(splits["train"]), len(splits["val"]), splits["test"]) == (13084, 700, None)  # README
    assert (splits["train"].texts[0], splits["train"].labels[0]) == ("listen to westbam alumb allergic on google "
                                                                     "music", "PlayMusic")
    assert (splits["val"].texts[0], splits["val"].labels[0]) == ("i d like to have this track onto my classical "
                                                                 "relaxations playlist", "AddToPlaylist")
    assert sorted(set(splits["train"].labels)) == ["AddToPlaylist", "BookRestaurant", "GetWeather", "PlayMusic",
                                                   "RateBook", "SearchCreativeWork", "SearchScreeningEvent"]
    with_slots = read_split(SNIPS / "train", slots=True)
    assert with_slots.slots[0] == ["O", "O", "B-artist", "O", "B-album", "O", "B-service", "I-service"]


# -- a test split when present; missing files -----------------------------------------------------------------------


def test_sst_reads_a_test_file_when_present_gzip_or_not(tmp_path):
    write(tmp_path / "trees" / "train.txt", "(4 (3 good) (4 fun))\n(0 awful)\n(2 (2 a) (2 film))\n")
    with gzip.open(tmp_path / "trees" / "dev.txt.gz", "wt", encoding="utf-8") as handle:
        handle.write("(1 dull)\n(3 nice)\n")
    write(tmp_path / "trees" / "test.txt", "(2 meh)\n(4 (4 great) (2 -LRB-))\n")
    sst2 = SST2DataModule(root=str(tmp_path))
    splits = sst2.load_splits()
    assert splits["test"].texts == ["great -LRB-"] and splits["test"].labels == ["positive"]
    assert sst2.dropped == {"train": 1, "val": 0, "test": 1}
    assert SST5DataModule(root=str(tmp_path)).load_splits()["test"].labels == ["neutral", "very positive"]


def test_sst5_phrases_are_every_distinct_labelled_subtree_of_the_training_trees(tmp_path, caplog):
    write(tmp_path / "trees" / "train.txt", "(4 (3 good) (4 (2 fun) (2 film)))\n(3 (3 good) (2 film))\n(1 (1 dull))\n")
    write(tmp_path / "trees" / "dev.txt", "(1 dull)\n")
    with caplog.at_level(logging.INFO):
        splits = SST5DataModule(root=str(tmp_path), phrases=True).load_splits()
    assert splits["train"].texts == ["good fun film", "good", "fun film", "fun", "film", "good film", "dull"]
    assert splits["train"].labels == ["very positive", "positive", "very positive", "neutral", "neutral",
                                      "positive", "negative"]  # "(1 (1 dull))": one phrase, counted once
    assert splits["val"].texts == ["dull"]  # dev stays whole sentences
    assert "7 distinct labelled phrases" in caplog.text
    write(tmp_path / "trees" / "train.txt", "(4 (3 good) (4 fun))\n(2 (1 good) (2 film))\n")
    with caplog.at_level(logging.WARNING):
        assert SST5DataModule(root=str(tmp_path), phrases=True).load_splits()["train"].labels[1] == "positive"
    assert "1 repeated phrases" in caplog.text and "disagree with their first label (kept)" in caplog.text


def test_snips_reads_a_test_folder_when_present(tmp_path):
    for folder in ("train", "valid", "test"):
        write(tmp_path / folder / "seq.in", "play some jazz \nwill it rain\n")
        write(tmp_path / folder / "label", "PlayMusic\nGetWeather\n")
    splits = SnipsDataModule(root=str(tmp_path)).load_splits()
    assert splits["test"].texts == ["play some jazz", "will it rain"] and splits["test"].labels[1] == "GetWeather"
    (tmp_path / "test" / "label").unlink()
    with pytest.raises(DataError, match=f"^data=snips: {tmp_path / 'test'} holds seq.in but not label: put both"):
        SnipsDataModule(root=str(tmp_path)).load_splits()


def test_missing_files_say_which_files_go_where(tmp_path):
    with pytest.raises(DataError) as error:
        SST2DataModule(root=str(tmp_path)).load_splits()
    assert str(error.value) == (
        f"data=sst2: 2 file(s) missing in {tmp_path}; put trees/train.txt.gz or trees/train.txt, trees/dev.txt.gz or "
        f"trees/dev.txt there (trees/: Stanford's trainDevTestTrees_PTB.zip, https://nlp.stanford.edu/sentiment/; "
        f"glue_sst2/: GLUE's SST-2.zip, https://gluebenchmark.com/tasks), or set data.root to a directory that "
        f"holds them")
    with pytest.raises(DataError, match=r"^data=sst2: 2 file\(s\) missing .*; put glue_sst2/train.tsv.gz or "
                                        r"glue_sst2/train.tsv, trees/dev.txt.gz"):
        SST2DataModule(root=str(tmp_path), phrases=True).load_splits()
    with pytest.raises(DataError) as error:
        SnipsDataModule(root=str(tmp_path)).load_splits()
    assert str(error.value) == (
        f"data=snips: 4 file(s) missing in {tmp_path}; put train/seq.in, train/label, valid/seq.in, valid/label "
        f"there (the folders of data/snips in https://github.com/MiuLab/SlotGated-SLU), or set data.root to a "
        f"directory that holds them")


def test_snips_files_that_do_not_align_name_the_line(tmp_path):
    write(tmp_path / "seq.in", "play jazz\nwill it rain\n")
    write(tmp_path / "label", "PlayMusic\n")
    with pytest.raises(DataError, match=f"^{tmp_path / 'seq.in'} has 2 lines but {tmp_path / 'label'} has 1: "):
        read_split(tmp_path)
    write(tmp_path / "label", "PlayMusic\nGetWeather\n")
    write(tmp_path / "seq.out", "O B-genre\nO O\n")
    with pytest.raises(DataError, match=f"^{tmp_path / 'seq.out'} line 2 has 2 tags for the 3 tokens of seq.in's "):
        read_split(tmp_path, slots=True)


# -- data=text_classification ---------------------------------------------------------------------------------------


def test_tables_with_and_without_header_and_two_file_splits(tmp_path):
    train = write(tmp_path / "train.tsv", "sentence\tlabel\na fine film\tpos\n\tneg\nawful , dull\tneg\n")
    val = write(tmp_path / "val.csv", 'label,text\npos,"good, really"\nneg,bad\n')
    texts, labels = write(tmp_path / "t.txt", "great\nbad film\n"), write(tmp_path / "l.txt", "pos\n neg \n")
    data = TextClassificationDataModule(train_path=str(train), val_path=str(val), test_texts=str(texts),
                                        test_labels=str(labels))
    splits = data.load_splits()
    assert splits["train"].texts == ["a fine film", "", "awful , dull"] and splits["train"].labels[0] == "pos"
    assert splits["val"].texts == ["good, really", "bad"] and splits["val"].labels == ["pos", "neg"]
    assert splits["test"].texts == ["great", "bad film"] and splits["test"].labels == ["pos", "neg"]
    data.setup("fit")
    assert data.skipped["train"] == 1 and data.classes == ["neg", "pos"]  # the empty text: the base's to count
    no_header = write(tmp_path / "plain.tsv", "label\tlabel\nok\tpos\n")  # header=false: the first row is data
    assert read_table(no_header, header=False).texts == ["label", "ok"]
    assert read_table(write(tmp_path / "h.tsv", "review\tstars\nok\t4\n"), header=True).labels == ["4"]
    data = TextClassificationDataModule(train_path=str(train), val_path=str(val))
    assert data.load_splits()["test"] is None
    assert read_table(write(tmp_path / "test.txt", "so good,pos\n")).labels == ["pos"]  # no tab on line 1: a CSV
    with gzip.open(tmp_path / "train.tsv.gz", "wt", encoding="utf-8") as handle:
        handle.write("fine, thanks\tpos\n")
    assert read_table(tmp_path / "train.tsv.gz").texts == ["fine, thanks"]


def bad_input(tmp_path: Path, case: str) -> dict:
    """The data= keys of one bad input."""
    good = str(write(tmp_path / "good.tsv", "fine\tpos\nbad\tneg\n"))
    tables = {"no_label": "fine\tpos\njust text\n", "three": "a,b,pos\n", "empty_label": "fine\tpos\nbad\t \n",
              "header": "text\tlabel\tid\nfine\tpos\t1\n"}
    if case in tables:
        name = "train.csv" if case == "three" else "train.tsv"
        return {"train_path": str(write(tmp_path / name, tables[case])), "val_path": good,
                **({"header": True} if case == "header" else {})}
    if case in ("counts", "empty_label_line"):
        texts = write(tmp_path / "texts.txt", "fine\nbad\nso so\n")
        labels = write(tmp_path / "labels.txt", "pos\nneg\n" if case == "counts" else "pos\n\nneg\n")
        return {"train_path": good, "val_texts": str(texts), "val_labels": str(labels)}
    return {"missing": {"train_path": good, "val_path": str(tmp_path / "nope.tsv")},
            "unset": {"val_path": good},
            "both": {"train_path": good, "train_texts": good, "val_path": good},
            "half": {"train_path": good, "val_labels": good},
            "header_value": {"train_path": good, "val_path": good, "header": "yes"},
            "unknown_key": {"train_path": good, "val_path": good, "test_file": good}}[case]


BAD_INPUTS = {
    "no_label": "{tmp}/train.tsv line 2: no label column; every line must be text<TAB>label",
    "three": "{tmp}/train.csv line 1: 3 columns; every line must be text,label (a text holding commas in double "
             "quotes)",
    "empty_label": "{tmp}/train.tsv line 2: the label is empty; every line must be text<TAB>label",
    "header": "{tmp}/train.tsv line 1: the header has 3 columns; every line must be text<TAB>label",
    "counts": "{tmp}/texts.txt has 3 lines but {tmp}/labels.txt has 2: {tmp}/labels.txt ends at line 2 while "
              "{tmp}/texts.txt goes on; line i of the labels file must be the label of line i of the texts file",
    "empty_label_line": "{tmp}/labels.txt line 2 is empty: every text needs a label",
    "missing": "data.val_path={tmp}/nope.tsv does not exist (resolved to {tmp}/nope.tsv): give the path of the "
               "validation split's file",
    "unset": "data.train_path is not set: give the training split's text<TAB>label file (or data.train_texts and "
             "data.train_labels)",
    "both": "data.train_path and data.train_texts are both set: give the training split either as one table or as "
            "two files",
    "half": "data.val_labels is set but data.val_texts is not: give both (one text, one label per line) or "
            "data.val_path",
    "header_value": "data.header='yes' is invalid: null (detect), true or false",
    "unknown_key": "data.test_file is not an option of data=text_classification; valid: train_path, val_path, ",
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_every_bad_input_is_one_line_naming_the_file_or_key_and_the_fix(case, tmp_path):
    tmp_path = tmp_path.resolve()
    with pytest.raises(ConfigError) as error:  # DataError is a ConfigError: both exit with status 2, one line
        TextClassificationDataModule(**bad_input(tmp_path, case)).load_splits()
    message = str(error.value)
    assert "\n" not in message and message.startswith(BAD_INPUTS[case].format(tmp=tmp_path))


# -- configuration --------------------------------------------------------------------------------------------------


OPTIONS = {"sst2": SST2DataModule, "sst5": SST5DataModule, "snips": SnipsDataModule,
           "text_classification": TextClassificationDataModule}


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_each_yaml_sets_every_option_of_its_class_and_nothing_else(option):
    node = OmegaConf.load(CONF / "data" / f"{option}.yaml")
    cls = get_class(node._target_)
    assert cls is OPTIONS[option] and cls.option == option
    accepted = {name for c in cls.__mro__ if c.__dict__.get("__init__") and issubclass(c, ClassificationDataModule)
                for name, parameter in inspect.signature(c.__init__).parameters.items()
                if name != "self" and parameter.kind is not parameter.VAR_KEYWORD}
    assert set(node) - {"_target_"} == accepted


def test_composed_configs_point_at_the_data_dir_and_instantiate(make_cfg):
    for option in ("sst2", "sst5", "snips"):
        cfg = make_cfg(f"data={option}", tiny=False)
        folder = "sst" if option.startswith("sst") else option
        assert cfg.data.root == f"{cfg.paths.data_dir}/{folder}"
    cfg = make_cfg("data=sst2", f"data.root={SST}", "data.phrases=true", tiny=False)
    data = instantiate(cfg.data)
    assert isinstance(data, SST2DataModule) and data.root == SST and data.phrases and data.seed == cfg.seed
