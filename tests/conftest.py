"""Compose the real configs (Hydra compose API) exactly as train.py does, into a temporary tree."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import rnnlab.config  # noqa: F401  (registers ${project_root:})

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"

# Small enough for a fit in seconds on 2 cores, big enough that the loss visibly falls.
TINY = [
    "data.train_tokens=24000", "data.val_tokens=4000", "data.test_tokens=4000",
    "data.batch_size=16", "data.eval_batch_size=8", "data.bptt=32",
    "model.embedding_size=32", "model.hidden_size=64", "model.num_layers=1",
    "trainer.max_epochs=1", "trainer.log_every_n_steps=1", "+trainer.enable_model_summary=false",
]


def compose_train(overrides: list[str], tmp_path: Path) -> DictConfig:
    """The composed train config, with HydraConfig set so ${hydra:...} resolves, writing to tmp_path."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path / "run")
        cfg.paths.log_dir = str(tmp_path / "logs")
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra  # as in a real run: train() receives the job config without the hydra node
    return cfg


def tracked_fit(overrides: list[str], tmp_path: Path) -> dict:
    """train.py's work for `overrides` into a fresh sqlite store under tmp_path: the config, the final metrics,
    the one MLflow run (run_id, tags), the store (uri, client) and the run's directory."""
    import mlflow

    from rnnlab.training import train

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        cfg = compose_train(overrides, tmp_path)
        metrics = train(cfg)
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return {"cfg": cfg, "metrics": metrics, "run_id": run.info.run_id, "tags": run.data.tags, "uri": uri,
            "client": client, "dir": tmp_path / "run"}


@pytest.fixture
def make_cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")

    def make(*overrides: str, tiny: bool = True) -> DictConfig:
        return compose_train([*(TINY if tiny else []), *overrides], tmp_path)

    yield make
    GlobalHydra.instance().clear()


@pytest.fixture(scope="module")
def one_thread():
    """Tensors this small gain nothing from intra-op threads, and on a busy 2-core machine the threads'
    synchronisation made tests ~10× slower. Use with pytestmark = pytest.mark.usefixtures("one_thread")."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
