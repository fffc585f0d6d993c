#!/usr/bin/env bash
# Study 3 of issue 19: subject–verb agreement by distance for rnn, lstm, gru and transformer at one CPU budget,
# inside and past the Transformer's window. Regenerates results.md here:
#     bash experiments/rnn_vs_transformer/agreement/run.sh                 # 4 models × seeds 1-3 (~80 CPU min)
#     SEEDS="4" bash experiments/rnn_vs_transformer/agreement/run.sh gru   # more of some
#     SEEDS="2 3" bash experiments/rnn_vs_transformer/agreement/run.sh transformer_15min   # a longer budget
# Every run: data=synthetic_lm (1–24 distractors between subject and verb, make train's data) in windows of
# data.bptt=16 tokens (the Transformer's max_length; the RNNs' truncated-BPTT window), agreement scored per distance
# 1–8, 9–16, 17–24 (the last: always past the window); 6 minutes of one thread's CPU time each, the learning rate warmed up and decayed over that budget
# (scheduler=cosine_time, clock=cpu), no early stopping, tested from the best-val checkpoint. The Transformer is
# then also scored reading each test window alone (window.py). Runs land in runs/<model>/seed<k>/ (git-ignored,
# kept between calls: a finished run is not rerun); PYTHON= another interpreter than .venv's.
set -euo pipefail
cd "$(dirname "$0")/../../.."
here=experiments/rnn_vs_transformer/agreement
COMMON=(data.bptt=16 "data.distance_buckets=[8,16]" model.embedding_init=uniform scheduler=cosine_time
        scheduler.scheduler.clock=cpu trainer.max_cpu_time=00:00:06:00 trainer.max_epochs=1000
        callbacks.early_stopping=null)
source experiments/rnn_vs_transformer/runs.sh   # run_once
# more than a model: transformer_15min = the Transformer given 2.5× the budget (its seeds that had not learned in 6)
declare -A RUNS=([rnn]="model=rnn" [lstm]="model=lstm" [gru]="model=gru" [transformer]="model=transformer"
                 [transformer_15min]="model=transformer trainer.max_cpu_time=00:00:15:00")
SEEDS="${SEEDS:-1 2 3}"
todo=("$@"); [ ${#todo[@]} -eq 0 ] && todo=(rnn lstm gru transformer)
for model in "${todo[@]}"; do
  # shellcheck disable=SC2086
  for s in $SEEDS; do run_once "$model" "$s" ${RUNS[$model]}; done
done
for group in transformer transformer_15min; do
  if [ -d "$here/runs/$group" ]; then "$PYTHON" "$here/window.py" "$here/runs/$group"; fi
done
"$PYTHON" "$here/summarize.py" "$here/runs" > "$here/results.md"
cat "$here/results.md"
