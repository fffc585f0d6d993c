"""Training against a real `mlflow server` that is not there at the start, or stops mid-run and comes back."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import lightning.pytorch as L
import mlflow
import pytest
import requests
from conftest import owned_by_fixture
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from rnnlab.errors import ConfigError
from rnnlab.tracking import remote
from rnnlab.tracking.journal import Journal
from rnnlab.tracking.logger import ResilientClient
from rnnlab.tracking.sync import main as sync_main
from rnnlab.training import train

pytestmark = pytest.mark.usefixtures("one_thread")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`mlflow server` from this venv on 127.0.0.1:port over a sqlite db, stopped by its process group."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port = folder, port
        self.uri = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> Server:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port",
                   str(self.port), "--workers", "1", "--backend-store-uri", f"sqlite:///{self.folder}/mlflow.db",
                   "--artifacts-destination", str(self.folder / "artifacts")]
        # no job runner: it starts eight more processes that these tests do not need
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "OMP_NUM_THREADS": "1"}
        with open(self.folder / "server.log", "a") as log:
            self.process = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                            stderr=log)
        owned_by_fixture(self.process)  # a test may restart the module's server; the module stops it
        return self

    def ready(self) -> Server:
        """Wait until it answers (seconds: the server imports MLflow twice)."""
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.folder / "server.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2):
                    return self
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"mlflow server on port {self.port} did not start: see {self.folder / 'server.log'}")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if not self.running():
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # the CLI, its uvicorn and the worker
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture(scope="module")
def started_server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("server"), _free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def server(started_server, monkeypatch):
    """The module's server, answering; the logger's fail-fast HTTP settings are undone after the test."""
    if not started_server.running():
        started_server.start()
    for name, value in remote.FAIL_FAST.items():
        monkeypatch.setenv(name, value)
    return started_server.ready()


class RestartServerAfterFirstEpoch(L.Callback):
    """Stops the server after epoch 0 (its validation logged) and starts it again at once: it takes
    seconds to answer, and the run, told not to ask again within the hour, writes to its journal."""

    def __init__(self, server: Server):
        self.server = server

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 0:
            self.server.stop()
            self.server.start()


def test_unreachable_server_stops_before_training(make_cfg, monkeypatch):
    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cfg = make_cfg()
    started = time.perf_counter()
    with pytest.raises(ConfigError) as error:
        train(cfg)
    assert time.perf_counter() - started < 10  # MLflow's own retries would take minutes
    message = str(error.value)
    assert "\n" not in message
    assert f"cannot reach the MLflow tracking server {uri} (connection refused)" in message
    assert "MLFLOW_TRACKING_URI" in message and "mlflow server" in message
    output = Path(cfg.paths.output_dir)  # nothing trained: no checkpoint, no metrics.json, no journal
    assert not [path for path in output.rglob("*") if path.is_file()]


def test_server_that_never_answers_times_out_before_training(make_cfg, monkeypatch):
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.setattr(remote, "PROBE_SECONDS", 1)
        started = time.perf_counter()
        with pytest.raises(ConfigError, match=f"cannot reach the MLflow tracking server {uri} \\(timed out\\)"):
            train(make_cfg())
        assert time.perf_counter() - started < 5


def test_server_that_drops_mid_run_loses_nothing(server, make_cfg, monkeypatch, caplog, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    # the CSV logger keeps every logged value: the complete history to compare MLflow's with
    cfg = make_cfg("logger=[mlflow,csv]", "trainer.max_epochs=3", "logger.mlflow.reconnect_seconds=3600")
    assert cfg.logger.mlflow.artifact_location is None  # artifacts go to the server (--artifacts-destination)
    with caplog.at_level(logging.WARNING, logger="rnnlab.tracking.logger"):
        metrics = train(cfg, extra_callbacks=[RestartServerAfterFirstEpoch(server)])

    # training finished and wrote its own outputs
    output = Path(cfg.paths.output_dir)
    assert json.loads((output / "metrics.json").read_text())["test/ppl"] == pytest.approx(metrics["test/ppl"])
    assert list((output / "checkpoints").glob("*.ckpt"))
    # one warning, naming the journal and the command that sends it; the final report says it too
    warnings = [r.getMessage() for r in caplog.records if "is unreachable" in r.getMessage()]
    assert len(warnings) == 1
    (journal,) = (output / "mlflow_journal").iterdir()
    run_id = journal.name
    assert str(journal) in warnings[0] and "python -m rnnlab.tracking.sync" in warnings[0]
    assert f"kept in {journal}" in capsys.readouterr().out
    run, *records = [json.loads(line) for line in (journal / "journal.jsonl").read_text().splitlines()]
    assert run == {"run_id": run_id, "tracking_uri": server.uri}
    assert [r["status"] for r in records if r["op"] == "set_terminated"][-1] == "FINISHED"

    # the server is back on the same port and database; the sync command sends the rest
    server.ready()
    assert sync_main([str(output)]) == 0
    assert "status FINISHED" in capsys.readouterr().out
    client = mlflow.MlflowClient(server.uri)
    expected = _csv_history(output / "csv")
    steps = sorted(step for key, step in expected if key == "train/loss")
    assert steps == list(range(steps[0], steps[0] + len(steps)))  # every step (log_every_n_steps=1)
    val_steps = sorted(step for key, step in expected if key == "val/loss")
    assert len(val_steps) == 3
    # epochs 1 and 2 ran while the server was away: the journal had them
    journaled = {(key, step, ms) for r in records if r["op"] == "log_batch" for key, _, ms, step in r["metrics"]}
    assert {("train/loss", steps[-1]), ("val/loss", val_steps[-1])} <= {(key, step) for key, step, _ in journaled}
    keys = {key for key, _ in expected} | {key for key, _, _ in journaled}  # + fit_seconds, from training.py
    history = [m for key in keys for m in client.get_metric_history(run_id, key)]
    logged = {(m.key, m.step): m.value for m in history if m.key not in ("fit_seconds", "fit_cpu_seconds")}
    assert logged.keys() == expected.keys()
    for key_step, value in expected.items():
        assert logged[key_step] == pytest.approx(value, rel=1e-6, nan_ok=True), key_step
    assert journaled <= {(m.key, m.step, m.timestamp) for m in history}  # timestamps as logged, not as synced
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.end_time == [r for r in records if r["op"] == "set_terminated"][-1]["end_time"]
    assert run.data.params["model.cell"] == "lstm"
    artifacts = _artifact_paths(client, run_id)
    assert {"config.yaml", "metrics.json", "loss_curve.png", "samples/epoch_002.txt"} <= artifacts
    assert any(path.endswith(".ckpt") for path in artifacts)

    # a second sync sends nothing
    assert sync_main([str(output)]) == 0
    assert "nothing to send" in capsys.readouterr().out
    assert len(client.get_metric_history(run_id, "train/loss")) == len(steps)


def test_sync_while_the_server_is_still_away_sends_nothing_and_says_so(tmp_path, capsys):
    uri = f"http://127.0.0.1:{_free_port()}"
    journal = Journal.create(tmp_path / "run" / "mlflow_journal" / "0123abcd", "0123abcd", uri)
    journal.log_batch(metrics=[Metric("train/loss", 2.5, 1_700_000_000_000, 7)])
    assert sync_main([str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: cannot reach the MLflow tracking server {uri} (connection refused)")
    assert "--tracking-uri" in error and error.count("\n") == 1
    assert journal.pending() == 1


class Flaky:
    """An MlflowClient whose calls fail as they do while the server is down, when `down` is set."""

    def __init__(self, client):
        self.client, self.down = client, False

    def __getattr__(self, name):
        call = getattr(self.client, name)

        def fail(*args, **kwargs):
            raise MlflowException("API request to ... failed with exception HTTPConnectionPool: Max retries "
                                  "exceeded") from requests.ConnectionError("[Errno 111] Connection refused")

        return fail if self.down and callable(call) else call


def test_run_replays_its_journal_when_the_server_answers_again(server, tmp_path, monkeypatch, caplog):
    flaky = Flaky(mlflow.MlflowClient(server.uri))
    run_id = flaky.create_run(flaky.create_experiment(f"outage-{tmp_path.name}")).info.run_id
    client = ResilientClient(flaky, tmp_path / "journal", reconnect_seconds=0)
    monkeypatch.setattr(remote, "problem", lambda uri: "connection refused" if flaky.down else None)

    client.log_metric(run_id, "loss", 3.0, step=0)
    flaky.down = True
    with caplog.at_level(logging.WARNING, logger="rnnlab.tracking.logger"):
        client.log_metric(run_id, "loss", 2.0, step=1)
        client.set_tag(run_id, "phase", "offline")
        client.log_text(run_id, "written while away", "notes/away.txt")
        client.log_metric(run_id, "loss", 1.5, step=2)
        assert client.journal.pending() == 4
        flaky.down = False
        client.log_metric(run_id, "loss", 1.0, step=3)  # the server answers: the journal goes first
    warned, back = (r.getMessage() for r in caplog.records)  # one warning each way
    assert f"{server.uri} is unreachable (connection refused)" in warned
    assert f"{server.uri} answers again: replayed 4 journal records" in back
    assert client.journal.pending() == 0
    history = flaky.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 3.0), (1, 2.0), (2, 1.5), (3, 1.0)]
    assert flaky.get_run(run_id).data.tags["phase"] == "offline"
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="notes/away.txt", tracking_uri=server.uri)
    assert Path(path).read_text() == "written while away"


def _csv_history(folder: Path) -> dict[tuple[str, int], float]:
    (path,) = folder.rglob("metrics.csv")
    history = {}
    with open(path) as file:
        for row in csv.DictReader(file):
            for key, value in row.items():
                if key != "step" and value != "":
                    history[(key, int(row["step"]))] = float(value)
    return history


def _artifact_paths(client, run_id: str, path: str | None = None) -> set[str]:
    paths = set()
    for item in client.list_artifacts(run_id, path):
        paths |= _artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return paths
