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

Training batches come from length buckets: the epoch's shuffled order is cut into chunks of
`CHUNK_BATCHES` batches, each chunk is sorted by length and cut into batches, and the batches are
shuffled. A batch holds at most `batch_size` pairs and, when `max_tokens` is set, at most
`max_tokens` padded tokens (pairs × its longest side), so long sentences come in smaller batches.
The order depends only on (seed, epoch), so runs repeat exactly. Validation and test batches
hold `eval_batch_size` pairs in a fixed order sorted by source length (longest first: less padding
for beam search, and the largest batch comes first); match hypotheses to references by `index`.

Under DDP (N processes) every process builds the same batches and takes every N-th of them, so all
take the same number of steps, with or without `max_tokens`, and no pair is served twice: in
training an optimizer step averages N batches (the epoch's last len % N batches are left out, others
each epoch); in evaluation the largest batches are halved until their number divides by N, so every
pair is evaluated exactly once.
"""

from __future__ import annotations

import gzip
import inspect
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler

from rnnlab.data.download import DataError
from rnnlab.data.resumable import ResumableLoader, ResumableTrainData
from rnnlab.data.subwords import BOS_ID, EOS_ID, PAD_ID, Subwords, SubwordSettings
from rnnlab.errors import ConfigError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
CHUNK_BATCHES = 50  # batches per length-sorted chunk: enough to bucket well, few enough to stay random


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
    """Pad a list of pairs into the batch dict described in the module docstring."""
    batch_size = len(pairs)
    source_length = max(len(source) for _, source, _ in pairs)
    target_length = max(len(target) for _, _, target in pairs) + 1
    src = torch.full((batch_size, source_length), PAD_ID, dtype=torch.long)
    tgt_in = torch.full((batch_size, target_length), PAD_ID, dtype=torch.long)
    tgt_out = torch.full((batch_size, target_length), PAD_ID, dtype=torch.long)
    for row, (_, source, target) in enumerate(pairs):
        src[row, : len(source)] = torch.tensor(source, dtype=torch.long)
        tgt_in[row, : len(target) + 1] = torch.tensor([BOS_ID, *target], dtype=torch.long)
        tgt_out[row, : len(target) + 1] = torch.tensor([*target, EOS_ID], dtype=torch.long)
    return {
        "src": src,
        "src_lengths": torch.tensor([len(source) for _, source, _ in pairs], dtype=torch.long),
        "tgt_in": tgt_in,
        "tgt_out": tgt_out,
        "index": torch.tensor([index for index, _, _ in pairs], dtype=torch.long),
    }


class EpochShuffle(RandomSampler):
    """A new permutation each epoch, a function of (seed, epoch) only: runs and resumed runs repeat.

    Lightning calls `set_epoch` before every training epoch. Under DDP every process draws the same
    permutation and LengthBucketSampler gives each its share of the batches cut from it.
    """

    def __init__(self, data_source: Dataset, seed: int = 0):
        super().__init__(data_source)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()


class LengthBucketSampler(BatchSampler):
    """Batches of pairs of similar length, drawn from the order `sampler` gives.

    shuffle=True (training): the order is cut into chunks of CHUNK_BATCHES × batch_size pairs,
    each chunk sorted by length and cut into batches, and all batches shuffled by (seed, epoch).
    shuffle=False (evaluation): one fixed order, longest first, cut into batches.
    A batch closes before it would exceed `batch_size` pairs or, if set, `max_tokens` padded tokens.

    num_replicas, rank: under DDP this process's share, the same number of batches for every rank
    (the module docstring says how); the sampler must give every rank the same order.
    """

    def __init__(self, sampler: Sampler[int], batch_size: int, drop_last: bool = False, *,
                 lengths: np.ndarray, max_tokens: int | None = None, shuffle: bool = True,
                 num_replicas: int = 1, rank: int = 0):
        super().__init__(sampler, batch_size, drop_last)
        self.lengths, self.max_tokens, self.shuffle = lengths, max_tokens, shuffle
        self.num_replicas, self.rank = num_replicas, rank

    def batches(self) -> list[list[int]]:
        """This process's batches."""
        every = self._all_batches()
        if not self.shuffle:
            return _halve_until_divisible(every, self.num_replicas)[self.rank:: self.num_replicas]
        if len(every) < self.num_replicas:
            raise ConfigError(f"{len(self.lengths)} training pairs make {len(every)} batches, fewer than the "
                              f"{self.num_replicas} processes: lower data.batch_size (or data.max_tokens)")
        return every[self.rank: len(every) - len(every) % self.num_replicas: self.num_replicas]

    def _all_batches(self) -> list[list[int]]:
        """The batches of all processes."""
        order = np.fromiter(iter(self.sampler), dtype=np.int64)
        if not self.shuffle:
            # stable: equal lengths keep the sampler's (index) order
            return self._cut(order[np.argsort(-self.lengths[order], kind="stable")])
        chunk = CHUNK_BATCHES * self.batch_size
        batches = []
        for start in range(0, len(order), chunk):
            piece = order[start: start + chunk]
            batches += self._cut(piece[np.argsort(self.lengths[piece], kind="stable")])
        rng = np.random.default_rng([getattr(self.sampler, "seed", 0), getattr(self.sampler, "epoch", 0)])
        return [batches[i] for i in rng.permutation(len(batches))]

    def _cut(self, ordered: np.ndarray) -> list[list[int]]:
        batches, current, longest = [], [], 0
        for index in ordered.tolist():
            length = int(self.lengths[index])
            too_many = len(current) == self.batch_size
            too_long = self.max_tokens is not None and (len(current) + 1) * max(longest, length) > self.max_tokens
            if current and (too_many or too_long):
                batches.append(current)
                current, longest = [], 0
            current.append(index)
            longest = max(longest, length)
        if current and not (self.drop_last and len(current) < self.batch_size):
            batches.append(current)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()

    def __len__(self) -> int:
        return len(self.batches())  # ~10 ms for 29k pairs; exact whatever the caps


# -- the data module ----------------------------------------------------------------------------


def _halve_until_divisible(batches: list[list[int]], parts: int) -> list[list[int]]:
    """The batches, the largest halved (in place, so the order stays) until their number divides by parts."""
    batches = list(batches)
    while len(batches) % parts:
        largest = max(range(len(batches)), key=lambda i: len(batches[i]))
        batch = batches[largest]
        if len(batch) < 2:
            raise ConfigError(f"{sum(map(len, batches))} evaluation pairs cannot give {parts} processes the same "
                              f"number of batches: evaluate more pairs (data.max_eval_pairs) or use fewer processes")
        half = (len(batch) + 1) // 2
        batches[largest: largest + 1] = [batch[:half], batch[half:]]
    return batches


def _check_positive(key: str, value: object, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        allowed = "a positive integer or null" if optional else "a positive integer"
        raise ConfigError(f"data.{key}={value} is invalid: must be {allowed}")


class TranslationDataModule(ResumableTrainData, L.LightningDataModule):
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
        if unknown:
            valid = [name for cls in (type(self), TranslationDataModule)
                     for name, p in inspect.signature(cls.__init__).parameters.items()
                     if name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD]
            raise ConfigError(f"data.{sorted(unknown)[0]} is not an option of data={self.option}; "
                              f"valid: {', '.join(dict.fromkeys(valid))}")
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

    def train_dataloader(self) -> DataLoader:
        dataset = self._dataset("train")
        shuffle = EpochShuffle(dataset, seed=self.seed)
        if self.trainer is not None:  # a resumed run continues the epochs' sequence of orders
            shuffle.set_epoch(self.trainer.current_epoch)
        batches = LengthBucketSampler(shuffle, self.batch_size, lengths=dataset.padded_lengths(),
                                      max_tokens=self.max_tokens, shuffle=True, **self._replicas())
        # mid-epoch after a resume
        return self.resumed(ResumableLoader(dataset, batch_sampler=batches, collate_fn=collate_pairs))

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def _eval_loader(self, split: str) -> DataLoader:
        dataset = self._dataset(split)
        lengths = np.array([len(source) for source in dataset.source_ids], dtype=np.int64)
        batches = LengthBucketSampler(SequentialSampler(dataset), self.eval_batch_size, lengths=lengths,
                                      shuffle=False, **self._replicas())
        return ResumableLoader(dataset, batch_sampler=batches, collate_fn=collate_pairs)

    def _replicas(self) -> dict[str, int]:
        """This process's place among the DDP processes (the trainer's use_distributed_sampler is off)."""
        trainer = self.trainer
        return {"num_replicas": trainer.world_size, "rank": trainer.global_rank} if trainer is not None else {}

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
