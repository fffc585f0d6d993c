#!/usr/bin/env bash
# Study: the n-gram baseline vs Elman RNN, LSTM and GRU, 3 seeds each, on the synthetic corpus (whose optimum is
# known) and on Tiny Shakespeare (characters). Regenerates results/ here; about 40 min on 2 CPU cores.
#   bash experiments/cell_comparison/run.sh            (from the repository root)
# Each part is one sweep (one MLflow parent run) into its own MLflow experiment; report.py makes the tables.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
HERE=experiments/cell_comparison
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1   # the two parts run side by side, one core each
QUIET="callbacks.progress_bar=null +trainer.enable_progress_bar=false"
SHARED_DATA=${SHARED_DATA:-../shared/data}

synthetic() {
  $PY train.py -m experiment=compare_cells experiment_name=cell_comparison-synthetic $QUIET
  $PY train.py -m model=ngram model.order=2,3,5 experiment_name=cell_comparison-synthetic $QUIET
}

shakespeare() {
  # 1×256 cells, 4 "epochs" of 150 steps (32 streams × 128 characters), validated after each
  $PY train.py -m data=tinyshakespeare data.root=$SHARED_DATA/tinyshakespeare model=rnn,lstm,gru seed=1,2,3 \
    model.num_layers=1 model.hidden_size=256 model.embedding_size=64 model.embedding_init=uniform trainer.max_epochs=4 \
    +trainer.limit_train_batches=150 experiment_name=cell_comparison-tinyshakespeare $QUIET
  $PY train.py -m data=tinyshakespeare data.root=$SHARED_DATA/tinyshakespeare model=ngram model.order=3,5,7 \
    experiment_name=cell_comparison-tinyshakespeare $QUIET
}

mlflow_ready() { $PY -c "from rnnlab.tracking import mlflow_store as s; s.ensure_store(s.default_tracking_uri())"; }

started=$(date +%s)
mlflow_ready   # create the store once before two processes use it
synthetic > logs/cell_comparison-synthetic.log 2>&1 &
shakespeare > logs/cell_comparison-tinyshakespeare.log 2>&1 &
wait
# synthetic: distance to the Bayes optimum, and whether the subject is carried (choice_excess → 0; log 4 = forgotten)
$PY report.py cell_comparison-synthetic --out $HERE/results/synthetic \
  --metrics val/ppl,val/ppl_gap,test/ppl,val/agreement/choice_excess,fit_seconds
# Tiny Shakespeare: nats and bits per character on the validation split (the last 10%)
$PY report.py cell_comparison-tinyshakespeare --out $HERE/results/tinyshakespeare \
  --metrics val/loss,val/bpc,fit_seconds
$PY - "$started" > $HERE/results/machine.md <<'PYEOF'
import sys, time, platform, torch
from rnnlab.tracking.run_info import cpu_model
print(f"- wall time: {(time.time() - float(sys.argv[1])) / 60:.1f} min for both parts side by side")
print(f"- machine: {cpu_model()}, {torch.get_num_threads()} thread(s) per job, torch {torch.__version__}, "
      f"python {platform.python_version()}")
print("- seeds: 1, 2, 3 (the n-gram models are counted: one run each, no seed)")
PYEOF
