"""Parallel text → batches for sequence-to-sequence models, shared by every translation dataset.

A dataset module only says where its raw sentence pairs come from (`load_splits`); this module
does the rest the same way for all of them:

1. Read aligned files (line i of the source file translates line i of the target file); a line
   count mismatch is an error naming both files and both counts.
2. Train the subword vocabularies on the training split only (`rnnlab.data.subwords`), cached.
3. Filter the training split: pairs with an empty side and pairs longer than `max_length`
   subword tokens on either side are dropped and counted. Validation and test pairs are never
   dropped, since scores must cover the whole official split; an over-long one is truncated for
   the model (its raw reference stays whole) and counted. The counts are logged and kept in
   `filter_report`.
4. Serve batches of padded id tensors:

       src          (B, S)  x_1 … x_m eos, right-padded with pad      (no bos: the encoder needs none)
       src_lengths  (B,)    m + 1
       tgt_in       (B, T)  bos y_1 … y_n, right-padded                (what the decoder reads)
       tgt_out      (B, T)  y_1 … y_n eos, right-padded                (what it must predict)
       index        (B,)    position of the pair in its split: `references(split)[index]` is its raw reference

Batches are cut by `rnnlab.data.batching` (length buckets, the `max_tokens` budget, each DDP
process's share; its docstring says how). Training batches bucket pairs by their longer padded side
(source with eos, target with bos or eos), so `batch_size` counts pairs and `max_tokens` the padded
tokens of the longer side; the order depends only on (seed, epoch), so runs repeat exactly.
Validation and test batches hold `eval_batch_size` pairs in a fixed order sorted by source length
(longest first: less padding for beam search); under DDP each pair is evaluated by exactly one
process. Match hypotheses to references by `index`.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import torch
from torch.utils.data import Dataset

from rnnlab.data.batching import LengthBucketedData, collate_padded
from rnnlab.data.download import DataError
from rnnlab.data.subwords import BOS_ID, EOS_ID, PAD_ID, Subwords, SubwordSettings
from rnnlab.errors import ConfigError, refuse_unknown_data_options

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


# -- raw text -----------------------------------------------------------------------------------


@dataclass
class ParallelSplit:
    """Raw sentence pairs, as in the files (line terminators removed)."""

    sources: list[str]
    targets: list[str]

    def __len__(self) -> int:
        return len(self.sources)

    def head(self, limit: int | None) -> ParallelSplit:
        return self if limit is None else ParallelSplit(self.sources[:limit], self.targets[:limit])


def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file, gzip-compressed if its name ends in .gz."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig") as handle:  # -sig: a byte-order mark is not text
            text = handle.read()
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start}); "
                        f"convert it, e.g. iconv -t utf-8") from None
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path} cannot be read: {error}") from None
    lines = text.split("\n")
    if lines[-1] == "":  # the final newline ends the last line, it does not start another
        lines.pop()
    return lines


def read_aligned(source_path: str | Path, target_path: str | Path) -> ParallelSplit:
    """Line i of the source file and line i of the target file as pair i."""
    sources, targets = read_lines(source_path), read_lines(target_path)
    if len(sources) != len(targets):
        raise DataError(f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}: "
                        f"line i of one must translate line i of the other; fix the files or pick matching ones")
    return ParallelSplit(sources, targets)


# -- batches ------------------------------------------------------------------------------------


class PairDataset(Dataset):
    """Pair i as (i, source ids with eos, target ids without bos/eos)."""

    def __init__(self, source_ids: list[list[int]], target_ids: list[list[int]]):
        self.source_ids, self.target_ids = source_ids, target_ids

    def __len__(self) -> int:
        return len(self.source_ids)

    def __getitem__(self, index: int) -> tuple[int, list[int], list[int]]:
        return index, self.source_ids[index], self.target_ids[index]

    def padded_lengths(self) -> np.ndarray:
        """Per pair, the longer of its padded source (with eos) and target (with bos or eos) length."""
        return np.array([max(len(s), len(t) + 1) for s, t in zip(self.source_ids, self.target_ids)], dtype=np.int64)


def collate_pairs(pairs: Sequence[tuple[int, list[int], list[int]]]) -> dict[str, torch.Tensor]:
    """Pad a list of (index, source ids with eos, target ids) into the batch dict described in the module docstring."""
    examples = [{"src": source, "tgt_in": [BOS_ID, *target], "tgt_out": [*target, EOS_ID], "index": index}
                for index, source, target in pairs]
    return collate_padded(examples, {"src": PAD_ID, "tgt_in": PAD_ID, "tgt_out": PAD_ID}, lengths_of=("src",))


# -- the data module ----------------------------------------------------------------------------


def _check_positive(key: str, value: object, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        allowed = "a positive integer or null" if optional else "a positive integer"
        raise ConfigError(f"data.{key}={value} is invalid: must be {allowed}")


class TranslationDataModule(LengthBucketedData, L.LightningDataModule):
    """Subword-tokenized, length-bucketed parallel text; subclasses supply the raw pairs.

    Subclasses implement `load_splits()` (download and read, or generate) and pass their other
    keyword arguments through to this constructor, which owns the options every translation
    dataset shares (see conf/data/*.yaml for their meaning).
    """

    option = "translation"  # the data= name, for messages

    def __init__(
        self,
        *,
        tokenizer: str = "bpe",
        vocab_size: int = 8000,
        joint_vocab: bool = True,
        min_frequency: int = 2,
        max_length: int = 100,
        batch_size: int = 64,
        max_tokens: int | None = None,
        eval_batch_size: int = 128,
        max_train_pairs: int | None = None,
        max_eval_pairs: int | None = None,
        cache_dir: str | None = None,
        seed: int = 0,
        **unknown: object,
    ):
        super().__init__()
        refuse_unknown_data_options(self, TranslationDataModule, unknown)
        self.settings = SubwordSettings(tokenizer=tokenizer, vocab_size=vocab_size, joint_vocab=joint_vocab,
                                        min_frequency=min_frequency)
        for key, value in (("max_length", max_length), ("batch_size", batch_size),
                           ("eval_batch_size", eval_batch_size)):
            _check_positive(key, value)
        for key, value in (("max_tokens", max_tokens), ("max_train_pairs", max_train_pairs),
                           ("max_eval_pairs", max_eval_pairs)):
            _check_positive(key, value, optional=True)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"data.seed={seed!r} is invalid: must be a non-negative integer")
        self.max_length, self.batch_size, self.max_tokens = max_length, batch_size, max_tokens
        self.eval_batch_size, self.seed = eval_batch_size, seed
        self.max_train_pairs, self.max_eval_pairs = max_train_pairs, max_eval_pairs
        self.cache_dir = cache_dir
        self.subwords: Subwords | None = None
        self.filter_report: dict[str, dict[str, int]] = {}
        self._raw: dict[str, ParallelSplit] | None = None
        self._available: dict[str, int] = {}  # pairs per split before max_*_pairs
        self._kept: dict[str, ParallelSplit] = {}
        self._datasets: dict[str, PairDataset] = {}

    # -- what a dataset module provides ---------------------------------------------------------

    def load_splits(self) -> dict[str, ParallelSplit]:
        """The raw pairs of "train", "val" and "test" (downloading or generating them if needed)."""
        raise NotImplementedError

    # -- Lightning hooks ------------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Download the files and train (and cache) the vocabulary: the work done once per machine."""
        raw = self._raw_splits()
        if self.cache_dir is not None:
            Subwords.load_or_train(*self._tokenizer_corpus(raw["train"]), self.settings, self.cache_dir)

    def setup(self, stage: str | None = None) -> None:
        if self._datasets:  # train.py and Trainer.fit both call it
            return
        raw = self._raw_splits()
        self.subwords = Subwords.load_or_train(*self._tokenizer_corpus(raw["train"]), self.settings, self.cache_dir)
        self._tokenize_train(raw["train"])
        for split in ("val", "test"):
            self._tokenize_eval(split, raw[split])
        for split in SPLITS:
            log.info("%s %s: %s", self.option, split, _describe(self.filter_report[split], self.max_length))

    # the loaders (data/batching.py): training batches sized by the longer side, evaluation by the source
    noun = "pairs"
    collate = staticmethod(collate_pairs)

    def bucket_dataset(self, split: str) -> PairDataset:
        return self._dataset(split)

    def bucket_lengths(self, split: str) -> np.ndarray:
        dataset = self._dataset(split)
        if split == "train":
            return dataset.padded_lengths()
        return np.array([len(source) for source in dataset.source_ids], dtype=np.int64)

    # -- what tasks and entry scripts use -------------------------------------------------------

    @property
    def task_inputs(self) -> dict[str, int]:
        """What the task needs from the data to build its model."""
        subwords = self._subwords()
        return {"src_vocab_size": subwords.src_vocab_size, "tgt_vocab_size": subwords.tgt_vocab_size,
                "pad_id": PAD_ID, "bos_id": BOS_ID, "eos_id": EOS_ID}

    def references(self, split: str) -> list[str]:
        """Raw target sentences of the split in index order (training: after filtering)."""
        return list(self._kept_split(split).targets)

    def sources(self, split: str) -> list[str]:
        """Raw source sentences of the split in index order (training: after filtering)."""
        return list(self._kept_split(split).sources)

    def decode_target(self, ids: Sequence[int]) -> str:
        return self._subwords().decode_target(ids)

    def encode_source(self, text: str) -> list[int]:
        return self._subwords().encode_source(text)

    def tokenizer_state(self) -> dict:
        """Rebuild the vocabularies with `rnnlab.data.subwords.Subwords.from_state(state)`."""
        return self._subwords().state()

    # -- internals ------------------------------------------------------------------------------

    def _raw_splits(self) -> dict[str, ParallelSplit]:
        if self._raw is None:
            splits = self.load_splits()
            self._raw = {"train": splits["train"].head(self.max_train_pairs),
                         "val": splits["val"].head(self.max_eval_pairs),
                         "test": splits["test"].head(self.max_eval_pairs)}
            self._available = {split: len(splits[split]) for split in SPLITS}
        return self._raw

    @staticmethod
    def _tokenizer_corpus(train: ParallelSplit) -> tuple[list[str], list[str]]:
        """The training pairs the vocabulary learns from: all with two non-empty sides."""
        nonempty = _nonempty(train)
        return [train.sources[i] for i in nonempty], [train.targets[i] for i in nonempty]

    def _tokenize_train(self, train: ParallelSplit) -> None:
        nonempty = _nonempty(train)
        source_ids = self.subwords.encode_sources([train.sources[i] for i in nonempty])
        target_ids = self.subwords.encode_targets([train.targets[i] for i in nonempty])
        # source ids carry their eos; the limit counts subword tokens only
        fits = [k for k in range(len(nonempty))
                if len(source_ids[k]) - 1 <= self.max_length and len(target_ids[k]) <= self.max_length]
        if not fits:
            raise DataError(f"data={self.option}: no training pair is left after filtering (all of "
                            f"{len(train)} are empty or longer than data.max_length={self.max_length} "
                            f"subword tokens); check the files or raise data.max_length")
        kept = [nonempty[k] for k in fits]
        self._kept["train"] = ParallelSplit([train.sources[i] for i in kept], [train.targets[i] for i in kept])
        self._datasets["train"] = PairDataset([source_ids[k] for k in fits], [target_ids[k] for k in fits])
        self.filter_report["train"] = {"available": self._available["train"], "pairs": len(train),
                                       "empty": len(train) - len(nonempty), "too_long": len(nonempty) - len(fits),
                                       "kept": len(kept)}

    def _tokenize_eval(self, split: str, pairs: ParallelSplit) -> None:
        source_ids = self.subwords.encode_sources(pairs.sources)
        target_ids = self.subwords.encode_targets(pairs.targets)
        truncated = 0
        for k in range(len(pairs)):
            if len(source_ids[k]) - 1 > self.max_length or len(target_ids[k]) > self.max_length:
                truncated += 1
                source_ids[k] = [*source_ids[k][: self.max_length], EOS_ID]
                target_ids[k] = target_ids[k][: self.max_length]
        self._kept[split] = pairs
        self._datasets[split] = PairDataset(source_ids, target_ids)
        self.filter_report[split] = {"available": self._available[split], "pairs": len(pairs),
                                     "empty": len(pairs) - len(_nonempty(pairs)), "truncated": truncated,
                                     "kept": len(pairs)}

    def _subwords(self) -> Subwords:
        if self.subwords is None:
            self.setup()
        return self.subwords

    def _dataset(self, split: str) -> PairDataset:
        self.setup()
        return self._datasets[split]

    def _kept_split(self, split: str) -> ParallelSplit:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        self.setup()
        return self._kept[split]


def _nonempty(pairs: ParallelSplit) -> list[int]:
    """Indices of the pairs with text on both sides."""
    return [i for i, (source, target) in enumerate(zip(pairs.sources, pairs.targets))
            if source.strip() and target.strip()]


def _describe(report: dict[str, int], max_length: int) -> str:
    """One log line: how many pairs were read, kept, dropped or truncated, and why."""
    read = f"{report['pairs']} pairs"
    if report["pairs"] < report["available"]:
        read = f"first {report['pairs']} of {report['available']} pairs (data.max_*_pairs)"
    if "too_long" in report:
        dropped = report["empty"] + report["too_long"]
        return (f"{read}, kept {report['kept']}; dropped {dropped}: {report['empty']} with an empty side, "
                f"{report['too_long']} longer than data.max_length={max_length} subword tokens")
    return (f"{read}, all kept; {report['truncated']} truncated to data.max_length={max_length} subword tokens "
            f"for the model (references stay whole), {report['empty']} with an empty side")
