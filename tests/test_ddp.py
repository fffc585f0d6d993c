"""hardware=ddp_cpu, two gloo processes (the CPU stand-in for DDP on GPUs): each process gets its own share of the
data, the metrics cover the whole split once, a DDP fit equals a one-process fit, and in a sweep every job's ranks
train that job's config into one MLflow run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import collectives_worker
import lightning.pytorch as L
import mlflow
import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from conftest import ROOT, TINY, compose_train, new_store, run_owned
from hydra.utils import instantiate

from rnnlab.data.batching import LengthBucketSampler
from rnnlab.data.synthetic_lm import SyntheticLMDataModule
from rnnlab.errors import ConfigError
from rnnlab.tasks.translation import TranslationTask
from rnnlab.training import train

pytestmark = pytest.mark.usefixtures("one_thread")

QUIET = ["+trainer.enable_progress_bar=false", "model.dropout=0"]  # dropout 0: both fits compute the same function


def run_train(*overrides: str, tracking_uri: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": tracking_uri}
    result = run_owned([sys.executable, "train.py", *overrides], cwd=ROOT, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


# --- a sweep of DDP jobs --------------------------------------------------------------------------------------
# TINY's recurrent sizes, added (++) where model=transformer has no such keys: it ignores them (logged) and keeps its
# own; the recurrent model would refuse the Transformer's keys, so those stay at their defaults
SWEEP_TINY = [f"++{o}" if o.startswith("model.") else o for o in TINY]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """python train.py -m model=rnn,transformer hardware=ddp_cpu ... (the basic launcher: one job after another)."""
    tmp = tmp_path_factory.mktemp("ddp_sweep")
    uri = new_store(tmp / "mlflow.db")
    run_train("-m", "model=rnn,transformer", "hardware=ddp_cpu", *SWEEP_TINY, *QUIET, "callbacks=none",
              f"paths.log_dir={tmp}/logs",
              f"hydra.sweep.dir={tmp}/sweep", tracking_uri=uri)
    return SimpleNamespace(dir=tmp / "sweep", logs=tmp / "logs", uri=uri)


def config_digests(job_dir: Path) -> dict[int, str]:
    """rank → the digest of the config it trained with, from the job's logs (rnnlab.hardware.ProcessReport)."""
    found = {}
    for log_file in job_dir.glob("*.log"):
        for rank, digest in re.findall(r"process (\d) of 2: config sha256 (\w+)", log_file.read_text()):
            found[int(rank)] = digest
    return found


@pytest.mark.slow  # the module's DDP sweep: ~40 s; test_translation_scores_under_ddp_... runs DDP in `make test`
def test_every_rank_of_a_sweep_job_trains_that_jobs_config(sweep):
    digests = [config_digests(sweep.dir / str(job)) for job in (0, 1)]
    assert all(set(job) == {0, 1} and job[0] == job[1] for job in digests), digests
    assert digests[0][0] != digests[1][0]  # model=rnn and model=transformer
    # rank 1 ran its job in the job's directory, not a sweep of its own somewhere else
    assert sorted(p.name for p in sweep.dir.iterdir() if p.is_dir()) == ["0", "1"]
    assert not (sweep.logs / "multiruns").exists() and not (sweep.logs / "runs").exists()


@pytest.mark.slow  # the module's DDP sweep: ~40 s; test_translation_scores_under_ddp_... runs DDP in `make test`
def test_every_sweep_job_is_one_mlflow_run(sweep):
    client = mlflow.MlflowClient(sweep.uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    jobs = [run for run in runs if "model.num_layers" in run.data.params]  # not the sweep's parent run
    assert sorted(run.data.params.get("model.family", run.data.params.get("model.cell")) for run in jobs) == \
        ["rnn", "transformer"]
    assert all(run.info.status == "FINISHED" and "val/loss" in run.data.metrics for run in jobs)


@pytest.mark.slow  # the module's DDP sweep: ~40 s; test_translation_scores_under_ddp_... runs DDP in `make test`
@pytest.mark.parametrize(("job", "model"), [(0, "rnn"), (1, "transformer")])
def test_a_ddp_fit_equals_a_one_process_fit(sweep, tmp_path, monkeypatch, job, model):
    """data.batch_size rows split over 2 processes: the same gradients, the same windows, the same tokens scored
    (the Transformer's evaluation reading each process's streams from its own sliding cache)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", new_store(tmp_path / "mlflow.db"))
    ddp = json.loads((sweep.dir / str(job) / "metrics.json").read_text())
    one = train(compose_train([*SWEEP_TINY, f"model={model}", *QUIET, "callbacks=none", "logger=none"], tmp_path))
    assert ddp["val/ppl_optimal"] == pytest.approx(one["val/ppl_optimal"], rel=1e-6)  # each token scored once
    for key in ("val/loss", "test/loss", "val/agreement/choice_nll"):
        assert ddp[key] == pytest.approx(one[key], rel=1e-4), key


@pytest.mark.slow  # ~25 s: an Optuna search of DDP trials in a subprocess
def test_every_rank_of_an_optuna_trial_trains_the_sampled_values(tmp_path):
    """An hparams_search preset makes the job's own config a multirun and its trial reads the study it names."""
    run_train("hparams_search=lm_lstm", "hydra.sweeper.n_trials=1", "hydra.sweeper.study_name=ddp", "hardware=ddp_cpu",
              *TINY, "+trainer.enable_progress_bar=false", "callbacks=none", f"paths.log_dir={tmp_path}/logs",
              f"hydra.sweep.dir={tmp_path}/sweep", tracking_uri=new_store(tmp_path / "mlflow.db"))
    digests = config_digests(tmp_path / "sweep" / "0")
    assert set(digests) == {0, 1} and digests[0] == digests[1]


def test_ddp_refuses_the_joblib_launcher(make_cfg):
    with pytest.raises(ConfigError, match="hardware=ddp_cpu starts several processes per job, which joblib's "
                                          "workers cannot: run the sweep without hydra/launcher=joblib") as error:
        train(make_cfg("hardware=ddp_cpu", "hydra/launcher=joblib"))
    assert "\n" not in str(error.value)


# --- translation: BLEU from every process's hypotheses ----------------------------------------------------------
TRANSLATION = ["task=translation", "model=gru", "attention=luong_general", "data.train_pairs=400",
               "data.val_pairs=31", "data.test_pairs=20", "data.max_words=6", "data.cache_dir=null",
               "data.batch_size=16", "data.eval_batch_size=8", "data.max_tokens=200", "model.embedding_size=32",
               "model.hidden_size=64", "model.num_layers=1", "optimizer.lr=0.01", "trainer.max_epochs=3",
               "task.bleu_every_n_epochs=3", "task.beam_size=3", "+trainer.enable_model_summary=false", *QUIET,
               "callbacks=model_checkpoint", "callbacks.model_checkpoint.save_last=true", "logger=none"]


def test_translation_scores_under_ddp_equal_one_process_on_the_same_checkpoint(tmp_path):
    run_dir = tmp_path / "ddp"
    run_train(*TRANSLATION, "hardware=ddp_cpu", f"paths.log_dir={tmp_path}", f"hydra.run.dir={run_dir}",
              tracking_uri=new_store(tmp_path / "mlflow.db"))
    ddp = json.loads((run_dir / "metrics.json").read_text())
    ddp_hypotheses = (run_dir / "translations" / "test_hypotheses.txt").read_text().splitlines()
    (best,) = [p for p in (run_dir / "checkpoints").glob("*.ckpt") if p.name != "last.ckpt"]

    cfg = compose_train([*TRANSLATION, "hardware=cpu"], tmp_path / "one")
    datamodule = instantiate(cfg.data)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path / "one")
    for stage, checkpoint in (("val", run_dir / "checkpoints" / "last.ckpt"), ("test", best)):
        task = TranslationTask.load_from_checkpoint(checkpoint, map_location="cpu")
        (one,) = (trainer.validate if stage == "val" else trainer.test)(task, datamodule=datamodule, verbose=False)
        assert one[f"{stage}/bleu"] > 0  # a real score, not two zeros
        for key in ("bleu", "chrf"):
            assert ddp[f"{stage}/{key}"] == pytest.approx(one[f"{stage}/{key}"], abs=1e-9), key
        assert ddp[f"{stage}/loss"] == pytest.approx(one[f"{stage}/loss"], rel=1e-5)
    # every test sentence once, in order, as one process translates it
    assert ddp_hypotheses == [task.translations["test"][i] for i in range(20)]


# --- each process's share ---------------------------------------------------------------------------------------
def test_stream_shards_are_contiguous_rows_of_the_same_windows():
    datamodule = SyntheticLMDataModule(batch_size=6, eval_batch_size=4, bptt=8, train_tokens=600, val_tokens=200,
                                       test_tokens=200)
    datamodule.setup()
    whole = datamodule.splits["train"]
    shards = [whole.shard(rank, 3) for rank in range(3)]
    assert [len(shard) for shard in shards] == [len(whole)] * 3  # the same number of steps
    for i in (0, len(whole) - 1):  # the last window is the short one
        pieces = [shard[i] for shard in shards]
        for key, value in whole[i].items():
            if value.dim() == 2:  # (B, T): inputs, targets, optimal_nll, group masks
                assert torch.equal(torch.cat([piece[key] for piece in pieces]), value), key
            else:
                assert all(torch.equal(piece[key], value) for piece in pieces), key


def test_stream_rows_must_divide_by_the_processes():
    datamodule = SyntheticLMDataModule(batch_size=6, eval_batch_size=5, bptt=8, train_tokens=600, val_tokens=200,
                                       test_tokens=200)
    datamodule.setup()
    datamodule.trainer = SimpleNamespace(world_size=2, global_rank=1)
    assert torch.equal(next(iter(datamodule.train_dataloader()))["inputs"], datamodule.splits["train"][0]["inputs"][3:])
    with pytest.raises(ConfigError, match="data.eval_batch_size=5 streams cannot be shared evenly by 2 processes: "
                                          "make data.eval_batch_size a multiple of 2"):
        datamodule.val_dataloader()


def test_translation_batches_give_every_process_as_many_and_evaluate_each_pair_once():
    lengths = np.random.default_rng(0).integers(3, 40, size=101)

    def shares(shuffle: bool, processes: int, **kwargs) -> list[list[list[int]]]:
        """Each process's batches; every process is given the same order, as EpochShuffle does."""
        order = np.random.default_rng(1).permutation(101).tolist() if shuffle else list(range(101))
        return [list(LengthBucketSampler(order, 8, lengths=lengths, shuffle=shuffle, num_replicas=processes,
                                         rank=rank, **kwargs)) for rank in range(processes)]

    for processes in (2, 3):
        evaluation = shares(False, processes)
        assert len({len(share) for share in evaluation}) == 1
        assert sorted(i for share in evaluation for batch in share for i in batch) == list(range(101))
        training = shares(True, processes, max_tokens=120)
        assert len({len(share) for share in training}) == 1
        served = [i for share in training for batch in share for i in batch]
        assert len(served) == len(set(served))  # no pair twice
        assert all(len(batch) * max(lengths[batch]) <= 120 for share in training for batch in share)


# --- the collectives, in two real processes ---------------------------------------------------------------------
def test_sums_and_merges_cover_every_process(tmp_path):
    mp.spawn(collectives_worker.collect, args=(str(tmp_path),), nprocs=2)
    results = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    expected = {"sums": {"val": [3.0, 20.0], "val/rare": [5.0, 1.0]},
                "merged": {"0": "hypothesis 0.0", "1": "hypothesis 0.1", "10": "hypothesis 1.0",
                           "11": "hypothesis 1.1"}}
    assert results[0] == results[1] == expected
