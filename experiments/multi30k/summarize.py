"""The table of experiments/multi30k from an experiment=multi30k_best run and its eval.py scores.

    python experiments/multi30k/summarize.py <MLflow run id> > experiments/multi30k/results.md
    python experiments/multi30k/summarize.py --latest          (prints the newest multi30k_best run's id)
"""

import sys

from mlflow import MlflowClient

from rnnlab.tracking.mlflow_store import default_tracking_uri
from rnnlab.tracking.run_info import time_budget

client = MlflowClient(default_tracking_uri())
if sys.argv[1] == "--latest":
    experiment = client.get_experiment_by_name("multi30k_best")
    print(client.search_runs([experiment.experiment_id], order_by=["start_time DESC"], max_results=1)[0].info.run_id)
    sys.exit()

run = client.get_run(sys.argv[1])
metrics, tags = run.data.metrics, run.data.tags
print("# experiment=multi30k_best: results\n")
print(f"Command: `python train.py {tags['hydra_overrides']}` (then `eval.py` per decoder, see run.sh). "
      f"Machine: {tags.get('machine.cpu', '?')}, {tags.get('machine.cores', '?')} cores, "
      f"{tags.get('machine.torch_threads', '?')} torch thread(s), torch {tags.get('machine.torch', '?')}; "
      f"training {time_budget(run.data.params, metrics)}; {int(tags.get('num_parameters', 0)) / 1e6:.2f} M parameters; "
      f"git {tags.get('git_commit', '?')[:7]}; MLflow run `{run.info.run_id}`.\n")
print(f"BLEU signature: `{tags.get('bleu_signature')}`.\n")

print("## Test (test_2016_flickr, 1000 sentences), best checkpoint by val BLEU\n")
print("| decoder | BLEU (cased) | BLEU lowercased | chrF | ppl (teacher-forced) |")
print("|---|---:|---:|---:|---:|")
rows = [("beam 5, α = 1.0 (the run's own test)", "test/")]
rows += sorted((f"eval.py: {key.split('/')[1]}", key.rsplit("/", 2)[0] + "/test/")
               for key in metrics if key.startswith("eval/") and key.endswith("/test/bleu"))
for name, prefix in rows:
    m = {k: metrics.get(prefix + k) for k in ("bleu", "bleu_lc", "chrf", "ppl")}
    print(f"| {name} | {m['bleu']:.2f} | {m['bleu_lc']:.2f} | {m['chrf']:.2f} | {m['ppl']:.2f} |")

buckets = sorted((k for k in metrics if k.startswith("test/bleu_by_len/")),
                 key=lambda k: int(k.split("/")[-1].split("-")[0]))
if buckets:
    print("\nTest BLEU by source length (words): " + ", ".join(
        f"{k.split('/')[-1].replace('-inf', '+')}: {metrics[k]:.1f}" for k in buckets) + ".")

print("\n## Validation during training\n")
print("| epoch | step | val loss | val ppl | val BLEU (beam 5) |")
print("|---:|---:|---:|---:|---:|")
bleu = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val/bleu")}
for epoch, m in enumerate(client.get_metric_history(run.info.run_id, "val/ppl"), 1):
    loss = [h.value for h in client.get_metric_history(run.info.run_id, "val/loss") if h.step == m.step][0]
    measured = bleu.get(m.step, bleu.get(m.step + 1))  # runs before 3f3f360 logged val/bleu one step later
    print(f"| {epoch} | {m.step} | {loss:.3f} | {m.value:.2f} | {'' if measured is None else f'{measured:.2f}'} |")
