"""The MLflow UI as a person sees it: a real `mlflow server`, a real sweep logging to it over HTTP, and
headless Chromium opening the links the sweep printed, in the UI's Model-training view; and report.py's files
reaching the sweep's parent run through the server.

Skips when Chromium is not installed (`.ci/run` installs the Debian package `chromium`). The browser's
screenshots and DOMs are kept in logs/test-artifacts/ui_browser/ (runs.png/.html: the experiment's page as the
printed link opens it; runs_flat.png/.html: sorted by name, which lists a sweep's child runs instead of folding
them under the parent; parent.png/.html: the parent run's page).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
from conftest import ROOT, TINY, run_owned

from rnnlab.tracking.report import write_report

CHROMIUM = shutil.which("chromium")
SCREENSHOTS = ROOT / "logs" / "test-artifacts" / "ui_browser"
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install "
                                                           "chromium; .ci/run does it when run as root)")


@pytest.fixture
def mlflow_server(tmp_path):
    """The .venv's `mlflow server` on a free loopback port over a tmp sqlite store; its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "server.log").open("w")
    # a session of its own: the server runs uvicorn as a child process, and both must stop; no GenAI job
    # runner (7 more Python processes, ~40 % longer to start on 2 cores, nothing of ours uses it)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri",
         f"sqlite:///{tmp_path}/mlflow.db", "--artifacts-destination", str(tmp_path / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180  # a new store's migrations take ~30 s on 2 busy cores
        while not _healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not come up on {url}:\n{(tmp_path / 'server.log').read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the group led by our server's PID (start_new_session)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.mark.slow  # 70-150 s on 2 busy cores: the server's start, a 2-job sweep, three page loads
def test_sweep_runs_appear_in_the_browser(mlflow_server, tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    sweep = run_owned(
        [sys.executable, "train.py", "-m", "model=rnn,gru", *TINY, f"paths.log_dir={tmp_path}/logs",
         f"hydra.sweep.dir={tmp_path}/multirun", "logger.mlflow.artifact_location=null",  # the server keeps them
         "callbacks.progress_bar.refresh_rate=0"],
        cwd=ROOT, env=env, timeout=600)
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]

    client = mlflow.MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("lm-synthetic_lm")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id])
    jobs = [run for run in runs if run.data.tags.get("model") in ("rnn", "gru")]
    assert sorted(run.info.run_name for run in jobs) == ["gru", "rnn"]
    assert all(run.info.status == "FINISHED" for run in jobs)
    parents = {run.data.tags["mlflow.parentRunId"] for run in jobs if "mlflow.parentRunId" in run.data.tags}
    top_level = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    # a sweep under one parent run: the page opens with the parent, its jobs folded beneath it
    assert {run.info.run_id for run in top_level} == (parents or {run.info.run_id for run in jobs})

    # the links the sweep printed open the Model-training view (a fresh browser's default is GenAI's)
    link = _printed(sweep.stdout, "browse experiment:")
    assert link == f"{mlflow_server}/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"
    profile = tmp_path / "profile"
    opened = _text(_render(link, profile, tmp_path / "runs.png", _rows(top_level, experiment.experiment_id)))
    assert re.search(rf"\b{len(runs)} matching runs", opened)  # the table's footer counts the children too
    _assert_model_training_view(opened)
    assert "Training runs" not in opened  # the GenAI view's title of this page
    # sorted by name (the UI's "Sort: Run Name") the table is flat: every run, child or not, is a row
    _render(link + "&orderByKey=tags.%60mlflow.runName%60&orderByAsc=true", profile, tmp_path / "runs_flat.png",
            _rows(runs, experiment.experiment_id))

    if parents:
        (parent,) = parents
        parent_link = _printed(sweep.stdout, "browse parent run:")
        assert parent_link == (f"{mlflow_server}/#/experiments/{experiment.experiment_id}/runs/{parent}"
                               f"?workflowType=machine_learning")
        name = client.get_run(parent).info.run_name
        header = re.compile(rf'data-testid="runs-header">{re.escape(html.escape(name, quote=False))}</span>')
        page = _text(_render(parent_link, profile, tmp_path / "parent.png", {name: header}))
        _assert_model_training_view(page)
        assert f"Runs {name}" in page and "Evaluations" not in page  # the breadcrumb; GenAI's says Evaluations

        # the sweep's comparison report reaches its parent through the server's artifact proxy too
        report = write_report(parent, tracking_uri=mlflow_server, out_dir=tmp_path / "report")
        assert list(report.table.index) == ["model=rnn", "model=gru"] and list(report.table["runs"]) == [1, 1]
        assert {item.path for item in client.list_artifacts(parent, "report")} >= {"report/comparison.md",
                                                                                    "report/final_metrics.png"}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for screenshot in sorted(tmp_path.glob("*.png")):  # kept beyond tmp_path, for a person to look at
        for kept in (screenshot, screenshot.with_suffix(".html")):
            shutil.copy(kept, SCREENSHOTS / kept.name)
    print(f"screenshots in {tmp_path}, copied to {SCREENSHOTS}: runs.png, runs_flat.png, parent.png")


def _rows(runs: list, experiment_id: str) -> dict[str, re.Pattern]:
    """Each run's row in a runs table: its name, linked to its run page."""
    return {run.info.run_name: re.compile(rf'href="#/experiments/{experiment_id}/runs/{run.info.run_id}">'
                                          rf'<span[^>]*>{re.escape(html.escape(run.info.run_name, quote=False))}'
                                          rf"</span>") for run in runs}


def _render(url: str, profile: Path, screenshot: Path, expected: dict[str, re.Pattern], attempts: int = 3) -> str:
    """The page's DOM once it shows everything expected (name → pattern); a few tries, since on a busy machine
    the React app may still be fetching when the virtual-time budget runs out."""
    for _ in range(attempts):
        screenshot.unlink(missing_ok=True)
        dom = run_owned(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--window-size=1400,900", "--virtual-time-budget=15000",
             f"--screenshot={screenshot}", "--dump-dom", url],
            timeout=180).stdout
        screenshot.with_suffix(".html").write_text(dom)
        missing = [name for name, pattern in expected.items() if not pattern.search(dom)]
        if not missing:
            assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            return dom
    pytest.fail(f"{url}: no {missing} after {attempts} tries; screenshot: {screenshot}")


def _printed(output: str, label: str) -> str:
    """What a line of the output that starts with `label` says after it."""
    (line,) = [line for line in output.splitlines() if line.startswith(label)]
    return line.removeprefix(label).strip()


def _assert_model_training_view(text: str) -> None:
    """The sidebar of the Model-training view (Runs, Models, Traces; the model registry), none of GenAI's."""
    assert re.search(r"\bRuns Models Traces Model registry\b", text), "no sidebar of the Model-training view"
    for genai in ("Sessions", "Judges", "Evaluation runs", "Prompts", "Agent versions"):
        assert not re.search(rf"\b{genai}\b", text), genai


def _text(dom: str) -> str:
    """What the page says, without its markup."""
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", dom).split()))


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
