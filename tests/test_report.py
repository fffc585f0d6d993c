"""report.py on a store built by hand: 2 configurations × 3 seeds under a sweep parent, one FAILED run, one lone run.

The numbers are chosen so that the sample std (n − 1) and the population std differ, and so that averaging in
the FAILED run would move every mean.
"""

from __future__ import annotations

import math
import runpy
import sys

import mlflow
import pandas as pd
import pytest
from conftest import ROOT
from mlflow.entities import Metric, Param

from rnnlab.errors import ConfigError
from rnnlab.tracking.report import write_report
from rnnlab.tracking.run_info import run_tags

STEPS_PER_EPOCH = 10
# configuration → per seed: val/loss per epoch (the last is the final value), test/ppl, fit_seconds
RUNS = {
    "rnn": [([4.0, 3.5, 3.0], 30.0, 10.0), ([4.2, 3.7, 3.2], 31.0, 11.0), ([4.4, 3.9, 3.4], 32.0, 12.0)],
    "gru": [([3.0, 2.5, 2.0], 20.0, 20.0), ([3.5, 3.0, 2.5], 22.0, 20.0), ([4.0, 3.5, 3.0], 24.0, 20.0)],
}


LM_TASK = "rnnlab.tasks.language_modeling.LanguageModelingTask"


def _log_run(client, experiment_id, model, seed, val_losses, test_ppl, fit_seconds, status="FINISHED", parent=None):
    tags = {"task": "lm", "model": model, "hydra_overrides": f"data.bptt=8 model={model} seed={seed}"}
    if parent:
        tags["mlflow.parentRunId"] = parent
    run_id = client.create_run(experiment_id, run_name=model, tags=tags).info.run_id
    metrics, t = [], 1_000
    for epoch, loss in enumerate(val_losses):  # as Lightning logs them: `epoch` beside every metric
        end = (epoch + 1) * STEPS_PER_EPOCH - 1
        metrics += [Metric("train/loss", loss + 0.5, t, end - 5), Metric("epoch", epoch, t, end - 5),
                    Metric("val/loss", loss, t + 1, end), Metric("val/ppl", math.exp(loss), t + 1, end),
                    Metric("epoch", epoch, t + 1, end)]
        t += 10
    metrics += [Metric("test/ppl", test_ppl, t, end), Metric("fit_seconds", fit_seconds, t, 0)]
    params = [Param("model.cell", model), Param("seed", str(seed)), Param("task._target_", LM_TASK)]  # as train.py
    client.log_batch(run_id, metrics=metrics, params=params)
    client.set_terminated(run_id, status)
    return run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(tracking uri, parent run id, FAILED run id) of a hand-built store."""
    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    experiment_id = client.create_experiment("lm-synthetic_lm", artifact_location=str(root / "artifacts"))
    parent = client.create_run(experiment_id, run_name="sweep: model=rnn,gru seed=1,2,3").info.run_id
    for model, seeds in RUNS.items():
        for seed, (losses, test_ppl, fit_seconds) in enumerate(seeds, start=1):
            _log_run(client, experiment_id, model, seed, losses, test_ppl, fit_seconds, parent=parent)
    failed = _log_run(client, experiment_id, "rnn", 4, [9.0, 9.0, 9.0], 999.0, 99.0, status="FAILED", parent=parent)
    client.set_terminated(parent, "FAILED")
    _log_run(client, experiment_id, "lstm", 1, [3.0, 2.0, 1.0], 10.0, 5.0)  # not in the sweep
    return uri, parent, failed


def test_sweep_report_table_curves_and_parent_artifacts(store, tmp_path):
    uri, parent, failed = store
    report = write_report(parent, tracking_uri=uri, out_dir=tmp_path)

    table = pd.read_csv(tmp_path / "comparison.csv", index_col="configuration")
    assert list(table.index) == ["model=rnn", "model=gru"]  # data.bptt=8 is shared: said once, not per row
    rnn, gru = table.loc["model=rnn"], table.loc["model=gru"]
    assert (rnn["runs"], rnn["not finished"], gru["runs"], gru["not finished"]) == (3, 1, 3, 0)
    # the FAILED run (val/loss 9) is not averaged in; std is the sample std (n − 1): 0.2, not 0.163
    assert rnn["val/loss mean"] == pytest.approx(3.2) and rnn["val/loss std"] == pytest.approx(0.2)
    assert gru["val/loss mean"] == pytest.approx(2.5) and gru["val/loss std"] == pytest.approx(0.5)
    assert rnn["val/loss n"] == 3
    assert rnn["test/ppl mean"] == pytest.approx(31) and rnn["test/ppl std"] == pytest.approx(1)
    assert gru["test/ppl mean"] == pytest.approx(22) and gru["test/ppl std"] == pytest.approx(2)
    assert rnn["val/ppl mean"] == pytest.approx((math.exp(3.0) + math.exp(3.2) + math.exp(3.4)) / 3)
    assert rnn["fit_seconds mean"] == pytest.approx(11) and gru["fit_seconds std"] == 0

    markdown = (tmp_path / "comparison.md").read_text()
    assert report.markdown == markdown
    assert "| model=rnn | 3 | 1 | 3.20 ± 0.20 |" in markdown
    assert "| model=gru | 3 | 0 | 2.50 ± 0.50 |" in markdown
    assert "| 31.0 ± 1.0 |" in markdown and "| 20 ± 0 |" in markdown
    assert "Every run: `data.bptt=8`" in markdown
    assert f"`{failed}` (data.bptt=8 model=rnn seed=4): FAILED" in markdown
    assert "sample standard deviation (n − 1)" in markdown

    # curves: per epoch, mean ± std over the seeds; epochs read from the `epoch` metric (1-based)
    curves = pd.read_csv(tmp_path / "curves.csv")
    val_loss = curves[(curves["metric"] == "val/loss") & (curves["configuration"] == "model=gru")]
    assert list(val_loss["epoch"]) == [1, 2, 3]
    assert list(val_loss["mean"]) == pytest.approx([3.5, 3.0, 2.5])
    assert list(val_loss["std"]) == pytest.approx([0.5, 0.5, 0.5])
    assert set(curves["metric"]) == {"val/loss", "val/ppl"}  # test/ppl is logged once: a bar, no curve

    names = {"comparison.md", "comparison.csv", "curves.csv", "final_metrics.png", "curves_val_loss.png",
             "curves_val_ppl.png"}
    assert {path.name for path in report.files} == names
    for path in report.files:
        assert path.stat().st_size > 0
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    client = mlflow.MlflowClient(uri)
    logged = {item.path for item in client.list_artifacts(parent, "report")}
    assert logged == {f"report/{name}" for name in names}


def test_experiment_report_groups_by_keys_and_leaves_out_sweep_parents(store, tmp_path, monkeypatch):
    uri, _, _ = store
    monkeypatch.delenv("MLFLOW_UI_PORT", raising=False)
    report = write_report("lm-synthetic_lm", tracking_uri=uri, out_dir=tmp_path, group_by=["model.cell"],
                          metrics=["val/loss", "fit_seconds"])  # the fit time is always a column: named once
    experiment_id = mlflow.MlflowClient(uri).get_experiment_by_name("lm-synthetic_lm").experiment_id
    assert report.link == f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    table = report.table
    # the parent run (no metrics) is not a configuration; the lone lstm run is
    assert list(table.index) == ["model.cell=rnn", "model.cell=gru", "model.cell=lstm"]
    assert list(table["runs"]) == [3, 3, 1] and list(table["not finished"]) == [1, 0, 0]
    assert table.loc["model.cell=lstm", "val/loss mean"] == pytest.approx(1.0)
    assert math.isnan(table.loc["model.cell=lstm", "val/loss std"])  # one run: no spread to report
    assert "| model.cell=lstm | 1 | 0 | 1 |" in report.markdown
    assert "val/ppl" not in report.markdown  # --metrics replaces the defaults
    assert not any(path.name == "curves_val_ppl.png" for path in report.files)

    by_tag = write_report("lm-synthetic_lm", tracking_uri=uri, out_dir=tmp_path, group_by=["task"]).table
    assert list(by_tag.index) == ["task=lm"] and (by_tag["runs"].item(), by_tag["not finished"].item()) == (7, 1)


def test_runs_are_tagged_with_every_config_groups_option(tmp_path):
    """What --group-by attention reads when the command line did not choose it."""
    choices = {"task": "translation", "model": "gru", "attention": "bahdanau", "debug": None,
               "hydra/launcher": "basic"}
    tags = run_tags(choices, ["task=translation"], tmp_path)
    assert (tags["task"], tags["model"], tags["attention"], tags["data"]) == ("translation", "gru", "bahdanau", "")
    assert "debug" not in tags and "hydra/launcher" not in tags
    assert tags["hydra_overrides"] == "task=translation"


def test_bad_input_is_one_line_naming_what_exists(store, tmp_path):
    uri, _, failed = store
    with pytest.raises(ConfigError, match=r"'nope' is neither an experiment nor a run .*: .*lm-synthetic_lm"):
        write_report("nope", tracking_uri=uri, out_dir=tmp_path)
    with pytest.raises(ConfigError, match=rf"run {failed} \(rnn\) has no child runs.*'lm-synthetic_lm'"):
        write_report(failed, tracking_uri=uri, out_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"--metrics val/bleu: logged by none of the 8 runs; logged: .*val/loss"):
        write_report("lm-synthetic_lm", tracking_uri=uri, out_dir=tmp_path, metrics=["val/loss", "val/bleu"])
    with pytest.raises(ConfigError, match=r"--group-by attention: none of the 8 runs .*overridden here: data.bptt, "
                                          r"model, seed"):
        write_report("lm-synthetic_lm", tracking_uri=uri, out_dir=tmp_path, group_by=["model", "attention"])
    with pytest.raises(ConfigError, match=r"no MLflow store at .*missing.db"):
        write_report("lm-synthetic_lm", tracking_uri=f"sqlite:///{tmp_path}/missing.db")
    assert not (tmp_path / "missing.db").exists()  # looking did not create one


def test_report_py_prints_the_table_or_one_error_line(store, tmp_path, monkeypatch, capsys):
    uri, parent, _ = store
    script = str(ROOT / "report.py")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the default store when --tracking-uri is not given
    monkeypatch.delenv("MLFLOW_UI_PORT", raising=False)
    monkeypatch.setattr(sys, "argv", ["report.py", parent, "--out", str(tmp_path), "--group-by", "model"])
    runpy.run_path(script, run_name="__main__")
    out = capsys.readouterr().out
    assert "| model=rnn | 3 | 1 | 3.20 ± 0.20 |" in out
    assert f"written to {tmp_path}" in out and f"logged to MLflow run {parent} under report/" in out
    experiment_id = mlflow.MlflowClient(uri).get_run(parent).info.experiment_id
    assert out.endswith(f"\nbrowse in MLflow: http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{parent}"
                        f"?workflowType=machine_learning\n")  # the parent run's page

    monkeypatch.setattr(sys, "argv", ["report.py", "nope"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(script, run_name="__main__")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 'nope' is neither an experiment nor a run") and err.count("\n") == 1


def test_references_the_data_logs_are_drawn_when_the_runs_agree(tmp_path):
    from rnnlab.tracking.report import references

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    experiment_id = client.create_experiment("classification-synthetic", artifact_location=str(tmp_path / "a"))
    for model, acc, optimal in (("gru", 0.93, 0.95), ("bow", 0.70, 0.95), ("rnn", 0.80, None)):
        run_id = client.create_run(experiment_id, run_name=model, tags={
            "task": "classification", "model": model, "hydra_overrides": f"model={model}"}).info.run_id
        metrics = [Metric("val/acc", acc, 1, 9), Metric("val/acc_bow_optimal", 0.725, 1, 9),
                   Metric("val/loss", 1 - acc, 1, 9), Metric("val/loss_optimal", 0.1 + acc, 1, 9)]
        metrics += [Metric("val/acc_optimal", optimal, 1, 9)] if optimal else []  # a run on other data: none
        client.log_batch(run_id, metrics=metrics)
        client.set_terminated(run_id, "FINISHED")
    runs = client.search_runs([experiment_id])
    # val/loss_optimal differs between runs: no single line
    assert references(runs, ["val/acc", "val/loss"]) == {"val/acc": {
        "Bayes-optimal (val/acc_optimal)": 0.95, "best bag of words (val/acc_bow_optimal)": 0.725}}
    report = write_report("classification-synthetic", tracking_uri=uri, out_dir=tmp_path / "r", metrics=["val/acc"])
    assert ("Reference lines (dashed in the plots), from the data: Bayes-optimal (val/acc_optimal) = 0.95; "
            "best bag of words (val/acc_bow_optimal) = 0.725.") in report.markdown
    assert (tmp_path / "r" / "final_metrics.png").stat().st_size > 0


def test_mean_std_of_per_seed_values_skips_missing_and_keeps_the_columns_precision():
    from rnnlab.tracking.report import mean_std_of

    assert mean_std_of([0.25, None, 0.27, math.nan], ".3f") == "0.260 ± 0.014"
    assert mean_std_of([34.4], ".0f") == "34 ± 0"  # one seed: no spread, same shape of cell
    assert mean_std_of([None, math.inf], ".1f") == "–"


def test_comma_separated_experiments_are_one_comparison(store, tmp_path):
    """A study's cells logged under two experiments (the recipe's seeds and the grid's): one table."""
    uri, parent, _ = store
    client = mlflow.MlflowClient(uri)
    if client.get_experiment_by_name("lm-grid") is None:
        grid = client.create_experiment("lm-grid", artifact_location=str(tmp_path / "artifacts"))
        for seed, (losses, test_ppl, fit_seconds) in enumerate(RUNS["gru"], start=1):  # gru again, 3 more seeds
            _log_run(client, grid, "gru", seed, [loss + 1.0 for loss in losses], test_ppl, fit_seconds)
    table = write_report("lm-synthetic_lm, lm-grid", tracking_uri=uri, out_dir=tmp_path, group_by=["model"],
                         metrics=["val/loss"]).table
    assert list(table.index) == ["model=rnn", "model=gru", "model=lstm"]
    assert list(table["runs"]) == [3, 6, 1] and list(table["not finished"]) == [1, 0, 0]  # gru: 3 + 3 seeds
    assert table.loc["model=gru", "val/loss mean"] == pytest.approx(3.0)  # (2.0, 2.5, 3.0) and (3.0, 3.5, 4.0)
    with pytest.raises(ConfigError, match=rf"'{parent}' in .* is a run: comma-separated targets are experiment"):
        write_report(f"lm-grid,{parent}", tracking_uri=uri, out_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"'nope' is neither an experiment nor a run"):
        write_report("lm-grid,nope", tracking_uri=uri, out_dir=tmp_path)


def test_logged_reads_one_metric_back_from_the_csv_logger_and_names_a_missing_log(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    from rnnlab.tracking.run_info import logged

    logger = CSVLogger(save_dir=tmp_path, name="csv")  # as conf/logger/csv.yaml writes into a run's output dir
    logger.log_metrics({"train/loss": 2.5}, step=4)
    logger.log_metrics({"val/loss": 1.75, "val/bleu": 20.0}, step=9)
    logger.log_metrics({"train/loss": 2.0}, step=14)
    logger.log_metrics({"val/loss": 1.5}, step=19)
    logger.save()
    assert logged(tmp_path, "val/loss") == [(9, 1.75), (19, 1.5)]
    assert logged(tmp_path, "val/bleu") == [(9, 20.0)]
    assert logged(tmp_path, "test/bleu") == []
    with pytest.raises(FileNotFoundError, match=r"holds 0 CSV logs .*logger=csv"):
        logged(tmp_path / "elsewhere", "val/loss")


def test_finished_runs_groups_a_studys_runs_by_seed_and_leaves_out_unfinished_ones(tmp_path):
    from rnnlab.tracking.run_info import finished_runs

    for group, seed, finished in [("gru", 10, True), ("gru", 2, True), ("gru", 3, False), ("lstm", 1, False),
                                  ("transformer", 1, True)]:
        run = tmp_path / group / f"seed{seed}"
        run.mkdir(parents=True)
        if finished:
            (run / "metrics.json").write_text("{}")
    (tmp_path / "gru" / "seed2.log").write_text("")  # run.sh's log beside the run: not a run
    assert finished_runs(tmp_path) == {"gru": [tmp_path / "gru" / "seed2", tmp_path / "gru" / "seed10"],
                                       "transformer": [tmp_path / "transformer" / "seed1"]}
