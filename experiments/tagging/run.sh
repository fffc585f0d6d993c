#!/usr/bin/env bash
# Study (issue 17): sequence tagging — the lecture's HMM against rnn/lstm/gru × {uni, bi} × {softmax, CRF} ×
# {no characters, character biLSTM}, 3 seeds each, on UD EWT (UPOS) and SNIPS slots, at a shortened budget that ranks
# the designs; then the recipes for the targets (UD EWT UPOS ≥ 95.5 dev in 30 CPU minutes, SNIPS slot F1 ≥ 94 valid),
# 3 seeds each, and the HMM on UPOS and XPOS. UD EWT and SNIPS test splits are held back here, so "test/…" of these
# runs is the dev/valid score of the best checkpoint (selected on dev). Regenerates results/ (report.py tables, plots).
#   bash experiments/tagging/run.sh targets        (from the repository root: the recipes, 3 seeds, two lanes)
#   bash experiments/tagging/run.sh grid_ud|grid_snips|hmm|report|target <recipe> <data folder> [overrides]
#   bash experiments/tagging/run.sh words          (on which dev words the HMM loses to the recipe: results/words/)
#   bash experiments/tagging/run.sh words_xpos     (the same on the Penn tags, from the xpos runs: results/words_xpos/)
#   bash experiments/tagging/run.sh slots          (where the SNIPS slot recipe loses its span F1: results/slots/)
#   bash experiments/tagging/run.sh xpos           (the UPOS recipe on the Penn tags, 3 seeds, beside the HMM: results/xpos/)
#   bash experiments/tagging/run.sh snips          (the SNIPS slot recipe alone, 3 seeds in one lane, and where it loses:
#                                                   results/snips_recipe/)
#   bash experiments/tagging/run.sh report_grids   (results/ud_ewt/, results/snips_slots/ from the grids' runs alone)
set -euo pipefail
STUDY=tagging
SEEDS=${SEEDS:-1,2,3}
source "$(dirname "$0")/../lib.sh"   # cd to the repository root; PY, SHARED_DATA, QUIET, target, report_of, two_lanes

hmm_ud() {  # the first- and second-order HMM on UD EWT; $1: tag sets (upos,xpos), $2: the MLflow experiment
  $PY train.py -m task=tagging model=hmm data=ud_ewt data.root=$SHARED_DATA/ud_ewt data.tagset=$1 model.order=1,2 \
    experiment_name=$2 $QUIET
}
hmm() {  # the lecture's baseline beside the recipes: counted once (no seed changes it)
  hmm_ud upos,xpos tagging-targets
  $PY train.py task=tagging model=hmm data=snips_slots data.root=$SHARED_DATA/snips experiment_name=tagging-targets \
    monitor.metric=val/span_f1 $QUIET
}
# the designs at a shortened budget (one layer of 128 units, 5 CPU minutes UD EWT, 3 SNIPS), decay within it
GRID="model=rnn,lstm,gru model.bidirectional=false,true task.crf=false,true model.char_features=none,lstm
  model.num_layers=1 model.hidden_size=128 seed=$SEEDS"
grid_ud() {
  $PY train.py -m experiment=ud_ewt_upos data.root=$SHARED_DATA/ud_ewt $GRID trainer.max_cpu_time=00:00:05:00 \
    experiment_name=tagging-ud_ewt $QUIET
}
grid_snips() {
  $PY train.py -m experiment=snips_slots data.root=$SHARED_DATA/snips $GRID task.word_dropout=0.0 \
    trainer.max_cpu_time=00:00:03:00 experiment_name=tagging-snips_slots $QUIET
}
targets_a() { SEEDS=1,2 target ud_ewt_upos ud_ewt; }
targets_b() { SEEDS=3 target ud_ewt_upos ud_ewt; target snips_slots snips; hmm; }
# the Penn Treebank tags (XPOS, 50 in EWT) with the UPOS recipe unchanged, beside both HMMs; MLflow experiment tagging-xpos
xpos_run() { target ud_ewt_upos ud_ewt data.tagset=xpos experiment_name=$STUDY-xpos; }
xpos_a() { SEEDS=1,3 xpos_run; }
xpos_b() { SEEDS=2 xpos_run; hmm_ud xpos $STUDY-xpos; }
METRICS=val/acc,val/acc_unseen,val/span_f1,test/acc,test/span_f1
report() {
  report_of targets --group-by experiment,data,model,model.order,data.tagset --metrics $METRICS,fit_cpu_seconds
  report_grids
}
report_grids() {
  local metrics=$METRICS
  for name in ud_ewt snips_slots; do
    if $PY -c "import mlflow, sys; from rnnlab.tracking.mlflow_store import default_tracking_uri as uri
mlflow.set_tracking_uri(uri()); sys.exit(mlflow.get_experiment_by_name('tagging-$name') is None)" 2>/dev/null; then
      report_of $name --metrics $metrics
    fi
  done
}
words() {  # the store's HMM and recipe runs (picked by tags and params) tag UD EWT dev; a few CPU minutes
  $PY $HERE/words.py --experiment $STUDY-targets --data-root $SHARED_DATA/ud_ewt --out $HERE/results/words
}
words_xpos() {  # the same on the Penn tags: the XPOS runs (xpos_a, xpos_b) of MLflow experiment tagging-xpos
  $PY $HERE/words.py --experiment $STUDY-xpos --data-root $SHARED_DATA/ud_ewt --out $HERE/results/words_xpos
}
snips() {  # the SNIPS slot recipe (20 CPU minutes) × 3 seeds, one after another; MLflow experiment tagging-snips_recipe
  target snips_slots snips experiment_name=$STUDY-snips_recipe
  report_of snips_recipe --group-by experiment --metrics test/span_f1,test/acc,test/acc_unseen,val/span_f1,fit_cpu_seconds
  $PY $HERE/slots.py --experiment $STUDY-snips_recipe --data-root $SHARED_DATA/snips --out $HERE/results/snips_recipe/slots
}
slots() {  # the store's snips_slots recipe runs (picked by tags and params) tag SNIPS valid; under a CPU minute
  $PY $HERE/slots.py --experiment $STUDY-targets --data-root $SHARED_DATA/snips --out $HERE/results/slots
}

case "${1:-targets}" in
  grid_ud|grid_snips|hmm|targets_a|targets_b|xpos_a|xpos_b|report|report_grids|snips|words|words_xpos|slots) "$1" ;;
  target) shift; target "$@" ;;
  targets) two_lanes targets_a targets_b targets; report ;;
  xpos) two_lanes xpos_a xpos_b xpos
    report_of xpos --group-by model,model.order --metrics val/acc,val/acc_unseen,test/acc,fit_cpu_seconds ;;
  *) echo "usage: $0 [targets|xpos|snips|grid_ud|grid_snips|hmm|report|report_grids|words|words_xpos|slots|target <recipe> <data folder> [overrides]]" >&2; exit 2 ;;
esac
