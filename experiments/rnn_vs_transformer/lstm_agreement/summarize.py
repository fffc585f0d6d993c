"""Table of the LSTM-agreement pilots (run.sh): one row per variant, one variable changed at a time.

    python experiments/rnn_vs_transformer/lstm_agreement/summarize.py <runs dir>  > results.md

Reads each run's .hydra/overrides.yaml, metrics.json and the CSV logger's per-epoch validation metrics.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import yaml

from rnnlab.tracking.report import mean_std_of
from rnnlab.tracking.run_info import cpu_model, finished_runs, logged


def main(runs: Path) -> None:
    rows = []
    for variant, seeds in finished_runs(runs).items():
        overrides = [o for o in yaml.safe_load((seeds[0] / ".hydra/overrides.yaml").read_text())
                     if not o.startswith(("seed=", "logger=", "callbacks.", "hydra.", "model.embedding_init="))]
        metrics = [json.loads((s / "metrics.json").read_text()) for s in seeds]
        curves = [[value for _, value in logged(s, "val/agreement/class_acc")] for s in seeds]
        rows.append((variant, " ".join(overrides) or "(make train's defaults)", seeds, metrics, curves))

    print("# Why does make train's LSTM not learn agreement? One variable at a time\n")
    print("Command: `bash experiments/rnn_vs_transformer/lstm_agreement/run.sh` (each row = `python train.py "
          "seed=<s> <override> model.embedding_init=uniform`, i.e. make train's defaults until 2026-12-07: "
          "data=synthetic_lm (1–24 distractors between subject and verb, 300k training tokens, 32 streams × bptt 64 "
          "= 146 updates per epoch), 2-layer LSTM 256, embedding 128 drawn U(±0.1), dropout 0.1, Adam lr 0.002, "
          "clip 0.5, 4 epochs; test metrics from the best-val checkpoint; the fix it led to: ../embedding_init/).")
    print(f"Machine: {cpu_model()}, one thread per run, runs one after another beside other jobs.\n")
    print("**agreement acc** = how often the verb's most probable agreement class is the subject's (optimum 1, "
          "a model that forgot the subject 0.25). **per epoch** = validation agreement accuracy after each epoch, "
          "mean over seeds. **gap** = test ppl / Bayes-optimal ppl − 1.\n")
    print("| variant | override | seeds | test agreement acc | per seed | val acc per epoch | gap % | fit CPU s |")
    print("|---|---|---|---:|---|---|---:|---:|")
    for name, override, seeds, metrics, curves in rows:
        acc = [m["test/agreement/class_acc"] for m in metrics]
        epochs = min(len(c) for c in curves)
        curve = " ".join(f"{statistics.mean(c[e] for c in curves):.2f}" for e in range(epochs))
        print(f"| {name} | `{override}` | {','.join(s.name.removeprefix('seed') for s in seeds)} | "
              f"{mean_std_of(acc, '.3f')} | {' '.join(f'{a:.2f}' for a in acc)} | {curve} | "
              f"{mean_std_of([100 * m['test/ppl_gap'] for m in metrics], '.1f')} | "
              f"{mean_std_of([m.get('fit_cpu_seconds') for m in metrics], '.0f')} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
