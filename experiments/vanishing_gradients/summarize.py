"""Table and gradient curves of the vanishing-gradients sweep.

    python experiments/vanishing_gradients/summarize.py <runs dir> <wall seconds>  > results.md

Reads each job's .hydra/overrides.yaml, metrics.json and gradients_through_time.json; writes the
markdown table to stdout and gradient_curves.png next to this file.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections import defaultdict
from pathlib import Path

import torch
import yaml

from rnnlab.tracking.report import mean_std_of
from rnnlab.tracking.run_info import cpu_model

HERE = Path(__file__).resolve().parent
ORDER = ["rnn", "rnn_relu", "leaky_rnn", "skip_rnn", "lstm", "gru"]
LABELS = {"rnn": "rnn (tanh)", "rnn_relu": "rnn (relu)", "leaky_rnn": "leaky rnn (learned α)",
          "skip_rnn": "skip rnn (d = 4)", "lstm": "lstm", "gru": "gru"}


def main(runs: Path, wall: int) -> None:
    jobs = defaultdict(list)
    for metrics_file in sorted(runs.rglob("metrics.json")):
        job = metrics_file.parent
        overrides = dict(o.split("=", 1) for o in yaml.safe_load((job / ".hydra/overrides.yaml").read_text()))
        curves = json.loads((job / "gradients_through_time.json").read_text())["curves"]
        jobs[overrides["model"]].append({"seed": overrides.get("seed"), "metrics": json.loads(metrics_file.read_text()),
                                         "curves": {int(k): v for k, v in curves.items()}})
    buckets = sorted({k.split("/")[1] for runs_ in jobs.values() for r in runs_ for k in r["metrics"]
                      if k.startswith("test/agree_d") and k.endswith("/class_acc")})
    seeds = sorted({r["seed"] for runs_ in jobs.values() for r in runs_})

    print("# Vanishing gradients: which cells carry gradient and agreement across distance?\n")
    cfg = yaml.safe_load(next(runs.rglob("config.yaml")).read_text())
    data, model, trainer = cfg["data"], cfg["model"], cfg["trainer"]
    print("Command: `bash experiments/vanishing_gradients/run.sh` = `python train.py -m experiment=vanishing_gradients "
          "model=rnn,rnn_relu,leaky_rnn,skip_rnn,lstm,gru seed=1,2,3` (conf/experiment/vanishing_gradients.yaml: "
          f"data=synthetic_lm with {data['distance_min']}–{data['distance_max']} distractors between subject and "
          f"verb, {data['train_tokens'] // 1000}k training tokens, bptt {data['bptt']}; {model['num_layers']} layer(s) "
          f"of {model['hidden_size']} units, embedding {model['embedding_size']}, dropout {model['dropout']}, "
          f"{cfg['optimizer']['_target_'].split('.')[-1]} lr {cfg['optimizer']['lr']}, clip "
          f"{trainer['gradient_clip_val']}, {trainer['max_epochs']} epochs; test metrics from the best-val "
          "checkpoint).")
    cpu = cpu_model()
    print(f"Seeds {', '.join(map(str, seeds))}. Machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}. "
          f"Total wall time {wall // 60} min {wall % 60} s (the machine was shared: fit s is indicative).\n")
    print("Columns: mean ± std over seeds. **gap** = test ppl / Bayes-optimal ppl − 1. **agreement acc d a–b** = "
          "how often the verb's most probable agreement class (p summed over the class's verbs) is the subject's, "
          "for verbs a–b distractors after their subject (optimum 1, forgetting the subject 0.25). "
          "**log10 g₁/g_T** = log10 ‖∂L_T/∂h_1‖ / ‖∂L_T/∂h_T‖ on a fixed validation window of T = 64 after the "
          "last epoch: −5 means the loss at step 64 feels step 1 a hundred thousand times less than step 64.\n")
    header = ["model", "runs", "test ppl", "gap %"] + [f"agreement acc {b.removeprefix('agree_')}" for b in buckets] \
        + ["log10 g₁/g_T", "fit s"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * 2 + "---:|" * (len(header) - 2))
    for model in [m for m in ORDER if m in jobs] + [m for m in jobs if m not in ORDER]:
        rs = jobs[model]
        last = [r["curves"][max(r["curves"])] for r in rs]
        cells = [LABELS.get(model, model), str(len(rs)),
                 mean_std_of([r["metrics"]["test/ppl"] for r in rs], ".3f"),
                 mean_std_of([100 * r["metrics"]["test/ppl_gap"] for r in rs], ".1f")]
        cells += [mean_std_of([r["metrics"].get(f"test/{b}/class_acc") for r in rs], ".3f") for b in buckets]
        cells += [mean_std_of([math.log10(max(c[0], 1e-300) / c[-1]) for c in last], ".1f"),
                  mean_std_of([r["metrics"]["fit_seconds"] for r in rs], ".0f")]
        print("| " + " | ".join(cells) + " |")
    plot(jobs)
    print("\n![gradient through time](gradient_curves.png)\n")
    print("gradient_curves.png: ‖∂L_T/∂h_k‖ against k (T = 64), geometric mean over seeds, after the first and "
          "the last epoch.")


def plot(jobs) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, which, title in ((axes[0], min, "after epoch 1"), (axes[1], max, "after the last epoch")):
        for model in [m for m in ORDER if m in jobs]:
            curves = torch.tensor([r["curves"][which(r["curves"])] for r in jobs[model]]).clamp_min(1e-30)
            ax.semilogy(range(1, curves.size(1) + 1), curves.log().mean(0).exp(), label=LABELS[model])
        ax.set(title=title, xlabel="k (loss at k = T)")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("‖∂L_T/∂h_k‖ (geometric mean over seeds)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "gradient_curves.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
