"""BLEU by source length, one line per attention: `python plot_lengths.py <report folder> [...]`.

Reads the comparison.csv that report.py wrote into each folder (columns `test/bleu_by_len/<lo>-<hi> mean|std`)
and writes bleu_by_length.png next to it, one panel per cell when the configurations name one (model=...).
"""

import csv
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PREFIX = "test/bleu_by_len/"
ORDER = ["none", "bahdanau", "luong_dot", "luong_general", "luong_concat", "local"]


def plot(folder: Path) -> Path:
    rows = list(csv.DictReader((folder / "comparison.csv").open()))
    buckets = [c[len(PREFIX):-len(" mean")] for c in rows[0] if c.startswith(PREFIX) and c.endswith(" mean")]
    panels: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    for row in rows:
        keys = dict(part.split("=", 1) for part in row["configuration"].split() if "=" in part)
        panels[keys.get("model", "gru")].append((keys.get("attention", row["configuration"]), row))
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), sharey=True, squeeze=False)
    for ax, (cell, lines) in zip(axes[0], sorted(panels.items())):
        for attention, row in sorted(lines, key=lambda item: ORDER.index(item[0]) if item[0] in ORDER else 99):
            means = [float(row[f"{PREFIX}{b} mean"] or "nan") for b in buckets]
            stds = [float(row[f"{PREFIX}{b} std"] or 0) for b in buckets]
            ax.errorbar(range(len(buckets)), means, yerr=stds, marker="o", capsize=3, label=attention)
        ax.set_xticks(range(len(buckets)), [b.replace("-inf", "+") for b in buckets])
        ax.set_xlabel("source length (words)")
        ax.set_title(f"cell: {cell}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test BLEU (mean ± std over seeds)")
    axes[0][-1].legend(fontsize=8)
    figure.tight_layout()
    path = folder / "bleu_by_length.png"
    figure.savefig(path, dpi=120)
    return path


if __name__ == "__main__":
    for folder in sys.argv[1:]:
        print(plot(Path(folder)))
