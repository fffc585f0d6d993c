"""Table of experiment=shakespeare_char runs: python summarize.py <run dir> [<run dir of another seed> ...] > results.md

The first run's validation curve in full, then one line per run (seed, best val loss, its step, fit minutes)
with the mean ± standard deviation over the runs."""

import json
import math
import os
import statistics
import sys
from pathlib import Path

import mlflow
import torch
import yaml

from rnnlab.tracking.run_info import cpu_model, time_budget

client = mlflow.MlflowClient(os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///logs/mlflow.db"))
experiment = client.get_experiment_by_name("shakespeare_char-tinyshakespeare")
every_run = client.search_runs([experiment.experiment_id])


def load(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    overrides = yaml.safe_load((run / ".hydra/overrides.yaml").read_text())
    run_id = next(r.info.run_id for r in every_run if r.data.params.get("paths.output_dir", "").endswith(str(run)))
    data = client.get_run(run_id).data
    return {"metrics": metrics, "overrides": overrides, "run_id": run_id, "tags": data.tags, "params": data.params,
            "history": client.get_metric_history(run_id, "val/loss")}


runs = [load(Path(arg)) for arg in sys.argv[1:]]
first = runs[0]
tags, params = first["tags"], first["params"]
print("# experiment=shakespeare_char: results\n")
print(f"Command: `python train.py {' '.join(first['overrides'])}`. Machine: {tags.get('machine.cpu', cpu_model())}, "
      f"{tags.get('machine.cores', os.cpu_count())} cores, {tags.get('machine.torch_threads', '?')} torch "
      f"thread(s), torch {tags.get('machine.torch', torch.__version__)}; {int(tags.get('num_parameters', 0)):,} "
      f"parameters; fit {time_budget(params, first['metrics'])}.\n")
print("| validation | step | characters seen | val loss (nats/char) | val bpc |")
print("|---:|---:|---:|---:|---:|")
per_step = int(params["data.batch_size"]) * int(params["data.bptt"])  # characters per update
for number, point in enumerate(first["history"], 1):
    print(f"| {number} | {point.step} | {point.step * per_step / 1e6:.1f} M | {point.value:.3f} | "
          f"{point.value / math.log(2):.3f} |")
metrics = first["metrics"]
print(f"\nBest checkpoint on the validation split (= test split here): loss {metrics['test/loss']:.3f} nats/char, "
      f"{metrics['test/bpc']:.3f} bpc, ppl {metrics['test/ppl']:.2f}. MLflow run `{first['run_id']}`.")
if len(runs) > 1:
    print("\n## Seeds\n")
    print("| seed | best val loss (nats/char) | at step | fit (min) | torch threads | command | MLflow run |")
    print("|---:|---:|---:|---:|---:|---|---|")
    for run in runs:
        best = min(run["history"], key=lambda point: point.value)
        print(f"| {run['params'].get('seed', '?')} | {run['metrics']['test/loss']:.3f} | {best.step} | "
              f"{run['metrics']['fit_seconds'] / 60:.1f} | {run['tags'].get('machine.torch_threads', '?')} | "
              f"`{' '.join(run['overrides'])}` | `{run['run_id'][:8]}` |")
    losses = [run["metrics"]["test/loss"] for run in runs]
    print(f"\nMean ± std over {len(runs)} seeds: **{statistics.mean(losses):.3f} ± {statistics.stdev(losses):.3f}** "
          f"nats/char; worst {max(losses):.3f}.")
