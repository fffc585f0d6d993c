#!/usr/bin/env bash
# Same seed, same metrics before and after the task base (issue 15): four small runs with the code of BEFORE and of
# AFTER, each in a git worktree of its own, then every final metric compared (timings left out).
#   bash experiments/task_base_equivalence/run.sh [BEFORE] [AFTER]     (defaults: 6fe09d1, d2f4444)
# (AFTER was HEAD until the LM's embedding init changed on purpose, model.embedding_init=unit: from then on HEAD's
# LM runs differ from BEFORE's by that change, not by the task base)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BEFORE=${1:-6fe09d1}; AFTER=${2:-d2f4444}
OUT=${OUT:-$ROOT/experiments/task_base_equivalence/runs}
PY=$ROOT/.venv/bin/python
SHAKESPEARE=$ROOT/../shared/data/tinyshakespeare
rm -rf "$OUT"; mkdir -p "$OUT"
for side in before after; do
  rev=$([ $side = before ] && echo "$BEFORE" || echo "$AFTER")
  tree=$OUT/tree_$side
  git -C "$ROOT" worktree add -q --detach "$tree" "$rev"
  (
    cd "$tree"
    export PYTHONPATH=$tree/src OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MLFLOW_TRACKING_URI=sqlite:///$OUT/$side.db
    run() { name=$1; shift; $PY train.py "$@" paths.log_dir=$OUT/logs_$side hydra.run.dir=$OUT/$side/$name > $OUT/$side/$name.log 2>&1; }
    mkdir -p $OUT/$side
    run lm_quick experiment=quick
    run ngram_quick experiment=quick model=ngram
    run mt_small task=translation model=gru attention=luong_general data.train_pairs=1500 data.val_pairs=100 \
      data.test_pairs=100 data.max_words=12 model.embedding_size=32 model.hidden_size=48 model.num_layers=1 \
      trainer.max_epochs=2 task.beam_size=3
    run char_tiny data=tinyshakespeare data.root=$SHAKESPEARE data.train_fraction=0.02 data.val_fraction=0.01 \
      model.embedding_size=16 model.hidden_size=16 model.num_layers=1 trainer.max_epochs=1 data.bptt=32
  )
  git -C "$ROOT" worktree remove --force "$tree"
done
$PY "$ROOT/experiments/task_base_equivalence/compare.py" "$OUT/before" "$OUT/after"
