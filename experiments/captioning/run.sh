#!/usr/bin/env bash
# Study (issue 18): one-to-many captioning of the embedded synthetic scenes — the recipe for the targets
# (BLEU-4 ≥ 90 and assertion accuracy ≥ 97 on test in ≤ 15 CPU minutes), 3 seeds; then the study: attention
# none | bahdanau | luong_general × lstm | gru at the recipe's budget, 3 seeds each, by number of objects in the
# scene and on the unseen-combination split (test_unseen). Regenerates results/ here (report.py tables and plots).
#   bash experiments/captioning/run.sh targets            (from the repository root: the recipe, seeds 1, 2, 3)
#   bash experiments/captioning/run.sh grid_lstm|grid_gru (the study's grid, one cell each: two lanes, one core each;
#                                                          lstm x luong_general is the recipe, run by targets)
#   bash experiments/captioning/run.sh grid|report        (grid: both lanes, then report)
#   bash experiments/captioning/run.sh all                (the whole study: targets, then grid and report; ~5 CPU h)
set -euo pipefail
STUDY=captioning
SEEDS=${SEEDS:-1,2,3}
source "$(dirname "$0")/../lib.sh"   # cd to the repository root; PY, QUIET, target, report_of, two_lanes

targets() { $PY train.py -m experiment=scenes_captioning seed=$SEEDS experiment_name=captioning-targets $QUIET; }
grid_cell() {  # $1: the decoder's cell (lstm x luong_general is the recipe: run by targets)
  local attention=none,bahdanau; [ "$1" = lstm ] || attention+=,luong_general
  $PY train.py -m experiment=scenes_captioning model=$1 attention=$attention seed=$SEEDS \
    experiment_name=captioning-grid $QUIET
}
grid_lstm() { grid_cell lstm; }
grid_gru() { grid_cell gru; }
report() {
  local by_objects="" split
  for split in test test_unseen; do
    for n in 1 2 3 4; do by_objects+=",$split/assertion_acc/objects_$n,$split/bleu/objects_$n"; done
  done
  local metrics=test/bleu,test/assertion_acc,test/cider,test/caption_acc,test_unseen/bleu,test_unseen/assertion_acc
  report_of targets --metrics $metrics,fit_cpu_seconds
  if $PY -c "import mlflow, sys; from rnnlab.tracking.mlflow_store import default_tracking_uri as uri
mlflow.set_tracking_uri(uri()); sys.exit(mlflow.get_experiment_by_name('captioning-grid') is None)" 2>/dev/null; then
    # the recipe's seeds (lstm x luong_general) are the targets' runs: one table of both experiments
    $PY report.py $STUDY-grid,$STUDY-targets --out $HERE/results/grid --group-by model,attention \
      --metrics $metrics$by_objects,fit_cpu_seconds
  fi
}

case "${1:-targets}" in
  targets|grid_lstm|grid_gru|report) "$1" ;;
  grid) two_lanes grid_lstm grid_gru grid; report ;;
  all) targets; two_lanes grid_lstm grid_gru grid; report ;;
  *) echo "usage: $0 [targets|grid|grid_lstm|grid_gru|report|all]" >&2; exit 2 ;;
esac
