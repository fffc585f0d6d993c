"""Translation data: subwords that decode back to the raw text, batches in the agreed layout,
filtering that is counted, Multi30k read from the shared copy, and the synthetic pair's grammar."""

from __future__ import annotations

import gzip
import inspect
import json
import unicodedata

import lightning.pytorch as L
import pytest
import torch
from conftest import CONF, SHARED_DATA
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from rnnlab.data.download import DataError
from rnnlab.data.multi30k import Multi30kDataModule
from rnnlab.data.parallel_text import ParallelTextDataModule
from rnnlab.data.subwords import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Subwords, SubwordSettings
from rnnlab.data.synthetic_translation import (
    Clause,
    LanguagePair,
    NounPhrase,
    SyntheticTranslationDataModule,
)
from rnnlab.data.translation import TranslationDataModule
from rnnlab.errors import ConfigError

MULTI30K = SHARED_DATA / "multi30k"


def read_gz(name: str) -> list[str]:
    with gzip.open(MULTI30K / name, "rt", encoding="utf-8") as handle:
        return handle.read().split("\n")[:-1]


def normal(text: str) -> str:
    """The form the tokenizer normalises to: NFC, single spaces, no outer whitespace."""
    return " ".join(unicodedata.normalize("NFC", text).split())


@pytest.fixture(scope="module")
def multi30k_train() -> tuple[list[str], list[str]]:
    return read_gz("train.de.gz")[:3000], read_gz("train.en.gz")[:3000]


# -- subwords -----------------------------------------------------------------------------------


@pytest.mark.parametrize("tokenizer", ["bpe", "unigram"])
def test_decode_of_encode_gives_back_every_multi30k_validation_sentence(tokenizer, multi30k_train):
    settings = SubwordSettings(tokenizer=tokenizer, vocab_size=2000, joint_vocab=False)
    subwords = Subwords.train(*multi30k_train, settings)
    for language, encode in (("de", subwords.encode_sources), ("en", subwords.encode_targets)):
        sentences = read_gz(f"val.{language}.gz")
        ids = encode(sentences)
        side = subwords.source if language == "de" else subwords.target
        decoded = [side.decode(sentence_ids, skip_special_tokens=True) for sentence_ids in ids]
        unknown = [UNK_ID in side.encode(s).ids for s in sentences]  # a character never seen in training
        assert sum(unknown) < 10
        assert [(s, d) for s, d, u in zip(sentences, decoded, unknown) if d != normal(s) and not u] == []
        # pieces, not characters: 1.3-2.1 ids per word here (eos and punctuation included), ~6 for characters
        pieces_per_word = sum(map(len, ids)) / sum(len(s.split()) for s in sentences)
        assert 1.0 < pieces_per_word < 2.5, pieces_per_word


def test_whitespace_is_normalised_and_special_token_text_is_plain_text(multi30k_train):
    subwords = Subwords.train(*multi30k_train, SubwordSettings(vocab_size=1000))
    ids = subwords.encode_targets(["  Two   dogs\tplay.  "])[0]
    assert subwords.decode_target(ids) == "Two dogs play."
    typed = subwords.encode_source("a </s> b")
    assert typed.count(EOS_ID) == 1 and typed[-1] == EOS_ID  # the typed "</s>" is not an end of sentence
    assert subwords.encode_source("ʘ")[:-1] == [subwords.source.token_to_id("▁"), UNK_ID]


def test_special_ids_are_the_same_in_both_vocabularies(multi30k_train):
    subwords = Subwords.train(*multi30k_train, SubwordSettings(vocab_size=800, joint_vocab=False))
    assert subwords.source is not subwords.target
    for side in (subwords.source, subwords.target):
        assert [side.token_to_id(t) for t in ("<pad>", "<s>", "</s>", "<unk>")] == [PAD_ID, BOS_ID, EOS_ID, UNK_ID]
    assert subwords.src_vocab_size == subwords.tgt_vocab_size == 800
    assert subwords.source.token_to_id("▁Mann") is not None and subwords.target.token_to_id("▁Mann") is None


def test_decode_target_stops_at_eos_and_skips_pad_and_bos(multi30k_train):
    subwords = Subwords.train(*multi30k_train, SubwordSettings(vocab_size=1000))
    ids = subwords.encode_targets(["A dog runs."])[0]
    assert subwords.decode_target([BOS_ID, *ids, EOS_ID, *ids, PAD_ID]) == "A dog runs."
    assert subwords.decode_target(torch.tensor([BOS_ID, *ids, PAD_ID, PAD_ID])) == "A dog runs."


def test_state_rebuilds_identical_vocabularies_without_data(multi30k_train):
    for joint in (True, False):
        subwords = Subwords.train(*multi30k_train, SubwordSettings(vocab_size=1000, joint_vocab=joint))
        rebuilt = Subwords.from_state(json.loads(json.dumps(subwords.state())))
        assert (rebuilt.source is rebuilt.target) == joint
        text = "Ein Mann fährt Fahrrad."
        assert rebuilt.encode_source(text) == subwords.encode_source(text)
        ids = subwords.encode_targets(["A man rides a bike."])[0]
        assert rebuilt.decode_target(ids) == "A man rides a bike."


def test_cache_is_reused_for_the_same_data_and_settings_only(tmp_path, multi30k_train, monkeypatch):
    sources, targets = multi30k_train[0][:500], multi30k_train[1][:500]
    settings = SubwordSettings(vocab_size=600)
    first = Subwords.load_or_train(sources, targets, settings, tmp_path)
    assert len(list(tmp_path.glob("subwords-bpe-*.json"))) == 1

    def no_training(*args):
        raise AssertionError("trained although a cached vocabulary exists")

    with monkeypatch.context() as patch:
        patch.setattr(Subwords, "train", no_training)
        again = Subwords.load_or_train(sources, targets, settings, tmp_path)
    assert again.state() == first.state()
    Subwords.load_or_train(sources, [*targets[:-1], "A changed last sentence."], settings, tmp_path)
    Subwords.load_or_train(sources, targets, SubwordSettings(vocab_size=700), tmp_path)
    assert len(list(tmp_path.glob("subwords-bpe-*.json"))) == 3


def test_training_is_deterministic(multi30k_train):
    settings = SubwordSettings(vocab_size=1000)
    assert Subwords.train(*multi30k_train, settings).state() == Subwords.train(*multi30k_train, settings).state()


# -- parallel text: reading, filtering, batches -------------------------------------------------


def write_split(directory, split, pairs):
    (directory / f"{split}.src").write_text("".join(f"{s}\n" for s, _ in pairs), encoding="utf-8")
    (directory / f"{split}.tgt").write_text("".join(f"{t}\n" for _, t in pairs), encoding="utf-8")


def parallel_text(tmp_path, train, val, test=None, **options) -> ParallelTextDataModule:
    for split, pairs in (("train", train), ("val", val), ("test", test or val)):
        write_split(tmp_path, split, pairs)
    paths = {f"{split}_{side}": str(tmp_path / f"{split}.{side}") for split in ("train", "val", "test")
             for side in ("src", "tgt")}
    return ParallelTextDataModule(**paths, **{"tokenizer": "word", "min_frequency": 1, **options})


def toy_pairs(count: int, offset: int = 0) -> list[tuple[str, str]]:
    words = ["red", "blue", "cat", "dog", "sees", "runs", "big", "small"]
    pairs = []
    for i in range(offset, offset + count):
        length = 1 + i % 9
        source = " ".join(words[(i * 7 + k * 3) % len(words)] for k in range(length))
        pairs.append((source + ".", " ".join(w.upper() for w in reversed(source.split())) + "!"))
    return pairs


def test_batches_have_the_agreed_layout_and_index_their_raw_references(tmp_path):
    data = parallel_text(tmp_path, toy_pairs(300), toy_pairs(40, offset=300), batch_size=16, eval_batch_size=7)
    data.setup()
    assert data.task_inputs == {"src_vocab_size": data.subwords.src_vocab_size,
                                "tgt_vocab_size": data.subwords.tgt_vocab_size, "pad_id": 0, "bos_id": 1, "eos_id": 2}
    for split, loader in (("train", data.train_dataloader()), ("val", data.val_dataloader())):
        references, sources = data.references(split), data.sources(split)
        for batch in loader:
            src, lengths, tgt_in, tgt_out = batch["src"], batch["src_lengths"], batch["tgt_in"], batch["tgt_out"]
            assert src.dtype == tgt_in.dtype == tgt_out.dtype == batch["index"].dtype == torch.long
            assert src.shape[0] == tgt_in.shape[0] == lengths.shape[0] == batch["index"].shape[0]
            assert tgt_in.shape == tgt_out.shape
            assert int(lengths.max()) == src.shape[1]
            for row, index in enumerate(batch["index"].tolist()):
                length = int(lengths[row])
                assert src[row, length - 1] == EOS_ID and (src[row, length:] == PAD_ID).all()
                assert not ((src[row, : length - 1] == EOS_ID) | (src[row, : length - 1] == PAD_ID)).any()
                target_length = int((tgt_out[row] != PAD_ID).sum())
                assert tgt_in[row, 0] == BOS_ID and tgt_out[row, target_length - 1] == EOS_ID
                assert torch.equal(tgt_in[row, 1:target_length], tgt_out[row, : target_length - 1])
                assert (tgt_in[row, target_length:] == PAD_ID).all()
                assert data.decode_target(tgt_out[row].tolist()) == references[index]
                assert data.encode_source(sources[index]) == src[row, :length].tolist()


def test_mismatched_line_counts_name_both_files_and_counts(tmp_path):
    data = parallel_text(tmp_path, toy_pairs(20), toy_pairs(5))
    (tmp_path / "val.tgt").write_text("one\ntwo\nthree\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"{tmp_path}/val.src has 5 lines but {tmp_path}/val.tgt has 3"):
        data.setup()


def test_training_pairs_empty_or_too_long_are_dropped_and_counted_eval_pairs_never(tmp_path, caplog):
    long = " ".join(["dog"] * 12)
    train = [*toy_pairs(30), ("", "EMPTY"), ("empty", "   "), (long, "LONG"), ("long", long), ("ok", "OK")]
    val = [*toy_pairs(5), (long + ".", long.upper() + "!"), ("", "")]
    caplog.set_level("INFO")
    data = parallel_text(tmp_path, train, val, max_length=10)
    data.setup()
    assert data.filter_report["train"] == {"available": 35, "pairs": 35, "empty": 2, "too_long": 2, "kept": 31}
    assert data.filter_report["val"] == {"available": 7, "pairs": 7, "empty": 1, "truncated": 1, "kept": 7}
    assert "train: 35 pairs, kept 31; dropped 4: 2 with an empty side, 2 longer than data.max_length=10" in caplog.text
    assert "val: 7 pairs, all kept; 1 truncated" in caplog.text
    assert data.sources("train") == [s for s, _ in toy_pairs(30)] + ["ok"]
    assert data.references("val") == [t for _, t in val]  # raw and whole, the long one included
    lengths = {int(i): int(n) for b in data.val_dataloader() for i, n in zip(b["index"], b["src_lengths"])}
    assert lengths[5] == 10 + 1 and lengths[6] == 1  # truncated to max_length + eos; empty = eos alone


def test_subset_options_take_the_first_pairs(tmp_path):
    data = parallel_text(tmp_path, toy_pairs(50), toy_pairs(20), max_train_pairs=12, max_eval_pairs=4)
    assert data.references("train") == [t for _, t in toy_pairs(12)]
    assert data.sources("test") == [s for s, _ in toy_pairs(4)]
    assert data.filter_report["train"]["available"] == 50 and data.filter_report["train"]["pairs"] == 12


def test_training_batches_cover_each_pair_once_bucketed_and_reshuffled_by_epoch(tmp_path):
    data = parallel_text(tmp_path, toy_pairs(2000), toy_pairs(10), batch_size=20)
    loader = data.train_dataloader()
    sampler = loader.batch_sampler

    def epoch(number: int) -> list[list[int]]:
        sampler.sampler.set_epoch(number)
        return [batch["index"].tolist() for batch in loader]

    first, again, second = epoch(0), epoch(0), epoch(1)
    assert first == again and first != second
    for batches in (first, second):
        assert sorted(i for batch in batches for i in batch) == list(range(2000))
        assert max(map(len, batches)) == 20 and len(sampler) == len(batches)
    # a fresh module with the same seed repeats the order; another seed does not
    assert [b["index"].tolist() for b in parallel_text(tmp_path, toy_pairs(2000), toy_pairs(10),
                                                       batch_size=20).train_dataloader()] == first
    assert [b["index"].tolist() for b in parallel_text(tmp_path, toy_pairs(2000), toy_pairs(10), batch_size=20,
                                                       seed=1).train_dataloader()] != first

    # length buckets pad far less than batches of the same size taken in shuffled order
    lengths = sampler.lengths
    padded = sum(len(b) * max(lengths[b]) for b in first)
    shuffled = torch.randperm(2000, generator=torch.Generator().manual_seed(0)).tolist()
    padded_random = sum(20 * max(lengths[shuffled[i: i + 20]]) for i in range(0, 2000, 20))
    assert padded < 0.7 * padded_random, (padded, padded_random, lengths.sum())


def test_token_budget_caps_padded_tokens_per_batch(tmp_path):
    data = parallel_text(tmp_path, toy_pairs(600), toy_pairs(10), batch_size=100, max_tokens=60)
    batches = [batch for batch in data.train_dataloader()]
    assert sorted(i for b in batches for i in b["index"].tolist()) == list(range(600))
    for batch in batches:
        padded = len(batch["index"]) * max(batch["src"].shape[1], batch["tgt_in"].shape[1])
        assert padded <= 60
    assert {len(b["index"]) for b in batches} > {6}  # short pairs come in bigger batches than long ones


def test_evaluation_batches_have_a_fixed_longest_first_order(tmp_path):
    data = parallel_text(tmp_path, toy_pairs(50), toy_pairs(45), eval_batch_size=10)
    orders = [[b["index"].tolist() for b in data.val_dataloader()] for _ in range(2)]
    assert orders[0] == orders[1] and [len(b) for b in orders[0]] == [10, 10, 10, 10, 5]
    lengths = [n for b in data.val_dataloader() for n in b["src_lengths"].tolist()]
    assert lengths == sorted(lengths, reverse=True)
    assert sorted(i for b in orders[0] for i in b) == list(range(45))


@pytest.mark.filterwarnings("ignore:You passed in a `val_dataloader` but have no `validation_step`")
def test_lightning_reshuffles_training_batches_every_epoch(tmp_path):
    class Recorder(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.orders: dict[int, list[list[int]]] = {}

        def training_step(self, batch, batch_index):
            self.orders.setdefault(self.current_epoch, []).append(batch["index"].tolist())
            return self.weight * batch["src"].float().mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = parallel_text(tmp_path, toy_pairs(200), toy_pairs(10), batch_size=32)
    recorder = Recorder()
    L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, limit_val_batches=0).fit(recorder, datamodule=data)
    assert recorder.orders[0] != recorder.orders[1]
    assert all(sorted(i for b in order for i in b) == list(range(200)) for order in recorder.orders.values())


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["multi30k", "parallel_text", "synthetic_translation"])
def test_each_yaml_sets_every_option_of_its_class_and_nothing_else(option):
    node = OmegaConf.load(CONF / "data" / f"{option}.yaml")
    cls = get_class(node._target_)
    accepted = {name for c in (cls, TranslationDataModule)
                for name, parameter in inspect.signature(c.__init__).parameters.items()
                if name != "self" and parameter.kind is not parameter.VAR_KEYWORD}
    assert set(node) - {"_target_"} == accepted


def test_composed_configs_instantiate(make_cfg, tmp_path):
    cfg = make_cfg("data=synthetic_translation", "data.train_pairs=200", "data.val_pairs=20", "data.test_pairs=20",
                   f"data.cache_dir={tmp_path / 'cache'}", tiny=False)
    data = instantiate(cfg.data)
    assert isinstance(data, SyntheticTranslationDataModule) and len(data.sources("train")) == 200
    assert len(list((tmp_path / "cache").glob("subwords-word-*.json"))) == 1
    cfg = make_cfg("data=multi30k", tiny=False)
    assert cfg.data.root == f"{cfg.paths.data_dir}/multi30k" and cfg.data.cache_dir == f"{cfg.paths.data_dir}/cache"
    cfg = make_cfg("data=multi30k", f"data.root={MULTI30K}", "data.src_lang=en", "data.tgt_lang=de", tiny=False)
    data = instantiate(cfg.data)
    assert (data.root, data.src_lang, data.tgt_lang, data.settings.vocab_size) == (MULTI30K, "en", "de", 8000)


# -- bad configuration --------------------------------------------------------------------------


def test_missing_or_unset_paths_name_the_key(tmp_path):
    write_split(tmp_path, "train", toy_pairs(3))
    paths = {f"{split}_{side}": str(tmp_path / f"train.{side}") for split in ("train", "val", "test")
             for side in ("src", "tgt")}
    with pytest.raises(DataError, match=r"^data\.val_tgt=.*/nope\.en does not exist \(resolved to .*\): give the"):
        ParallelTextDataModule(**{**paths, "val_tgt": str(tmp_path / "nope.en")})
    with pytest.raises(DataError, match=r"^data\.test_src is not set: give the path of the test split's source"):
        ParallelTextDataModule(**{**paths, "test_src": None})


@pytest.mark.parametrize(("options", "message"), [
    ({"vocab_size": 5}, r"data\.vocab_size=5 is invalid: must be an integer ≥ 10"),
    ({"tokenizer": "sentencepiece"}, r"data\.tokenizer='sentencepiece' is invalid: choose one of bpe, unigram, word"),
    ({"batch_size": 0}, r"data\.batch_size=0 is invalid: must be a positive integer"),
    ({"max_tokens": -5}, r"data\.max_tokens=-5 is invalid: must be a positive integer or null"),
    ({"vocab_sise": 800}, r"data\.vocab_sise is not an option of data=multi30k; valid: root, src_lang, .*vocab_size"),
    ({"src_lang": "en"}, r"data\.src_lang and data\.tgt_lang are both 'en': pick two different languages"),
    ({"tgt_lang": "xx"}, r"data\.tgt_lang='xx' is invalid: Multi30k task 1 has de, en, fr, cs"),
])
def test_bad_values_are_one_line_errors_naming_the_key(options, message):
    with pytest.raises(ConfigError, match=message) as error:
        Multi30kDataModule(root=str(MULTI30K), **options)
    assert "\n" not in str(error.value)


def test_synthetic_length_range_is_checked():
    with pytest.raises(ConfigError, match=r"data\.min_words=3 is invalid with data\.max_words=30: need 5 <="):
        SyntheticTranslationDataModule(min_words=3)


# -- Multi30k from the shared copy --------------------------------------------------------------


def test_multi30k_splits_references_and_vocabulary_from_the_training_split(tmp_path):
    data = Multi30kDataModule(root=str(MULTI30K), download=False, max_train_pairs=2000, vocab_size=2000,
                              cache_dir=str(tmp_path))
    data.prepare_data()
    data.setup("fit")
    assert {split: data.filter_report[split]["available"] for split in ("train", "val", "test")} == {
        "train": 29000, "val": 1014, "test": 1000}
    assert data.filter_report["train"]["kept"] == 2000 and data.filter_report["test"]["truncated"] == 0
    assert data.references("test") == read_gz("test_2016_flickr.en.gz")
    assert data.sources("test") == read_gz("test_2016_flickr.de.gz")
    assert data.sources("train") == read_gz("train.de.gz")[:2000]
    # the vocabulary is exactly the one trained on these 2000 training pairs, and was cached
    trained = Subwords.train(data.sources("train"), data.references("train"), data.subwords.settings)
    assert data.tokenizer_state() == trained.state()
    assert len(list(tmp_path.glob("subwords-bpe-*.json"))) == 1
    # every reference comes back from its ids; the test split is scored as a whole
    references = {int(i): data.decode_target(row.tolist()) for batch in data.test_dataloader()
                  for i, row in zip(batch["index"], batch["tgt_out"])}
    assert len(references) == 1000
    unknown = sum(UNK_ID in data.subwords.target.encode(r).ids for r in data.references("test"))
    assert sum(references[i] == normal(r) for i, r in enumerate(data.references("test"))) >= 1000 - unknown


def test_multi30k_direction_follows_the_languages(tmp_path):
    data = Multi30kDataModule(root=str(MULTI30K), download=False, src_lang="en", tgt_lang="de", max_train_pairs=300,
                              max_eval_pairs=50, vocab_size=500, cache_dir=None)
    assert data.sources("val") == read_gz("val.en.gz")[:50]
    assert data.references("val") == read_gz("val.de.gz")[:50]


# -- the synthetic pair -------------------------------------------------------------------------


def test_synthetic_target_grammar_reorders_as_documented():
    pair = LanguagePair(grammar_seed=1234)
    clause = Clause(subject=NounPhrase("the", "man", ["old"]), verb="painted", object=NounPhrase("a", "boat", ["red"]),
                    place=("in", NounPhrase("the", "park")), clock=("8:00", "a.m."), day=("today",))
    assert " ".join(pair.source_words(clause)) == "the old man painted a red boat in the park at 8:00 a.m. today"
    word, det, gender = pair.lexicon, pair.determiners, pair.gender

    def adjective(stem: str, noun: str) -> str:  # agrees with its noun's gender
        return pair.adjective_stems[stem] + pair.endings[gender[noun]]

    assert pair.target_words(clause) == [
        word["today"], word["at"], "8:00", word["a.m."],  # time first, day before clock
        det["the", gender["man"]], word["man"], adjective("old", "man"),  # subject: noun before adjective
        det["the", gender["park"]], word["park"], word["in"],  # place, with a postposition
        det["a", gender["boat"]], word["boat"], adjective("red", "boat"),  # object
        word["painted"],  # verb last
    ]
    assert len({gender[n] for n in gender}) == 2 and len(set(word.values())) == len(word)


def test_synthetic_pairs_are_seeded_and_of_the_configured_lengths():
    def make(seed):
        return SyntheticTranslationDataModule(train_pairs=1500, val_pairs=300, test_pairs=300, min_words=5,
                                              max_words=12, seed=seed, cache_dir=None)

    first, same, other = make(0), make(0), make(1)
    assert first.sources("train") == same.sources("train") and first.references("test") == same.references("test")
    assert first.sources("train") != other.sources("train")
    lengths = [len(s.split()) for s in first.sources("train")]
    assert set(lengths) == set(range(5, 13))
    overlap = set(first.sources("val")) & set(first.sources("train"))
    assert len(overlap) < 10  # independent streams; only short sentences can coincide by chance
    assert all(s.endswith(".") and r.endswith(".") for s, r in zip(first.sources("val"), first.references("val")))
    # whole words as tokens, and every reference decodes back exactly
    batch = next(iter(first.val_dataloader()))
    for index, row in zip(batch["index"].tolist(), batch["tgt_out"]):
        assert first.decode_target(row.tolist()) == first.references("val")[index]
    assert first.subwords.src_vocab_size < 400
