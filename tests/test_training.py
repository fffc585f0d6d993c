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
    # one pass over the gradients per step: the NaN guard, train/grad_norm and clipping (at 0.5 here) share it
    passes, total_norm = [], torch.nn.utils.get_total_norm
    monkeypatch.setattr(torch.nn.utils, "get_total_norm", lambda *a, **k: passes.append(1) or total_norm(*a, **k))
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *a, **k: pytest.fail("a second pass to clip"))
    cfg = make_cfg(f"model={cell}")
    metrics = train(cfg)

    # the loss falls: first logged training loss → final validation loss, both in nats/token
    client, runs = _runs(cfg.logger.mlflow.tracking_uri)
    assert len(runs) == 1
    run = runs[0]
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert len(history) >= 3
    assert len(passes) == len(client.get_metric_history(run.info.run_id, "train/grad_norm")) == len(history)
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


def test_clipping_by_the_kept_norm_equals_torchs_clip_grad_norm():
    from types import SimpleNamespace

    from rnnlab.tasks.optimization import clip_by_norm, gradient_norm

    def network() -> torch.nn.Module:  # the same weights and gradients each time
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
        net[0].bias.requires_grad_(False)  # no gradient: out of the norm, as clip_grad_norm_ leaves it
        net(torch.randn(4, 5)).pow(2).sum().mul(10).backward()
        return net

    reference, net = network(), network()
    expected = torch.nn.utils.clip_grad_norm_([p for p in reference.parameters() if p.grad is not None], 0.5)
    task = SimpleNamespace(trainer=SimpleNamespace(global_step=3), parameters=net.parameters)
    assert expected > 0.5 and torch.equal(gradient_norm(task), expected)
    clip_by_norm(task, 0.5)
    for ours, theirs in zip(net.parameters(), reference.parameters()):
        assert (ours.grad is None and theirs.grad is None) or torch.equal(ours.grad, theirs.grad)
    assert torch.equal(gradient_norm(task), expected)  # kept for the step: what train/grad_norm logged, pre-clip
    task.trainer.global_step = 4
    assert gradient_norm(task) == pytest.approx(0.5, rel=1e-5)  # the next step takes it afresh


def test_nan_guard_leaves_overflowed_gradients_to_the_16_mixed_loss_scaler(tmp_path):
    from types import SimpleNamespace

    from rnnlab.callbacks.nan_guard import StopOnNonFinite
    from rnnlab.errors import TrainingStopped

    net = torch.nn.Linear(2, 2)
    net.weight.grad, net.bias.grad = torch.full((2, 2), math.inf), torch.zeros(2)
    progress = SimpleNamespace(current=SimpleNamespace(ready=1))
    trainer = SimpleNamespace(global_step=0, current_epoch=0, gradient_clip_val=0.5, optimizers=[],
                              fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress)),
                              precision_plugin=SimpleNamespace(scaler=object()))
    module = SimpleNamespace(trainer=trainer, parameters=net.parameters)
    StopOnNonFinite(tmp_path).on_before_optimizer_step(trainer, module, None)  # the scaler skips this step
    trainer.precision_plugin = SimpleNamespace()  # 32-true, bf16-mixed: nothing else would catch it
    with pytest.raises(TrainingStopped, match="the gradient is not finite"):
        StopOnNonFinite(tmp_path).on_before_optimizer_step(trainer, module, None)
