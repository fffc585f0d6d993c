"""Contiguous token streams served as truncated-BPTT windows.

A split is a (B, L) matrix: B parallel streams read left to right. Window i covers columns
[i·bptt, (i+1)·bptt) as inputs and the same columns shifted by one as targets, so consecutive
windows continue each stream and a task may carry its hidden state from one to the next.

Under DDP with N processes each reads a contiguous B/N of the rows through the same windows
(`BPTTWindows.shard`), so every process takes the same number of steps and carries the state of its
own rows, and together they read exactly the tokens one process would: B (data.batch_size,
data.eval_batch_size) is the batch of all processes together and must divide by N.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import lightning.pytorch as L
import torch
from torch.utils.data import DataLoader, Dataset

from rnnlab.data.resumable import ResumableLoader, ResumableTrainData
from rnnlab.errors import ConfigError

log = logging.getLogger(__name__)
# Fewer optimizer steps than this per epoch and a model learns slowly for its epochs: measured on a 62k-word corpus
# (data=text, 32 streams × 64 tokens = 30 steps per epoch), the LSTM's val ppl went 476 → 347 in 8 epochs while a
# Kneser–Ney 5-gram reached 153 (issue 19).
FEW_UPDATES_PER_EPOCH = 100


def batchify(stream: torch.Tensor, num_streams: int) -> torch.Tensor:
    """Cut one token stream (N,) into num_streams contiguous rows (B, N // B), dropping the tail."""
    length = stream.numel() // num_streams
    if length < 2:
        raise ValueError(f"{stream.numel()} tokens cannot fill {num_streams} streams of at least 2 tokens")
    return stream[: num_streams * length].view(num_streams, length)


@dataclass
class TokenGroup:
    """Target tokens to score apart from the rest.

    mask (B, L) marks the group's tokens. choices, when given, are the token ids the group's
    tokens are drawn from (e.g. all verbs): a task then also scores each target among those
    choices alone, −log p(target | the token is one of choices), which separates *which* token
    from *whether* one comes. choice_optimal_nll is that score's Bayes optimum, if known.
    """

    mask: torch.Tensor
    choices: torch.Tensor | None = None
    choice_optimal_nll: float | None = None
    # class of each choice (e.g. the agreement class of each verb): a task then also reports the
    # accuracy of the most probable class, Σ of p over a class's choices, against the target's class
    choice_classes: torch.Tensor | None = None


class BPTTWindows(Dataset):
    """Item i is one batch: {"inputs": (B, T), "targets": (B, T), ...}, T ≤ bptt.

    Optional extras, each (B, L) aligned with tokens and served for the targets:
    - optimal_nll: each token's Bayes-optimal −log p, so a task can report its distance to the
      optimum on exactly the tokens it scored;
    - groups: named TokenGroups ("agreement" = the verbs that must agree with their subject),
      served as "group/<name>" (mask) and, with choices, "choices/<name>",
      "choice_optimal_nll/<name>" and "choice_classes/<name>", so a task can report metrics on
      those tokens alone.
    """

    def __init__(self, tokens: torch.Tensor, bptt: int, optimal_nll: torch.Tensor | None = None,
                 groups: dict[str, TokenGroup] | None = None):
        if tokens.dim() != 2 or tokens.size(1) < 2:
            raise ValueError(f"tokens must be (streams, length ≥ 2), got {tuple(tokens.shape)}")
        self.tokens, self.bptt, self.optimal_nll = tokens, bptt, optimal_nll
        self.groups = groups or {}

    def __len__(self) -> int:
        return math.ceil((self.tokens.size(1) - 1) / self.bptt)

    def shard(self, rank: int, parts: int) -> BPTTWindows:
        """Rows [rank·B/parts, (rank+1)·B/parts) through the same windows: one DDP process's streams."""
        rows = self.tokens.size(0) // parts
        take = slice(rank * rows, (rank + 1) * rows)
        groups = {name: replace(group, mask=group.mask[take]) for name, group in self.groups.items()}
        optimal_nll = None if self.optimal_nll is None else self.optimal_nll[take]
        return BPTTWindows(self.tokens[take], self.bptt, optimal_nll, groups)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        start = i * self.bptt
        stop = min(start + self.bptt, self.tokens.size(1) - 1)
        batch = {"inputs": self.tokens[:, start:stop], "targets": self.tokens[:, start + 1 : stop + 1]}
        if self.optimal_nll is not None:
            batch["optimal_nll"] = self.optimal_nll[:, start + 1 : stop + 1]
        for name, group in self.groups.items():
            batch[f"group/{name}"] = group.mask[:, start + 1 : stop + 1]
            if group.choices is not None:
                batch[f"choices/{name}"] = group.choices
                if group.choice_optimal_nll is not None:
                    batch[f"choice_optimal_nll/{name}"] = torch.tensor(group.choice_optimal_nll)
                if group.choice_classes is not None:
                    batch[f"choice_classes/{name}"] = group.choice_classes
        return batch


def window_loader(windows: BPTTWindows) -> DataLoader:
    # Items are already batches; order matters (hidden state is carried), so never shuffle.
    return ResumableLoader(windows, batch_size=None, shuffle=False)


class StreamDataModule(ResumableTrainData, L.LightningDataModule):
    """Base of the language-modelling data modules: `setup` fills `splits` with BPTTWindows for
    "train", "val" and "test"; this serves them in order, under DDP each process its own rows."""

    splits: dict[str, BPTTWindows]

    def train_dataloader(self):
        self._warn_if_few_updates()
        return self.resumed(self._loader("train", "batch_size"))  # mid-epoch after a resume

    def _warn_if_few_updates(self) -> None:
        """A small corpus cut into many long streams gives few optimizer steps per epoch: say which keys to change."""
        windows = self.splits["train"]
        streams, length = windows.tokens.shape
        if len(windows) < FEW_UPDATES_PER_EPOCH and not getattr(self, "_warned_few_updates", False):
            self._warned_few_updates = True
            log.warning("the training split gives %d optimizer steps per epoch (%d tokens in data.batch_size=%d "
                        "streams, data.bptt=%d tokens per step): a model learns slowly from so few; for a small corpus "
                        "lower data.batch_size (e.g. 8) and data.bptt (e.g. 35) or raise trainer.max_epochs",
                        len(windows), streams * length, streams, windows.bptt)

    def val_dataloader(self):
        return self._loader("val", "eval_batch_size")

    def test_dataloader(self):
        return self._loader("test", "eval_batch_size")

    def _loader(self, split: str, key: str) -> DataLoader:
        windows, trainer = self.splits[split], self.trainer
        processes = trainer.world_size if trainer is not None else 1
        if processes > 1:
            rows = windows.tokens.size(0)
            if rows % processes:
                raise ConfigError(f"data.{key}={rows} streams cannot be shared evenly by {processes} processes: "
                                  f"make data.{key} a multiple of {processes}")
            windows = windows.shard(trainer.global_rank, processes)
        return window_loader(windows)
