"""Batches of variable-length examples: length buckets, padding, and each DDP process's share.

An example is whatever a data module serves one of: a sentence pair, a sentence and its label, tokens
and their tags, an image and its captions. The sampler sees only one length per example (the length
that sizes its padded batch); the collate functions see only the named sequence fields of an example.

Training batches come from length buckets: the epoch's shuffled order (`EpochShuffle`, a function of
(seed, epoch) only, so runs and resumed runs repeat) is cut into chunks of `CHUNK_BATCHES` batches,
each chunk is sorted by length and cut into batches, and the batches are shuffled. A batch holds at
most `batch_size` examples and, when `max_tokens` is set, at most `max_tokens` padded tokens
(examples × its longest length), so long examples come in smaller batches. Evaluation batches hold
`batch_size` examples in one fixed order, longest first (less padding, and the largest batch comes
first: if memory does not suffice, the first batch says so).

Under DDP (N processes) every process builds the same batches and takes every N-th of them, so all
take the same number of steps, with or without `max_tokens`, and no example is served twice: in
training an optimizer step averages N batches (the epoch's last len % N batches are left out, others
each epoch); in evaluation the largest batches are halved until their number divides by N, so every
example is evaluated exactly once. Lightning's DistributedSampler must be off
(`trainer.use_distributed_sampler: false`): the sampler shares the batches itself.

Padding: `pad_sequences` pads 1-D id sequences into a (B, T) tensor and their lengths; `collate_padded`
turns dict examples into a batch dict, padding the fields it is told to and stacking the others.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Mapping, Sequence, Sized
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import BatchSampler, RandomSampler, Sampler, SequentialSampler, default_collate

from rnnlab.data.resumable import ResumableLoader, ResumableTrainData
from rnnlab.errors import ConfigError

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import lightning.pytorch as L

CHUNK_BATCHES = 50  # batches per length-sorted chunk: enough to bucket well, few enough to stay random


# -- which examples go together -----------------------------------------------------------------


class EpochShuffle(RandomSampler):
    """A new permutation each epoch, a function of (seed, epoch) only: runs and resumed runs repeat.

    Lightning calls `set_epoch` before every training epoch. Under DDP every process draws the same
    permutation and LengthBucketSampler gives each its share of the batches cut from it.
    """

    def __init__(self, data_source: Sized, seed: int = 0):
        super().__init__(data_source)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()


class LengthBucketSampler(BatchSampler):
    """Batches of examples of similar length, drawn from the order `sampler` gives.

    shuffle=True (training): the order is cut into chunks of CHUNK_BATCHES × batch_size examples,
    each chunk sorted by length and cut into batches, and all batches shuffled by (seed, epoch).
    shuffle=False (evaluation): one fixed order, longest first, cut into batches.
    A batch closes before it would exceed `batch_size` examples or, if set, `max_tokens` padded tokens.

    lengths: per example (by index), the length that sizes its padded batch.
    num_replicas, rank: under DDP this process's share, the same number of batches for every rank
    (the module docstring says how); the sampler must give every rank the same order.
    noun: what the examples are called in error messages ("pairs", "sentences"); the data module's
    option that limits the evaluation examples is expected to be `data.max_eval_<noun>`.
    `for_training` and `for_evaluation` build the sampler a data module's loaders need.
    """

    def __init__(self, sampler: Sampler[int] | Sequence[int], batch_size: int, drop_last: bool = False, *,
                 lengths: np.ndarray, max_tokens: int | None = None, shuffle: bool = True,
                 num_replicas: int = 1, rank: int = 0, noun: str = "examples"):
        super().__init__(sampler, batch_size, drop_last)
        self.lengths, self.max_tokens, self.shuffle = lengths, max_tokens, shuffle
        self.num_replicas, self.rank, self.noun = num_replicas, rank, noun

    @classmethod
    def for_training(cls, lengths: np.ndarray, batch_size: int, *, max_tokens: int | None = None, seed: int = 0,
                     trainer: L.Trainer | None = None, noun: str = "examples") -> LengthBucketSampler:
        """Reshuffled buckets; `trainer` (None outside one) gives the epoch to start from (a resumed run
        continues the epochs' sequence of orders) and this process's place among the DDP processes."""
        order = EpochShuffle(range(len(lengths)), seed=seed)
        if trainer is not None:
            order.set_epoch(trainer.current_epoch)
        return cls(order, batch_size, lengths=lengths, max_tokens=max_tokens, shuffle=True, noun=noun,
                   **_place(trainer))

    @classmethod
    def for_evaluation(cls, lengths: np.ndarray, batch_size: int, *, trainer: L.Trainer | None = None,
                       noun: str = "examples") -> LengthBucketSampler:
        """Fixed batches, longest first; each example evaluated by exactly one of the trainer's processes."""
        return cls(SequentialSampler(range(len(lengths))), batch_size, lengths=lengths, shuffle=False, noun=noun,
                   **_place(trainer))

    def batches(self) -> list[list[int]]:
        """This process's batches."""
        every = self._all_batches()
        if not self.shuffle:
            return self._halve_until_divisible(every)[self.rank:: self.num_replicas]
        if len(every) < self.num_replicas:
            raise ConfigError(f"{len(self.lengths)} training {self.noun} make {len(every)} batches, fewer than the "
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

    def _halve_until_divisible(self, batches: list[list[int]]) -> list[list[int]]:
        """The batches, the largest halved (in place, so the order stays) until their number divides by
        the processes."""
        batches, parts = list(batches), self.num_replicas
        while len(batches) % parts:
            largest = max(range(len(batches)), key=lambda i: len(batches[i]))
            batch = batches[largest]
            if len(batch) < 2:
                raise ConfigError(f"{sum(map(len, batches))} evaluation {self.noun} cannot give {parts} processes "
                                  f"the same number of batches: evaluate more {self.noun} "
                                  f"(data.max_eval_{self.noun}) or use fewer processes")
            half = (len(batch) + 1) // 2
            batches[largest: largest + 1] = [batch[:half], batch[half:]]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()

    def __len__(self) -> int:
        return len(self.batches())  # ~10 ms for 29k examples; exact whatever the caps


def _place(trainer: L.Trainer | None) -> dict[str, int]:
    """This process's place among the DDP processes (the trainer's use_distributed_sampler is off)."""
    return {"num_replicas": trainer.world_size, "rank": trainer.global_rank} if trainer is not None else {}


# -- padding ------------------------------------------------------------------------------------


def pad_sequences(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D id sequences → (B, T) ids right-padded with pad_id, T the longest length, and the lengths (B,)."""
    rows = [torch.as_tensor(sequence, dtype=torch.long) for sequence in sequences]
    lengths = torch.tensor([len(row) for row in rows], dtype=torch.long)
    return pad_sequence(rows, batch_first=True, padding_value=pad_id), lengths


def collate_padded(examples: Sequence[Mapping[str, Any]], pad_ids: Mapping[str, int],
                   lengths_of: Collection[str] | None = None) -> dict[str, Any]:
    """Dict examples (the same fields in each) → one batch dict, fields in the examples' order.

    A field named in `pad_ids` holds a 1-D id sequence: it becomes (B, T), right-padded with its pad id,
    and, if named in `lengths_of` (default: every padded field), `<field>_lengths` (B,) follows it.
    Every other field goes through torch's default_collate: numbers → (B,), tensors (an image) stacked
    → (B, ...), strings (a raw reference) → a list.
    """
    missing = [field for field in pad_ids if field not in examples[0]]
    if missing:
        raise KeyError(f"fields to pad {missing} are not in the examples, which have {list(examples[0])}")
    batch = {}
    for field in examples[0]:
        values = [example[field] for example in examples]
        if field not in pad_ids:
            batch[field] = default_collate(values)
            continue
        batch[field], lengths = pad_sequences(values, pad_ids[field])
        if lengths_of is None or field in lengths_of:
            batch[f"{field}_lengths"] = lengths
    return batch


# -- the loaders of a data module of separate examples ---------------------------------------------


class LengthBucketedData(ResumableTrainData):
    """The train/val/test loaders of a LightningDataModule of separate examples (a mixin): training batches from
    reshuffled length buckets, continued mid-epoch after a resume; evaluation batches longest first; each DDP
    process its share. The module has batch_size, max_tokens, eval_batch_size and seed, and gives
    `bucket_dataset(split)`, `bucket_lengths(split)` (the length that sizes each example's padded batch) and
    `collate`; `noun` names its examples in messages. By default a split's dataset is `self._datasets[split]`
    and its lengths that dataset's `lengths()`."""

    noun = "examples"

    def bucket_dataset(self, split: str):
        return self._datasets[split]

    def bucket_lengths(self, split: str) -> np.ndarray:
        return self._datasets[split].lengths()

    def splits_with_test(self) -> dict:
        """`load_splits()`, the validation split standing in for a test split the data does not have."""
        splits = self.load_splits()
        if splits.get("test") is None:
            log.info("data=%s has no test split: the test split is the validation split", self.option)
            splits["test"] = splits["val"]
        return splits

    def train_dataloader(self) -> ResumableLoader:
        batches = LengthBucketSampler.for_training(self.bucket_lengths("train"), self.batch_size,
                                                   max_tokens=self.max_tokens, seed=self.seed, trainer=self.trainer,
                                                   noun=self.noun)
        return self.resumed(ResumableLoader(self.bucket_dataset("train"), batch_sampler=batches,
                                            collate_fn=self.collate))

    def val_dataloader(self) -> ResumableLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> ResumableLoader:
        return self._eval_loader("test")

    def _eval_loader(self, split: str) -> ResumableLoader:
        batches = LengthBucketSampler.for_evaluation(self.bucket_lengths(split), self.eval_batch_size,
                                                     trainer=self.trainer, noun=self.noun)
        return ResumableLoader(self.bucket_dataset(split), batch_sampler=batches, collate_fn=self.collate)
