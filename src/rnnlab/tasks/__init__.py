"""LightningModules, one per task shape, on the shared base (tasks/base.py). Each owns its loss, metrics, decoding
and logging. `TASKS` maps the `task=` options to their classes; `load` rebuilds the task of any checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.utils import get_class

from rnnlab.checkpoints import read_checkpoint
from rnnlab.errors import ConfigError
from rnnlab.tasks.base import Task
from rnnlab.tasks.language_modeling import LanguageModelingTask

# task= option → its class (conf/task/<option>.yaml names the same class)
TASKS = {
    "lm": "rnnlab.tasks.language_modeling.LanguageModelingTask",
    "translation": "rnnlab.tasks.translation.TranslationTask",
    "classification": "rnnlab.tasks.classification.ClassificationTask",
    "tagging": "rnnlab.tasks.tagging.TaggingTask",
    "captioning": "rnnlab.tasks.captioning.CaptioningTask",
}

__all__ = ["TASKS", "LanguageModelingTask", "Task", "load", "task_of"]


def task_of(checkpoint: dict[str, Any], ckpt: str) -> type[Task]:
    """The task class that wrote a checkpoint: recorded in it (tasks/base.py), or for a checkpoint written before
    that, the task whose data inputs its hyperparameters hold."""
    if "task" in checkpoint:
        return get_class(checkpoint["task"])
    hparams = checkpoint.get("hyper_parameters") or {}
    for target in TASKS.values():
        task_class = get_class(target)
        if "model" in hparams and all(key in hparams for key in task_class.data_inputs):
            return task_class
    raise ConfigError(f"ckpt={ckpt} was not written by rnnlab's train.py (no task hyperparameters in it); give a "
                      f"checkpoint of a run of train.py")


def load(path: Path, ckpt: str, device: str = "cpu", **settings: Any) -> Task:
    """The task of any rnnlab checkpoint, in eval mode; settings not None override its task keys."""
    checkpoint = read_checkpoint(path, ckpt, device)
    return task_of(checkpoint, ckpt).from_checkpoint_dict(checkpoint, ckpt, device, **settings)
