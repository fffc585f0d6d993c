#!/usr/bin/env bash
# Vanishing gradients: six cells × three seeds on the long-range agreement corpus. Regenerates
# results.md and gradient_curves.png here:   bash experiments/vanishing_gradients/run.sh
# The sweep is `python train.py -m experiment=vanishing_gradients model=<six cells> seed=1,2,3`
# (conf/experiment/vanishing_gradients.yaml), run as two Hydra multiruns side by side, one per core.
# Runs are also tracked in MLflow (experiment vanishing_gradients-synthetic_lm).
set -euo pipefail
# one intra-op thread per run: these small models gain little from two, and on a loaded machine
# torch's spinning threads made a run up to 50× slower (measured)
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
cd "$(dirname "$0")/../.."
out=experiments/vanishing_gradients/runs
rm -rf "$out" && mkdir -p "$out"
.venv/bin/python -c "from rnnlab.tracking.mlflow_store import ensure_store; ensure_store('sqlite:///logs/mlflow.db')"
start=$(date +%s)
sweep() { .venv/bin/python train.py -m experiment=vanishing_gradients model="$1" seed=1,2,3 hydra.sweep.dir="$out/$2"; }
sweep lstm,gru,rnn a > "$out/a.log" 2>&1 &
sweep skip_rnn,leaky_rnn,rnn_relu b > "$out/b.log" 2>&1 &
wait
.venv/bin/python experiments/vanishing_gradients/summarize.py "$out" $(( $(date +%s) - start )) \
  > experiments/vanishing_gradients/results.md
cat experiments/vanishing_gradients/results.md
