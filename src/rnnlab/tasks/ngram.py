"""`task=lm` with `model=ngram`: the count-based baseline, fitted and scored like every other language model.

Fitting has no gradient steps (rnnlab.tasks.counted): the one training epoch reads the training split's BPTT
windows, as an RNN's would, and puts them back together into the split's (B, L) rows; the first validation counts
their n-grams (`rnnlab.models.ngram`) and stops training. Validation and test are task=lm's own
(`LanguageModelingTask`): `NGramLanguageModel` returns log p as its logits and carries its last n − 2 tokens as its
state, so `*/loss`, `*/ppl`, `*/ppl_optimal`, `*/ppl_gap`, `*/bpc` and the token-group metrics mean exactly what
they mean for an RNN, on the same tokens.

Settings that size a network (`model.hidden_size`, ... as experiment presets set them for the recurrent models
they compare) are ignored, and named in the log (rnnlab.tasks.base), so that one sweep runs the n-gram beside them;
its own keys are checked as usual.

`train/loss` is the n-gram's NLL on the very text it counted: how far below `val/loss` it lies shows how
much of the training text a high order memorises.
"""

from __future__ import annotations

import torch

from rnnlab.tasks.counted import Counted
from rnnlab.tasks.language_modeling import LanguageModelingTask


class NGramTask(Counted, LanguageModelingTask):
    def keep(self, batch: dict) -> dict[str, torch.Tensor]:
        return {"inputs": batch["inputs"].cpu(), "targets": batch["targets"].cpu()}

    def count(self, windows: list[dict[str, torch.Tensor]]) -> None:
        # window i holds columns [i·bptt, (i+1)·bptt) of the rows as inputs; the last target ends them
        rows = torch.cat([window["inputs"] for window in windows] + [windows[-1]["targets"][:, -1:]], dim=1)
        self.model.fit(rows)
        self.log("train/loss", float(self.model.ngram.nll(rows).mean()), batch_size=rows[:, 1:].numel())
