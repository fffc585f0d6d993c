"""`task=lm` with `model=ngram`: the count-based baseline, fitted and scored like every other language model.

Fitting has no gradient steps. The one training epoch reads the training split's BPTT windows, as an RNN's
would, and puts them back together into the split's (B, L) rows; the first validation counts their n-grams
(`rnnlab.models.ngram`) and stops training after that epoch, since counting the same text again would change
nothing. Validation and test are task=lm's own (`LanguageModelingTask`): `NGramLanguageModel` returns log p as
its logits and carries its last n − 2 tokens as its state, so `*/loss`, `*/ppl`, `*/ppl_optimal`,
`*/ppl_gap`, `*/bpc` and the token-group metrics mean exactly what they mean for an RNN, on the same tokens.

Settings that size a network (`model.hidden_size`, ... as experiment presets set them for the recurrent models
they compare) are ignored, and named in the log (rnnlab.tasks.base), so that one sweep runs the n-gram beside them;
its own keys are checked as usual.

`train/loss` is the n-gram's NLL on the very text it counted: how far below `val/loss` it lies shows how
much of the training text a high order memorises.
"""

from __future__ import annotations

import re
import warnings

import torch

from rnnlab.errors import ConfigError
from rnnlab.tasks.language_modeling import LanguageModelingTask


class NGramTask(LanguageModelingTask):
    def setup(self, stage: str) -> None:
        if self.trainer.world_size > 1:  # each process would count only the windows it was given
            raise ConfigError(f"model=ngram counts in one process, not {self.trainer.world_size}: use hardware=cpu")
        # Lightning rightly warns a network that has no optimizer, no loss and nothing to clip; here that is the design
        for message in ("`LightningModule.configure_optimizers` returned `None`", "`training_step` returned `None`",
                        "`parameters` is an empty generator"):
            warnings.filterwarnings("ignore", message=f".*{re.escape(message)}")

    def on_train_epoch_start(self) -> None:
        self._windows: list[dict[str, torch.Tensor]] = []

    def training_step(self, batch, batch_idx):
        self._windows.append({"inputs": batch["inputs"].cpu(), "targets": batch["targets"].cpu()})
        return None  # no loss: nothing to backpropagate, no optimizer step

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        pass  # reading windows is not training: no train/tokens_per_s

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._count()

    def on_train_epoch_end(self) -> None:
        self._count()  # when no validation ran this epoch (limit_val_batches=0), the test still needs counts

    def _count(self) -> None:
        windows, self._windows = getattr(self, "_windows", None), []
        if not windows:
            return
        # window i holds columns [i·bptt, (i+1)·bptt) of the rows as inputs; the last target ends them
        rows = torch.cat([window["inputs"] for window in windows] + [windows[-1]["targets"][:, -1:]], dim=1)
        self.model.fit(rows)
        self.log("train/loss", float(self.model.ngram.nll(rows).mean()), batch_size=rows[:, 1:].numel())
        self.trainer.should_stop = True  # counted once: another epoch would count the same text again

    def configure_optimizers(self):
        return None  # counts, not gradients
