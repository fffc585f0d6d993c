"""Training data that a resumed run continues mid-epoch, from the batch after the last one trained.

Lightning 2.6 restores the loops' counters from a checkpoint but not a plain DataLoader's position: a run
resumed mid-epoch would start the epoch's batches again. (It hands `state_dict` of "stateful" loaders to
the checkpoint, but loads them back only if the loader is first built after the restore; a cosine
schedule that asks `trainer.estimated_stepping_batches` builds it before, Lightning issue #20550.) Our
epochs' batch order is a function of (seed, epoch) alone, so the position is one number: the batches of
the current epoch already trained. The data module saves it in every checkpoint (`state_dict`, which
Lightning calls for data modules) and a resumed run's first training epoch skips that many batches.

Loaders also get their own random generator: creating a DataLoader iterator draws a seed for its
workers, from the global generator otherwise, and a resumed run creates its iterators at other moments
than an uninterrupted one, which would shift every later dropout mask.
"""

from __future__ import annotations

import itertools
import warnings

import torch
from torch.utils.data import DataLoader

# Lightning warns on every mid-epoch resume that a non-stateful loader cannot continue; this one can.
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")


class ResumableLoader(DataLoader):
    """A DataLoader whose next iteration skips `skip_batches` batches (a resumed epoch's trained part)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("generator", torch.Generator())
        super().__init__(*args, **kwargs)
        self.skip_batches = 0

    def __iter__(self):
        skip, self.skip_batches = self.skip_batches, 0
        batches = super().__iter__()
        # a checkpoint taken after the epoch's last batch resumes into the next epoch: nothing to skip
        return itertools.islice(batches, skip, None) if 0 < skip < len(self) else batches


class ResumableTrainData:
    """Mixin for a LightningDataModule: checkpoints record the training position, and `resumed(loader)`
    makes the training loader continue from it."""

    _resume_at_batch = 0

    def state_dict(self) -> dict[str, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return {}
        # batches of this epoch that went through training_step: at a checkpoint taken in
        # on_train_batch_end it counts the current one, at the end of the epoch all of them
        return {"train_batches_done": trainer.fit_loop.epoch_loop.batch_progress.current.processed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        trainer = getattr(self, "trainer", None)
        if trainer is None or trainer.state.fn == "fit":  # not when test() loads the best checkpoint
            self._resume_at_batch = int(state.get("train_batches_done", 0))

    def resumed(self, loader: ResumableLoader) -> ResumableLoader:
        """The training loader, starting where the checkpoint this run resumes from was taken."""
        loader.skip_batches, self._resume_at_batch = self._resume_at_batch, 0
        return loader
