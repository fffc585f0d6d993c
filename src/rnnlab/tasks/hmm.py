"""`task=tagging` with `model=hmm`: the lecture's hidden Markov model, counted and then scored like every tagger.

Fitting has no gradient steps. The one training epoch reads the training split's batches, as an RNN's would, and
keeps each sentence's words and gold tags; the first validation counts them (`rnnlab.models.hmm`, TnT) and stops
training after that epoch, since counting the same sentences again would change nothing. Validation and test are
task=tagging's own (`TaggingTask`): the HMM's scores are each word's posterior log p(y_i | sentence)
(forward–backward), so `*/loss` is the same cross-entropy as an RNN's, and its predicted tags are the Viterbi
sequence, so `*/acc`, `*/acc_unseen`, `*/span_f1`, ... mean exactly what they mean for an RNN, on the same words.

The HMM reads the words themselves, not the vocabulary's ids: its lexicon is every training word (whatever
data.min_frequency cuts) and an unseen word is tagged by its ending (the suffix model).

Settings that size a network (`model.hidden_size`, ... as experiment presets set them for the recurrent models
they compare) are ignored, and named in the log (rnnlab.tasks.base), so that one sweep runs the HMM beside them; its
own keys are checked as usual.
"""

from __future__ import annotations

import re
import warnings

import torch

from rnnlab.errors import ConfigError
from rnnlab.tasks.tagging import TaggingTask


class HMMTaggingTask(TaggingTask):
    def setup(self, stage: str) -> None:
        if self.trainer.world_size > 1:  # each process would count only the sentences it was given
            raise ConfigError(f"model=hmm counts in one process, not {self.trainer.world_size}: use hardware=cpu")
        # Lightning rightly warns a network that has no optimizer, no loss and nothing to clip; here that is the design
        for message in ("`LightningModule.configure_optimizers` returned `None`", "`training_step` returned `None`",
                        "`parameters` is an empty generator"):
            warnings.filterwarnings("ignore", message=f".*{re.escape(message)}")

    def scores(self, batch: dict) -> torch.Tensor:
        return self.model(batch["words"], batch["tokens_lengths"])

    def predict(self, batch: dict, scores: torch.Tensor) -> torch.Tensor:
        return self.model.viterbi(batch["words"], batch["tokens_lengths"])

    def on_train_epoch_start(self) -> None:
        self._sentences: list[tuple[list[str], list[int]]] = []

    def training_step(self, batch, batch_idx):
        for words, tags, n in zip(batch["words"], batch["tags"].tolist(), batch["tokens_lengths"].tolist()):
            self._sentences.append((words, tags[:n]))
        return None  # no loss: nothing to backpropagate, no optimizer step

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        pass  # reading sentences is not training: no train/tokens_per_s

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._count()

    def on_train_epoch_end(self) -> None:
        self._count()  # when no validation ran this epoch (limit_val_batches=0), the test still needs counts

    def _count(self) -> None:
        sentences, self._sentences = getattr(self, "_sentences", None), []
        if not sentences:
            return
        self.model.fit([words for words, _ in sentences], [tags for _, tags in sentences])
        self.log("train/sentences", float(len(sentences)))
        self.trainer.should_stop = True  # counted once: another epoch would count the same sentences again

    def configure_optimizers(self):
        return None  # counts, not gradients
