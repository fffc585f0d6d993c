# shellcheck shell=bash
# What the run.sh of the studies here share. A study sets `here` (its folder) and COMMON (the overrides all its runs
# take; may be empty), then sources this file at the repository root.
#   run_once NAME SEED OVERRIDES...   trains runs/NAME/seedSEED/ (logger=csv, no MLflow; the log beside it as
#                                     seedSEED.log) unless it finished before (it has metrics.json), so a study can
#                                     be extended or an interrupted one continued without rerunning what is done.
# One lane per run: a run directory without metrics.json is started again from scratch.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"   # the studies' budgets are one thread's CPU time
PYTHON="${PYTHON:-.venv/bin/python}"             # another interpreter than .venv's

run_once() {
  local name=$1 seed=$2; shift 2
  local dir="$here/runs/$name/seed$seed"
  [ -f "$dir/metrics.json" ] && return 0
  rm -rf "$dir" && mkdir -p "$(dirname "$dir")"
  "$PYTHON" train.py seed="$seed" "$@" "${COMMON[@]}" logger=csv callbacks.progress_bar.refresh_rate=0 \
    hydra.run.dir="$dir" > "$dir.log" 2>&1 || { echo "FAILED: $name seed $seed (see $dir.log)"; exit 1; }
  echo "done: $name seed $seed"
}
