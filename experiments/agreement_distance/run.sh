#!/usr/bin/env bash
# Does a vanilla RNN trail LSTM/GRU as the agreement distance grows? Regenerates results.md.
#   bash experiments/agreement_distance/run.sh        (~15 min on 2 CPU cores)
# Two regimes of data=synthetic_lm, the default model size and budget, seed 42, one sweep each.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=experiments/agreement_distance/runs
rm -rf "$out"
start=$(date +%s)
.venv/bin/python train.py -m model=rnn,lstm,gru data.distance_min=1 data.distance_max=8 \
  seed=42 callbacks.progress_bar.refresh_rate=0 hydra.sweep.dir="$out/short"
.venv/bin/python train.py -m model=rnn,lstm,gru data.distance_min=20 data.distance_max=60 \
  seed=42 callbacks.progress_bar.refresh_rate=0 hydra.sweep.dir="$out/long"
.venv/bin/python experiments/agreement_distance/summarize.py "$out" $(( $(date +%s) - start )) \
  > experiments/agreement_distance/results.md
cat experiments/agreement_distance/results.md
