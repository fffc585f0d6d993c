# shellcheck shell=bash
# What the studies' run.sh (tagging/, classification/, attention_variants/) share. Each sets STUDY (its folder here,
# the prefix of its MLflow experiments and logs) and, for target, SEEDS, then sources this file: the run then goes on
# at the repository root.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=.venv/bin/python
HERE=experiments/$STUDY
SHARED_DATA=${SHARED_DATA:-../shared/data}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1   # one thread per run: one core per lane; the issues' budgets are one thread
QUIET="callbacks.progress_bar=null +trainer.enable_progress_bar=false"

target() {  # $1: the recipe (conf/experiment/), $2: its data folder, then overrides; seeds: $SEEDS
  $PY train.py -m experiment=$1 seed=$SEEDS data.root=$SHARED_DATA/$2 experiment_name=$STUDY-targets "${@:3}" $QUIET
}
report_of() {  # $1: a part of the study (MLflow experiment $STUDY-$1, written to results/$1), then report.py's options
  local part=$1; shift
  $PY report.py $STUDY-$part --out $HERE/results/$part "$@"
}
two_lanes() {  # $1, $2: parts run side by side, one core each, logged to logs/$STUDY-<part>.log; $3: what took how long
  $PY -c "from rnnlab.tracking import mlflow_store as s; s.ensure_store(s.default_tracking_uri())"  # before jobs
  local started; started=$(date +%s)
  # a part's _ is a - in its log's name: targets_a logs to logs/tagging-targets-a.log
  "$1" > "logs/$STUDY-${1//_/-}.log" 2>&1 &
  "$2" > "logs/$STUDY-${2//_/-}.log" 2>&1 &
  wait
  echo "$3: $(( ($(date +%s) - started) / 60 )) min"
}
