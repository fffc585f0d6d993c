"""The MLflow links rnnlab prints open the UI's Model-training view, on the UI that shows the store's runs; its
experiments are tagged as model development. (In a browser: tests/test_ui_browser.py.)"""

from __future__ import annotations

import logging

import mlflow
import pytest
import requests

from rnnlab.errors import ConfigError
from rnnlab.tracking import ui


@pytest.fixture
def default_port(monkeypatch):
    monkeypatch.delenv(ui.UI_PORT_ENV, raising=False)


def test_a_local_stores_links_point_at_make_ui(default_port, monkeypatch):
    store = "sqlite:////home/me/rnnlab/logs/mlflow.db"
    assert ui.experiment_link(store, "3") == "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning"
    assert ui.run_link(store, "3", "0f9e") == \
        "http://127.0.0.1:5000/#/experiments/3/runs/0f9e?workflowType=machine_learning"
    assert ui.experiments_link(store) == "http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"
    monkeypatch.setenv(ui.UI_PORT_ENV, "5001")  # `MLFLOW_UI_PORT=5001 make ui` serves there
    assert ui.run_link(store, "3", "0f9e") == \
        "http://127.0.0.1:5001/#/experiments/3/runs/0f9e?workflowType=machine_learning"


def test_a_tracking_servers_links_point_at_that_server(monkeypatch):
    monkeypatch.setenv(ui.UI_PORT_ENV, "5001")  # not make ui's: the server serves its own UI
    assert ui.experiment_link("http://mlflow.lab:8080", "12") == \
        "http://mlflow.lab:8080/#/experiments/12/runs?workflowType=machine_learning"
    assert ui.run_link("https://lab.example.org/mlflow/", "12", "ab12") == \
        "https://lab.example.org/mlflow/#/experiments/12/runs/ab12?workflowType=machine_learning"


@pytest.mark.parametrize("port", ["abc", "0", "70000"])
def test_a_bad_ui_port_is_one_line_naming_the_variable(port, monkeypatch):
    monkeypatch.setenv(ui.UI_PORT_ENV, port)
    with pytest.raises(ConfigError, match=rf"^MLFLOW_UI_PORT={port} is not a port: .*unset it for 5000$"):
        ui.experiment_link("sqlite:///x.db", "1")


def test_ui_module_prints_the_experiments_link_that_make_ui_opens(default_port, capsys):
    ui.main(["sqlite:///x.db"])
    assert capsys.readouterr().out.splitlines()[0] == \
        "MLflow UI, Model-training view: http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"


def test_experiments_are_tagged_model_development_but_a_users_kind_stays(tmp_path):
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    ours = client.create_experiment("lm", artifact_location=str(tmp_path / "a"))
    theirs = client.create_experiment("chat", artifact_location=str(tmp_path / "b"),
                                      tags={ui.EXPERIMENT_KIND: "genai_development"})
    for experiment_id in (ours, theirs, ours):  # the second time changes nothing
        ui.mark_model_development(client, experiment_id)
    assert client.get_experiment(ours).tags[ui.EXPERIMENT_KIND] == "custom_model_development"
    assert client.get_experiment(theirs).tags[ui.EXPERIMENT_KIND] == "genai_development"


class _Unanswered:
    """An MlflowClient whose server is down (or, with `error`, answers with that error)."""

    def __init__(self, error: Exception):
        self.error = error

    def get_experiment(self, experiment_id: str):
        raise self.error


def test_a_server_that_does_not_answer_costs_the_tag_not_the_run(caplog):
    down = mlflow.exceptions.MlflowException("API request failed")
    down.__cause__ = requests.ConnectionError("[Errno 111] Connection refused")
    with caplog.at_level(logging.WARNING, logger="rnnlab.tracking.ui"):
        ui.mark_model_development(_Unanswered(down), "7")
    assert "experiment 7 not tagged mlflow.experimentKind=custom_model_development" in caplog.text
    assert "connection refused" in caplog.text
    with pytest.raises(mlflow.exceptions.MlflowException, match="denied"):  # the server's answer is not an outage
        ui.mark_model_development(_Unanswered(mlflow.exceptions.MlflowException("permission denied")), "7")
