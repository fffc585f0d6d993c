"""Padded batches: a batch of B sequences of different lengths is stored as (B, T, ...) with every sequence
written from position 0 and padded past its length. These are the two operations every layer needs on one."""

from __future__ import annotations

import torch


def real_tokens(lengths: torch.Tensor, T: int, device: torch.device | None = None) -> torch.Tensor:
    """(B, T) True where a position holds a real token (t < length), False on padding; on `device` (default:
    the lengths')."""
    lengths = lengths.to(device=device or lengths.device, dtype=torch.long)
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Reverse each sequence of x (B, T, ...) within its own length; padding stays at the end."""
    if lengths is None:
        return x.flip(1)
    T = x.size(1)
    t = torch.arange(T, device=x.device)[None, :]
    lengths = lengths.to(x.device)[:, None]
    index = torch.where(t < lengths, lengths - 1 - t, t)  # (B, T)
    return x.gather(1, index.view(*index.shape, *(1,) * (x.dim() - 2)).expand_as(x))
