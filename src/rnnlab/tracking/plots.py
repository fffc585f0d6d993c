"""Pictures a run keeps as artifacts (matplotlib, no display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch


def pyplot():
    """matplotlib.pyplot, drawing off-screen (Agg: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def saved(fig, path: Path) -> Path:
    """A finished figure as a PNG at path (its folders made), then closed; the path, to log as an artifact."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    return path


def attention_heatmap(attention: torch.Tensor, source_tokens: Sequence[str], target_tokens: Sequence[str], path: Path,
                   title: str) -> Path:
    """Heatmap of attention weights a_t(s), one row per output token, one column per source token (eos included),
    saved as a PNG at path (translation: attention/<split>_epoch_<e>_sentence_<i>.png)."""
    plt = pyplot()
    rows, columns = max(len(target_tokens), 1), len(source_tokens)
    fig, ax = plt.subplots(figsize=(1.5 + 0.32 * columns, 1.2 + 0.32 * rows))
    image = ax.imshow(attention.numpy() if len(target_tokens) else torch.zeros(1, columns).numpy(),
                      cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(columns), source_tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(len(target_tokens)), target_tokens, fontsize=8)
    ax.set(xlabel="source", ylabel="hypothesis", title=title)
    fig.colorbar(image, ax=ax, fraction=0.03)
    return saved(fig, path)


def shaded_words(title: str, rows: Sequence[tuple[Sequence[str], Sequence[float], str]]) -> str:
    """An HTML page: one line per text, each word shaded by its weight (the darkest is the line's largest weight; the
    weight itself shows on hover), followed by a note (e.g. gold and predicted label)."""
    from html import escape

    lines = [f"<!doctype html><meta charset='utf-8'><title>{escape(title)}</title>",
             f"<h3>{escape(title)}</h3>", "<table style='font-family:sans-serif;border-spacing:0 6px'>"]
    for words, weights, note in rows:
        top = max(weights, default=0) or 1
        cells = " ".join(f"<span title='{w:.3f}' style='background:rgba(220,40,40,{w / top:.3f});padding:1px 2px'>"
                         f"{escape(word)}</span>" for word, w in zip(words, weights))
        lines.append(f"<tr><td>{cells}</td><td style='padding-left:2em;color:#555'>{escape(note)}</td></tr>")
    return "\n".join([*lines, "</table>"]) + "\n"


def plot_confusion(confusion: torch.Tensor, classes: list, path: Path, title: str) -> Path:
    """The confusion matrix as a PNG: counts in the cells, shaded by each gold row's share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = confusion.cpu().numpy()
    shares = counts / counts.sum(1, keepdims=True).clip(min=1)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(2 + 0.6 * n, 1.6 + 0.6 * n))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if shares[i, j] > 0.5 else "black")
    labels = [str(c) for c in classes]
    ax.set_xticks(range(n), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set(xlabel="predicted", ylabel="gold", title=title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
def captioned_images(images: Sequence[torch.Tensor], texts: Sequence[tuple[str, str, Sequence[str]]], path: Path,
                     title: str) -> Path:
    """One row per image (uint8 (3, H, W)): the image, then its heading, its generated caption in bold and its
    references below, as a PNG at path (captioning: captions/<split>_epoch_<e>.png)."""
    plt = pyplot()
    rows = max(len(images), 1)
    fig, axes = plt.subplots(rows, 2, figsize=(10, 1.9 * rows), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 4]})
    for (image_ax, text_ax), image, (heading, caption, references) in zip(axes, images, texts):
        image_ax.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
        image_ax.set_axis_off()
        text_ax.set_axis_off()
        text_ax.text(0, 0.95, heading, fontsize=8, color="0.4", va="top", transform=text_ax.transAxes)
        text_ax.text(0, 0.75, caption or "(empty)", fontsize=10, weight="bold", va="top", wrap=True,
                     transform=text_ax.transAxes)
        text_ax.text(0, 0.5, "\n".join(references), fontsize=8, va="top", color="0.25", wrap=True,
                     transform=text_ax.transAxes)
    for unused in axes[len(images):].flat:
        unused.set_axis_off()
    fig.suptitle(title, fontsize=10)
    return saved(fig, path)


def attention_over_image(image: torch.Tensor, words: Sequence[str], weights: torch.Tensor, path: Path, title: str,
                         columns: int = 6) -> Path:
    """One panel per generated word: the image (uint8 (3, H, W)) under that step's attention weights over the grid of
    regions (weights (T, h, w), bilinearly upsampled to the image), as a PNG at path (captioning:
    attention/<split>_epoch_<e>_image_<i>.png)."""
    plt = pyplot()
    panels = max(len(words), 1)
    rows, columns = -(-panels // columns), min(panels, columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2.2 * rows + 0.4), squeeze=False)
    height, width = image.shape[1:]
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, word, weight in zip(axes.flat, words, weights):
        ax.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
        # each weight covers its region's cell; bilinear smoothing between cell centres
        ax.imshow(weight.numpy(), cmap="inferno", alpha=0.55, vmin=0, vmax=max(float(weight.max()), 1e-6),
                  extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="bilinear")
        ax.set_title(word, fontsize=10)
    fig.suptitle(title, fontsize=10)
    return saved(fig, path)


def plot_transitions(transitions: torch.Tensor, tags: Sequence[str], path: Path, title: str) -> Path:
    """A CRF's transition scores (K+1, K+1), index K the sentence boundary, as a PNG heatmap: row a tag or the start,
    column the next tag or the end, red above 0 and blue below (start → end, which no sentence has, left blank)."""
    plt = pyplot()
    scores = transitions.clone().float()
    scores[-1, -1] = float("nan")
    bound = float(scores.nan_to_num().abs().max()) or 1.0
    n = len(tags) + 1
    fig, ax = plt.subplots(figsize=(2.5 + 0.28 * n, 2 + 0.28 * n))
    image = ax.imshow(scores.numpy(), cmap="RdBu_r", vmin=-bound, vmax=bound)
    size = 8 if n <= 30 else 5
    ax.set_xticks(range(n), [*tags, "(end)"], rotation=90, fontsize=size)
    ax.set_yticks(range(n), [*tags, "(start)"], fontsize=size)
    ax.set(xlabel="next tag", ylabel="tag", title=title)
    fig.colorbar(image, ax=ax, fraction=0.03)
    return saved(fig, path)
