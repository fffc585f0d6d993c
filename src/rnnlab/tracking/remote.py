"""A remote MLflow tracking server (`http://host:port`): does it answer, and did a call fail because it did not?

MLflow's HTTP client retries a failed request 7 times with exponential backoff, about 4 minutes, to
ride out rate limits. A training run has a better answer to an outage, its journal
(rnnlab/tracking/journal.py), which keeps the data and sends it once the server answers again; so
`fail_fast` turns those retries off for the process (unless the user set them): a call to a server
that went away fails at once (refused) or after 10 s (no answer), and its data goes to the journal.
With retries, every batch already on MLflow's async queue would also be retried, for seconds each.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

from rnnlab.errors import ConfigError

PROBE_SECONDS = 5
FAIL_FAST = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def is_remote(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def fail_fast() -> None:
    for name, value in FAIL_FAST.items():
        os.environ.setdefault(name, value)


def unreachable(error: BaseException) -> bool:
    """True when an MLflow client error means the server is down or not answering (refused, reset,
    unknown host, timed out, or still failing after the retries), not that it rejected the request."""
    import requests

    outage = (requests.ConnectionError, requests.Timeout, requests.exceptions.RetryError)
    return any(isinstance(cause, outage) for cause in _causes(error))


def problem(tracking_uri: str) -> str | None:
    """Why the server does not answer an MLflow API call right now, in a few words; None when it does.

    One attempt with a short timeout: this is asked before a run starts and while a run waits for the
    server to come back, neither of which should hang."""
    import mlflow

    with _environ(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT=str(PROBE_SECONDS)):
        try:
            mlflow.MlflowClient(tracking_uri).search_experiments(max_results=1)
        except Exception as error:  # MlflowException wraps every HTTP failure; its text says which
            return describe(error)
    return None


def check(tracking_uri: str) -> None:
    """Raise ConfigError, one line with the fixes, unless the server answers."""
    reason = problem(tracking_uri)
    if reason is not None:
        raise ConfigError(f"cannot reach the MLflow tracking server {tracking_uri} ({reason}): start it "
                          f"(e.g. mlflow server --host 127.0.0.1 --port 5000), point logger.mlflow.tracking_uri "
                          f"or MLFLOW_TRACKING_URI at a running one, or unset MLFLOW_TRACKING_URI to use the "
                          f"local store logs/mlflow.db")


def _causes(error: BaseException | None) -> Iterator[BaseException]:
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def describe(error: BaseException) -> str:
    """What went wrong in a few words: "connection refused", "timed out", or the error's first line."""
    import requests

    text = str(error)
    causes = " ".join(str(cause) for cause in _causes(error))
    os_error = re.search(r"\[Errno -?\d+\] ([^'\")]+)", causes)  # e.g. Connection refused, Name or service not known
    if os_error:
        return os_error.group(1).strip().lower()
    if "timed out" in causes or any(isinstance(cause, requests.Timeout) for cause in _causes(error)):
        return "timed out"  # urllib3's read timeout reaches us as a requests.ConnectionError
    return text.splitlines()[0][:200] if text else type(error).__name__


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
