#!/usr/bin/env bash
# Study 1 of issue 19: Multi30k de→en (test_2016_flickr), 31 minutes of one thread's CPU time each, the Transformer
# (experiment=multi30k_transformer) against the RNN recipe (experiment=multi30k_best). Regenerates results.md here:
#     bash experiments/rnn_vs_transformer/multi30k/run.sh             # rnn, transformer (3 seeds each), summary
#     bash experiments/rnn_vs_transformer/multi30k/run.sh pilots      # the Transformer settings tried, 10 CPU min
#     SEEDS="4" bash experiments/rnn_vs_transformer/multi30k/run.sh rnn
# Parts: rnn | transformer | pilots | summary. Runs land in runs/<name>/seed<k>/ (git-ignored; a finished run is
# not rerun). DATA_ROOT: the Multi30k folder (default ../shared/data/multi30k, else downloaded).
set -euo pipefail
cd "$(dirname "$0")/../../.."
here=experiments/rnn_vs_transformer/multi30k
DATA_ROOT="${DATA_ROOT:-../shared/data/multi30k}"
SEEDS="${SEEDS:-1 2 3}"
COMMON=(data.root="$DATA_ROOT")
source experiments/rnn_vs_transformer/runs.sh   # run_once
# 10 CPU minutes each, one variable at a time from the recipe's first draft: 3 + 3 layers, d 256, 4 heads, ff 1024,
# dropout 0.1, Adam 1e-3 (the recipe now has the best of them, ff 512, so each pilot names its feed-forward width);
# PILOT_NAMES="layers_2" runs one
PILOT_NAMES="${PILOT_NAMES:-base lr_0.002 ff_512 layers_2 lr_0.0005}"
declare -A PILOTS=(
  [base]="model.dim_feedforward=1024"
  [lr_0.002]="model.dim_feedforward=1024 optimizer.lr=0.002"
  [lr_0.0005]="model.dim_feedforward=1024 optimizer.lr=0.0005"
  [ff_512]="model.dim_feedforward=512"
  [layers_2]="model.dim_feedforward=1024 model.num_layers=2"
)

parts=("$@"); [ ${#parts[@]} -eq 0 ] && parts=(rnn transformer summary)
for part in "${parts[@]}"; do
  case "$part" in
    rnn) for s in $SEEDS; do run_once rnn "$s" experiment=multi30k_best; done ;;
    transformer) for s in $SEEDS; do run_once transformer "$s" experiment=multi30k_transformer; done ;;
    pilots)
      for name in $PILOT_NAMES; do
        [ -n "${PILOTS[$name]+set}" ] || { echo "unknown pilot: $name (${!PILOTS[*]})"; exit 2; }
        # shellcheck disable=SC2086
        run_once "pilot_$name" 1 experiment=multi30k_transformer trainer.max_cpu_time=00:00:10:00 ${PILOTS[$name]}
      done ;;
    summary) "$PYTHON" "$here/summarize.py" "$here/runs" > "$here/results.md" && cat "$here/results.md" ;;
    *) echo "unknown part: $part (rnn | transformer | pilots | summary)"; exit 2 ;;
  esac
done
