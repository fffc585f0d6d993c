#!/usr/bin/env bash
# Why does make train's LSTM not learn subject–verb agreement when the GRU does?  One variable at a
# time from make train's defaults (data=synthetic_lm, 2×256 LSTM, Adam 2e-3, clip 0.5, 4 epochs),
# seeds 1 and 2, one thread, one run after another.  Regenerates results.md here:
#     bash experiments/rnn_vs_transformer/lstm_agreement/run.sh [variant ...]
#     SEEDS=3 bash experiments/rnn_vs_transformer/lstm_agreement/run.sh orthogonal   # another seed
# (no argument = every variant below; runs land in runs/<variant>/seed<k>/, kept between calls so a
# variant can be added without rerunning the others; PYTHON= another interpreter than .venv's).
set -euo pipefail
cd "$(dirname "$0")/../../.."
here=experiments/rnn_vs_transformer/lstm_agreement
# make train's defaults as they were: the word vectors drawn U(±0.1) (model.embedding_init=unit, the default since
# 2026-12-07, is what this table led to: ../embedding_init/)
COMMON=(model.embedding_init=uniform)
source experiments/rnn_vs_transformer/runs.sh   # run_once
declare -A VARIANTS=(
  [base]=""
  [gru]="model=gru"
  [forget_bias_1]="model.forget_bias=1.0"
  [forget_bias_3]="model.forget_bias=3.0"
  [lr_0.005]="optimizer.lr=0.005"
  [lr_0.001]="optimizer.lr=0.001"
  [clip_5]="trainer.gradient_clip_val=5.0"
  [scratch]="model.backend=scratch"
  [batch_8]="data.batch_size=8"
  [one_layer]="model.num_layers=1"
  [no_dropout]="model.dropout=0.0"
  [epochs_12]="trainer.max_epochs=12"
  # initialisation: orthogonal W_hh blocks; chrono biases with T_max = 25, the longest subject–verb distance of
  # data=synthetic_lm (distance_max = 24 distractors, so the verb comes at most 25 tokens after its subject)
  [orthogonal]="model.recurrent_init=orthogonal"
  [chrono]="model.forget_bias=chrono model.chrono_max=25"
  [orthogonal_chrono]="model.recurrent_init=orthogonal model.forget_bias=chrono model.chrono_max=25"
  # the carried state, the window, the width, the step size, the batch's noise
  [no_carry]="task.carry_state=false"
  [bptt_32]="data.bptt=32"
  [hidden_128]="model.hidden_size=128"
  [lr_0.01]="optimizer.lr=0.01"
  [batch_128_lr_0.004]="data.batch_size=128 optimizer.lr=0.004"
  # updates or tokens? epochs_12's tokens in a quarter of its updates
  [batch_128_lr_0.004_epochs_12]="data.batch_size=128 optimizer.lr=0.004 trainer.max_epochs=12"
  # repetition or amount? epochs_12's first 8 epochs of tokens (where it starts to learn), all of them new
  [fresh_2.4M]="data.train_tokens=2400000 trainer.max_epochs=1"
)
ORDER=(base gru forget_bias_1 forget_bias_3 lr_0.005 lr_0.001 clip_5 scratch batch_8 one_layer no_dropout epochs_12
       orthogonal chrono orthogonal_chrono no_carry bptt_32 hidden_128 lr_0.01 batch_128_lr_0.004
       batch_128_lr_0.004_epochs_12 fresh_2.4M)
SEEDS="${SEEDS:-1 2}"
todo=("$@"); [ ${#todo[@]} -eq 0 ] && todo=("${ORDER[@]}")
for v in "${todo[@]}"; do
  # shellcheck disable=SC2086
  for s in $SEEDS; do run_once "$v" "$s" ${VARIANTS[$v]}; done
done
"$PYTHON" "$here/summarize.py" "$here/runs" > "$here/results.md"
cat "$here/results.md"
