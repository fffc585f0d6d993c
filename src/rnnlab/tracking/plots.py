"""Pictures a run keeps as artifacts (matplotlib, no display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch


def attention_heatmap(attention: torch.Tensor, source_tokens: Sequence[str], target_tokens: Sequence[str], path: Path,
                   title: str) -> Path:
    """Heatmap of attention weights a_t(s), one row per output token, one column per source token (eos included),
    saved as a PNG at path (translation: attention/<split>_epoch_<e>_sentence_<i>.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, columns = max(len(target_tokens), 1), len(source_tokens)
    fig, ax = plt.subplots(figsize=(1.5 + 0.32 * columns, 1.2 + 0.32 * rows))
    image = ax.imshow(attention.numpy() if len(target_tokens) else torch.zeros(1, columns).numpy(),
                      cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(columns), source_tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(len(target_tokens)), target_tokens, fontsize=8)
    ax.set(xlabel="source", ylabel="hypothesis", title=title)
    fig.colorbar(image, ax=ax, fraction=0.03)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
