"""What every task shares, so that a task file keeps only its loss, its evaluation and its inference.

A task is a LightningModule built from plain config dicts (the `model`, `optimizer`, `scheduler` groups and the
task's own keys), all kept as hyperparameters so that a checkpoint alone rebuilds it (`from_checkpoint`). The base
class owns:

- the network: `build_network(model, **inputs)` asks rnnlab.models.registry for the network of `model=` in the
  task's `shape` (an RNN stack, the n-gram, ...);
- optimisation: the optimizer and schedule (tasks/optimization.py) and train/grad_norm before each step;
- the training epoch's bookkeeping: train/loss (per step) and train/loss_epoch (token-weighted, across processes),
  train/tokens_per_s (tasks/train_epoch.py), kept in mid-epoch checkpoints under "train_epoch" per process so
  that a resumed epoch ends as if never stopped (a task adds its own state with `epoch_state`);
- what tracking asks of a task: the metrics a sweep summary and report.py show by default (`summary_metrics`,
  `report_metrics`) and `log_files` for artifacts.

A subclass sets `shape`, `data_inputs` (the hyperparameters its data decides, e.g. vocabulary sizes) and, if its
__init__ takes the data's tokenizer, `takes_tokenizer`; it implements training_step and its evaluation hooks, calling
`self.train_epoch.log_step(self, nll, tokens)`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import lightning.pytorch as L

from rnnlab.checkpoints import read_checkpoint
from rnnlab.errors import ConfigError
from rnnlab.models import registry
from rnnlab.tasks.optimization import configure_optimizers, log_grad_norm
from rnnlab.tasks.train_epoch import TrainEpoch, own_share, per_process
from rnnlab.tracking.artifacts import log_files

log = logging.getLogger(__name__)


class Task(L.LightningModule):
    shape: ClassVar[str]  # the network shape this task trains (rnnlab.models.registry)
    option: ClassVar[str]  # how a user picks it: "task=lm"
    data_inputs: ClassVar[tuple[str, ...]] = ()  # hyperparameters the data decides (vocabulary sizes, ids)
    # whether __init__ takes `tokenizer` (the data's tokenizer_state(), which train.py passes so that the checkpoint
    # can read and write text): declared, not read from the signature, which a subclass's (*args, **kwargs) hides
    takes_tokenizer: ClassVar[bool] = False
    summary_metrics: ClassVar[tuple[str, ...]] = ("val/loss", "test/loss", "fit_seconds")  # a sweep's table
    report_metrics: ClassVar[tuple[str, ...]] = ("val/loss", "test/loss")  # report.py's default columns
    settings: ClassVar[tuple[str, ...]] = ()  # task keys eval.py and the prediction scripts may override

    def __init__(self) -> None:
        super().__init__()
        self.train_epoch = TrainEpoch()  # train/loss_epoch and tokens/s; a mid-epoch checkpoint keeps them

    def build_network(self, model: dict[str, Any], **inputs: Any):
        """The network of the `model` config for this task's shape; the keys of another family that it ignores
        (a preset's recurrent sizes) are named in the log."""
        ignored = registry.ignored_keys(model, self.shape)
        if ignored:
            keys = ", ".join(f"model.{key}" for key in ignored)
            log.info("model=%s has no %s: ignored", registry.family(model), keys)
        return registry.build(model, self.shape, **inputs)

    # --- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self):
        return configure_optimizers(self, self.hparams.optimizer, self.hparams.scheduler)

    def on_before_optimizer_step(self, optimizer) -> None:
        log_grad_norm(self)

    # --- the training epoch -------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self.train_epoch.start()

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.train_epoch.log_tokens_per_s(self)

    def epoch_state(self) -> dict[str, Any]:
        """What this process has summed over the current training epoch (a subclass adds its own)."""
        return self.train_epoch.state()

    def restore_epoch_state(self, state: dict[str, Any]) -> None:
        self.train_epoch.restore(state)

    # a run resumed mid-epoch continues the epoch's sums (train_epoch.py)
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["task"] = f"{type(self).__module__}.{type(self).__qualname__}"  # which class rebuilds it
        checkpoint["train_epoch"] = per_process(self, self.epoch_state())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        mine = own_share(self, checkpoint.get("train_epoch", []))
        if mine is not None:
            self.restore_epoch_state(mine)

    # --- checkpoints and artifacts ---------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: Path, ckpt: str, device: str = "cpu", **settings: Any) -> Task:
        """The task of a checkpoint of this task (the model family's own subclass where it has one), in eval
        mode; settings not None override its task keys."""
        return cls.from_checkpoint_dict(read_checkpoint(path, ckpt, device), ckpt, device, **settings)

    @classmethod
    def from_checkpoint_dict(cls, checkpoint: dict[str, Any], ckpt: str, device: str = "cpu", **settings: Any) -> Task:
        hparams = dict(checkpoint.get("hyper_parameters") or {})
        if not all(key in hparams for key in (*cls.data_inputs, "model")):
            raise ConfigError(f"ckpt={ckpt} is not a {cls.option} checkpoint (it lacks the hyperparameters "
                              f"{', '.join((*cls.data_inputs, 'model'))}); give one that `python train.py "
                              f"{cls.option}` wrote")
        unknown = sorted(key for key, value in settings.items() if value is not None and key not in cls.settings)
        if unknown:
            raise ConfigError(f"{unknown[0]}={settings[unknown[0]]} does not apply to a {cls.option} checkpoint"
                              + (f" (its settings: {', '.join(cls.settings)})" if cls.settings else "")
                              + "; leave it out")
        task_class = registry.task_class(cls, hparams["model"])
        task = task_class(**{**hparams, **{key: value for key, value in settings.items() if value is not None}})
        task.load_state_dict(checkpoint["state_dict"])
        return task.to(device).eval()

    def datamodule_answer(self, method: str, split: str) -> Any:
        """What the trainer's data module answers to `method(split)` (e.g. the texts of the split, or the optimum
        generated data knows), or None where it has no such method."""
        datamodule = getattr(self.trainer, "datamodule", None)
        return getattr(datamodule, method)(split) if hasattr(datamodule, method) else None

    def evaluation_label(self) -> str | None:
        """What distinguishes one evaluation of this checkpoint from another (translation: the decoder), or None."""
        return None

    def log_files(self, paths: Iterable[Path], folder: str | None = None) -> None:
        """Copy files into every artifact-keeping logger of the run (MLflow), under `folder`."""
        if self._trainer is not None:
            log_files(self.trainer.loggers, paths, folder)
