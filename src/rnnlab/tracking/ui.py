"""Links into the MLflow UI that open its Model-training view, and the tag that files an experiment under it.

MLflow 3's UI shows an experiment in one of two views, chosen by the switch at its top left: GenAI
(traces, prompts, evaluations), where a browser starts, and Model training (runs, models, the model
registry), which is what rnnlab logs. The browser keeps the switch's position; a link chooses the view of
the page it opens with the query parameter `workflowType=machine_learning`. The UI routes inside the URL's
fragment (`/#/experiments/...`) and reads the parameter there, after the route: placed before the `#` it
is ignored. The links inside the UI do not all carry it on (a run's row does not), so a page reached
from the opened one may show GenAI again, until the switch is set once.

Every MLflow link rnnlab prints is built here. A tracking server (http://host:port) serves its own UI;
a local store's UI is the one `make ui` serves: http://127.0.0.1:$MLFLOW_UI_PORT, port 5000 unless set.

`python -m rnnlab.tracking.ui [tracking URI]` prints the experiments page of that store's UI (`make ui`).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from rnnlab.errors import ConfigError
from rnnlab.tracking import remote

log = logging.getLogger(__name__)

UI_PORT_ENV = "MLFLOW_UI_PORT"
DEFAULT_UI_PORT = 5000
MODEL_TRAINING_VIEW = "workflowType=machine_learning"
# The kind MLflow's UI writes when a user files an experiment under model development. MLflow 3.17's own
# UI decides the view by the switch, not by this tag; the tag says what the experiment holds to tools that
# read it (and to MLflow builds without the switch, which choose the view by it).
EXPERIMENT_KIND = "mlflow.experimentKind"
MODEL_DEVELOPMENT = "custom_model_development"


def ui_address(tracking_uri: str) -> str:
    """Where the UI of tracking_uri's runs is: the tracking server itself, else `make ui`'s local address."""
    if remote.is_remote(tracking_uri):
        return tracking_uri.rstrip("/")
    port = os.environ.get(UI_PORT_ENV) or str(DEFAULT_UI_PORT)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{UI_PORT_ENV}={port} is not a port: give the one `make ui` serves on "
                          f"(a number, e.g. {UI_PORT_ENV}=5001 make ui), or unset it for {DEFAULT_UI_PORT}")
    return f"http://127.0.0.1:{port}"


def experiments_link(tracking_uri: str) -> str:
    return f"{ui_address(tracking_uri)}/#/experiments?{MODEL_TRAINING_VIEW}"


def experiment_link(tracking_uri: str, experiment_id: str) -> str:
    """The experiment's runs table (a sweep's jobs folded under their parent run)."""
    return f"{ui_address(tracking_uri)}/#/experiments/{experiment_id}/runs?{MODEL_TRAINING_VIEW}"


def run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    # the UI's short route /#/runs/<id> redirects to this one and drops the view on the way
    return f"{ui_address(tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}?{MODEL_TRAINING_VIEW}"


def mark_model_development(client: Any, experiment_id: str) -> None:
    """Tag the experiment EXPERIMENT_KIND=MODEL_DEVELOPMENT, unless it has a kind already (a user's stays).

    client: an MlflowClient, or the one of rnnlab's MLflow logger. A server that does not answer costs the
    tag, not the run: the tag labels the experiment, and the next run into it sets it."""
    try:
        if EXPERIMENT_KIND not in client.get_experiment(experiment_id).tags:
            client.set_experiment_tag(experiment_id, EXPERIMENT_KIND, MODEL_DEVELOPMENT)
    except Exception as error:
        if not remote.unreachable(error):
            raise
        log.warning(f"experiment {experiment_id} not tagged {EXPERIMENT_KIND}={MODEL_DEVELOPMENT}: the MLflow "
                    f"tracking server is unreachable ({remote.describe(error)})")


def main(arguments: list[str]) -> None:
    from rnnlab.cli import one_line_errors
    from rnnlab.tracking.mlflow_store import default_tracking_uri

    tracking_uri = arguments[0] if arguments else default_tracking_uri()
    with one_line_errors():
        link = experiments_link(tracking_uri)
    print(f"MLflow UI, Model-training view: {link}\n"
          f"(an experiment opened from there shows GenAI until you set the switch at the top left to Model "
          f"training once; the browser keeps it)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
