#!/usr/bin/env bash
# Study: every attention (none, Bahdanau, Luong dot/general/concat, local-p) in the encoder–decoder, 2 seeds each:
#   synthetic  the embedded reordering pair (5–30 words), GRU, experiment=compare_attention (3 epochs): BLEU by
#              source-length bucket, where attention should matter most
#   multi30k   de→en, × cell (rnn, lstm, gru), experiment=compare_attention_multi30k (a shortened budget: 2 epochs
#              of a small network, greedy decoding)
# Regenerates results/ here (report.py tables and plots, then plot_lengths.py); about 75 min on 2 CPU cores.
#   bash experiments/attention_variants/run.sh            (from the repository root)
#   bash experiments/attention_variants/run.sh lane1|lane2|report     (one part: the lanes run one per core)
set -euo pipefail
STUDY=attention_variants
source "$(dirname "$0")/../lib.sh"   # cd to the repository root; PY, SHARED_DATA, QUIET, report_of, two_lanes

multi30k() {  # one seed: 18 jobs, one after another
  $PY train.py -m experiment=compare_attention_multi30k seed=$1 data.root=$SHARED_DATA/multi30k \
    experiment_name=attention_variants-multi30k $QUIET
}
lane1() {
  $PY train.py -m experiment=compare_attention seed=1,2 experiment_name=attention_variants-synthetic $QUIET
  multi30k 2
}
lane2() { multi30k 1; }
report() {
  local lengths=test/bleu_by_len/1-10,test/bleu_by_len/11-20,test/bleu_by_len/21-30
  report_of synthetic --group-by attention --metrics val/bleu,test/bleu,$lengths,test/ppl,fit_seconds
  report_of multi30k --group-by model,attention \
    --metrics val/bleu,test/bleu,test/bleu_lc,test/chrf,test/ppl,$lengths,fit_seconds
  $PY $HERE/plot_lengths.py $HERE/results/synthetic $HERE/results/multi30k
}

case "${1:-all}" in
  lane1|lane2|report) "$1" ;;
  all) two_lanes lane1 lane2 sweeps; report ;;
  *) echo "usage: $0 [all|lane1|lane2|report]" >&2; exit 2 ;;
esac
