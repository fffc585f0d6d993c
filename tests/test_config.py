"""Every option of every config group composes, resolves and instantiates."""

from __future__ import annotations

import pytest
import torch
from conftest import CONF
from hydra.utils import instantiate
from omegaconf import OmegaConf

GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir())


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


ALL_OPTIONS = [(g, o) for g in GROUPS for o in options(g)]


def test_every_group_has_options():
    assert set(GROUPS) >= {"data", "model", "optimizer", "scheduler", "hardware", "logger", "callbacks",
                           "paths", "debug", "experiment", "task"}
    assert all(options(g) for g in GROUPS)


@pytest.mark.parametrize(("group", "option"), ALL_OPTIONS, ids=[f"{g}={o}" for g, o in ALL_OPTIONS])
def test_option_composes_and_resolves(group, option, make_cfg):
    cfg = make_cfg(f"{group}={option}", tiny=False)
    plain = OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    if group != "experiment":  # experiment presets may name their own MLflow experiment
        assert plain["task_name"] == (option if group == "task" else "lm")
    if group == "optimizer":
        optimizer = instantiate(cfg.optimizer, params=[torch.nn.Parameter(torch.zeros(2))])
        assert optimizer.defaults["lr"] == cfg.optimizer.lr
    if group in ("callbacks", "logger"):
        for name, node in (cfg.get(group) or {}).items():
            if node:
                assert instantiate(node) is not None, name
    if group == "hardware" and option in ("cpu", "ddp_cpu"):
        trainer = instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
        assert trainer.num_devices == (2 if option == "ddp_cpu" else 1)


def test_data_and_model_instantiate(make_cfg):
    from rnnlab.models import RNNLanguageModel

    cfg = make_cfg()
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    for option in options("model"):
        if option == "ngram":  # counted, not a network with sizes: built and run in tests/test_ngram_run.py
            continue
        cfg = make_cfg(f"model={option}")
        model = RNNLanguageModel(datamodule.vocab_size, **OmegaConf.to_container(cfg.model))
        logits, _ = model(torch.zeros(2, 5, dtype=torch.long))
        assert logits.shape == (2, 5, datamodule.vocab_size)
