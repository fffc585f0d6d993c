"""Subword vocabularies for translation: trained on the training split, cached, reversible.

A `Subwords` holds one Hugging Face tokenizer per side (the same object for both when the
vocabulary is joint) and turns raw sentences into ids and target ids back into plain text:

    raw text ──NFC, collapse whitespace──▶ "Ein Mann fährt." ──Metaspace──▶ "▁Ein▁Mann▁fährt."
             ──split off punctuation──▶ ▁Ein | ▁Mann | ▁fährt | .  ──BPE / unigram / word──▶ ids

Spaces survive as the "▁" that starts a word, so the Metaspace decoder rebuilds the sentence
exactly: decode(encode(s)) == s for any text already in normal form (one space between words, no
leading or trailing space, NFC), and a sacreBLEU score of the decoded output is a score against
the raw references. Punctuation is split off before the subword model sees a word (as
SentencePiece does between Unicode script classes), so "bike." never becomes a piece "e.".

Ids 0–3 are the special tokens in every vocabulary, so a model can rely on them without looking:
pad=0, bos=1, eos=2, unk=3.

Training is deterministic given the texts and settings, and slow enough (≈1.5 s BPE, ≈6 s unigram
on Multi30k's 29k pairs with 2 cores) to cache: `load_or_train` keys the cache file by a sha256 of
the training texts, the settings and the tokenizers version, so a changed corpus, subset or
setting trains a new vocabulary and never reuses a stale one. `state()` / `from_state()` carry a
vocabulary inside a checkpoint, so translating needs no data at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from rnnlab.errors import ConfigError

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
TOKENIZER_MODELS = ("bpe", "unigram", "word")
STATE_VERSION = 1


@dataclass(frozen=True)
class SubwordSettings:
    """How to build the vocabularies. Field names are the `data.*` keys that set them."""

    tokenizer: str = "bpe"  # bpe | unigram | word (whole words, for the synthetic pair)
    vocab_size: int = 8000  # per vocabulary; an upper bound (a small corpus may give fewer)
    joint_vocab: bool = True  # one vocabulary for both sides, trained on source + target text
    min_frequency: int = 2  # bpe: a merge must occur this often; word: a word must

    def __post_init__(self) -> None:
        if self.tokenizer not in TOKENIZER_MODELS:
            raise ConfigError(f"data.tokenizer={self.tokenizer!r} is invalid: choose one of "
                              f"{', '.join(TOKENIZER_MODELS)}")
        if not isinstance(self.vocab_size, int) or self.vocab_size < 10:
            raise ConfigError(f"data.vocab_size={self.vocab_size} is invalid: must be an integer ≥ 10 "
                              f"(4 special tokens plus the pieces), e.g. data.vocab_size=8000")
        if not isinstance(self.joint_vocab, bool):
            raise ConfigError(f"data.joint_vocab={self.joint_vocab!r} is invalid: must be true or false")
        if not isinstance(self.min_frequency, int) or self.min_frequency < 1:
            raise ConfigError(f"data.min_frequency={self.min_frequency} is invalid: must be a positive integer")


def _empty_tokenizer(settings: SubwordSettings) -> tuple[Tokenizer, trainers.Trainer]:
    common = dict(vocab_size=settings.vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    if settings.tokenizer == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
        trainer = trainers.BpeTrainer(min_frequency=settings.min_frequency, **common)
    elif settings.tokenizer == "unigram":
        tokenizer = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(unk_token="<unk>", **common)
    else:
        tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
        trainer = trainers.WordLevelTrainer(min_frequency=settings.min_frequency, **common)
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation(behavior="isolated")])
    tokenizer.decoder = decoders.Metaspace()
    return tokenizer, trainer


def _loaded(tokenizer: Tokenizer) -> Tokenizer:
    # "</s>" typed by a user is text, not an end of sentence (not serialised, so set on every load)
    tokenizer.encode_special_tokens = True
    for token_id, token in enumerate(SPECIAL_TOKENS):
        if tokenizer.token_to_id(token) != token_id:
            raise ValueError(f"vocabulary has {token!r} at id {tokenizer.token_to_id(token)}, expected {token_id}")
    return tokenizer


class Subwords:
    """Source and target vocabularies: encode raw sentences, decode target ids to plain text."""

    def __init__(self, source: Tokenizer, target: Tokenizer, settings: SubwordSettings):
        self.source, self.target, self.settings = _loaded(source), _loaded(target), settings

    # -- building -------------------------------------------------------------------------------

    @classmethod
    def train(cls, sources: Sequence[str], targets: Sequence[str], settings: SubwordSettings) -> Subwords:
        """Train on these (training-split) sentences only."""
        if settings.joint_vocab:
            tokenizer, trainer = _empty_tokenizer(settings)
            tokenizer.train_from_iterator([*sources, *targets], trainer)
            return cls(tokenizer, tokenizer, settings)
        source, source_trainer = _empty_tokenizer(settings)
        source.train_from_iterator(sources, source_trainer)
        target, target_trainer = _empty_tokenizer(settings)
        target.train_from_iterator(targets, target_trainer)
        return cls(source, target, settings)

    @classmethod
    def load_or_train(cls, sources: Sequence[str], targets: Sequence[str], settings: SubwordSettings,
                      cache_dir: str | Path | None) -> Subwords:
        """The vocabulary for exactly these texts and settings: from cache_dir if trained before."""
        if cache_dir is None:
            return cls.train(sources, targets, settings)
        key = cache_key(sources, targets, settings)
        path = Path(cache_dir).expanduser() / f"subwords-{settings.tokenizer}-{key}.json"
        if path.is_file():
            try:
                subwords = cls.from_state(json.loads(path.read_text(encoding="utf-8")))
                log.info("subword vocabulary loaded from %s", path)
                return subwords
            except Exception as error:  # noqa: BLE001  (a truncated file, an old format: tokenizers raises plain Exception)
                log.warning("ignoring unreadable cached vocabulary %s (%s); training it again", path, error)
        subwords = cls.train(sources, targets, settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(subwords.state()), encoding="utf-8")
        os.replace(temporary, path)  # atomic: a concurrent run reads the old file or the whole new one
        log.info("subword vocabulary trained and cached in %s", path)
        return subwords

    def state(self) -> dict:
        """Everything needed to rebuild this object (JSON-serialisable), e.g. inside a checkpoint."""
        return {"version": STATE_VERSION, "settings": asdict(self.settings), "source": self.source.to_str(),
                "target": None if self.source is self.target else self.target.to_str()}

    @classmethod
    def from_state(cls, state: dict) -> Subwords:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"subword state version {state.get('version')} is not {STATE_VERSION}")
        settings = SubwordSettings(**state["settings"])
        source = Tokenizer.from_str(state["source"])
        target = source if state["target"] is None else Tokenizer.from_str(state["target"])
        return cls(source, target, settings)

    # -- using ----------------------------------------------------------------------------------

    @property
    def src_vocab_size(self) -> int:
        return self.source.get_vocab_size()

    @property
    def tgt_vocab_size(self) -> int:
        return self.target.get_vocab_size()

    def encode_source(self, text: str) -> list[int]:
        """Source ids followed by eos: what the encoder reads."""
        return [*self.source.encode(text).ids, EOS_ID]

    def encode_sources(self, texts: Sequence[str]) -> list[list[int]]:
        return [[*encoding.ids, EOS_ID] for encoding in self.source.encode_batch(list(texts))]

    def encode_targets(self, texts: Sequence[str]) -> list[list[int]]:
        """Target ids y_1 … y_n without bos/eos (the batch adds them on the side that needs each)."""
        return [encoding.ids for encoding in self.target.encode_batch(list(texts))]

    def decode_target(self, ids: Iterable[int]) -> str:
        """Plain text of a target id sequence: stops at the first eos, ignores pad and bos."""
        pieces = []
        for token_id in ids:
            token_id = int(token_id)
            if token_id == EOS_ID:
                break
            if token_id not in (PAD_ID, BOS_ID):
                pieces.append(token_id)
        return self.target.decode(pieces, skip_special_tokens=False)

    def source_tokens(self, ids: Iterable[int]) -> list[str]:
        """The pieces behind source ids, e.g. for the axes of an attention heatmap."""
        return [self.source.id_to_token(int(i)) for i in ids]

    def target_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.target.id_to_token(int(i)) for i in ids]


def cache_key(sources: Sequence[str], targets: Sequence[str], settings: SubwordSettings) -> str:
    """16 hex digits of sha256(settings, tokenizers version, every training sentence of both sides)."""
    digest = hashlib.sha256()
    header = {"settings": asdict(settings), "tokenizers": tokenizers.__version__, "state_version": STATE_VERSION,
              "sentences": [len(sources), len(targets)]}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for side in (sources, targets):
        digest.update(b"\x00side\x00")
        for sentence in side:
            encoded = sentence.encode("utf-8")
            digest.update(len(encoded).to_bytes(8, "little"))  # length-prefixed: no two splits hash alike
            digest.update(encoded)
    return digest.hexdigest()[:16]
