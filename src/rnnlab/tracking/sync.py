"""Send runs' journals to their MLflow tracking server: `python -m rnnlab.tracking.sync [PATH]` (make sync).

A run whose server stopped answering kept its data in `<run dir>/mlflow_journal/<run id>/`
(rnnlab/tracking/logger.py). PATH is such a folder, a run's directory, a sweep's directory, or
logs/ (the default): every journal under it with records not yet sent is replayed into its run,
in the order written, metrics with their own steps and timestamps, the final status included.
Sent records are counted in the journal's synced.json, so a second sync sends nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnlab.errors import ConfigError
from rnnlab.tracking import remote
from rnnlab.tracking.journal import JOURNAL, Journal, replay


def journals(path: Path) -> list[Journal]:
    if not path.exists():
        raise ConfigError(f"{path} does not exist: give a run's directory, a journal folder or logs/")
    folder = path.parent if path.is_file() else path  # journal.jsonl itself names its folder
    return [Journal(found.parent) for found in sorted(folder.rglob(JOURNAL))]


def sync(journal: Journal, tracking_uri: str | None = None) -> str:
    """Replay what the journal has not yet sent; one line saying what was sent."""
    import mlflow

    run, records = journal.read()
    if journal.synced() == len(records):
        return f"{journal.folder}: nothing to send, its {len(records)} records are in run {run['run_id']}"
    tracking_uri = tracking_uri or run["tracking_uri"]
    if remote.is_remote(tracking_uri):
        remote.fail_fast()
        reason = remote.problem(tracking_uri)
        if reason is not None:
            raise ConfigError(f"cannot reach the MLflow tracking server {tracking_uri} ({reason}): start it, or give "
                              f"--tracking-uri where it runs now; {journal.folder} keeps the run's data until then")
    try:
        sent = replay(journal, mlflow.MlflowClient(tracking_uri))
    except Exception as error:  # what was sent stays counted: the next sync goes on from there
        raise ConfigError(f"{journal.folder}: sync stopped after {journal.synced()} of {len(records)} records "
                          f"({remote.describe(error)}); fix that and sync again") from None
    status = f", status {sent['status']}" if "status" in sent else ""
    return (f"{journal.folder}: sent {sent['metrics']} metric values, {sent['params']} params, {sent['tags']} tags, "
            f"{sent['artifacts']} artifacts{status} into run {run['run_id']} at {tracking_uri}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnlab.tracking.sync", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", nargs="?", type=Path, default=Path("logs"),
                        help="a journal folder, run directory, sweep directory or logs/ (default: logs)")
    parser.add_argument("--tracking-uri", help="send to this server instead of the one each journal names "
                                               "(for a server that has moved)")
    args = parser.parse_args(argv)
    try:
        found = journals(args.path)
        for journal in found:
            print(sync(journal, args.tracking_uri), flush=True)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not found:
        print(f"no MLflow journal under {args.path}: nothing to send")
    return 0


if __name__ == "__main__":
    sys.exit(main())
