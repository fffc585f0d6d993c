"""What every task shares, so that a task file keeps only its loss, its evaluation and its inference.

A task is a LightningModule built from plain config dicts (the `model`, `optimizer`, `scheduler` groups and the
task's own keys), all kept as hyperparameters so that a checkpoint alone rebuilds it (`from_checkpoint`). The base
class owns:

- the network: `build_network(model, **inputs)` asks rnnlab.models.registry for the network of `model=` in the
  task's `shape` (an RNN stack, the n-gram, ...); `build_encoder` also starts a recurrent network's embedding and
  stack from a language model's (`model.init_from`, models/transfer.py), once, as it is built;
- optimisation: the optimizer and schedule (tasks/optimization.py), train/grad_norm before each step and
  clipping by that same norm;
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
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar

import lightning.pytorch as L
from hydra.utils import get_class

from rnnlab.checkpoints import read_checkpoint, resolve_checkpoint
from rnnlab.errors import ConfigError
from rnnlab.models import registry, transfer
from rnnlab.tasks.optimization import clip_by_norm, configure_optimizers, log_grad_norm
from rnnlab.tasks.train_epoch import TrainEpoch, own_share, per_process
from rnnlab.tracking.artifacts import log_files

log = logging.getLogger(__name__)


# set while a task is built whose every weight a checkpoint restores next (resume=): model.init_from's language model
# would be read for nothing then, and refused once its run is deleted
_restoring_weights: ContextVar[bool] = ContextVar("restoring_weights", default=False)


@contextmanager
def restoring_weights(restoring: bool = True) -> Iterator[None]:
    """Tasks built inside it skip model.init_from (the checkpoint about to be loaded holds the copied weights)."""
    token = _restoring_weights.set(restoring)
    try:
        yield
    finally:
        _restoring_weights.reset(token)


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
        self.transferred: transfer.Transferred | None = None  # what model.init_from copied (build_encoder)

    def build_network(self, model: dict[str, Any], **inputs: Any):
        """The network of the `model` config for this task's shape; the keys of another family that it ignores
        (a preset's recurrent sizes) are named in the log."""
        ignored = registry.ignored_keys(model, self.shape)
        if ignored:
            keys = ", ".join(f"model.{key}" for key in ignored)
            log.info("model=%s has no %s: ignored", registry.family(model), keys)
        return registry.build(model, self.shape, **inputs)

    def build_encoder(self, model: dict[str, Any], words: Sequence[str] | None, **inputs: Any):
        """build_network, then with `model.init_from` (a task=lm run: its MLflow run id, .ckpt or run directory)
        the network's embedding (by word: `words` is the network's vocabulary) and recurrent stack (forward
        direction) copied from that language model's (models/transfer.py). Done here, as the network is built, so
        this task's checkpoints hold the copied weights; rebuilt from one (from_checkpoint), or built for resume=
        (`restoring_weights`), it never reads the language model again."""
        source = model.get("init_from")
        network = self.build_network({key: value for key, value in model.items() if key != "init_from"}, **inputs)
        if source is None or _restoring_weights.get():
            return network
        if registry.family(model) != registry.DEFAULT_FAMILY:
            raise ConfigError(f"model.init_from={source} starts a recurrent encoder from a language model, and "
                              f"model={registry.family(model)} has none: set model.init_from=null, or pick "
                              f"model=rnn|lstm|gru")
        if not words:
            raise ConfigError(f"model.init_from={source} copies embeddings word by word, and {self.option} was "
                              f"given no vocabulary (tokenizer) to match them to: build it from a data module")
        lm_model, lm_words, lm_state = read_language_model(str(source))
        self.transferred = transfer.copy_language_model(network, model, list(words), lm_model, lm_words, lm_state,
                                                        str(source))
        log.info("%s", self.transferred.describe(str(source)))
        return network

    # --- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self):
        return configure_optimizers(self, self.hparams.optimizer, self.hparams.scheduler)

    def on_before_optimizer_step(self, optimizer) -> None:
        log_grad_norm(self)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        # 16-mixed (a loss scaler) goes through Lightning, which refuses to clip gradients an optimizer has yet to
        # unscale itself (fused Adam); elsewhere clip with the norm train/grad_norm logged, not a second pass
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if gradient_clip_val and gradient_clip_algorithm in (None, "norm") and scaler is None:
            clip_by_norm(self, gradient_clip_val)
        else:
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def on_fit_start(self) -> None:
        if self.transferred is not None and self.trainer.is_global_zero:  # MLflow: how much the LM covered
            for logger in self.loggers:
                logger.log_metrics(self.transferred.metrics(), step=0)

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
        if isinstance(hparams.get("model"), dict) and hparams["model"].get("init_from") is not None:
            # the language model's weights are in the state dict: its checkpoint is not read again (nor needed)
            hparams["model"] = {**hparams["model"], "init_from": None}
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


def read_language_model(source: str) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    """(model config, vocabulary, network state dict) of the task=lm checkpoint `model.init_from` names: a .ckpt
    file, a run directory, or an MLflow run id (looked up in MLFLOW_TRACKING_URI's store, else logs/mlflow.db)."""
    from rnnlab.tasks.language_modeling import LanguageModelingTask  # it imports this module
    from rnnlab.tracking.mlflow_store import default_tracking_uri

    key = "model.init_from"
    with tempfile.TemporaryDirectory() as download_dir:
        path = resolve_checkpoint(source, default_tracking_uri(), download_dir, key)
        checkpoint = read_checkpoint(path, source, "cpu", key)
    written_by = _task_class(checkpoint.get("task"))
    hparams = checkpoint.get("hyper_parameters") or {}
    if written_by is None or not issubclass(written_by, LanguageModelingTask) or "model" not in hparams:
        what = f"a {written_by.option} checkpoint" if written_by else "a checkpoint that names no task"
        raise ConfigError(f"{key}={source} is {what}, not a language model's: give a task=lm run (its MLflow run "
                          f"id, .ckpt or run directory)")
    if registry.family(hparams["model"]) != registry.DEFAULT_FAMILY:
        raise ConfigError(f"{key}={source} is a model={registry.family(hparams['model'])} language model; an "
                          f"encoder starts from a recurrent one: give a task=lm run of model=rnn|lstm|gru")
    tokenizer = hparams.get("tokenizer") or {}
    if not tokenizer.get("vocab") or tokenizer.get("level") == "char":
        what = "is a character-level language model" if tokenizer.get("level") == "char" else "holds no vocabulary"
        raise ConfigError(f"{key}={source} {what}: embeddings are copied word by word; give a word-level "
                          f"language model (data.level=word)")
    state = {name.removeprefix("model."): value for name, value in checkpoint["state_dict"].items()
             if name.startswith("model.")}
    return hparams["model"], list(tokenizer["vocab"]), state


def _task_class(name: str | None) -> type | None:
    """The task class a checkpoint names (tasks/base.py records it), or None."""
    try:
        return get_class(name) if name else None
    except (ImportError, ValueError, AttributeError):
        return None
