#!/usr/bin/env bash
# Vanishing gradients: six cells × three seeds on the long-range agreement corpus. Regenerates
# results.md and gradient_curves.png here:   bash experiments/vanishing_gradients/run.sh
# (one Hydra multirun, conf/experiment/vanishing_gradients.yaml; runs are also tracked in MLflow)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=experiments/vanishing_gradients/runs
rm -rf "$out"
start=$(date +%s)
.venv/bin/python train.py -m experiment=vanishing_gradients \
  model=rnn,rnn_relu,leaky_rnn,skip_rnn,lstm,gru seed=1,2,3 hydra.sweep.dir="$out"
.venv/bin/python experiments/vanishing_gradients/summarize.py "$out" $(( $(date +%s) - start )) \
  > experiments/vanishing_gradients/results.md
cat experiments/vanishing_gradients/results.md
