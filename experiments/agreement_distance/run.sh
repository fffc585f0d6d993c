#!/usr/bin/env bash
# Does a vanilla RNN trail LSTM/GRU as the agreement distance grows? Regenerates results.md.
#   bash experiments/agreement_distance/run.sh        (~20 min on 2 CPU cores)
# Three distance regimes of data=synthetic_lm, one sweep each over model=rnn,lstm,gru, with the
# default model size and data (300k training tokens), 6 epochs, seed 42. Runs are tracked in MLflow.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=experiments/agreement_distance/runs
rm -rf "$out"
start=$(date +%s)
for regime in short:1:8 mid:8:16 long:16:32; do
  IFS=: read -r name lo hi <<< "$regime"
  .venv/bin/python train.py -m model=rnn,lstm,gru data.distance_min="$lo" data.distance_max="$hi" \
    trainer.max_epochs=6 seed=42 model.embedding_init=uniform callbacks.progress_bar.refresh_rate=0 hydra.sweep.dir="$out/$name"
done
.venv/bin/python experiments/agreement_distance/summarize.py "$out" $(( $(date +%s) - start )) \
  > experiments/agreement_distance/results.md
cat experiments/agreement_distance/results.md
