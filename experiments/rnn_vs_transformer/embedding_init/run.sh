#!/usr/bin/env bash
# Why make train's LSTM did not learn agreement (lstm_agreement/: 22 one-variable pilots, all at chance after 4
# epochs), and the fix: the word vectors' scale at init (model.embedding_init, rnnlab/models/language_model.py).
# make train's defaults (data=synthetic_lm, 2×256 cells, embedding 128, Adam 2e-3, clip 0.5, 4 epochs) with the
# embedding drawn U(±0.1) (the default until 2026-12-07), N(0, 3H/E) (unit, the default since) or N(0, 1), for the
# LSTM, GRU and tanh RNN, seeds 1-3; then the same LSTM on real text (Tiny Shakespeare, characters and words, a CPU
# budget each), seeds 1-2, so that the new default is not bought with a loss there; and experiment=vanishing_gradients
# (1×128 cells, distances 1–32, 10 epochs), whose LSTM did not learn agreement either, seeds 1-3. Regenerates
# results.md here:
#     bash experiments/rnn_vs_transformer/embedding_init/run.sh [synthetic | text | vanishing | summary]...
# Runs land in runs/<variant>/seed<k>/ (git-ignored, kept: a finished run is not rerun); PYTHON= another interpreter.
# DATA_ROOT: the folder holding Tiny Shakespeare's input.txt (default ../shared/data/tinyshakespeare).
set -euo pipefail
cd "$(dirname "$0")/../../.."
here=experiments/rnn_vs_transformer/embedding_init
DATA_ROOT="${DATA_ROOT:-../shared/data/tinyshakespeare}"
COMMON=()
source experiments/rnn_vs_transformer/runs.sh   # run_once
BUDGET=(trainer.max_cpu_time=00:00:04:00 trainer.max_epochs=-1 callbacks.early_stopping=null)
CHARS=(data=tinyshakespeare data.root="$DATA_ROOT" "${BUDGET[@]}")
WORDS=(data=text data.path="$DATA_ROOT/input.txt" data.min_frequency=2 "${BUDGET[@]}")

parts=("$@"); [ ${#parts[@]} -eq 0 ] && parts=(synthetic text vanishing summary)
for part in "${parts[@]}"; do
  case "$part" in
    vanishing)
      for s in ${SEEDS:-1 2 3}; do
        for cell in lstm gru; do
          for init in uniform unit; do
            run_once "vanishing_${cell}_$init" "$s" experiment=vanishing_gradients model=$cell model.embedding_init=$init
          done
        done
      done ;;
    synthetic)
      for s in ${SEEDS:-1 2 3}; do
        for cell in lstm gru rnn; do
          for init in uniform unit; do run_once "${cell}_$init" "$s" model=$cell model.embedding_init=$init; done
        done
        run_once lstm_normal "$s" model=lstm model.embedding_init=normal
      done ;;
    text)
      for s in ${SEEDS:-1 2}; do
        for init in uniform unit; do
          run_once "chars_lstm_$init" "$s" "${CHARS[@]}" model.embedding_init=$init
          run_once "words_lstm_$init" "$s" "${WORDS[@]}" model.embedding_init=$init
        done
      done ;;
    summary) "$PYTHON" "$here/summarize.py" "$here/runs" > "$here/results.md" && cat "$here/results.md" ;;
    *) echo "unknown part: $part (synthetic | text | vanishing | summary)"; exit 2 ;;
  esac
done
