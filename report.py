"""Compare runs: `python report.py <experiment name[,name...] | sweep parent run id> [--group-by model,attention]`.

Thin by design: rnnlab.tracking.report reads the MLflow store, groups the runs into configurations
(overrides without the seed) and writes the table (markdown + CSV) and plots to a folder, and to the
parent run when given one.
"""

import argparse

from rnnlab.cli import one_line_errors


def main() -> None:
    parser = argparse.ArgumentParser(description="Compare runs: one row per configuration (the overrides without "
                                     "the seed), mean ± std over seeds, curves and bars.")
    parser.add_argument("target", help="an MLflow experiment name (or several, comma-separated: their runs "
                        "together), or a sweep's parent run id (its children)")
    parser.add_argument("--tracking-uri", help="the MLflow store (default: MLFLOW_TRACKING_URI, else logs/mlflow.db)")
    parser.add_argument("--out", help="the report's folder (default: logs/reports/<target>/)")
    parser.add_argument("--group-by", default="", type=_names,
                        help="comma-separated keys that make a configuration, each an override, tag or param "
                             "(default: every override but the seed)")
    parser.add_argument("--metrics", default="", type=_names,
                        help="comma-separated metrics (default: the task's report_metrics, e.g. lm val/loss,val/ppl,"
                             "test/ppl; translation val/bleu,test/bleu,test/chrf,test/ppl; classification, tagging "
                             "and captioning theirs: rnnlab/tasks/)")
    args = parser.parse_args()

    from rnnlab.tracking.report import ARTIFACT_PATH, write_report

    with one_line_errors():  # the user's mistake: one line, no stack trace
        report = write_report(args.target, args.tracking_uri, args.out, args.group_by, args.metrics)
    print(report.markdown.split("\n![")[0].rstrip())
    print(f"\nwritten to {report.files[0].parent}: {', '.join(path.name for path in report.files)}")
    if report.selection.parent is not None:
        print(f"logged to MLflow run {report.selection.parent.info.run_id} under {ARTIFACT_PATH}/")
    print(f"browse in MLflow: {report.link}")


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


if __name__ == "__main__":
    main()
