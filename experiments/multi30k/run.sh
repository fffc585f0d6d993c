#!/usr/bin/env bash
# Issue 4's benchmark: Multi30k de→en, test_2016_flickr, cased sacreBLEU, an RNN with attention trained ≤ 60 min on
# a 2-core CPU. Trains experiment=multi30k_best, scores its best checkpoint with other decoders (eval.py: greedy,
# beam 5 and 10 with length penalties), and writes results.md here from the MLflow run.
#   bash experiments/multi30k/run.sh                   (from the repository root; ~35 min train + ~5 min decoding)
#   RUN=<MLflow run id> bash experiments/multi30k/run.sh   (only the decoders and the table, for a finished run)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
DATA=${SHARED_DATA:-../shared/data}/multi30k
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${OMP_NUM_THREADS:-1}   # the published run: one thread
QUIET="callbacks.progress_bar=null +trainer.enable_progress_bar=false"

if [ -z "${RUN:-}" ]; then
  $PY train.py experiment=multi30k_best data.root=$DATA seed=42 experiment_name=multi30k_best $QUIET
  RUN=$($PY experiments/multi30k/summarize.py --latest)
fi
for decoder in "decode=greedy" "decode=beam beam_size=5 length_penalty=0.0" "decode=beam beam_size=10 length_penalty=1.0"; do
  $PY eval.py ckpt=$RUN data=multi30k data.root=$DATA $decoder
done
$PY experiments/multi30k/summarize.py $RUN > experiments/multi30k/results.md
