"""`task=tagging` with `model=hmm`: the lecture's hidden Markov model, counted and then scored like every tagger.

Fitting has no gradient steps (rnnlab.tasks.counted): the one training epoch reads the training split's batches, as
an RNN's would, and keeps each sentence's words and gold tags; the first validation counts them
(`rnnlab.models.hmm`, TnT) and stops training after that epoch, since counting the same sentences again would change
nothing. Validation and test are task=tagging's own (`TaggingTask`): the HMM's scores are each word's posterior log
p(y_i | sentence) (forward–backward), so `*/loss` is the same cross-entropy as an RNN's, and its predicted tags are
the Viterbi sequence, so `*/acc`, `*/acc_unseen`, `*/span_f1`, ... mean exactly what they mean for an RNN, on the
same words.

The HMM reads the words themselves, not the vocabulary's ids: its lexicon is every training word (whatever
data.min_frequency cuts) and an unseen word is tagged by its ending (the suffix model).

Settings that size a network (`model.hidden_size`, `model.char_features`, ... as experiment presets set them for
the recurrent models they compare) are ignored, and named in the log (rnnlab.tasks.base), so that one sweep runs the
HMM beside them; its own keys are checked as usual. So is task.crf=true: the HMM is a chain already.
"""

from __future__ import annotations

import logging

import torch

from rnnlab.nn.crf import PerWordSoftmax
from rnnlab.tasks.counted import Counted
from rnnlab.tasks.tagging import TaggingTask

log = logging.getLogger(__name__)


class HMMTaggingTask(Counted, TaggingTask):
    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.hparams.word_dropout:  # said when fitting, not in __init__: not again at each load of a checkpoint
            log.info("model=hmm counts the words themselves: task.word_dropout ignored")

    def output_layer(self, crf: bool, num_tags: int) -> PerWordSoftmax:
        """The HMM's scores are already each word's posterior, and its tags its own Viterbi sequence: no CRF."""
        if crf:
            log.info("model=hmm decodes its own chain (Viterbi over its counted transitions): task.crf ignored")
        return PerWordSoftmax()

    def scores(self, batch: dict) -> torch.Tensor:
        return self.model(batch["words"], batch["tokens_lengths"])

    def predict(self, batch: dict, scores: torch.Tensor) -> torch.Tensor:
        return self.model.viterbi(batch["words"], batch["tokens_lengths"])

    def keep(self, batch: dict) -> list[tuple[list[str], list[int]]]:
        return [(words, tags[:n]) for words, tags, n in
                zip(batch["words"], batch["tags"].tolist(), batch["tokens_lengths"].tolist())]

    def count(self, batches: list[list[tuple[list[str], list[int]]]]) -> None:
        sentences = [sentence for batch in batches for sentence in batch]
        self.model.fit([words for words, _ in sentences], [tags for _, tags in sentences])
        self.log("train/sentences", float(len(sentences)))
