#!/usr/bin/env bash
# Study 2 of issue 19: character-level Tiny Shakespeare, 30 minutes of one thread's CPU time each, the Transformer
# (experiment=shakespeare_char_transformer) against the GRU recipe (experiment=shakespeare_char). Regenerates
# results.md here:
#     bash experiments/rnn_vs_transformer/shakespeare/run.sh             # gru, transformer (3 seeds each), summary
#     bash experiments/rnn_vs_transformer/shakespeare/run.sh pilots      # the Transformer sizes tried, 10 CPU min
#     SEEDS="4" bash experiments/rnn_vs_transformer/shakespeare/run.sh gru
#     PILOT_NAMES="d256_l4_b16" bash experiments/rnn_vs_transformer/shakespeare/run.sh pilots   # some pilots
# Parts: gru | transformer | pilots | summary. Runs land in runs/<name>/seed<k>/ (git-ignored; a finished run is
# not rerun). DATA_ROOT: the folder holding input.txt (default ../shared/data/tinyshakespeare, else downloaded).
set -euo pipefail
cd "$(dirname "$0")/../../.."
here=experiments/rnn_vs_transformer/shakespeare
DATA_ROOT="${DATA_ROOT:-../shared/data/tinyshakespeare}"
SEEDS="${SEEDS:-1 2 3}"
COMMON=(data.root="$DATA_ROOT")
source experiments/rnn_vs_transformer/runs.sh   # run_once
# 10 CPU minutes each, one variable at a time (4 × d 128; 32 × 128 characters per update, then the recipe's 16 × 128;
# then the recipe at the GRU's parameter count: d 256, feed-forward 768, 2.6M parameters against the GRU's 2.6M)
declare -A PILOTS=(
  [d128_l4]="trainer.max_cpu_time=00:00:10:00 data.batch_size=32"
  [d128_l4_b16]="trainer.max_cpu_time=00:00:10:00"
  [d256_l4_b16]="trainer.max_cpu_time=00:00:10:00 model.d_model=256 model.dim_feedforward=768"
)

parts=("$@"); [ ${#parts[@]} -eq 0 ] && parts=(gru transformer summary)
for part in "${parts[@]}"; do
  case "$part" in
    gru) for s in $SEEDS; do run_once gru "$s" experiment=shakespeare_char; done ;;
    transformer) for s in $SEEDS; do run_once transformer "$s" experiment=shakespeare_char_transformer; done ;;
    pilots)
      for name in ${PILOT_NAMES:-d128_l4 d128_l4_b16 d256_l4_b16}; do
        # shellcheck disable=SC2086
        run_once "pilot_$name" 1 experiment=shakespeare_char_transformer ${PILOTS[$name]}
      done ;;
    summary) "$PYTHON" "$here/summarize.py" "$here/runs" > "$here/results.md" && cat "$here/results.md" ;;
    *) echo "unknown part: $part (gru | transformer | pilots | summary)"; exit 2 ;;
  esac
done
