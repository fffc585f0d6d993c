"""Waiting for the metrics MLflow's background queue has not written yet.

With `logger.mlflow.synchronous: false` MLflow writes each batch of metrics from a pool of threads; on a
busy sqlite store it runs many steps behind, and out of order. A checkpoint must not get ahead of the
metrics logged before it: a run resumed from it logs only the steps after it (rnnlab/resume/), so steps
still queued when the process died would be missing for good. QueuedWrites keeps what the logger hands to
the queue, and `wait()` blocks until it is written (callbacks/last_checkpoint.py calls it before each
checkpoint). Cheaper than `mlflow.flush_async_logging()`, which restarts MLflow's logging thread and takes
about a second even with nothing to write.
"""

from __future__ import annotations

from lightning.pytorch.loggers import MLFlowLogger


class QueuedWrites:
    """The writes `logger` handed to MLflow's background queue since the last `wait()`."""

    def __init__(self, logger: MLFlowLogger):
        self._operations = []
        client = logger.experiment
        log_batch = client.log_batch

        def log_batch_and_keep(*args, **kwargs):
            operations = log_batch(*args, **kwargs)
            if operations is not None:  # None: written already (synchronous), or kept offline
                self._operations.append(operations)
            return operations

        client.log_batch = log_batch_and_keep  # this client only; its class is untouched

    def wait(self) -> None:
        from mlflow.exceptions import MlflowException

        operations, self._operations = self._operations, []
        for operation in operations:
            try:
                operation.wait()
            except MlflowException:  # a write that failed is MLflow's (or the outage journal's) to report
                pass
