"""The random generators (torch CPU and CUDA, numpy, Python) in every checkpoint, back in place on resume.

Lightning restores weights, optimizer and loops but not the generators, so a resumed run would draw other
dropout masks than the uninterrupted run from the same step on. The state is taken when the checkpoint
is written (at the end of a training batch, or after a validation) and put back when the resumed fit
starts training (`on_train_start`): the model, optimizer and data loaders built in between may draw from
the generators freely. Nothing between a checkpoint and the next training batch draws from them (our data
loaders have their own generator, rnnlab/data/resumable.py, and the gradient diagnostic isolates its
draws), so the next batch sees the same state in both runs.

Saved as plain tensors and lists, so the checkpoint stays loadable with torch.load(weights_only=True).
"""

from __future__ import annotations

import random
from typing import Any

import lightning.pytorch as L
import numpy as np
import torch


class RandomState(L.Callback):
    def __init__(self):
        self._to_restore: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        numpy = np.random.get_state(legacy=False)
        python_version, python_state, python_gauss = random.getstate()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": {"key": torch.from_numpy(numpy["state"]["key"].astype(np.int64)), "pos": numpy["state"]["pos"],
                      "has_gauss": numpy["has_gauss"], "gauss": numpy["gauss"]},
            "python": [python_version, list(python_state), python_gauss],
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._to_restore = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state, self._to_restore = self._to_restore, None
        if state is None:
            return
        torch.set_rng_state(state["torch"].cpu())
        numpy = state["numpy"]
        np.random.set_state({"bit_generator": "MT19937",
                             "state": {"key": numpy["key"].numpy().astype(np.uint32), "pos": numpy["pos"]},
                             "has_gauss": numpy["has_gauss"], "gauss": numpy["gauss"]})
        version, python_state, gauss = state["python"]
        random.setstate((version, tuple(python_state), gauss))
        cuda = state.get("cuda")
        if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
