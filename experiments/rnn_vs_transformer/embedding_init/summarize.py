"""Tables of the embedding-init study (run.sh): the agreement corpus by cell × init, then real text by init.

    python experiments/rnn_vs_transformer/embedding_init/summarize.py <runs dir>  > results.md

Reads each run's metrics.json and the CSV logger's per-epoch validation metrics (run_once trains with logger=csv).
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

from rnnlab.tracking.report import mean_std_of
from rnnlab.tracking.run_info import cpu_model, finished_runs, logged

INITS = {"uniform": "U(±0.1)", "unit": "N(0, 3H/E)", "normal": "N(0, 1)"}
TEXTS = {"chars": "Tiny Shakespeare characters (bptt 128), 4 CPU min", "words": "Tiny Shakespeare words "
         "(min frequency 2, bptt 64), 4 CPU min"}


def seeds_of(runs: list[Path]) -> str:
    return ",".join(run.name.removeprefix("seed") for run in runs)


def mean_curve(curves: list[list[float]], fmt: str) -> str:
    """The seeds' mean value after each validation, over the validations every seed reached."""
    return " ".join(format(statistics.mean(c[e] for c in curves), fmt) for e in range(min(map(len, curves))))


def synthetic(variants: dict[str, list[Path]]) -> None:
    print("## The agreement corpus (make train's defaults, 4 epochs)\n")
    print("**agreement acc** = how often the verb's most probable agreement class is the subject's (optimum 1, a "
          "model that forgot the subject 0.25), test split, best-val checkpoint. **per epoch** = validation "
          "agreement accuracy after each epoch, mean over seeds. **gap** = test ppl / Bayes-optimal ppl − 1.\n")
    print("| cell | embedding init | seeds | test agreement acc | per seed | val acc per epoch | gap % | fit CPU s |")
    print("|---|---|---|---:|---|---|---:|---:|")
    for cell in ("lstm", "gru", "rnn"):
        for init, law in INITS.items():
            runs = variants.get(f"{cell}_{init}")
            if not runs:
                continue
            metrics = [json.loads((run / "metrics.json").read_text()) for run in runs]
            curves = [[value for _, value in logged(run, "val/agreement/class_acc")] for run in runs]
            acc = [m["test/agreement/class_acc"] for m in metrics]
            curve = mean_curve(curves, ".2f")
            print(f"| {cell} | {init}: {law} | {seeds_of(runs)} | {mean_std_of(acc, '.3f')} | "
                  f"{' '.join(f'{a:.2f}' for a in acc)} | {curve} | "
                  f"{mean_std_of([100 * m['test/ppl_gap'] for m in metrics], '.1f')} | "
                  f"{mean_std_of([m.get('fit_cpu_seconds') for m in metrics], '.0f')} |")


def text(variants: dict[str, list[Path]]) -> None:
    print("\n## Real text: the same LSTM, the same CPU budget\n")
    print("**val loss** = the best validation loss (nats per token) over the run; **ppl** = its exponential; "
          "**curve** = validation loss after each epoch, mean over seeds. Validation split: characters, the last "
          "10 % of the text (data=tinyshakespeare); words, the 10 % before the last (data=text's cut).\n")
    print("| text | embedding init | seeds | best val loss | per seed | ppl | val loss per epoch | updates |")
    print("|---|---|---|---:|---|---:|---|---:|")
    for corpus, what in TEXTS.items():
        for init, law in INITS.items():
            runs = variants.get(f"{corpus}_lstm_{init}")
            if not runs:
                continue
            logs = [logged(run, "val/loss") for run in runs]  # (update, loss) after each validation
            curves = [[value for _, value in log] for log in logs]
            best = [min(curve) for curve in curves]
            steps = [log[-1][0] for log in logs]
            curve = mean_curve(curves, ".2f")
            print(f"| {what} | {init}: {law} | {seeds_of(runs)} | {mean_std_of(best, '.3f')} | "
                  f"{' '.join(f'{b:.3f}' for b in best)} | {math.exp(statistics.mean(best)):.1f} | {curve} | "
                  f"{mean_std_of(steps, '.0f')} |")


def vanishing(variants: dict[str, list[Path]]) -> None:
    print("\n## experiment=vanishing_gradients (1×128 cells, embedding 64, distances 1–32, 10 epochs)\n")
    print("Test agreement accuracy by subject–verb distance, best-val checkpoint; the recipe pins U(±0.1), the "
          "init its published table (experiments/vanishing_gradients/) was measured with.\n")
    print("| cell | embedding init | seeds | agreement acc | d 1–8 | d 9–16 | d 17–32 | per seed | gap % |")
    print("|---|---|---|---:|---:|---:|---:|---|---:|")
    for cell in ("lstm", "gru"):
        for init, law in INITS.items():
            runs = variants.get(f"vanishing_{cell}_{init}")
            if not runs:
                continue
            metrics = [json.loads((run / "metrics.json").read_text()) for run in runs]
            acc = [m["test/agreement/class_acc"] for m in metrics]
            by_distance = [mean_std_of([m[f"test/agree_{bucket}/class_acc"] for m in metrics], ".2f")
                           for bucket in ("d01-08", "d09-16", "d17-32")]
            print(f"| {cell} | {init}: {law} | {seeds_of(runs)} | {mean_std_of(acc, '.3f')} | "
                  f"{' | '.join(by_distance)} | {' '.join(f'{a:.2f}' for a in acc)} | "
                  f"{mean_std_of([100 * m['test/ppl_gap'] for m in metrics], '.1f')} |")


def main(runs: Path) -> None:
    variants = finished_runs(runs)
    print("# make train's LSTM and the scale of its word vectors at init\n")
    print("Command: `bash experiments/rnn_vs_transformer/embedding_init/run.sh` (each row = `python train.py "
          "seed=<s> model=<cell> model.embedding_init=<init>`, plus the text's data and budget: see run.sh). "
          "make train's defaults: data=synthetic_lm (1–24 distractors between subject and verb), 2 layers of 256, "
          "embedding 128 (E), Adam lr 0.002, clip 0.5, 4 epochs. `unit` draws each word vector from N(0, 3H/E), so "
          "that the first layer's pre-activations W_ih·e start at variance 1 under torch's U(±1/√H) weights; "
          "under U(±0.1) they start at std 0.024 and every gate at σ(0) = ½ whatever the word.")
    print(f"Machine: {cpu_model()}, one thread per run, two to four runs side by side.\n")
    synthetic(variants)
    text(variants)
    vanishing(variants)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
