"""Table of an experiment=shakespeare_char run: python summarize.py <run dir> > results.md"""

import json
import os
import sys
from pathlib import Path

import mlflow
import torch
import yaml

from rnnlab.tracking.run_info import cpu_model

run = Path(sys.argv[1])
metrics = json.loads((run / "metrics.json").read_text())
overrides = yaml.safe_load((run / ".hydra/overrides.yaml").read_text())
client = mlflow.MlflowClient(os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///logs/mlflow.db"))
experiment = client.get_experiment_by_name("shakespeare_char-tinyshakespeare")
run_id = next(r.info.run_id for r in client.search_runs([experiment.experiment_id])
              if r.data.params.get("paths.output_dir", "").endswith(str(run)))
history = client.get_metric_history(run_id, "val/loss")
tags, params = client.get_run(run_id).data.tags, client.get_run(run_id).data.params

print("# experiment=shakespeare_char: results\n")
print(f"Command: `python train.py {' '.join(overrides)}`. Machine: {tags.get('machine.cpu', cpu_model())}, "
      f"{tags.get('machine.cores', os.cpu_count())} cores, {tags.get('machine.torch_threads', '?')} torch "
      f"thread(s), torch {tags.get('machine.torch', torch.__version__)}; {int(tags.get('num_parameters', 0)):,} "
      f"parameters; fit {metrics['fit_seconds'] / 60:.1f} min (budget `trainer.max_time` 30 min).\n")
print("| validation | step | characters seen | val loss (nats/char) | val bpc |")
print("|---:|---:|---:|---:|---:|")
per_step = int(params["data.batch_size"]) * int(params["data.bptt"])  # characters per update
for number, point in enumerate(history, 1):
    print(f"| {number} | {point.step} | {point.step * per_step / 1e6:.1f} M | {point.value:.3f} | "
          f"{point.value / 0.6931471805599453:.3f} |")
print(f"\nBest checkpoint on the validation split (= test split here): loss {metrics['test/loss']:.3f} nats/char, "
      f"{metrics['test/bpc']:.3f} bpc, ppl {metrics['test/ppl']:.2f}. MLflow run `{run_id}`.")
