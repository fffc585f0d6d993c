#!/usr/bin/env bash
# Issue 20: rnnlab side by side with JoeyNMT 2.3.0 (translation) and pytorch/examples word_language_model (word LM),
# and the memory allocator, on one thread each, alternating the systems. Every step prints JSON lines.
#   bash experiments/peers/run.sh [setup | data | train | decode | lm | lm-epochs | alloc | budget | all]   (default all)
#   SMOKE=1 bash experiments/peers/run.sh all    the same steps, minutes in all: proves the harness, measures nothing
# From the repository root; rnnlab's .venv must exist (make install). Outputs under experiments/peers/runs/ (ignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
PEER=experiments/peers/.venv-joeynmt
MEASURE="$PY experiments/peers/measure.py"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${OMP_NUM_THREADS:-1}
# this machine's pip config points at local mirrors that pip reports as "ignored"; hide only that
quiet_pip() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }

if [ -n "${SMOKE:-}" ]; then   # a minute or two per step on a loaded 2-core machine
  PAIRS=1 STEPS=8 LM_STEPS=20 EPOCHS="--epochs 1 --corpus lm_smoke" MINUTES=1 SENTENCES=100 DECODE_PAIRS=1
  ALLOC="--steps 10 --workloads lm"
else
  PAIRS=${PAIRS:-5} STEPS=${STEPS:-30} LM_STEPS=${LM_STEPS:-100} EPOCHS="--epochs ${EPOCHS:-6}"
  MINUTES=${MINUTES:-30} SENTENCES=1000 DECODE_PAIRS=${DECODE_PAIRS:-3} ALLOC="--steps ${STEPS:-30}"
fi

setup() {   # JoeyNMT in its own virtualenv, on the same CPU torch as rnnlab's (pip never pulls a CUDA build here)
  if [ ! -x $PEER/bin/python ]; then ${PYTHON3:-python3} -m venv $PEER; fi
  quiet_pip $PEER/bin/pip install -q torch==2.13.0
  # importlib_metadata: imported, not declared; sentencepiece >= 0.2.2 lacks the SetVocabulary JoeyNMT calls
  quiet_pip $PEER/bin/pip install -q joeynmt==2.3.0 importlib_metadata sentencepiece==0.2.1
  $PEER/bin/python -c "import torch, joeynmt; assert torch.__version__.endswith('+cpu'), torch.__version__"
  for library in libjemalloc.so.2 libtcmalloc_minimal.so.4; do   # optional: measure.py alloc skips what is absent
    [ -e /usr/lib/x86_64-linux-gnu/$library ] || echo "run.sh: $library absent (apt-get install libjemalloc2 libtcmalloc-minimal4)"
  done
}
data() { $PY experiments/peers/prepare.py; }
train() { $MEASURE train --pairs "$PAIRS" --steps "$STEPS" --input-feeding on off; }
lm() { $MEASURE lm --pairs "$PAIRS" --steps "$LM_STEPS"; }
lm_epochs() { $MEASURE lm-epochs $EPOCHS; }
alloc() { $MEASURE alloc --pairs "$PAIRS" $ALLOC; }
# the budget run trains both for MINUTES each, keeping a checkpoint at each validation; every checkpoint decodes
# test_2016 with beam 5 (BLEU against wall-clock time), then each system's pick is timed decoding: 2 × MINUTES + ~20
budget() { $MEASURE budget --minutes "$MINUTES" --sentences "$SENTENCES" --pairs "$DECODE_PAIRS"; }

step=${1:-all}
case $step in
  setup | data | train | lm | alloc | budget) $step ;;
  lm-epochs) lm_epochs ;;
  decode) budget ;;   # decoding needs trained models: the budget run trains them first
  all) setup; data; train; lm; lm_epochs; alloc; budget ;;
  *) echo "usage: run.sh [setup | data | train | decode | lm | lm-epochs | alloc | budget | all]" >&2; exit 2 ;;
esac
