"""Table of study 3 (run.sh): agreement accuracy by subject–verb distance, per model, mean ± std over seeds.

    python experiments/rnn_vs_transformer/agreement/summarize.py experiments/rnn_vs_transformer/agreement/runs

Reads each run's metrics.json (test metrics of the best-val checkpoint), window.json (the Transformer's test split
read window by window, window.py), the CSV logger's per-epoch validation metrics and the checkpoint's parameters.
Draws by_distance.png (accuracy per distance, mean and each seed) and epochs.png (validation accuracy per epoch,
each run) next to this file.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

from rnnlab.tracking.report import mean_std_of
from rnnlab.tracking.run_info import cpu_model, finished_runs, logged, num_parameters

MODELS = ("rnn", "lstm", "gru", "transformer", "transformer_15min")  # run groups, in the table's order


def span(bucket: str) -> str:
    """'d01-08' → '1–8'."""
    low, high = bucket[1:].split("-")
    return f"{int(low)}–{int(high)}"


def buckets(metrics: dict[str, float]) -> list[str]:
    """The distance ranges scored, in order: 'd01-08', 'd09-16', ..."""
    return sorted(m.group(1) for key in metrics if (m := re.fullmatch(r"test/agree_(d\d+-\d+)/class_acc", key)))


def epochs(run: Path) -> list[float]:
    """Validation agreement accuracy after each epoch."""
    return [value for _, value in logged(run, "val/agreement/class_acc")]


def perfect_inside(bucket: str, window: int, contexts: range, classes: int = 4) -> float:
    """The accuracy of a model that is right whenever the subject is among the tokens it reads and guesses
    otherwise: the verb's input token at distance D from the subject sees it iff its context c ≥ D; D is uniform
    over the bucket (data=synthetic_lm's uniform distances) and c uniform over `contexts`."""
    low, high = (int(n) for n in bucket[1:].split("-"))
    seen = sum(c >= d for d in range(low, high + 1) for c in contexts) / ((high - low + 1) * len(contexts))
    return seen + (1 - seen) / classes


def row(label: str, metrics: list[dict], ranges: list[str], runs: list[Path] | None) -> str:
    cells = [mean_std_of([m[f"test/agree_{r}/class_acc"] for m in metrics], ".3f") for r in ranges]
    overall = mean_std_of([m["test/agreement/class_acc"] for m in metrics], ".3f")
    gap = mean_std_of([100 * m["test/ppl_gap"] for m in metrics], ".1f")
    if runs is None:
        return f"| {label} | | | {' | '.join(cells)} | {overall} | {gap} | |"
    done = [len(epochs(run)) for run in runs]
    curve = [epochs(run) for run in runs]
    first = [next((e + 1 for e, acc in enumerate(c) if acc >= 0.5), None) for c in curve]
    reached = ", ".join("–" if f is None else str(f) for f in first)
    return (f"| {label} | {num_parameters(runs[0]):,} | {min(done)}–{max(done)} | {' | '.join(cells)} | {overall} | "
            f"{gap} | {reached} |")


def plot(found: dict[str, list[Path]], metrics: dict[str, list[dict]], ranges: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = dict(zip(MODELS, ("tab:gray", "tab:blue", "tab:green", "tab:red", "tab:orange")))
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = range(len(ranges))
    for model, runs in found.items():
        series = [(model, metrics[model], "-")]
        alone = [json.loads((run / "window.json").read_text()) for run in runs if (run / "window.json").exists()]
        if alone:
            series.append((f"{model}, each window alone", alone, "--"))
        for label, scores, style in series:
            per_seed = [[m[f"test/agree_{r}/class_acc"] for r in ranges] for m in scores]
            for seed in per_seed:
                ax.plot(xs, seed, style, color=colours[model], alpha=0.25, linewidth=1)
            ax.plot(xs, [sum(column) / len(column) for column in zip(*per_seed)], style, color=colours[model],
                    marker="o", label=label)
    ax.axhline(0.25, color="black", linewidth=0.5)
    ax.set_xticks(list(xs), [span(r) for r in ranges])
    ax.set(xlabel="distractors between subject and verb (window: 16 tokens)", ylabel="agreement accuracy (test)",
           ylim=(0.2, 1.02))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "by_distance.png", dpi=120)

    fig, ax = plt.subplots(figsize=(6, 4))
    for model, runs in found.items():
        for k, run in enumerate(runs):
            curve = epochs(run)
            ax.plot(range(1, len(curve) + 1), curve, color=colours[model], label=model if k == 0 else None)
    ax.axhline(0.25, color="black", linewidth=0.5)
    ax.set(xlabel="epoch", ylabel="agreement accuracy (validation, all distances)", ylim=(0.2, 1.02))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "epochs.png", dpi=120)


def main(root: Path) -> None:
    finished = finished_runs(root)
    found = {model: finished[model] for model in MODELS if model in finished}
    metrics = {model: [json.loads((run / "metrics.json").read_text()) for run in runs] for model, runs in found.items()}
    ranges = buckets(next(iter(metrics.values()))[0])
    seeds = sorted({run.name.removeprefix("seed") for runs in found.values() for run in runs}, key=int)
    print("# Agreement by distance: RNN, LSTM, GRU and Transformer at one CPU budget (issue 19, study 3)\n")
    print("Command: `bash experiments/rnn_vs_transformer/agreement/run.sh` (settings in its header: data=synthetic_lm "
          "with 1–24 distractors, windows of 16 tokens, 6 CPU minutes per run, cosine over that budget, default "
          "sizes: rnn/lstm/gru 2 × 256 with 128-d embeddings, transformer 2 layers d_model 256, 4 heads).")
    print(f"Seeds {', '.join(seeds)}; test split, best-val checkpoint, mean ± std over seeds. "
          f"Machine: {cpu_model()}, one thread per run, two runs side by side.\n")
    print("**Agreement accuracy** = how often the verb's most probable agreement class is the subject's "
          "(1 = carries the subject, 0.25 = forgot it), per distance D = the distractors between subject and verb "
          "(the verb comes D + 1 tokens after its subject). A window "
          "holds 16 tokens: the RNNs carry their state across windows; the Transformer is scored as the task "
          "evaluates it, each window read after the previous ones from its sliding key/value cache (every token "
          "sees 8 to 15 tokens before it), and again reading every window alone (positions 0–15, as trained). "
          "**gap** = test perplexity / Bayes-optimal − 1. **epochs** = epochs done in the budget; **≥ 0.5 at "
          "epoch** = the first epoch whose validation agreement accuracy reached 0.5, per seed (– never).\n")
    heads = " | ".join(f"distance {span(r)}" for r in ranges)
    print(f"| model | parameters | epochs | {heads} | all | gap % | ≥ 0.5 at epoch |")
    print("|---|---:|---|" + "---:|" * len(ranges) + "---:|---:|---|")
    for model, runs in found.items():
        print(row(f"{model} (seeds {', '.join(run.name.removeprefix('seed') for run in runs)})", metrics[model],
                  ranges, runs))
        alone = [json.loads((run / "window.json").read_text()) for run in runs if (run / "window.json").exists()]
        if alone:
            print(row(f"{model}, each window alone", alone, ranges, None))
    if any(model.startswith("transformer") for model in found):
        run = next(runs[0] for model, runs in found.items() if model.startswith("transformer"))
        window = int(yaml.safe_load((run / ".hydra/config.yaml").read_text())["data"]["bptt"])
        for label, contexts in ((f"right whenever the subject is read (sliding: {window // 2}–{window - 1} "
                                 "tokens before)", range(window // 2, window)),
                                (f"right whenever the subject is read (alone: 0–{window - 1} tokens before)",
                                 range(window))):
            cells = " | ".join(f"{perfect_inside(r, window, contexts):.3f}" for r in ranges)
            print(f"| *{label}* | | | {cells} | | | |")
    plot(found, metrics, ranges, Path(__file__).parent)
    print("\n![agreement by distance](by_distance.png) ![per epoch](epochs.png)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
