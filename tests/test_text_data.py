"""Real-text corpora: vocabularies, <unk>, deterministic splits, the shared corpus, clear errors."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rnnlab.data import text as text_module
from rnnlab.data.corpora import PTB, WIKITEXT2, PTBDataModule, TinyShakespeareDataModule, WikiText2DataModule
from rnnlab.data.download import DataError, file_hash
from rnnlab.data.text import EOS, UNK, TextDataModule, build_tokenizer, from_state, split_by_fractions
from rnnlab.errors import ConfigError

ODD = "Ünïcödé ½ — ﬁ 𝔘𝔫𝔦 👩‍👩‍👧 e\u0301 \u202eRTL\u202c 日本語 \x00 tab\there\r\nCRLF \u2028 end"
# a "word" at word level: anything without whitespace (Unicode's White_Space is within these categories)
WORD = st.text(st.characters(blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cs")), min_size=1, max_size=8)
GAP = st.sampled_from([" ", "  ", "\t", "\u3000", " \t "])


# --- tokenizers -------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1))
def test_char_round_trip_on_any_unicode(text):
    tokenizer = build_tokenizer("char", text)
    ids = tokenizer.encode(text)
    assert len(ids) == len(text)
    assert tokenizer.unk_id not in ids
    assert tokenizer.decode(ids) == text
    assert tokenizer.vocab_size == len(set(text)) + 1  # every character, and <unk>


def test_char_round_trip_on_odd_unicode_and_unknown_characters():
    tokenizer = build_tokenizer("char", ODD)
    assert tokenizer.decode(tokenizer.encode(ODD)) == ODD
    assert tokenizer.eos_id is None and tokenizer.vocab[tokenizer.unk_id] == UNK
    # characters never seen in training are <unk>, the rest keep their ids
    ids = tokenizer.encode("ŝ€t")
    assert ids == [tokenizer.unk_id, tokenizer.unk_id, tokenizer.vocab.index("t")]
    assert tokenizer.decode(ids) == "<unk><unk>t"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(WORD.filter(lambda w: w not in (UNK, EOS)), max_size=6), min_size=1, max_size=5), st.data())
def test_word_round_trip_up_to_whitespace(lines, data):
    assume(any(lines))
    text = "\n".join(data.draw(GAP) * data.draw(st.booleans()) + data.draw(GAP).join(words)
                     + data.draw(GAP) * data.draw(st.booleans()) for words in lines)
    tokenizer = build_tokenizer("word", text)
    ids = tokenizer.encode(text)
    assert tokenizer.unk_id not in ids
    assert ids.count(tokenizer.eos_id) == len(lines) - 1  # one <eos> per newline
    assert tokenizer.decode(ids) == "\n".join(" ".join(words) for words in lines)


def test_word_vocabulary_unk_min_frequency_and_size():
    train = "the cat saw the dog\nthe cat ran\nbird"
    tokenizer = build_tokenizer("word", train, min_frequency=2)
    assert tokenizer.vocab == [UNK, EOS, "the", "cat"]  # by count: the ×3, cat ×2; rarer words are out
    ids = tokenizer.encode("the bird saw\nzebra")
    assert ids == [2, 0, 0, 1, 0]
    assert tokenizer.decode(ids) == "the <unk> <unk>\n<unk>"
    assert build_tokenizer("word", train, max_vocab_size=3).vocab == [UNK, EOS, "the"]
    # ties are broken in code-point order, so the vocabulary is the same on every run
    assert build_tokenizer("word", "b a c b a c").vocab == [UNK, EOS, "a", "b", "c"]
    # a literal <unk> in the text (PTB, WikiText) is the <unk> token, never a second entry
    tokenizer = build_tokenizer("word", "a <unk> b <unk> <unk>")
    assert tokenizer.vocab.count(UNK) == 1 and tokenizer.encode("<unk> a") == [0, tokenizer.vocab.index("a")]


@pytest.mark.parametrize("level", ["char", "word"])
def test_tokenizer_state_is_json_and_rebuilds_encode_decode(level):
    tokenizer = build_tokenizer(level, "To be, or not to be:\nthat is the question. " + ODD)
    state = json.loads(json.dumps(tokenizer.state()))  # as it would come back from a checkpoint
    rebuilt = from_state(state)
    sample = "that is not the question:\nTo be 𝔘 or ?"
    assert rebuilt.encode(sample) == tokenizer.encode(sample)
    assert rebuilt.decode(tokenizer.encode(sample)) == tokenizer.decode(tokenizer.encode(sample))
    assert (rebuilt.level, rebuilt.unk_id, rebuilt.eos_id) == (tokenizer.level, tokenizer.unk_id, tokenizer.eos_id)


# --- splits -----------------------------------------------------------------------------------
def test_char_splits_are_contiguous_cuts_at_the_fractions():
    text = "".join(chr(0x41 + i % 50) for i in range(1000))
    splits = split_by_fractions(text, {"train": 0.7, "val": 0.2, "test": 0.1}, "char")
    assert splits == {"train": text[:700], "val": text[700:900], "test": text[900:]}
    # fractions below 1: the gap between val and test is unused; no test fraction: no test split
    assert split_by_fractions(text, {"train": 0.5, "val": 0.2, "test": 0.1}, "char")["test"] == text[900:]
    assert set(split_by_fractions(text, {"train": 0.9, "val": 0.1, "test": 0.0}, "char")) == {"train", "val"}


def test_word_splits_never_cut_a_word():
    text = " ".join(f"word{i}" for i in range(300))
    splits = split_by_fractions(text, {"train": 0.6, "val": 0.25, "test": 0.15}, "word")
    assert "".join(splits.values()) == text
    cut = math.floor(0.6 * len(text))
    assert len(splits["train"]) >= cut and splits["val"][0] == " "
    assert all(re.fullmatch(r"(\s*word\d+)+\s*", part) for part in splits.values())


def write(path, text: str, encoding: str = "utf-8"):
    path.write_bytes(text.encode(encoding))
    return str(path)


@pytest.mark.parametrize("level", ["char", "word"])
def test_one_file_splits_are_deterministic(level, tmp_path):
    corpus = write(tmp_path / "corpus.txt", "\n".join(f"line {i} says {i % 7} things" for i in range(400)))
    streams = []
    for _ in range(2):
        data = TextDataModule(path=corpus, level=level, batch_size=4, eval_batch_size=2, bptt=8,
                              cache_dir=str(tmp_path / "cache"))
        data.setup()
        streams.append(data.streams)
    for split in ("train", "val", "test"):
        assert torch.equal(streams[0][split], streams[1][split])
    text = (tmp_path / "corpus.txt").read_text()
    if level == "char":  # the three streams decode back to the file, in order
        assert "".join(data.decode(streams[0][s]) for s in ("train", "val", "test")) == text


def test_text_files_serve_bptt_windows_like_synthetic_lm(tmp_path):
    train = write(tmp_path / "train.txt", "the cat sat on the mat\n" * 40 + "a dog\n")
    val = write(tmp_path / "val.txt", "the dog sat on the cat\n" * 10 + "an unseen zebra\n")
    data = TextDataModule(train_path=train, val_path=val, level="word", batch_size=4, eval_batch_size=2, bptt=5)
    data.setup("fit")
    assert data.task_inputs == {"vocab_size": data.vocab_size} and data.level == "word"
    assert data.vocab[:2] == [UNK, EOS] and "zebra" not in data.vocab  # built on the training split only
    assert data.encode("an unseen zebra") == [data.unk_id] * 3
    batch = next(iter(data.train_dataloader()))
    assert set(batch) == {"inputs", "targets"} and batch["inputs"].shape == (4, 5)
    assert torch.equal(batch["targets"][:, :-1], batch["inputs"][:, 1:])
    assert batch["inputs"].dtype == torch.long
    # rows are contiguous cuts of the stream (streams.batchify), read left to right
    rows = data.splits["train"].tokens
    assert torch.equal(rows.reshape(-1), data.streams["train"][: rows.numel()])
    # no test file: the test split is the validation split
    assert torch.equal(data.splits["test"].tokens, data.splits["val"].tokens)
    assert data.decode(data.streams["val"][:7]) == "the dog sat on the cat\n"


def test_vocabulary_is_cached_by_data_and_settings(tmp_path, monkeypatch):
    corpus = write(tmp_path / "corpus.txt", "one two two three three three\n" * 50)
    cache = tmp_path / "cache"

    def make(**settings):
        data = TextDataModule(path=corpus, level="word", batch_size=2, eval_batch_size=2, bptt=4,
                              cache_dir=str(cache), **settings)
        data.setup()
        return data

    first = make()
    assert len(list(cache.glob("*.json"))) == 1
    monkeypatch.setattr(text_module, "build_tokenizer", lambda *a, **k: pytest.fail("rebuilt despite the cache"))
    assert make().vocab == first.vocab  # read back from disk
    monkeypatch.undo()
    assert make(min_frequency=60).vocab == [UNK, EOS, "three", "two"]  # other settings: another entry
    assert len(list(cache.glob("*.json"))) == 2


# --- the shared tinyshakespeare corpus --------------------------------------------------------
def test_tinyshakespeare_through_the_loader_from_the_shared_copy():
    root = SHARED_DATA / "tinyshakespeare"
    data = TinyShakespeareDataModule(root=str(root), download=False, batch_size=8, eval_batch_size=4, bptt=50,
                                     cache_dir=None)
    data.setup()
    text = (root / "input.txt").read_text(encoding="utf-8")
    cut = int(0.9 * len(text))  # the usual split: first 90% train, last 10% val
    assert data.level == "char" and data.eos_id is None
    assert data.vocab_size == 66  # 65 characters and <unk>
    assert data.decode(data.streams["train"]) == text[:cut]
    assert data.decode(data.streams["val"]) == text[cut:]
    assert torch.equal(data.splits["test"].tokens, data.splits["val"].tokens)  # test = val, documented
    batch = next(iter(data.val_dataloader()))
    assert batch["inputs"].shape == (4, 50)
    assert data.decode(data.splits["train"].tokens[0, :15]) == "First Citizen:\n"


def test_tinyshakespeare_test_fraction_cuts_from_the_end():
    data = TinyShakespeareDataModule(root=str(SHARED_DATA / "tinyshakespeare"), download=False, train_fraction=0.8,
                                     val_fraction=0.1, test_fraction=0.1, cache_dir=None)
    data.setup()
    lengths = {split: data.streams[split].numel() for split in ("train", "val", "test")}
    assert lengths["train"] == int(0.8 * 1115394) and sum(lengths.values()) == 1115394


# --- errors -----------------------------------------------------------------------------------
def setup_error(**settings) -> str:
    with pytest.raises(ConfigError) as error:
        TextDataModule(**settings).setup()
    message = str(error.value)
    assert "\n" not in message
    return message


def test_errors_name_the_key_the_value_and_the_fix(tmp_path):
    good = write(tmp_path / "good.txt", "some words here\n" * 20)
    assert re.search(r"data.train_path=.*missing.txt: no such file", setup_error(
        train_path=str(tmp_path / "missing.txt"), val_path=good))
    empty = write(tmp_path / "empty.txt", "")
    assert re.search(r"data.val_path=.*empty.txt is empty", setup_error(train_path=good, val_path=empty))
    blank = write(tmp_path / "blank.txt", "  \n\n ")
    assert "holds no text" in setup_error(train_path=good, val_path=blank)
    message = setup_error(train_path=good, val_path=good, min_frequency=100)
    assert message.startswith("data.min_frequency=100 leaves no word") and "lower data.min_frequency" in message
    assert "data.max_vocab_size=2 is invalid" in setup_error(train_path=good, val_path=good, max_vocab_size=2)
    message = setup_error(train_path=good, val_path=good, batch_size=1000)
    assert message.startswith("data.batch_size=1000 is too large for the train split") and "lower" in message
    message = setup_error(path=good, train_fraction=0.8, val_fraction=0.3, test_fraction=0.1)
    assert "data.train_fraction=0.8 + data.val_fraction=0.3 + data.test_fraction=0.1 = 1.2 > 1" in message
    assert "data.val_fraction=0 is invalid" in setup_error(path=good, val_fraction=0)
    assert "both set" in setup_error(path=good, train_path=good)
    assert setup_error().startswith("data.train_path and data.val_path not set: data=text needs")
    assert setup_error(train_path=good).startswith("data.val_path not set")
    assert "data.level='bytes' is invalid: choose char or word" in setup_error(path=good, level="bytes")
    assert "data.encoding='klingon' is not a known text encoding" in setup_error(path=good, encoding="klingon")


def test_undecodable_bytes_report_file_and_offset(tmp_path):
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café au lait\n".encode("latin-1") * 30)
    message = setup_error(path=str(latin), level="char")
    assert re.search(r"data.path=.*latin.txt: bytes at offset 3 \(e9\) are not valid utf-8", message)
    assert "data.encoding" in message
    data = TextDataModule(path=str(latin), level="char", encoding="latin-1", batch_size=2, eval_batch_size=2)
    data.setup()
    assert "é" in data.vocab


def test_corpora_offline_say_which_files_and_where(tmp_path):
    for module, files in ((PTBDataModule, list(PTB.values())), (WikiText2DataModule, [WIKITEXT2])):
        with pytest.raises(DataError) as error:
            module(root=str(tmp_path / "none"), download=False).setup()
        message = str(error.value)
        assert "\n" not in message and str(tmp_path / "none") in message and "data.root" in message
        for file in files:
            assert f"{file.name} from {file.url}" in message


def test_corrupt_download_is_refused(tmp_path):
    for file in PTB.values():
        write(tmp_path / file.name, "not the penn treebank\n")
    with pytest.raises(DataError, match=r"does not match its pinned checksum md5:"):
        PTBDataModule(root=str(tmp_path), download=False).setup()


def test_wikitext2_reads_an_extracted_copy(tmp_path):
    folder = tmp_path / "wikitext-2"
    folder.mkdir()
    article = " \n = Valkyria Chronicles = \n \n The game 's <unk> began in 2010 . \n"
    for name in ("train", "valid", "test"):
        write(folder / f"wiki.{name}.tokens", article * 30)
    data = WikiText2DataModule(root=str(tmp_path), download=False, batch_size=2, eval_batch_size=2)
    data.setup()
    assert data.vocab[:2] == [UNK, EOS] and data.vocab.count(UNK) == 1
    stream = data.streams["train"][:16].tolist()
    assert stream[0] == data.eos_id  # the blank first line is one <eos>, as in the usual recipe
    assert data.decode(stream) == "\n= Valkyria Chronicles =\n\nThe game 's <unk> began in 2010 .\n"


def test_the_shared_corpus_matches_the_pinned_checksum():
    from rnnlab.data.corpora import TINYSHAKESPEARE

    algorithm, _, digest = TINYSHAKESPEARE.known_hash.partition(":")
    assert file_hash(SHARED_DATA / "tinyshakespeare" / "input.txt", algorithm) == digest


def test_trains_unchanged_under_task_lm(make_cfg, tmp_path):
    from rnnlab.training import train

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    lines = [" ".join(rng.choice(words, size=rng.integers(3, 9))) for _ in range(1500)]
    corpus = write(tmp_path / "corpus.txt", "\n".join(lines))
    cfg = make_cfg("data=text", f"data.path={corpus}", "data.batch_size=8", "data.eval_batch_size=4",
                   "data.bptt=16", f"data.cache_dir={tmp_path / 'cache'}", "model.embedding_size=16",
                   "model.hidden_size=16", "model.num_layers=1", "trainer.max_epochs=1", "logger=none",
                   "callbacks=none", "+trainer.enable_model_summary=false", tiny=False)
    metrics = train(cfg)
    assert math.isfinite(metrics["val/loss"]) and metrics["val/loss"] < math.log(32)  # below uniform
    assert metrics["test/ppl"] == pytest.approx(math.exp(metrics["test/loss"]), rel=1e-5)


def test_a_small_corpus_in_many_long_streams_is_warned_about_naming_the_keys(tmp_path, caplog):
    train = write(tmp_path / "train.txt", "the cat sat on the mat\n" * 40)  # 280 tokens
    val = write(tmp_path / "val.txt", "the cat sat\n")
    # 280 tokens in 4 streams of 70 = 14 windows of 5
    few = TextDataModule(train_path=train, val_path=val, level="word", batch_size=4, eval_batch_size=2, bptt=5)
    few.setup("fit")
    with caplog.at_level("WARNING", logger="rnnlab.data.streams"):
        few.train_dataloader()
        few.train_dataloader()  # once per data module
    assert caplog.messages == ["the training split gives 14 optimizer steps per epoch (280 tokens in data.batch_size=4 "
                               "streams, data.bptt=5 tokens per step): a model learns slowly from so few; for a small "
                               "corpus lower data.batch_size (e.g. 8) and data.bptt (e.g. 35) or raise "
                               "trainer.max_epochs"]
    caplog.clear()
    enough = TextDataModule(train_path=train, val_path=val, level="word", batch_size=1, eval_batch_size=2, bptt=2)
    enough.setup("fit")
    with caplog.at_level("WARNING", logger="rnnlab.data.streams"):
        enough.train_dataloader()
    assert caplog.messages == []
