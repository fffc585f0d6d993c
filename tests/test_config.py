"""Every option of every config group composes, resolves and instantiates."""

from __future__ import annotations

import pytest
import torch
from conftest import CONF
from hydra.utils import instantiate
from omegaconf import OmegaConf

from rnnlab.training import lightning_trainer

# conf/hydra/ holds options of Hydra's own groups (hydra/sweeper/sampler, ...): tests/test_search.py composes them
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra")


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
    if group not in ("experiment", "hparams_search"):  # presets may name their own MLflow experiment
        assert plain["task_name"] == (option if group == "task" else "lm")
    if group == "optimizer":
        optimizer = instantiate(cfg.optimizer, params=[torch.nn.Parameter(torch.zeros(2))])
        assert optimizer.defaults["lr"] == cfg.optimizer.lr
    if group in ("callbacks", "logger"):
        for name, node in (cfg.get(group) or {}).items():
            if node:  # weight_averaging is off (None) until its decay is set
                assert (instantiate(node) is None) == (name == "weight_averaging" and node.decay is None), name
    if group == "hardware" and option in ("cpu", "ddp_cpu"):
        trainer = instantiate(lightning_trainer(cfg), logger=False, enable_progress_bar=False)
        assert trainer.num_devices == (2 if option == "ddp_cpu" else 1)


def test_data_and_model_instantiate(make_cfg):
    from rnnlab.models import RNNLanguageModel, registry

    cfg = make_cfg()
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    for option in options("model"):
        family = registry.family(OmegaConf.load(CONF / "model" / f"{option}.yaml"))
        # ngram (counted, tests/test_ngram_run.py), bow (classifiers, tests/test_classification.py),
        # transformer (tests/test_transformer.py)
        if family != "rnn":
            continue
        cfg = make_cfg(f"model={option}")
        model = RNNLanguageModel(datamodule.vocab_size, **OmegaConf.to_container(cfg.model))
        logits, _ = model(torch.zeros(2, 5, dtype=torch.long))
        assert logits.shape == (2, 5, datamodule.vocab_size)


def test_ptb_small_makes_zarembas_updates(make_cfg):
    """experiment=ptb_small: lr 1 on a loss summed over 35 steps is lr 35 on our per-token mean, the norm clip
    5 becomes 5/35, and the lr is halved every epoch after the 4th (13 epochs)."""
    from rnnlab.tasks.optimization import configure_optimizers

    cfg = make_cfg("experiment=ptb_small", tiny=False)
    model = cfg.model
    assert (model.num_layers, model.hidden_size, model.embedding_size, model.dropout) == (2, 200, 200, 0)
    assert (cfg.data.batch_size, cfg.data.bptt, cfg.trainer.max_epochs) == (20, 35, 13)
    assert cfg.trainer.gradient_clip_val * cfg.data.bptt == pytest.approx(5, rel=1e-5)
    plain = OmegaConf.to_container(cfg, resolve=True)
    built = configure_optimizers(torch.nn.Linear(2, 2), plain["optimizer"], plain["scheduler"])
    optimizer, schedule = built["optimizer"], built["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(13):
        lrs.append(optimizer.param_groups[0]["lr"] / cfg.data.bptt)
        optimizer.step()
        schedule.step()
    assert lrs == pytest.approx([1, 1, 1, 1] + [0.5 ** k for k in range(1, 10)])


@pytest.mark.parametrize(("rnn", "transformer", "also"), [
    ("multi30k_best", "multi30k_transformer", ()),
    ("shakespeare_char", "shakespeare_char_transformer", ("data.batch_size", "data.bptt")),  # its context: pilots
])
def test_transformer_recipes_differ_from_their_rnn_recipe_only_in_the_model_and_its_optimizer(rnn, transformer, also,
                                                                                              make_cfg):
    """Issue 19's comparisons at equal budget: same data, task, budget, schedule shape and checkpoint selection;
    the Transformer recipe may change its model (the run name and the ignored attention= follow it), optimizer,
    clipping, schedule constants and validation cadence (and, for the LM, the window it reads)."""
    from rnnlab.tracking.run_info import flatten

    own = ("model.", "optimizer.", "attention.", "run_name", "logger.mlflow.run_name", "trainer.gradient_clip_val",
           "scheduler.scheduler.warmup_fraction", "scheduler.scheduler.min_lr_ratio", "trainer.val_check_interval",
           "trainer.check_val_every_n_epoch", "trainer.max_steps", "paths.", "hydra.", *also)

    def compared(option: str) -> dict:
        cfg = make_cfg(f"experiment={option}", tiny=False)
        return {k: v for k, v in flatten(OmegaConf.to_container(cfg, resolve=True)).items() if not k.startswith(own)}

    a, b = compared(rnn), compared(transformer)
    assert {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)} == {}
    assert make_cfg(f"experiment={transformer}", tiny=False).model.family == "transformer"
