"""Exact resume after a crash (rnnlab/resume/), determinism, and what a failing run answers.

A resumed run must end with the metrics of a run never interrupted: the same config on CPU with
trainer.deterministic=true, compared with ==. The metrics that measure time (fit_seconds, fit_cpu_seconds,
tokens/s) differ.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as L
import mlflow
import pytest
import torch
from conftest import ROOT, compose_train, new_store, run_owned

from rnnlab import checkpoint_io, resume
from rnnlab.checkpoints import read_checkpoint
from rnnlab.errors import ConfigError, TrainingStopped
from rnnlab.training import train

pytestmark = pytest.mark.usefixtures("one_thread")

TIMED = {"fit_seconds", "fit_cpu_seconds", "train/tokens_per_s"}
# 24 BPTT windows per epoch, 2 epochs, last.ckpt every 5 steps: step 30 is the 6th window of epoch 1
LM = ["data.train_tokens=12000", "data.val_tokens=2000", "data.test_tokens=2000", "data.batch_size=16",
      "data.eval_batch_size=8", "data.bptt=32", "model.embedding_size=16", "model.hidden_size=32",
      "model.num_layers=1", "trainer.max_epochs=2", "trainer.log_every_n_steps=1", "trainer.deterministic=true",
      "callbacks.last_checkpoint.every_n_steps=5", "callbacks.progress_bar.refresh_rate=0",
      "+trainer.enable_model_summary=false"]
TRANSLATION = ["task=translation", "model=gru", "attention=luong_general", "data.train_pairs=200", "data.val_pairs=20",
               "data.test_pairs=20", "data.max_words=8", "data.cache_dir=null", "data.batch_size=32",
               "model.embedding_size=16", "model.hidden_size=32", "model.num_layers=1", "trainer.max_epochs=2",
               "trainer.log_every_n_steps=1", "trainer.deterministic=true", "task.beam_size=2", "task.num_samples=2",
               "task.num_heatmaps=1", "callbacks.progress_bar.refresh_rate=0", "+trainer.enable_model_summary=false"]


class Crash(L.Callback):
    """An exception at a given step: the in-process stand-in for a crash."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            raise RuntimeError("crash")


def untimed(metrics: dict[str, float]) -> dict[str, float]:
    return {key: value for key, value in metrics.items() if key not in TIMED}


def fit(overrides: list[str], where: Path, *callbacks: L.Callback) -> dict[str, float]:
    return train(compose_train(overrides, where), extra_callbacks=list(callbacks))


def history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in mlflow.MlflowClient(uri).get_metric_history(run_id, key))


def runs_of(uri: str, run_dir: Path) -> list:
    """The MLflow runs that wrote into run_dir."""
    client = mlflow.MlflowClient(uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()],
                              f"tags.`{resume.RUN_DIR_TAG}` = '{run_dir.resolve()}'")


# --- exact resume -----------------------------------------------------------------------------------------------
def test_lm_resumed_mid_epoch_ends_as_if_never_stopped(tmp_path, monkeypatch):
    uri = new_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    reference = fit(LM, tmp_path / "reference")
    (reference_run,) = runs_of(uri, tmp_path / "reference" / "run")

    with pytest.raises(RuntimeError, match="crash"):
        fit(LM, tmp_path / "crashed", Crash(33))
    run_dir = tmp_path / "crashed" / "run"
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 30 and checkpoint["SyntheticLMDataModule"] == {"train_batches_done": 6}
    assert checkpoint["train_epoch"][0]["state"] is not None  # the carried hidden state of window 30

    resumed = fit([*LM, f"resume={run_dir}"], tmp_path / "crashed")
    assert untimed(resumed) == untimed(reference)
    assert json.loads((run_dir / "metrics.json").read_text())["test/loss"] == reference["test/loss"]

    (run,) = runs_of(uri, run_dir)  # the same MLflow run went on
    assert run.info.status == "FINISHED" and run.data.tags["resumed_from_step"] == "30"
    for key in ("train/loss", "val/loss", "lr-Adam"):  # one value per step, each the uninterrupted run's
        assert history(uri, run.info.run_id, key) == history(uri, reference_run.info.run_id, key), key
    record = json.loads((run_dir / "run.json").read_text())
    assert record["finished"] and record["mlflow_run_id"] == run.info.run_id and record["tracking_uri"] == uri
    assert record["trained"]["model.hidden_size"] == 32 and record["trained"]["data.bptt"] == 32


@pytest.mark.slow
@pytest.mark.parametrize("hardware", ["cpu", "ddp_cpu"])
def test_lm_killed_with_sigkill_resumes_exactly_through_train_py(hardware, tmp_path):
    """The real thing: train.py killed by SIGKILL mid-epoch, then `train.py resume=last`; under DDP (2 gloo
    processes, each killing itself at the same step) every process's carried state comes back to it."""
    uri = new_store(tmp_path / "mlflow.db")
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    logs = tmp_path / "logs"
    reference_dir, run_dir = logs / "runs" / "today" / "reference", logs / "runs" / "today" / "killed"

    def train_py(*overrides: str) -> subprocess.CompletedProcess:
        return run_owned([sys.executable, "train.py", *overrides, f"paths.log_dir={logs}"], cwd=ROOT, env=env,
                         timeout=300)

    assert train_py(*LM, f"hardware={hardware}", f"hydra.run.dir={reference_dir}").returncode == 0
    killed = train_py(*LM, f"hardware={hardware}", f"hydra.run.dir={run_dir}",
                      "+callbacks.sigkill._target_=sigkill.SigkillAtStep", "+callbacks.sigkill.step=34")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (run_dir / "metrics.json").exists()
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 30

    resumed = train_py("resume=last", "~callbacks.sigkill")  # the newest unfinished run: this one
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (run_dir, reference_dir)]
    assert untimed(metrics[0]) == untimed(metrics[1])
    (run,) = runs_of(uri, run_dir)
    steps = [step for step, _ in history(uri, run.info.run_id, "train/loss")]
    assert steps == list(range(48))  # 2 epochs of 24 steps: none missing, none twice
    assert run.info.status == "FINISHED"
    assert run.info.status == "FINISHED"


def test_translation_resumed_at_an_epoch_boundary_ends_as_if_never_stopped(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", new_store(tmp_path / "mlflow.db"))
    overrides = [*TRANSLATION, "callbacks.last_checkpoint.every_n_steps=1000"]  # only the epoch's end saves
    reference = fit(overrides, tmp_path / "reference")
    with pytest.raises(RuntimeError, match="crash"):
        fit(overrides, tmp_path / "crashed", Crash(9))  # in epoch 1 (7 batches per epoch)
    run_dir = tmp_path / "crashed" / "run"
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 7
    resumed = fit([*overrides, f"resume={run_dir}"], tmp_path / "crashed")
    assert untimed(resumed) == untimed(reference)


def test_a_plateau_schedule_resumed_at_an_epoch_end_steps_as_uninterrupted(tmp_path):
    """Lightning skips the epoch's ReduceLROnPlateau step when resuming from a checkpoint of the epoch's end;
    callbacks/last_checkpoint.py takes it. mode=max on a falling loss: the lr is cut after every epoch but
    the first, so a skipped step shows in the lr of the last epoch."""
    overrides = [*LM, "data.train_tokens=6000", "trainer.max_epochs=3", "scheduler=plateau",
                 "scheduler.scheduler.mode=max", "~callbacks.early_stopping", "logger=csv",
                 "callbacks.last_checkpoint.every_n_steps=1000"]
    reference = fit(overrides, tmp_path / "reference")
    with pytest.raises(RuntimeError, match="crash"):
        fit(overrides, tmp_path / "crashed", Crash(14))  # 12 windows per epoch: epoch 1
    resumed = fit([*overrides, f"resume={tmp_path / 'crashed' / 'run'}"], tmp_path / "crashed")
    assert reference["lr-Adam"] == pytest.approx(0.002 * 0.25)
    assert untimed(resumed) == untimed(reference)


def test_same_seed_same_config_same_metrics(tmp_path):
    """With every default callback (dropout, checkpoints, samples, diagnostics) on, not only a bare fit."""
    first = fit([*LM, "trainer.max_epochs=1", "logger=csv"], tmp_path / "first")
    second = fit([*LM, "trainer.max_epochs=1", "logger=csv"], tmp_path / "second")
    assert untimed(first) == untimed(second) and math.isfinite(first["test/loss"])


# --- which run resume= means --------------------------------------------------------------------------------------
def fake_run(run_dir: Path, overrides: list[str], finished: bool = False) -> Path:
    """A run directory as train.py leaves it, as far as resume= looks at it before Hydra starts."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")
    resume.record(run_dir, None, None, None, finished=finished)
    return run_dir


def test_resume_replays_the_runs_overrides_into_its_directory(tmp_path):
    run_dir = fake_run(tmp_path / "runs" / "d" / "t", ["model=gru", "trainer.max_epochs=2"])
    argv = resume.hydra_argv(["train.py", f"resume={run_dir}", "trainer.max_epochs=5", "--cfg", "job"])
    assert argv == ["train.py", "--cfg", "job", "model=gru", "trainer.max_epochs=5", f"resume='{run_dir}'",
                    f"hydra.run.dir='{run_dir}'"]
    assert resume.hydra_argv(argv) == argv  # DDP workers rerun train.py with it


def test_resume_last_is_the_newest_interrupted_run(tmp_path):
    older = fake_run(tmp_path / "runs" / "d" / "1", [])
    newer = fake_run(tmp_path / "multiruns" / "d" / "2" / "0", [])
    fake_run(tmp_path / "runs" / "d" / "3", [], finished=True)
    running = fake_run(tmp_path / "runs" / "d" / "4", [])
    record = json.loads((running / "run.json").read_text())
    # a live process that is neither pytest nor its parent (pid 1 is the parent of a pytest started with nohup)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (running / "run.json").write_text(json.dumps({**record, "pid": alive.pid}))
        os.utime(older / "checkpoints" / "last.ckpt", (1, 1))
        assert resume.locate("last", tmp_path, None) == newer.resolve()
        with pytest.raises(ConfigError, match=f"that run is still running \\(process {alive.pid} on this machine\\)"):
            resume.locate(str(running), tmp_path, None)
    finally:
        alive.kill()
        alive.wait()


@pytest.mark.parametrize(("override", "message"), [
    ("model.hidden_size=64", "model.hidden_size=64 cannot change it"),
    ("optimizer.lr=0.1", "optimizer.lr=0.1 cannot change it"),
    ("data=tinyshakespeare", "data=tinyshakespeare cannot change it"),
    ("hydra.run.dir=/elsewhere", "resume= writes into the run's own directory"),
])
def test_resume_refuses_overrides_that_change_what_is_trained(override, message, tmp_path):
    run_dir = fake_run(tmp_path / "runs" / "d" / "t", [])
    with pytest.raises(ConfigError, match=message):
        resume.hydra_argv(["train.py", f"resume={run_dir}", override])


@pytest.mark.parametrize(("target", "message"), [
    ("nowhere", "no such directory, and not an MLflow run id"),
    ("0" * 32, "no such run in the MLflow store"),
    ("last", "no run under .* has a checkpoints/last.ckpt, a run.json and neither finished nor still runs"),
])
def test_resume_of_nothing_says_what_to_give(target, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        resume.locate(target, tmp_path, f"sqlite:///{tmp_path}/mlflow.db")


def test_cli_resume_errors_are_one_line(tmp_path):
    result = run_owned([sys.executable, "train.py", f"resume={tmp_path}"], cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: resume={tmp_path}: there is no checkpoints/last.ckpt in that directory "
                                     f"(the run stopped before its first checkpoint, or ran without the checkpoint "
                                     f"callbacks); start it again")


# --- faults -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One tiny LM fit (1 epoch) and its checkpoints."""
    tmp_path = tmp_path_factory.mktemp("finished")
    fit([*LM, "trainer.max_epochs=1", "logger=csv"], tmp_path)
    return tmp_path / "run"


def test_every_checkpoint_reads_back_as_plain_data(finished_run):
    for path in (finished_run / "checkpoints").glob("*.ckpt"):
        checkpoint = torch.load(path, weights_only=True)
        assert checkpoint["hyper_parameters"]["tokenizer"] and checkpoint["state_dict"]
    assert not list((finished_run / "checkpoints").glob(".*.tmp"))  # no leftovers of the atomic writes


def test_checkpoint_writes_log_nothing_about_weights_only(tmp_path, caplog):
    # Lightning logs "`weights_only` was not set" at every save that leaves it unset: once a minute in a long run
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        fit([*LM, "trainer.max_epochs=1", "logger=none"], tmp_path)
    assert list((tmp_path / "run" / "checkpoints").glob("last.ckpt"))
    assert [r.getMessage() for r in caplog.records if "weights_only" in r.getMessage()] == []


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_checkpoint_holding_a_pickled_object_is_refused(finished_run, tmp_path):
    checkpoint = torch.load(finished_run / "checkpoints" / "last.ckpt", weights_only=True)
    evil = tmp_path / "evil.ckpt"
    torch.save({**checkpoint, "payload": Payload()}, evil)
    with pytest.raises(ConfigError, match=r"holds a pickled Python object \((posix|os)\.system\).*refused"):
        read_checkpoint(evil, str(evil))
    with pytest.raises(ConfigError, match="pickled Python object"):
        checkpoint_io.AtomicCheckpointIO().load_checkpoint(evil)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_checkpoint_is_named_as_such(damage, finished_run, tmp_path):
    good = (finished_run / "checkpoints" / "last.ckpt").read_bytes()
    bad = tmp_path / "last.ckpt"
    bad.write_bytes({"truncated": good[: len(good) // 2], "garbage": b"not a checkpoint", "empty": b""}[damage])
    with pytest.raises(ConfigError, match=r"ckpt=x: .* is not a checkpoint torch can read: truncated, corrupted"):
        read_checkpoint(bad, "x")


def test_resuming_a_damaged_checkpoint_fails_before_training(finished_run, tmp_path):
    run_dir = tmp_path / "copy"
    (run_dir / "checkpoints").mkdir(parents=True)
    good = (finished_run / "checkpoints" / "last.ckpt").read_bytes()
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(good[:1000])
    with pytest.raises(ConfigError, match=f"resume={run_dir}: .*last.ckpt is not a checkpoint torch can read"):
        fit([*LM, "logger=csv", f"resume={run_dir}"], tmp_path)


def test_resuming_with_another_model_is_refused(finished_run, tmp_path):
    with pytest.raises(ConfigError, match=r"its checkpoint is of another model \(model.hidden_size=32 there, 48 here"):
        fit([*LM, "logger=csv", "model.hidden_size=48", f"resume={finished_run}"], tmp_path)


def test_resuming_after_a_config_file_changed_is_refused(finished_run, tmp_path):
    run_dir = shutil.copytree(finished_run, tmp_path / "copy")
    record = json.loads((run_dir / "run.json").read_text())
    record["trained"]["data.batch_size"] = 8  # as if conf/data/synthetic_lm.yaml had said 8 back then
    (run_dir / "run.json").write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="data.batch_size was 8 when the run was trained and is 16 now"):
        fit([*LM, "logger=csv", f"resume={run_dir}"], tmp_path)


def test_a_model_key_added_since_the_run_passes_only_at_its_default():
    """A run trained before model.recurrent_init existed resumes (tests/test_task_family.py resumes such runs); the
    key counts as added only at the value that builds what the code built then."""
    from types import SimpleNamespace

    from rnnlab.resume.run import _keys_added_since

    checkpoint = {"hyper_parameters": {"model": {"cell": "lstm", "hidden_size": 8}}}
    now = {"cell": "lstm", "hidden_size": 8, "recurrent_init": "default", "chrono_max": None}
    task = SimpleNamespace(hparams={"model": now}, shape="lm")
    assert _keys_added_since(checkpoint, task) == {"recurrent_init": "default", "chrono_max": None}
    task.hparams["model"] = {**now, "recurrent_init": "orthogonal"}
    assert _keys_added_since(checkpoint, task) == {"chrono_max": None}  # so the model check names recurrent_init


def test_a_nan_loss_stops_at_once_and_keeps_the_last_good_checkpoint(tmp_path):
    # an Elman ReLU net with SGD at lr 100 and no clipping: the loss is NaN within a few steps
    overrides = [*LM, "model=rnn", "model.nonlinearity=relu", "optimizer=sgd", "optimizer.lr=100",
                 "trainer.gradient_clip_val=0", "callbacks.last_checkpoint.every_n_steps=1", "logger=csv"]
    with pytest.raises(TrainingStopped) as stopped:
        fit(overrides, tmp_path)
    message = str(stopped.value)
    assert "\n" not in message
    step = int(message.split(" at step ")[1].split()[0])
    assert message.startswith("the training loss is nan at step") or "gradient is not finite" in message
    assert "trainer.gradient_clip_val, now off" in message and "optimizer.lr, now 100" in message
    kept = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert kept["global_step"] == step  # written before the failing step, which changed nothing
    assert all(torch.isfinite(w).all() for w in kept["state_dict"].values())


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    checkpoints = tmp_path / "run" / "checkpoints"
    save, writes = torch.save, []

    def save_until_the_disk_is_full(obj, file):
        writes.append(bytes(checkpoints.joinpath("last.ckpt").read_bytes()) if writes else None)
        if len(writes) == 3:  # the third checkpoint: half written, then ENOSPC
            file.write(b"\0" * 1000)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        save(obj, file)

    monkeypatch.setattr(checkpoint_io.torch, "save", save_until_the_disk_is_full)
    with pytest.raises(TrainingStopped, match=r"could not write the checkpoint .*last.ckpt: No space left on device; "
                                              r"the previous last.ckpt is untouched\. Free some space, then continue "
                                              r"with: python train.py resume="):
        fit([*LM, "trainer.max_epochs=1", "logger=none"], tmp_path)
    assert checkpoints.joinpath("last.ckpt").read_bytes() == writes[-1]  # the second checkpoint, whole
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last.ckpt"]  # no partial file left beside it


def test_an_unwritable_output_directory_fails_before_training(tmp_path):
    (tmp_path / "a_file").write_text("")
    cfg = compose_train(LM, tmp_path)
    cfg.paths.output_dir = str(tmp_path / "a_file" / "run")
    with pytest.raises(ConfigError, match=r"paths.output_dir=.*a_file/run is not writable: Not a directory"):
        train(cfg)
    result = run_owned([sys.executable, "train.py", f"hydra.run.dir={tmp_path}/a_file/run"], cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: hydra.run.dir={tmp_path}/a_file/run is not writable: Not a directory; "
                                     f"choose a directory you can write to, or fix its permissions")
