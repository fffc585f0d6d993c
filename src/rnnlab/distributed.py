"""The collectives a task needs under DDP that Lightning and torchmetrics do not give it; with one process
each is the identity.

- `sum_by_key`: named totals summed over the processes. A task=lm token group (e.g. the verbs at distance
  20-29) may have no token in one process's share of the streams, so the processes hold different keys; a
  key one lacks counts as zeros there, and all reduce the same keys in the same order (one gather of the
  keys, one all-reduce of the sums).
- `merge_dicts`: the union of per-process dicts, e.g. translation hypotheses by sentence index, so that BLEU
  is computed on the whole split, the same on every process (checkpointing and early stopping agree).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_gather_object(obj: Any) -> list[Any]:
    """obj of every process, in rank order."""
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def sum_by_key(totals: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """{key: tensor} summed over every process, for the keys of any process (absent means zeros), sorted.

    device: where this process's collectives run (its accelerator's device)."""
    if world_size() == 1:
        return dict(sorted(totals.items()))
    shapes: dict[str, tuple[int, ...]] = {}
    for part in all_gather_object({key: tuple(value.shape) for key, value in totals.items()}):
        shapes |= part
    keys = sorted(shapes)
    sizes = [math.prod(shapes[key]) for key in keys]
    flat = torch.cat([totals[key].reshape(-1).float().to(device) if key in totals
                      else torch.zeros(size, device=device) for key, size in zip(keys, sizes)])
    dist.all_reduce(flat)
    return {key: piece.view(shapes[key]) for key, piece in zip(keys, flat.split(sizes))}


def merge_dicts(part: dict) -> dict:
    """The union of every process's dict (their keys are disjoint, or equal keys hold equal values)."""
    if world_size() == 1:
        return dict(part)
    merged: dict = {}
    for piece in all_gather_object(part):
        merged |= piece
    return merged
