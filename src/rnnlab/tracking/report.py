"""Compare runs: one row per configuration, its metrics as mean ± std over seeds, with curves and bars.

`python report.py <experiment name | sweep parent run id>` calls `write_report`. What it compares:

- the runs: every run of the experiment (a sweep's parent run is left out: its children are the
  jobs), or the children of a sweep's parent run (tag mlflow.parentRunId);
- a configuration: a run's Hydra overrides (tag hydra_overrides) without `seed=`, so that the seeds
  of one setting fall together; or, with `group_by`, the values of chosen keys, each read from the
  run's overrides, else its tags (every config group's option: model, attention, ...), else its
  params (model.cell, optimizer.lr, ...);
- the numbers: each run's last logged value of a metric (val/* = the last validation; test/* is
  already the best checkpoint's), as mean and sample standard deviation (n − 1) over the
  configuration's FINISHED runs. Runs in any other state are counted and listed, never averaged;
- references: where generated data knows how well one can do, the task logs it beside a metric
  (`val/acc_optimal`, `val/acc_bow_optimal` or `val/acc_left_to_right_optimal` beside `val/acc`); when every run
  that logged one agrees on it, it is drawn as a dashed line on that metric's bars and curves and said under the
  table.
"""

from __future__ import annotations

import bisect
import math
import re
import statistics
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rnnlab.errors import ConfigError
from rnnlab.tracking import mlflow_store, ui
from rnnlab.tracking.run_info import task_metrics

WALL_TIME = "fit_seconds"     # train.py logs the seconds trainer.fit took
PARENT_TAG = "mlflow.parentRunId"
START_ORDER = ["attributes.start_time ASC"]  # rows and curves in the order the runs were made
ARTIFACT_PATH = "report"      # where the files go in a sweep's parent run
SHARED_ONLY = "(shared overrides only)"
REFERENCES = {"_optimal": "Bayes-optimal", "_bow_optimal": "best bag of words",  # suffix → what the line is
              "_left_to_right_optimal": "best left-to-right"}
REFERENCE_STYLES = ("--", ":", "-.")
UNSET = "(default)"           # a group-by key a run neither overrode nor recorded


@dataclass
class Selection:
    """The runs to compare (oldest first) and where they come from."""

    title: str
    runs: list[Any]
    parent: Any | None = None     # the sweep's parent run, when one was given


@dataclass
class Report:
    selection: Selection
    table: pd.DataFrame           # one row per configuration (index), numbers at full precision
    markdown: str
    files: list[Path]
    link: str                     # the parent run, else the experiment's runs, in the MLflow UI


def write_report(target: str, tracking_uri: str | None = None, out_dir: Path | str | None = None,
                 group_by: Sequence[str] = (), metrics: Sequence[str] = ()) -> Report:
    """Compare the runs of `target` and write the report to `out_dir` (and into the parent run, if one)."""
    import mlflow

    from rnnlab.config import project_root

    tracking_uri = tracking_uri or mlflow_store.default_tracking_uri()
    mlflow_store.require_store(tracking_uri, f"report {target}")
    client = mlflow.MlflowClient(tracking_uri)
    selection = select_runs(client, target, tracking_uri)
    runs = selection.runs
    labels = configurations(runs, group_by)
    metrics = [m for m in choose_metrics(runs, metrics) if m != WALL_TIME]  # a column of every report anyway
    table = summarize(runs, labels, metrics)
    histories = curves(client, runs, labels, metrics)
    lines = references(runs, metrics)

    out_dir = Path(out_dir) if out_dir else project_root() / "logs" / "reports" / re.sub(r"[^\w.-]+", "_", target)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("curves_*.png"):  # an earlier report's metrics: the rest is overwritten
        stale.unlink()
    page, table_csv, curves_csv, bars = (out_dir / name for name in
                                         ("comparison.md", "comparison.csv", "curves.csv", "final_metrics.png"))
    table.to_csv(table_csv)
    histories.to_csv(curves_csv, index=False)
    plot_finals(table, metrics, bars, lines)
    curve_plots = []
    for metric in histories["metric"].unique():  # the metrics logged per epoch
        curve_plots.append(out_dir / f"curves_{_file_name(metric)}.png")
        plot_curves(histories[histories["metric"] == metric], metric, curve_plots[-1], lines.get(metric, {}))
    markdown = to_markdown(selection, table, metrics, shared_overrides(runs) if not group_by else [],
                           images=[bars, *curve_plots], tracking_uri=tracking_uri, references=lines)
    page.write_text(markdown)
    files = [page, table_csv, curves_csv, bars, *curve_plots]
    if selection.parent is not None:
        for path in files:
            client.log_artifact(selection.parent.info.run_id, str(path), ARTIFACT_PATH)
    return Report(selection, table, markdown, files, ui_link(selection, tracking_uri))


# --- which runs, grouped how --------------------------------------------------------------------

def select_runs(client: Any, target: str, tracking_uri: str) -> Selection:
    """The experiment's runs without sweep parents, or the children of the parent run `target`; comma-separated
    experiments: all their runs, as one comparison (a study whose cells were logged under several experiments)."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(target)
    if experiment is None and "," in target:
        names = [name.strip() for name in target.split(",") if name.strip()]
        parts = [select_runs(client, name, tracking_uri) for name in names]
        for name, part in zip(names, parts):
            if part.parent is not None:
                raise ConfigError(f"{name!r} in {target!r} is a run: comma-separated targets are experiment names; "
                                  f"give the run's experiment, or the run alone")
        return Selection(f"experiments {', '.join(names)}", [run for part in parts for run in part.runs])
    if experiment is not None:
        runs = mlflow_store.search_all_runs(client, [experiment.experiment_id], order_by=START_ORDER)
        parents = {run.data.tags.get(PARENT_TAG) for run in runs}
        runs = [run for run in runs if run.info.run_id not in parents]
        if not runs:
            raise ConfigError(f"experiment {target!r} has no runs in {tracking_uri}")
        return Selection(f"experiment {target}", runs)
    try:
        parent = client.get_run(target)
    except MlflowException:
        names = ", ".join(e.name for e in client.search_experiments()) or "none"
        raise ConfigError(f"{target!r} is neither an experiment nor a run in {tracking_uri}; experiments: {names} "
                          f"(or give a sweep's parent run id)") from None
    runs = mlflow_store.search_all_runs(client, [parent.info.experiment_id], f"tags.`{PARENT_TAG}` = '{target}'",
                                        order_by=START_ORDER)
    if not runs:
        experiment = client.get_experiment(parent.info.experiment_id).name
        raise ConfigError(f"run {target} ({parent.info.run_name}) has no child runs: give a sweep's parent run id, "
                          f"or the experiment's name {experiment!r}")
    return Selection(f"{parent.info.run_name} (parent run {target})", runs, parent)


def ui_link(selection: Selection, tracking_uri: str) -> str:
    parent = selection.parent
    if parent is not None:
        return ui.run_link(tracking_uri, parent.info.experiment_id, parent.info.run_id)
    return ui.experiment_link(tracking_uri, selection.runs[0].info.experiment_id)


def overrides(run: Any) -> list[str]:
    """The run's Hydra overrides as train.py tagged them (a sweep job that failed before training has
    only the sweep's per-job overrides)."""
    text = run.data.tags.get("hydra_overrides") or run.data.tags.get("sweep.overrides", "")
    return [] if text == "(defaults)" else text.split()


def shared_overrides(runs: Sequence[Any]) -> list[str]:
    """Overrides (seed aside) that every run has, when the runs differ at all: said once, not per row."""
    settings = [_without_seed(overrides(run)) for run in runs]
    if len({frozenset(s) for s in settings}) < 2:
        return []
    common = set.intersection(*(set(s) for s in settings))
    return [o for o in settings[0] if o in common]


def configurations(runs: Sequence[Any], group_by: Sequence[str] = ()) -> dict[str, str]:
    """run id → its configuration's label: the overrides without the seed (those all runs share left
    out), or `key=value` for each group-by key."""
    if group_by:
        values = {run.info.run_id: [lookup(run, key) for key in group_by] for run in runs}
        for i, key in enumerate(group_by):
            if all(v[i] is None for v in values.values()):
                raise ConfigError(f"--group-by {key}: none of the {len(runs)} runs has an override, tag or param "
                                  f"{key!r}; overridden here: {', '.join(_overridden_keys(runs)) or 'nothing'}; "
                                  f"tags: each config group's option (model, attention, ...); params: dotted "
                                  f"config keys such as model.cell")
        return {run_id: " ".join(f"{key}={UNSET if v is None else v}" for key, v in zip(group_by, vs))
                for run_id, vs in values.items()}
    shared = set(shared_overrides(runs))
    labels: dict[frozenset[str], str] = {}  # the first run's order of the same set names them all
    out = {}
    for run in runs:
        own = [o for o in _without_seed(overrides(run)) if o not in shared]
        label = " ".join(own) or (SHARED_ONLY if shared else "(defaults)")
        out[run.info.run_id] = labels.setdefault(frozenset(own), label)
    return out


def lookup(run: Any, key: str) -> str | None:
    """A group-by key's value for this run: its override, else a tag, else a param of that name."""
    for override in overrides(run):
        if _key(override) == key:
            return override.split("=", 1)[1]
    return run.data.tags.get(key, run.data.params.get(key))


def choose_metrics(runs: Sequence[Any], asked: Sequence[str] = ()) -> list[str]:
    """The asked metrics, or the defaults of the runs' tasks that some run logged."""
    logged = {key for run in runs for key in run.data.metrics}
    if asked:
        missing = [m for m in asked if m not in logged]
        if missing:
            raise ConfigError(f"--metrics {','.join(missing)}: logged by none of the {len(runs)} runs; "
                              f"logged: {', '.join(sorted(logged)) or 'nothing'}")
        return list(dict.fromkeys(asked))
    tasks = list(dict.fromkeys(run.data.tags.get("task", "") for run in runs))
    chosen = [m for m in dict.fromkeys(m for run in runs for m in task_metrics(run, "report_metrics")) if m in logged]
    if not chosen:
        raise ConfigError(f"no default metrics for task {', '.join(tasks)} among the logged ones: choose with "
                          f"--metrics; logged: {', '.join(sorted(logged)) or 'nothing'}")
    return chosen


# --- numbers -------------------------------------------------------------------------------------

def references(runs: Sequence[Any], metrics: Sequence[str]) -> dict[str, dict[str, float]]:
    """metric → {what the line is: value} for each reference (REFERENCES) that every finished run logging
    it agrees on (to 1e-9); a reference that differs between runs (other data) is no single line."""
    found: dict[str, dict[str, float]] = {}
    for metric in metrics:
        for suffix, name in REFERENCES.items():
            values = {run.data.metrics[metric + suffix] for run in runs
                      if run.info.status == "FINISHED" and metric + suffix in run.data.metrics}
            if values and max(values) - min(values) <= 1e-9:
                found.setdefault(metric, {})[f"{name} ({metric + suffix})"] = min(values)
    return found


def summarize(runs: Sequence[Any], labels: dict[str, str], metrics: Sequence[str]) -> pd.DataFrame:
    """Per configuration: finished and other runs, then mean, sample std and count of each metric and
    of the fit time, over the finished runs."""
    columns = [*metrics, WALL_TIME]
    order = list(dict.fromkeys(labels.values()))
    finished = [run for run in runs if run.info.status == "FINISHED"]
    values = pd.DataFrame([[labels[run.info.run_id], *(run.data.metrics.get(c, math.nan) for c in columns)]
                           for run in finished], columns=["configuration", *columns])
    stats = values.groupby("configuration", sort=False)[columns].agg(["mean", "std", "count"])  # std: ddof=1
    stats.columns = [f"{metric} {'n' if stat == 'count' else stat}" for metric, stat in stats.columns]
    stats = stats.reindex(order)
    status = pd.Series([labels[run.info.run_id] for run in runs if run.info.status != "FINISHED"], dtype=object)
    stats.insert(0, "runs", values["configuration"].value_counts().reindex(order, fill_value=0))
    stats.insert(1, "not finished", status.value_counts().reindex(order, fill_value=0))
    for column in stats.columns[stats.columns.str.endswith(" n")]:
        stats[column] = stats[column].fillna(0).astype(int)
    stats.index.name = "configuration"
    return stats


def curves(client: Any, runs: Sequence[Any], labels: dict[str, str], metrics: Sequence[str]) -> pd.DataFrame:
    """Per metric logged more than once (validation), configuration and epoch: mean, sample std and
    count over the finished runs. A run's last value in an epoch stands for that epoch."""
    points = []  # (metric, configuration, epoch, value, points in the run's history)
    for run in runs:
        if run.info.status != "FINISHED":
            continue
        epoch_of = _epochs(client, run.info.run_id)
        for metric in metrics:
            history = sorted(client.get_metric_history(run.info.run_id, metric), key=lambda m: (m.step, m.timestamp))
            per_epoch = {epoch_of(m.step) if epoch_of else i + 1: m.value for i, m in enumerate(history)}
            points += [(metric, labels[run.info.run_id], e, v, len(history)) for e, v in per_epoch.items()]
    frame = pd.DataFrame(points, columns=["metric", "configuration", "epoch", "value", "points"])
    frame = frame[frame.groupby("metric")["points"].transform("max") > 1].assign(  # test/* is logged once: no curve
        # categories keep the report's order of metrics and configurations (the table's, the legend's)
        metric=lambda f: pd.Categorical(f["metric"], categories=list(metrics)),
        configuration=lambda f: pd.Categorical(f["configuration"], categories=list(dict.fromkeys(labels.values()))))
    stats = frame.groupby(["metric", "configuration", "epoch"], observed=True)["value"].agg(["mean", "std", "count"])
    return stats.rename(columns={"count": "n"}).reset_index()


def _epochs(client: Any, run_id: str) -> Callable[[int], int] | None:
    """step → epochs completed (1, 2, ...), from the `epoch` metric Lightning logs beside every metric."""
    history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "epoch"))
    if not history:
        return None
    steps = [step for step, _ in history]
    return lambda step: int(history[max(bisect.bisect_right(steps, step) - 1, 0)][1]) + 1


# --- output --------------------------------------------------------------------------------------

def to_markdown(selection: Selection, table: pd.DataFrame, metrics: Sequence[str], shared: Sequence[str],
                images: Sequence[Path], tracking_uri: str, references: dict[str, dict[str, float]] | None = None
                ) -> str:
    runs = selection.runs
    finished = sum(run.info.status == "FINISHED" for run in runs)
    rows = []
    for label, row in table.iterrows():
        runs_averaged = int(row["runs"])
        cells = [label.replace("|", "\\|"), str(runs_averaged), str(int(row["not finished"]))]
        for column in [*metrics, WALL_TIME]:
            text, n = mean_std(row[f"{column} mean"], row[f"{column} std"]), int(row[f"{column} n"])
            cells.append(text + (f" (n={n})" if 0 < n < runs_averaged else ""))
        rows.append(cells)
    header = ["configuration", "runs", "not finished", *metrics, "fit s"]
    lines = [f"# Comparison: {selection.title}", "",
             f"{len(runs)} runs ({finished} finished) from `{tracking_uri}`. Each cell: mean ± sample standard "
             f"deviation (n − 1) over a configuration's finished runs of each run's last logged value "
             f"(val/* = the last validation). Runs not finished are not averaged.", ""]
    if shared:
        lines += [f"Every run: `{' '.join(shared)}`", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    drawn = [f"{name} = {value:.4g}" for lines_of_metric in (references or {}).values()
             for name, value in lines_of_metric.items()]
    if drawn:
        lines += ["", f"Reference lines (dashed in the plots), from the data: {'; '.join(drawn)}."]
    others = [run for run in runs if run.info.status != "FINISHED"]
    if others:
        lines += ["", "Not finished (not averaged):"]
        lines += [f"- {run.info.run_name} `{run.info.run_id}` ({' '.join(overrides(run)) or '(defaults)'}): "
                  f"{run.info.status}" + (f": {run.data.tags['sweep.error']}" if "sweep.error" in run.data.tags else "")
                  for run in others]
    lines += [""] + [f"![{image.stem}]({image.name})" for image in images]
    return "\n".join(lines) + "\n"


def mean_std(mean: float, std: float) -> str:
    """The std to two significant digits and the mean to the same decimal place; the mean alone for n = 1."""
    if math.isnan(mean):
        return "—"
    if math.isnan(std):
        return f"{mean:.4g}"
    if std == 0:
        return f"{mean:.4g} ± 0"
    decimals = min(max(1 - math.floor(math.log10(std)), 0), 8)
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def mean_std_of(values: Iterable[float | None], fmt: str) -> str:
    """Mean ± sample std (n − 1; 0 for one value) of the finite values, both in `fmt` (".3f"); "–" if none.

    For the hand-collected tables of experiments/*/summarize.py, whose columns keep one fixed precision;
    `mean_std` above picks the precision from the std instead.
    """
    values = [value for value in values if value is not None and math.isfinite(value)]
    if not values:
        return "–"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{format(statistics.mean(values), fmt)} ± {format(std, fmt)}"


def plot_curves(frame: pd.DataFrame, metric: str, path: Path, references: dict[str, float] | None = None) -> None:
    """One line per configuration (mean over seeds) in a band of ± one sample std; references dashed."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, group in frame.groupby("configuration", observed=True):
        (line,) = ax.plot(group["epoch"], group["mean"], marker="o", label=_wrap(label))
        spread = group["std"].fillna(0)
        ax.fill_between(group["epoch"], group["mean"] - spread, group["mean"] + spread, color=line.get_color(),
                        alpha=0.2, linewidth=0)
    for (name, value), style in zip((references or {}).items(), REFERENCE_STYLES):
        ax.axhline(value, color="black", linestyle=style, linewidth=1, label=name)
    ax.set(xlabel="epoch", ylabel=metric, title=f"{metric}: mean ± std over seeds")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_finals(table: pd.DataFrame, metrics: Sequence[str], path: Path,
                references: dict[str, dict[str, float]] | None = None) -> None:
    """One panel per metric, one bar per configuration, error bars ± one sample std, a metric's references
    as dashed lines. Each axis spans the error bars (and the lines), not 0: configurations differ in the
    second or third digit of a loss or perplexity."""
    plt = _pyplot()
    rows = range(len(table))
    labels = [_wrap(label) for label in table.index]
    # each bar as tall as its wrapped label, so long configurations' labels do not run into each other
    height = 0.2 * max(2, max(label.count("\n") + 1 for label in labels)) * len(table) + 1.6
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.5 * len(metrics) + 3, height), sharey=True, squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        mean, std = table[f"{metric} mean"], table[f"{metric} std"].fillna(0)
        ax.barh(rows, mean, xerr=std, capsize=3, color="tab:blue", alpha=0.8)
        lines = (references or {}).get(metric, {})
        for (name, value), style in zip(lines.items(), REFERENCE_STYLES):
            ax.axvline(value, color="black", linestyle=style, linewidth=1, label=name)
        low, high = min([(mean - std).min(), *lines.values()]), max([(mean + std).max(), *lines.values()])
        if lines:
            ax.legend(fontsize="x-small", loc="lower right")
        if math.isfinite(low) and math.isfinite(high):
            margin = 0.15 * (high - low) or 0.05 * abs(high) or 1
            ax.set_xlim(low - margin, high + margin)
        ax.locator_params(axis="x", nbins=4)  # long tick labels such as 3.4925 would overlap
        ax.set_title(metric)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(list(rows), labels, fontsize="small")
    axes[0][0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- helpers -------------------------------------------------------------------------------------

def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _without_seed(overrides: list[str]) -> list[str]:
    return [o for o in overrides if _key(o) != "seed"]


def _overridden_keys(runs: Sequence[Any]) -> list[str]:
    return list(dict.fromkeys(_key(o) for run in runs for o in overrides(run)))


def _file_name(metric: str) -> str:
    return re.sub(r"[^\w.-]+", "_", metric)


def _wrap(label: str) -> str:
    return "\n".join(textwrap.wrap(label, 40)) or label


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
