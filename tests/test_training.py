"""One small fit per cell, end to end into a temporary sqlite MLflow store."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import mlflow
import pytest
import torch
import yaml

from rnnlab.training import train


def _runs(tracking_uri: str):
    client = mlflow.MlflowClient(tracking_uri)
    experiments = client.search_experiments()
    return client, client.search_runs([e.experiment_id for e in experiments])


# the LSTM (the default) in make test; rnn and gru are the same path with another cell (tests/test_recurrent.py)
@pytest.mark.parametrize("cell", [pytest.param("rnn", marks=pytest.mark.slow), "lstm",
                                  pytest.param("gru", marks=pytest.mark.slow)])
def test_fit_lowers_loss_and_tracks_run(cell, make_cfg, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_UI_PORT", raising=False)  # the run's link: make ui's default address
    cfg = make_cfg(f"model={cell}")
    metrics = train(cfg)

    # the loss falls: first logged training loss → final validation loss, both in nats/token
    client, runs = _runs(cfg.logger.mlflow.tracking_uri)
    assert len(runs) == 1
    run = runs[0]
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert len(history) >= 3
    vocab_size = 81
    assert history[0].value == pytest.approx(math.log(vocab_size), abs=0.15)  # untrained ≈ uniform
    assert metrics["val/loss"] < history[0].value - 0.3

    # perplexity is exp of the token-weighted NLL; the gap compares with the same tokens' optimum
    for stage in ("val", "test"):
        assert metrics[f"{stage}/ppl"] == pytest.approx(math.exp(metrics[f"{stage}/loss"]), rel=1e-5)
        assert metrics[f"{stage}/ppl"] > metrics[f"{stage}/ppl_optimal"] > 1
        assert metrics[f"{stage}/ppl_gap"] == pytest.approx(
            metrics[f"{stage}/ppl"] / metrics[f"{stage}/ppl_optimal"] - 1, rel=1e-4)
        # which verb, given that a verb comes: the optimum pays log N_v; nobody beats it beyond noise,
        # and a model that knows nothing of the subject pays at most about log(A·N_v) (+ misfit)
        assert metrics[f"{stage}/agreement/choice_excess"] > -0.05
        assert metrics[f"{stage}/agreement/choice_nll"] == pytest.approx(
            metrics[f"{stage}/agreement/choice_excess"] + math.log(4), rel=1e-5)
        assert metrics[f"{stage}/agreement/choice_nll"] < math.log(16) + 0.3
        assert 0 <= metrics[f"{stage}/agreement/class_acc"] <= 1

    # the run in MLflow: metrics, dotted params, tags, artifacts
    logged = run.data.metrics
    for key in ("train/loss", "train/loss_epoch", "val/loss", "val/ppl", "val/ppl_optimal", "val/ppl_gap",
                "test/ppl", "train/tokens_per_s", "val/agreement/loss", "val/agreement/excess_nll",
                "val/agreement/choice_nll", "val/agreement/choice_excess", "val/agreement/class_acc",
                "train/grad_norm", "diag/grad_ratio"):
        assert key in logged, key
    assert logged["test/ppl"] == pytest.approx(metrics["test/ppl"], rel=1e-6)
    assert run.data.params["model.cell"] == cell
    assert run.data.params["optimizer._target_"] == "torch.optim.Adam"
    assert run.data.tags["model"] == cell and run.data.tags["data"] == "synthetic_lm"
    assert run.data.tags["task"] == "lm"
    assert run.data.tags["machine.torch_threads"] == str(torch.get_num_threads())
    best = torch.load(next(Path(cfg.paths.output_dir).rglob("*.ckpt")), weights_only=True)["state_dict"]
    assert int(run.data.tags["num_parameters"]) == sum(v.numel() for k, v in best.items() if k.startswith("model."))
    assert run.info.artifact_uri.removeprefix("file://").startswith(str(tmp_path / "logs"))
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "metrics.json", "loss_curve.png"} <= artifacts
    assert any(a.endswith(".ckpt") or "checkpoint" in a for a in _all_artifacts(client, run.info.run_id))
    config = yaml.safe_load(Path(mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="config.yaml", tracking_uri=cfg.logger.mlflow.tracking_uri)
    ).read_text())
    assert config["model"]["cell"] == cell

    # metrics.json in the run directory holds the same final numbers
    on_disk = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert on_disk["test/ppl"] == pytest.approx(metrics["test/ppl"])
    # filed under model development, and the run's page in the UI's Model-training view printed at the end
    assert client.get_experiment(run.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    out = capsys.readouterr().out
    assert "final metrics" in out and run.info.run_id in out and "make ui" in out
    assert f"browse run:     http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}" \
           f"?workflowType=machine_learning\n" in out


def _all_artifacts(client, run_id, path=None):
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            yield from _all_artifacts(client, run_id, item.path)
        else:
            yield item.path


def test_same_seed_same_metrics(make_cfg):
    first = train(make_cfg("logger=none", "callbacks=none", "trainer.deterministic=true"))
    second = train(make_cfg("logger=none", "callbacks=none", "trainer.deterministic=true"))
    for key in ("val/loss", "test/loss", "train/loss"):
        assert first[key] == second[key], key


@pytest.mark.parametrize("scheduler", ["plateau", "cosine"])
def test_schedulers_train(scheduler, make_cfg):
    metrics = train(make_cfg(f"scheduler={scheduler}", "logger=csv", "scheduler.scheduler.warmup_steps=5"
                             if scheduler == "cosine" else "trainer.max_epochs=2"))
    assert math.isfinite(metrics["val/loss"])


def test_a_warmup_longer_than_the_schedule_is_an_error_except_in_a_smoke_test(make_cfg):
    from rnnlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"scheduler.scheduler.warmup_steps=100000 is not below this run's \d+ "):
        train(make_cfg("scheduler=cosine", "scheduler.scheduler.warmup_steps=100000", "logger=none"))
    metrics = train(make_cfg("scheduler=cosine", "scheduler.scheduler.warmup_steps=100000", "logger=none",
                             "debug=fast_dev_run"))  # one step: the warmup is dropped, not an error
    assert math.isfinite(metrics["train/loss"])
    with pytest.raises(ConfigError, match=r"warmup_steps=50 is not below scheduler.scheduler.total_steps=50: "):
        train(make_cfg("scheduler=cosine", "scheduler.scheduler.warmup_steps=50",
                       "scheduler.scheduler.total_steps=50", "logger=none"))


def test_steps_stopped_after_the_last_validation_are_reported_and_avoidable(make_cfg, caplog):
    from rnnlab.tracking.run_info import CurveRecorder

    small = ["logger=none", "data.train_tokens=8000", "data.val_tokens=1000", "data.test_tokens=1000",
             "trainer.max_epochs=-1", "trainer.max_steps=20"]
    recorder = CurveRecorder()  # 16 steps an epoch: validated at 16, stopped at 20
    with caplog.at_level(logging.WARNING, logger="rnnlab.training"):
        train(make_cfg(*small), extra_callbacks=[recorder])
    assert [step for step, _ in recorder.val] == [16]
    assert "the last 4 of 20 optimizer steps were never validated" in caplog.text
    caplog.clear()
    recorder = CurveRecorder()  # validated every 10 steps counted across epochs: the last step is scored
    with caplog.at_level(logging.WARNING, logger="rnnlab.training"):
        train(make_cfg(*small, "trainer.max_steps=30", "+trainer.val_check_interval=10",
                       "+trainer.check_val_every_n_epoch=null"), extra_callbacks=[recorder])
    assert [step for step, _ in recorder.val] == [10, 20, 30] and "never validated" not in caplog.text


def test_without_logger_default_callbacks_still_run(make_cfg, tmp_path):
    metrics = train(make_cfg("logger=none"))  # lr_monitor needs a logger: skipped, not fatal
    assert math.isfinite(metrics["test/ppl"])
    assert (tmp_path / "run" / "metrics.json").exists()
    assert list((tmp_path / "run" / "checkpoints").glob("*.ckpt"))


def test_loss_curve_records_each_validation_at_its_step(make_cfg):
    from rnnlab.tracking.run_info import CurveRecorder

    recorder = CurveRecorder()
    metrics = train(make_cfg("logger=none", "trainer.max_epochs=2"), extra_callbacks=[recorder])
    steps = [step for step, _ in recorder.val]
    assert len(steps) == 2 and steps[1] == 2 * steps[0]  # one point per epoch, at the epoch's end
    assert recorder.val[-1][1] == pytest.approx(metrics["val/loss"])  # the last epoch's value
    assert recorder.optimal == pytest.approx(math.log(metrics["val/ppl_optimal"]), rel=1e-6)
    assert [step for step, _ in recorder.train] == list(range(1, steps[1] + 1))  # every step
