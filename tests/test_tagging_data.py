"""Sequence-tagging data: the CoNLL-U and `word tag` readers (multiword tokens and empty nodes are not words), every
bad input as one line naming the file and line, the shared pipeline (vocabulary, unseen words, batches), UD EWT and
SNIPS slots read from ../shared/data with their published sizes, and the generated data whose two optima are checked
against every sentence the generator can write."""

from __future__ import annotations

import gzip
import inspect
import itertools
import logging
import math
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import CONF, SHARED_DATA
from hydra.utils import get_class
from omegaconf import OmegaConf

from rnnlab.data.conll import ConllDataModule, detect_format, read_columns, read_conllu
from rnnlab.data.download import DataError
from rnnlab.data.snips_slots import SnipsSlotsDataModule
from rnnlab.data.synthetic_tagging import AmbiguityLanguage, SyntheticTaggingDataModule
from rnnlab.data.tagging import IGNORE, TaggingDataModule
from rnnlab.data.ud_ewt import UDEWTDataModule
from rnnlab.errors import ConfigError

UD_EWT, SNIPS = SHARED_DATA / "ud_ewt", SHARED_DATA / "snips"

# a sentence with a comment, a multiword token (3-4: "don't" = "do" + "n't") and an empty node (5.1), then another
CONLLU = """# sent_id = 1
# text = I don't know.
1\tI\tI\tPRON\tPRP\t_\t4\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\t_
4.1\tknows\tknow\tVERB\tVBZ\t_\t_\t_\t0:root\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

1\tYes\tyes\tINTJ\tUH\t_\t0\troot\t_\t_
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- the readers ---------------------------------------------------------------------------------------------------


def test_conllu_words_are_the_syntactic_words_tagged_with_upos_or_xpos(tmp_path):
    path = write(tmp_path / "a.conllu", CONLLU)
    upos = read_conllu(path)
    assert upos.words == [["I", "do", "n't", "know", "."], ["Yes"]]  # not "don't", not the empty node "knows"
    assert upos.tags == [["PRON", "AUX", "PART", "VERB", "PUNCT"], ["INTJ"]]
    assert upos.lines == [[3, 5, 6, 7, 9], [11]] and upos.where(0, 3) == f"{path} line 7"
    assert read_conllu(path, "xpos").tags == [["PRP", "VBP", "RB", "VB", "."], ["UH"]]
    with gzip.open(tmp_path / "b.conllu.gz", "wt", encoding="utf-8") as handle:
        handle.write(CONLLU.replace("\n", "\r\n"))  # gzip and Windows line ends read the same
    assert read_conllu(tmp_path / "b.conllu.gz").words == upos.words


def test_two_columns_take_the_first_as_word_and_the_last_as_tag(tmp_path):
    path = write(tmp_path / "ner.txt",
                 "-DOCSTART- -X- O\n\nJohn NNP B-PER\nlives VBZ O\n\n\nin IN O\nParis NNP B-LOC\n")
    read = read_columns(path)
    assert read.words == [["John", "lives"], ["in", "Paris"]] and read.tags == [["B-PER", "O"], ["O", "B-LOC"]]
    assert read.lines == [[3, 4], [7, 8]]
    assert read_columns(write(tmp_path / "pos.txt", "the DT\ndog NN")).tags == [["DT", "NN"]]  # no final newline


def test_the_format_is_detected_by_name_or_by_the_first_word_line(tmp_path):
    assert detect_format(write(tmp_path / "x.conllu", "the DT\n")) == "conllu"  # the name says so
    assert detect_format(write(tmp_path / "x.txt", CONLLU)) == "conllu"
    assert detect_format(write(tmp_path / "y.txt", "# a comment\n\nthe DT\n")) == "columns"
    assert detect_format(write(tmp_path / "z.tsv", "the\tDT\n")) == "columns"
    data = ConllDataModule(train_path=str(tmp_path / "x.txt"), val_path=str(tmp_path / "z.tsv"))
    splits = data.load_splits()
    assert splits["train"].tags[0][0] == "PRON" and splits["val"].tags == [["DT"]] and splits["test"] is None


BAD_FILES = {  # name: (file text, the message after "<path> line N: ")
    "ragged conllu": ("1\tI\tI\tPRON\tPRP\t_\t0\troot\t_\n", "line 1: 9 tab-separated columns where CoNLL-U has 10"),
    "spaces in conllu": ("1 I I PRON PRP _ 0 root _ _\n", "line 1: 1 tab-separated columns where CoNLL-U has 10"),
    "no upos": ("1\tI\tI\t_\tPRP\t_\t0\troot\t_\t_\n", "line 1: the word 'I' has no UPOS ('_' in column 4); tag it"),
    "bad id": ("x\tI\tI\tPRON\tPRP\t_\t0\troot\t_\t_\n", "line 1: the ID 'x' is not a word index"),
    "no tag column": ("the DT\ndog\n", "line 2: no tag column, but line 1 has 2; every line must have the same "
                                       "columns, the word first and its tag last"),
    "ragged columns": ("the DT\ndog NN x\n", "line 2: 3 columns, but line 1 has 2"),
    "one column": ("\nthe\ndog\n", "line 2: 'the' has no tag column; every line must be `word tag`"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_line_is_one_error_naming_the_file_line_and_fix(case, tmp_path):
    text, message = BAD_FILES[case]
    path = write(tmp_path / ("train.conllu" if "conllu" in case or case in ("no upos", "bad id") else "train.txt"),
                 text)
    write(tmp_path / "dev.txt", "the DT\n")
    with pytest.raises(DataError) as error:  # a ConfigError: exit status 2, one line
        ConllDataModule(train_path=str(path), val_path=str(tmp_path / "dev.txt")).setup()
    assert "\n" not in str(error.value) and str(error.value).startswith(f"{path} {message}")


def test_a_dev_tag_the_training_split_never_has_names_its_file_and_line(tmp_path):
    train = write(tmp_path / "train.txt", "the DT\ndog NN\n\na DT\ncat NN\n")
    dev = write(tmp_path / "dev.txt", "the DT\n\nthe DT\nbird NNS\n")
    with pytest.raises(DataError) as error:
        ConllDataModule(train_path=str(train), val_path=str(dev)).setup()
    assert str(error.value) == (f"data=conll: {dev} line 4 (val split): the tag 'NNS' never occurs in the training "
                                f"split (its 2 tags: DT, NN); fix the tag or add training sentences that have it")


@pytest.mark.parametrize(("options", "message"), [
    ({"train_path": None}, "data.train_path is not set: give the training split's file (CoNLL-U, or `word tag` lines"),
    ({"train_path": "nope.txt"}, "data.train_path=nope.txt does not exist (resolved to "),
    ({"format": "csv"}, "data.format='csv' is invalid: choose auto, conllu or columns"),
    ({"tagset": "pos"}, "data.tagset='pos' is invalid: choose upos or xpos"),
    ({"batch_size": 0}, "data.batch_size=0 is invalid: must be a positive integer"),
    ({"tag_column": 2}, "data.tag_column is not an option of data=conll; valid: train_path, val_path, test_path, "),
])
def test_bad_keys_are_one_line(options, message, tmp_path):
    good = str(write(tmp_path / "good.txt", "the DT\n"))
    with pytest.raises(ConfigError) as error:
        ConllDataModule(**{"train_path": good, "val_path": good, **options})
    assert str(error.value).startswith(message)


# -- the pipeline -----------------------------------------------------------------------------------------------------


def test_vocabulary_unseen_words_and_padded_batches(tmp_path):
    train = write(tmp_path / "train.txt", "The DT\ndog NN\nbarks VBZ\n\nthe DT\ndog NN\n")
    dev = write(tmp_path / "dev.txt", "the DT\ncat NN\n")
    data = ConllDataModule(train_path=str(train), val_path=str(dev), min_frequency=2)
    data.setup()
    assert data.vocab == ["<unk>", "dog"] and data.tags == ["DT", "NN", "VBZ"]  # "The" ≠ "the": once each
    assert data.task_inputs == {"vocab_size": 2, "num_tags": 3, "pad_id": 0, "num_chars": 2 + 12,
                                "num_intents": 0}
    assert data.bucket_dataset("val")[0]["unseen"] == [False, True]  # "the" was in training, below min_frequency
    batch = data.collate([data.bucket_dataset("train")[k] for k in (0, 1)])
    assert batch["tokens"].tolist() == [[0, 1, 0], [0, 1, 0]] and batch["tokens_lengths"].tolist() == [3, 2]
    assert batch["tags"].tolist() == [[0, 1, 2], [0, 1, IGNORE]] and batch["unseen"].dtype.is_floating_point is False
    assert batch["words"] == [["The", "dog", "barks"], ["the", "dog"]] and batch["index"].tolist() == [0, 1]
    assert data.tokenizer_state() == {"words": ["<unk>", "dog"], "tags": ["DT", "NN", "VBZ"], "lowercase": False,
                                      "chars": ["<pad>", "<unk>", *"deghoTabkrst"], "tagset": "upos"}
    lower = ConllDataModule(train_path=str(train), val_path=str(dev), lowercase=True, max_vocab_size=2)
    lower.setup()
    assert lower.vocab == ["<unk>", "dog"] and lower.sentences("train")[0] == ["the", "dog", "barks"]
    assert lower.unseen_share("val") == 0.5 and lower.sentences("test") == lower.sentences("val")


def test_a_sentence_without_words_is_skipped_and_counted(tmp_path, caplog):
    for folder in ("train", "valid"):
        write(tmp_path / folder / "seq.in", "play jazz\n\nwill it rain\n")
        write(tmp_path / folder / "label", "PlayMusic\nPlayMusic\nGetWeather\n")
        write(tmp_path / folder / "seq.out", "O B-genre\n\nO O O\n")
    data = SnipsSlotsDataModule(root=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="rnnlab.data.tagging"):
        data.setup()
    assert data.skipped == {"train": 1, "val": 1, "test": 1}
    assert "data=snips_slots train: 1 sentences without a word skipped" in caplog.messages
    assert data.sentences("train") == [["play", "jazz"], ["will", "it", "rain"]] and data.tags == ["B-genre", "O"]


# -- the real corpora (../shared/data; sizes from its README.md) -----------------------------------------------------


@pytest.mark.skipif(not UD_EWT.is_dir(), reason="../shared/data/ud_ewt is not here")
def test_ud_ewt_upos_and_xpos():
    upos = UDEWTDataModule(root=str(UD_EWT))
    upos.setup()
    train, val = upos.sentences("train"), upos.sentences("val")
    assert (len(train), len(val), sum(map(len, train)), sum(map(len, val))) == (12544, 2001, 204577, 25147)  # README
    assert upos.sentences("test") == val  # no test file here: the base evaluates on dev
    assert train[0][:4] == ["Al", "-", "Zaman", ":"] and [upos.tags[k] for k in upos.gold_tags("train")[0][:2]] == \
        ["PROPN", "PUNCT"]
    assert len(upos.tags) == 17 and "PROPN" in upos.tags
    xpos = {tag for tags in read_conllu(UD_EWT / "en_ewt-ud-train.conllu.gz", "xpos").tags for tag in tags}
    assert len(xpos) == 49 and {"NN", "VBZ", "PRP$", "-LRB-"} <= xpos  # README: 49 seen
    # a multiword token ("don't", "can't", ...) reads as its words: "n't" is a word (PART / RB), "don't" never is
    train_words = {word for words in train for word in words}
    assert "n't" in train_words and "don't" not in train_words


@pytest.mark.skipif(not SNIPS.is_dir(), reason="../shared/data/snips is not here")
def test_snips_slots():
    data = SnipsSlotsDataModule(root=str(SNIPS))
    data.setup()
    assert (len(data.sentences("train")), len(data.sentences("val"))) == (13084, 700)  # README
    assert data.sentences("train")[0] == ["listen", "to", "westbam", "alumb", "allergic", "on", "google", "music"]
    assert [data.tags[k] for k in data.gold_tags("train")[0]] == ["O", "O", "B-artist", "O", "B-album", "O",
                                                                 "B-service", "I-service"]
    assert len(data.tags) == 72 and data.sentences("test") == data.sentences("val")


def test_ud_ewt_and_snips_slots_read_a_test_split_when_present(tmp_path):
    for name in ("train", "dev", "test"):
        write(tmp_path / "ud" / f"en_ewt-ud-{name}.conllu", CONLLU)
    assert UDEWTDataModule(root=str(tmp_path / "ud")).load_splits()["test"].words[1] == ["Yes"]
    for folder in ("train", "valid", "test"):
        write(tmp_path / "snips" / folder / "seq.in", "play jazz\n")
        write(tmp_path / "snips" / folder / "label", "PlayMusic\n")
        write(tmp_path / "snips" / folder / "seq.out", "O B-genre\n")
    assert SnipsSlotsDataModule(root=str(tmp_path / "snips")).load_splits()["test"].tags == [["O", "B-genre"]]
    (tmp_path / "snips" / "test" / "seq.out").unlink()
    with pytest.raises(DataError, match=r"holds seq.in, label but not seq.out: put all three there"):
        SnipsSlotsDataModule(root=str(tmp_path / "snips")).load_splits()
    with pytest.raises(DataError, match=r"^data=ud_ewt: 2 file\(s\) missing in .*; put en_ewt-ud-train.conllu or "
                                        r"en_ewt-ud-train.conllu.gz, en_ewt-ud-dev.conllu or"):
        UDEWTDataModule(root=str(tmp_path)).load_splits()


# -- configuration --------------------------------------------------------------------------------------------------


OPTIONS = {"synthetic_tagging": SyntheticTaggingDataModule, "ud_ewt": UDEWTDataModule,
           "snips_slots": SnipsSlotsDataModule, "conll": ConllDataModule}


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_each_yaml_sets_every_option_of_its_class_and_nothing_else(option):
    node = OmegaConf.load(CONF / "data" / f"{option}.yaml")
    cls = get_class(node._target_)
    assert cls is OPTIONS[option] and cls.option == option
    accepted = {name for c in cls.__mro__ if c.__dict__.get("__init__") and issubclass(c, TaggingDataModule)
                for name, parameter in inspect.signature(c.__init__).parameters.items()
                if name != "self" and parameter.kind is not parameter.VAR_KEYWORD}
    assert set(node) - {"_target_"} == accepted


# -- data=synthetic_tagging ----------------------------------------------------------------------------------------


SMALL = {"train_examples": 200, "val_examples": 50, "test_examples": 50}


def test_same_seeds_give_the_same_sentences_and_other_seeds_others():
    data, again, other = (SyntheticTaggingDataModule(**SMALL, seed=seed) for seed in (0, 0, 1))
    for module in (data, again, other):
        module.setup()
    assert data.sentences("train") == again.sentences("train") != other.sentences("train")
    assert data.gold_tags("val") == again.gold_tags("val") and data.sentences("val") != data.sentences("test")
    lengths = [len(words) for split in ("train", "val") for words in data.sentences(split)]
    assert min(lengths) == 5 and max(lengths) == 25
    assert data.optimal_accuracy("val") > data.left_to_right_optimal_accuracy("val") + 0.02
    with pytest.raises(ConfigError, match=r"data.tag_noise=0.5 is invalid: must be in \[0, 0.5\)"):
        SyntheticTaggingDataModule(tag_noise=0.5)
    with pytest.raises(ConfigError, match="data.min_words=9 is above data.max_words=8"):
        SyntheticTaggingDataModule(min_words=9, max_words=8)


def every_sentence(language: AmbiguityLanguage, length: int):
    """Every (words, tags, probability) the generator can write at this length: its own code, run once per sequence
    of choices (each choice's options enumerated in turn, depth first)."""
    def run(script: list[int]):
        choices: list[tuple[int, float]] = []  # (index, its probability)

        def choose(weights):
            k = script[len(choices)] if len(choices) < len(script) else 0
            choices.append((k, weights[k] / sum(weights), len(weights)))
            return k

        words, tags = language.generate(length, choose)
        return words, tags, choices

    pending = [[]]
    while pending:
        script = pending.pop()
        words, tags, choices = run(script)
        for depth in range(len(script), len(choices)):  # the untried options of each new choice
            pending += [[k for k, _, _ in choices[:depth]] + [option] for option in range(1, choices[depth][2])]
        probability = math.prod(p for _, p, _ in choices)
        if probability > 0:
            yield words, tags, probability


def test_both_optima_are_exact_over_every_sentence_the_generator_can_write():
    language = AmbiguityLanguage(ambiguous_share=0.5, max_distance=1, tag_noise=0.1,
                                 fillers={"the": "DET", "old": "ADJ"}, ambiguous={"duck": 0.7, "saw": 0.4})
    total = 0.0
    joint_sentence: dict[tuple, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    joint_prefix: dict[tuple, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    lengths = (2, 3, 4)
    for length in lengths:  # L uniform over the lengths
        for words, tags, p in every_sentence(language, length):
            total += p / len(lengths)
            for t, word in enumerate(words):
                if word in language.ambiguous:
                    joint_sentence[(tuple(words), t)][tags[t]] += p / len(lengths)
                    joint_prefix[tuple(words[: t + 1])][tags[t]] += p / len(lengths)
    assert total == pytest.approx(1)  # every sentence enumerated
    for (words, t), by_tag in joint_sentence.items():  # p(NOUN | sentence) = 1 − ε or ε, by the cue after it
        assert by_tag["NOUN"] / sum(by_tag.values()) == pytest.approx(language.p_noun(words, t, False))
    for prefix, by_tag in joint_prefix.items():  # p(NOUN | words up to it) = q_w, whatever came before
        assert by_tag["NOUN"] / sum(by_tag.values()) == pytest.approx(language.p_noun(prefix, len(prefix) - 1, True))
    assert len(joint_prefix) > 10 and len(joint_sentence) > 10
    assert language.p_noun(("saw",), 0, True) == pytest.approx(0.4 * 0.9 + 0.6 * 0.1)  # q_w = p_w (1 − ε) + (1 − p_w) ε
    assert language.best_accuracies(["the", "duck", "old", "is"], left_to_right=False) == [1, 0.9, 1, 1]
    assert language.best_accuracies(["saw", "quickly"], left_to_right=True) == [pytest.approx(0.58), 1]
    with pytest.raises(ValueError, match="has no cue after it"):
        language.p_noun(["the", "duck"], 1, False)
    assert all(len(words) == 3 for words, _, _ in itertools.islice(every_sentence(language, 3), 5))
