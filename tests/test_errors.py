"""Bad input fails before training with one line naming the key and the fix."""

from __future__ import annotations

import subprocess
import sys

import mlflow
import pytest
from conftest import ROOT, run_owned

from rnnlab.errors import ConfigError
from rnnlab.training import train

CASES = [
    ("allocator=jemalloc", "allocator=.jemalloc. is invalid: choose one of retain, system"),
    ("model.dropout=1.5", r"model.dropout=1.5 is invalid: must be in \[0, 1\)"),
    ("model.dropout=-0.1", r"model.dropout=-0.1 is invalid"),
    ("model.hidden_size=0", "model.hidden_size=0 is invalid: must be a positive integer"),
    ("model.num_layers=-2", "model.num_layers=-2 is invalid"),
    ("model.embedding_size=0", "model.embedding_size=0 is invalid"),
    ("model.tie_weights=true", "model.tie_weights=true needs model.embedding_size == model.hidden_size"),
    ("model.bidirectional=true", "model.bidirectional=true is not meaningful"),
    ("model.cell=transformer", "model.cell='transformer' is invalid: choose one of rnn, lstm, gru"),
    ("optimizer.lr=-1", "optimizer.lr=-1 is invalid"),
    ("data.bptt=0", "data.bptt=0 is invalid"),
    ("hardware=gpu", "trainer.accelerator=gpu but no CUDA device is visible"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0 is invalid"),
    ("+model.hiden_size=3", "model.hiden_size is not an option here; valid: cell, embedding_size, hidden_size"),
    ("+optimizer.betaz=3", "optimizer.betaz is not an option here; valid: lr, betas, eps"),
    ("optimizer.weight_decay=-1", "optimizer=Adam rejects its settings: Invalid weight_decay value: -1"),
    ("trainer.gradient_clip_algorithm=clamp", "trainer.gradient_clip_algorithm=clamp is invalid: norm"),
    ("model=rnn model.leak=0.5", "model.leak needs backend=scratch"),
    ("model=skip_rnn model.skip=1", "model.skip=1 must be an integer ≥ 2"),
    ("model=gru model.recurrent_init=xavier", "model.recurrent_init='xavier' is not one of default, orthogonal"),
    ("model.forget_bias=chrono", "model.forget_bias=chrono needs chrono_max=T_max"),
    ("model.chrono_max=25", "model.chrono_max applies to forget_bias=chrono only"),
    ("model.embedding_init=xavier", "model.embedding_init='xavier' is invalid: choose one of unit, uniform, normal"),
]


@pytest.mark.parametrize(("override", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_value_fails_before_training(override, message, make_cfg, tmp_path):
    cfg = make_cfg(*override.split())
    with pytest.raises(ConfigError, match=message) as error:
        train(cfg)
    assert "\n" not in str(error.value)
    # nothing was trained or tracked
    assert not (tmp_path / "mlflow.db").exists() or not mlflow.MlflowClient(
        f"sqlite:///{tmp_path}/mlflow.db").search_runs(["0"])
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_rnn_nonlinearity_is_checked(make_cfg):
    with pytest.raises(ConfigError, match="model.nonlinearity='sigmoid' is invalid: choose one of tanh, relu"):
        train(make_cfg("model=rnn", "model.nonlinearity=sigmoid"))


def run_cli(*overrides: str) -> subprocess.CompletedProcess:
    return run_owned([sys.executable, "train.py", *overrides], cwd=ROOT, timeout=120)


def test_cli_prints_one_line_and_exits_nonzero():
    result = run_cli("model.dropout=1.5", "logger=none")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: model.dropout=1.5 is invalid: must be in [0, 1)"
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_unknown_option_names_the_choices():
    result = run_cli("model=lstmx")
    assert result.returncode != 0
    assert "Could not find 'model/lstmx'" in result.stderr
    assert all(choice in result.stderr for choice in ("gru", "lstm", "rnn"))
    assert "Traceback" not in result.stderr


def test_cli_unknown_key_is_named():
    result = run_cli("model.hiden_size=3")
    assert result.returncode != 0
    assert "model.hiden_size" in result.stderr and "Traceback" not in result.stderr
