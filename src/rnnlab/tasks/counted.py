"""What a task of a counted model shares (`model=ngram` for task=lm, `model=hmm` for task=tagging): no gradient steps.

The one training epoch reads the training split's batches as an RNN's would and keeps what the model counts
(`keep(batch)`); the first validation — or the epoch's end, when no validation runs — counts all of it at once
(`count(kept)`) and stops training, since counting the same text again would change nothing. Validation and test
are the task's own, so every metric means what it means for a trained network. A subclass lists this mixin before
its task: `class NGramTask(Counted, LanguageModelingTask)`.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from rnnlab.errors import ConfigError
from rnnlab.models import registry


class Counted:
    def keep(self, batch: dict) -> Any:
        raise NotImplementedError

    def count(self, kept: list) -> None:
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        if self.trainer.world_size > 1:  # each process would count only the part it was given
            raise ConfigError(f"model={registry.family(self.hparams.model)} counts in one process, not "
                              f"{self.trainer.world_size}: use hardware=cpu")
        # Lightning rightly warns a network that has no optimizer, no loss and nothing to clip; here that is the design
        for message in ("`LightningModule.configure_optimizers` returned `None`", "`training_step` returned `None`",
                        "`parameters` is an empty generator"):
            warnings.filterwarnings("ignore", message=f".*{re.escape(message)}")

    def on_train_epoch_start(self) -> None:
        self._kept: list = []

    def training_step(self, batch, batch_idx):
        self._kept.append(self.keep(batch))
        return None  # no loss: nothing to backpropagate, no optimizer step

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        pass  # reading is not training: no train/tokens_per_s

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._count()

    def on_train_epoch_end(self) -> None:
        self._count()  # when no validation ran this epoch (limit_val_batches=0), the test still needs counts

    def _count(self) -> None:
        kept, self._kept = getattr(self, "_kept", None), []
        if not kept:
            return
        self.count(kept)
        self.trainer.should_stop = True  # counted once: another epoch would count the same text again

    def configure_optimizers(self):
        return None  # counts, not gradients
