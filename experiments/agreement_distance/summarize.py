"""Table of the agreement-distance sweeps: python summarize.py <runs dir> <wall seconds>."""

import json
import os
import sys
from pathlib import Path

import torch
import yaml

from rnnlab.tracking.run_info import cpu_model

runs, wall = Path(sys.argv[1]), int(sys.argv[2])
rows = []
for metrics_file in sorted(runs.glob("*/*/metrics.json")):
    job = metrics_file.parent
    overrides = dict(o.split("=", 1) for o in yaml.safe_load((job / ".hydra/overrides.yaml").read_text()))
    m = json.loads(metrics_file.read_text())
    rows.append((job.parent.name, overrides["data.distance_min"], overrides["data.distance_max"],
                 overrides["model"], m["test/ppl"], m["test/ppl_optimal"], m["test/ppl_gap"],
                 m["test/agreement/choice_excess"], m["test/agreement/excess_nll"], m["fit_seconds"]))

print("# Agreement distance: RNN vs LSTM vs GRU on data=synthetic_lm\n")
print("Command: `bash experiments/agreement_distance/run.sh` (seed 42; default model: 2 layers x 256, "
      "embedding 128, dropout 0.1, Adam 2e-3, clip 0.5, bptt 64, batch 32, 300k training tokens, 6 epochs; "
      "metrics from the best-val checkpoint on the test split).")
cpu = cpu_model()
print(f"Machine: {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}. "
      f"Total wall time {wall // 60} min {wall % 60} s (other work shared the machine, so fit s is indicative).\n")
print("**which-verb excess** = `test/agreement/choice_excess`: −log p(verb | a verb comes) minus its Bayes "
      "optimum log N_v, in nats per verb. 0 = the subject's class is carried across the distractors; "
      "log 4 = 1.386 = it is forgotten (any of the 4 classes). **verb-token excess** = "
      "`test/agreement/excess_nll`, the excess NLL on verb tokens, which also counts *when* the verb comes; "
      "since these tokens are selected by outcome, a model that over-predicts the verb's arrival can score "
      "below 0 there.\n")
print("| regime | distance | model | test ppl | optimal ppl | ppl gap | which-verb excess | verb-token excess "
      "| fit s |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|")
order = {"rnn": 0, "lstm": 1, "gru": 2}
regimes = {"short": 0, "mid": 1, "long": 2}
for r in sorted(rows, key=lambda r: (regimes.get(r[0], 9), order.get(r[3], 9))):
    print(f"| {r[0]} | {r[1]}–{r[2]} | {r[3]} | {r[4]:.3f} | {r[5]:.3f} | {r[6]:.4f} | {r[7]:.3f} | {r[8]:.3f} "
          f"| {r[9]:.0f} |")
