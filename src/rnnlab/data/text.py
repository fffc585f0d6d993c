"""`data=text`: your own plain-text files as a language-modelling corpus, at character or word level.

Tokens
- char level: every character of the training split is a token (Unicode code points, in code-point
  order after `<unk>`); a character never seen in training encodes as `<unk>`.
- word level: Hugging Face `tokenizers` WordLevel over a whitespace split; every newline becomes
  `<eos>`, so a line of n words is n + 1 tokens; a word outside the vocabulary encodes as `<unk>`
  (a literal `<unk>` in the text, as PTB and WikiText ship, is that same token). The vocabulary is
  `<unk>`, `<eos>`, then the training words by falling count (ties in code-point order), keeping those
  seen at least `min_frequency` times, at most `max_vocab_size` entries in all.

The vocabulary comes from the training split alone and is cached on disk under `cache_dir`, named by
a hash of the training text and every setting that shapes it. `tokenizer_state()` is plain JSON: a
generator rebuilds encode/decode from a checkpoint alone with `from_state`.

Splits are served exactly as `data=synthetic_lm` serves its own: each split is one token stream, cut
into `batch_size` (train) or `eval_batch_size` (val/test) contiguous rows by `streams.batchify` and read
as truncated-BPTT windows, so `task=lm` trains on it unchanged. With one file (`data.path`) the
splits are contiguous and deterministic: the first `train_fraction` of the characters, the next
`val_fraction`, the last `test_fraction` (anything left between val and test is unused); at word level
each cut moves forward to the next whitespace so no word is split. Without a test split
(`test_path: null` or `test_fraction: 0`) the test split is the validation split.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from rnnlab.data.download import DataError
from rnnlab.data.streams import BPTTWindows, StreamDataModule, batchify
from rnnlab.errors import ConfigError

log = logging.getLogger(__name__)

UNK, EOS = "<unk>", "<eos>"
LEVELS = ("char", "word")
SPLITS = ("train", "val", "test")
_CACHE_FORMAT = 1  # bump when the vocabulary rules change, so stale caches are never read


class TextTokenizer:
    """Encodes text to token ids and back, for one vocabulary at one level (char | word)."""

    def __init__(self, level: str, vocab: Sequence[str]):
        if level not in LEVELS:
            raise ConfigError(f"data.level={level!r} is invalid: choose char or word")
        self.level, self.vocab = level, list(vocab)
        self.unk_id = self.vocab.index(UNK)
        self.eos_id = self.vocab.index(EOS) if level == "word" else None
        if level == "char":
            chars = self.vocab[1:]
            # sorted code points let encode map a whole text with one searchsorted
            self._codes = np.array([ord(c) for c in chars], dtype=np.uint32)
            if len(self._codes) and not np.all(np.diff(self._codes.astype(np.int64)) > 0):
                raise ValueError("a char vocabulary must list distinct single characters in code-point order")
        else:
            from tokenizers import Tokenizer, models, pre_tokenizers

            self._words = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(self.vocab)}, unk_token=UNK))
            self._words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def encode_array(self, text: str) -> np.ndarray:
        """(N,) int64 token ids of text."""
        if self.level == "char":
            codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
            position = np.searchsorted(self._codes, codes).clip(max=max(len(self._codes) - 1, 0))
            known = self._codes[position] == codes if len(self._codes) else np.zeros(len(codes), bool)
            return np.where(known, position + 1, self.unk_id).astype(np.int64)
        lines = text.split("\n")
        # encode_batch_fast (tokenizers ≥ 0.20) skips the character offsets, which nothing here reads
        encode_batch = getattr(self._words, "encode_batch_fast", self._words.encode_batch)
        encoded = encode_batch(lines, add_special_tokens=False)
        ids: list[int] = []
        for i, line in enumerate(encoded):
            ids.extend(line.ids)
            if i < len(lines) - 1:  # a newline ended this line
                ids.append(self.eos_id)
        return np.array(ids, dtype=np.int64)

    def decode(self, ids: Sequence[int] | np.ndarray | torch.Tensor) -> str:
        """Text of ids; at word level, words joined by spaces and `<eos>` as a newline."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        if self.level == "char":
            return "".join(self.vocab[i] for i in ids)
        lines: list[list[str]] = [[]]
        for i in ids:
            if i == self.eos_id:
                lines.append([])
            else:
                lines[-1].append(self.vocab[i])
        return "\n".join(" ".join(words) for words in lines)

    def state(self) -> dict:
        """Everything encode/decode need, as JSON-serialisable values."""
        return {"format": _CACHE_FORMAT, "level": self.level, "vocab": list(self.vocab)}


def from_state(state: dict) -> TextTokenizer:
    """The tokenizer saved by `TextTokenizer.state()` (e.g. from a checkpoint's hyperparameters)."""
    if state.get("format") != _CACHE_FORMAT:
        raise ValueError(f"tokenizer state has format {state.get('format')!r}; this rnnlab reads {_CACHE_FORMAT}")
    return TextTokenizer(state["level"], state["vocab"])


def build_tokenizer(level: str, train_text: str, min_frequency: int = 1,
                    max_vocab_size: int | None = None) -> TextTokenizer:
    """The vocabulary of the training text (see the module docstring for the rules)."""
    if level == "char":
        return TextTokenizer("char", [UNK, *sorted(set(train_text))])
    if level != "word":
        raise ConfigError(f"data.level={level!r} is invalid: choose char or word")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    counter = Tokenizer(models.WordLevel(unk_token=UNK))
    counter.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # counting only: the specials are placed by hand below, so a literal "<unk>" in the text is counted
    # like a word and then dropped, never given a second id
    trainer = trainers.WordLevelTrainer(vocab_size=2**31 - 1, min_frequency=min_frequency,
                                        special_tokens=[], show_progress=False)
    counter.train_from_iterator(train_text.split("\n"), trainer)
    by_count = sorted(counter.get_vocab().items(), key=lambda item: item[1])  # id order = count order
    words = [w for w, _ in by_count if w not in (UNK, EOS)]
    if not words:
        raise ConfigError(f"data.min_frequency={min_frequency} leaves no word of the training split in the "
                          f"vocabulary (only <unk> and <eos>); lower data.min_frequency")
    if max_vocab_size is not None:
        if max_vocab_size < 3:
            raise ConfigError(f"data.max_vocab_size={max_vocab_size} is invalid: <unk> and <eos> take two entries, "
                              f"so at least 3 are needed for a word")
        words = words[: max_vocab_size - 2]
    return TextTokenizer("word", [UNK, EOS, *words])


def read_text(path: str | Path, key: str, encoding: str = "utf-8") -> str:
    """The decoded contents of a text file, or a one-line DataError naming data.<key>."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"data.{key}={path}: no such file; check the path")
    data = path.read_bytes()
    if not data:
        raise DataError(f"data.{key}={path} is empty; point it at a file with text")
    try:
        return data.decode(encoding)
    except LookupError:
        raise ConfigError(f"data.encoding={encoding!r} is not a known text encoding; e.g. utf-8, latin-1") from None
    except UnicodeDecodeError as error:
        raise DataError(f"data.{key}={path}: bytes at offset {error.start} ({data[error.start:error.end].hex()}) "
                        f"are not valid {encoding}; re-save the file as {encoding}, or set data.encoding to its "
                        f"encoding (e.g. data.encoding=latin-1)") from None


def split_by_fractions(text: str, fractions: dict[str, float], level: str) -> dict[str, str]:
    """train = the first fractions["train"] of text, val = the next, test = the last; contiguous.

    Cuts are at character positions (floor of fraction × length; tinyshakespeare's usual 90/10 split);
    at word level each moves forward to the next whitespace so that no word is cut in two.
    """
    for name, value in fractions.items():
        if not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ConfigError(f"data.{name}_fraction={value} is invalid: must be in [0, 1]")
    if sum(fractions.values()) > 1 + 1e-9:
        listing = " + ".join(f"data.{name}_fraction={value}" for name, value in fractions.items())
        raise ConfigError(f"{listing} = {sum(fractions.values()):g} > 1: the splits cannot overlap; lower them")
    for name in ("train", "val"):
        if fractions[name] <= 0:
            raise ConfigError(f"data.{name}_fraction={fractions[name]} is invalid: the {name} split needs text, "
                              f"use a fraction > 0")

    def cut(fraction: float) -> int:
        position = math.floor(fraction * len(text) + 1e-6)  # 0.7 + 0.2 is 0.8999…: still a cut at 90%
        if level == "word":
            while position < len(text) and not text[position].isspace():
                position += 1
        return position

    train_end = cut(fractions["train"])
    val_end = cut(fractions["train"] + fractions["val"])
    splits = {"train": text[:train_end], "val": text[train_end:val_end]}
    if fractions.get("test", 0) > 0:
        splits["test"] = text[max(cut(1 - fractions["test"]), val_end):]
    return splits


def _check_positive_int(key: str, value: object, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"data.{key}={value} is invalid: must be a positive integer")


class TextCorpusDataModule(StreamDataModule):
    """What every real-text corpus shares: a vocabulary from its training split, splits as BPTT windows.

    A subclass says where the raw text comes from (`read_splits`); this class tokenizes it, caches
    the vocabulary and serves {"inputs": (B, T), "targets": (B, T)} windows like data=synthetic_lm.
    """

    corpus = "text"

    def __init__(self, level: str = "word", batch_size: int = 32, eval_batch_size: int = 16, bptt: int = 64,
                 min_frequency: int = 1, max_vocab_size: int | None = None, encoding: str = "utf-8",
                 cache_dir: str | None = None):
        super().__init__()
        if level not in LEVELS:
            raise ConfigError(f"data.level={level!r} is invalid: choose char or word")
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size), ("bptt", bptt),
                           ("min_frequency", min_frequency)):
            _check_positive_int(key, value)
        _check_positive_int("max_vocab_size", max_vocab_size, allow_none=True)
        self.level, self.batch_size, self.eval_batch_size, self.bptt = level, batch_size, eval_batch_size, bptt
        self.min_frequency, self.max_vocab_size, self.encoding = min_frequency, max_vocab_size, encoding
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        self.tokenizer: TextTokenizer | None = None
        self.streams: dict[str, torch.Tensor] = {}  # each split as one token stream (N,)
        self.splits: dict[str, BPTTWindows] = {}  # each split as (B, L) rows, read in windows

    # --- what a subclass provides -------------------------------------------------------------
    def read_splits(self) -> dict[str, str]:
        """The raw text of "train" and "val", and of "test" if the corpus has one."""
        raise NotImplementedError

    def describe_split(self, split: str) -> str:
        """Where a split's text came from, for error messages."""
        return f"the {split} split"

    # --- building -----------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        texts = self.read_splits()
        for split, text in texts.items():
            if not (text.strip() if self.level == "word" else text):
                raise DataError(f"{self.describe_split(split)} holds no text; give it some")
        if "test" not in texts:
            log.info("%s has no test split: the test split is the validation split", self.corpus)
        self.tokenizer = self._cached_tokenizer(texts["train"])
        for split in SPLITS:
            if split not in texts:  # the test split is the validation split: the same windows
                self.streams[split], self.splits[split] = self.streams["val"], self.splits["val"]
                continue
            ids = torch.from_numpy(self.tokenizer.encode_array(texts[split]))
            key = "batch_size" if split == "train" else "eval_batch_size"
            streams = getattr(self, key)
            if ids.numel() // streams < 2:
                raise DataError(f"data.{key}={streams} is too large for {self.describe_split(split)}: its "
                                f"{ids.numel()} tokens cannot fill {streams} streams of at least 2 tokens; lower "
                                f"data.{key} or give the split more text")
            self.streams[split] = ids
            self.splits[split] = BPTTWindows(batchify(ids, streams), self.bptt)

    def _cached_tokenizer(self, train_text: str) -> TextTokenizer:
        if self.cache_dir is None:
            return self._build_tokenizer(train_text)
        settings = {"format": _CACHE_FORMAT, "level": self.level, "min_frequency": self.min_frequency,
                    "max_vocab_size": self.max_vocab_size}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
        digest.update(train_text.encode("utf-8", errors="surrogatepass"))
        path = self.cache_dir / f"vocab-{self.level}-{digest.hexdigest()[:20]}.json"
        if path.is_file():
            try:
                tokenizer = from_state(json.loads(path.read_text(encoding="utf-8")))
                log.info("vocabulary of %d tokens read from %s", tokenizer.vocab_size, path)
                return tokenizer
            except (ValueError, KeyError) as error:  # unreadable or stale: rebuild and overwrite
                log.warning("ignoring vocabulary cache %s (%s)", path, error)
        tokenizer = self._build_tokenizer(train_text)
        path.parent.mkdir(parents=True, exist_ok=True)
        # write then rename: parallel jobs (sweeps, DDP ranks) never read a half-written file
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(tokenizer.state(), ensure_ascii=False), encoding="utf-8")
        os.replace(partial, path)
        return tokenizer

    def _build_tokenizer(self, train_text: str) -> TextTokenizer:
        return build_tokenizer(self.level, train_text, self.min_frequency, self.max_vocab_size)

    def _tokenizer(self) -> TextTokenizer:
        if self.tokenizer is None:
            self.setup()
        return self.tokenizer

    # --- what tasks and generators read -------------------------------------------------------
    @property
    def vocab(self) -> list[str]:
        return self._tokenizer().vocab

    @property
    def vocab_size(self) -> int:
        return self._tokenizer().vocab_size

    @property
    def task_inputs(self) -> dict[str, int]:
        """What the task needs from the data to build its model."""
        return {"vocab_size": self.vocab_size}

    @property
    def unk_id(self) -> int:
        return self._tokenizer().unk_id

    @property
    def eos_id(self) -> int | None:
        return self._tokenizer().eos_id

    def encode(self, text: str) -> list[int]:
        return self._tokenizer().encode(text)

    def decode(self, ids: Sequence[int] | np.ndarray | torch.Tensor) -> str:
        return self._tokenizer().decode(ids)

    def tokenizer_state(self) -> dict:
        return self._tokenizer().state()


class TextDataModule(TextCorpusDataModule):
    """`data=text`: train/val(/test) files, or one file (`path`) cut by fractions."""

    def __init__(self, train_path: str | None = None, val_path: str | None = None, test_path: str | None = None,
                 path: str | None = None, train_fraction: float = 0.8, val_fraction: float = 0.1,
                 test_fraction: float = 0.1, level: str = "word", encoding: str = "utf-8", min_frequency: int = 1,
                 max_vocab_size: int | None = None, cache_dir: str | None = None, batch_size: int = 32,
                 eval_batch_size: int = 16, bptt: int = 64):
        super().__init__(level=level, batch_size=batch_size, eval_batch_size=eval_batch_size, bptt=bptt,
                         min_frequency=min_frequency, max_vocab_size=max_vocab_size, encoding=encoding,
                         cache_dir=cache_dir)
        if path is not None and (train_path, val_path, test_path) != (None, None, None):
            raise ConfigError(f"data.path={path} and data.train_path/val_path/test_path are both set; use one file "
                              f"(data.path, cut by fractions) or separate files, not both")
        if path is None:
            if train_path is None or val_path is None:
                unset = " and ".join(f"data.{key}" for key, value in (("train_path", train_path),
                                                                       ("val_path", val_path)) if value is None)
                raise ConfigError(f"{unset} not set: data=text needs data.train_path and data.val_path, or data.path "
                                  f"(one file cut by data.train_fraction/val_fraction/test_fraction)")
        else:
            # fail on bad fractions now, not after reading the file
            split_by_fractions("", {"train": train_fraction, "val": val_fraction, "test": test_fraction}, "char")
        self.paths = {"train": train_path, "val": val_path, "test": test_path}
        self.path = path
        self.fractions = {"train": train_fraction, "val": val_fraction, "test": test_fraction}

    def read_splits(self) -> dict[str, str]:
        if self.path is None:
            return {split: read_text(file, f"{split}_path", self.encoding)
                    for split, file in self.paths.items() if file is not None}
        return split_by_fractions(read_text(self.path, "path", self.encoding), self.fractions, self.level)

    def describe_split(self, split: str) -> str:
        if self.path is None:
            return f"the {split} split (data.{split}_path={self.paths[split] or self.paths['val']})"
        key = split if split in ("train", "val") or self.fractions["test"] > 0 else "val"
        return f"the {split} split (data.{key}_fraction={self.fractions[key]} of data.path={self.path})"
