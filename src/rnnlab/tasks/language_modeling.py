"""`task=lm`: next-token prediction on contiguous streams with truncated BPTT.

Loss is the mean token NLL of a window. Perplexity is exp(total NLL / total tokens) over the whole
split, accumulated token-weighted across windows (and across ranks), never a mean of per-window
perplexities. When the data knows its Bayes-optimal NLL (data=synthetic_lm), the same tokens' optimum
is accumulated alongside, giving `*/ppl_optimal` and `*/ppl_gap` = ppl / ppl_optimal − 1.
When the data marks token groups (data=synthetic_lm: "agreement", the verbs that must agree with a
subject D tokens back), `*/<group>/loss` is the mean NLL on those tokens alone and
`*/<group>/excess_nll` its excess over the optimum on them. Because these tokens are chosen by
what they turned out to be, that excess mixes *whether* such a token comes (which a model may
over-predict, scoring below the optimum here and paying elsewhere) with *which* one. When the
group lists its candidate tokens, `*/<group>/choice_nll` = −log p(target | target ∈ choices)
isolates *which*, and `*/<group>/choice_excess` is its excess over the optimum (≥ 0 in expectation).
When the group also gives each candidate a class (the verb's agreement class), `*/<group>/class_acc`
is how often the class with the most probability, Σ p over its candidates, is the target's class:
the agreement accuracy (1 for the optimum; 1/A for a model that forgot the subject).
At character level (the tokenizer's level is "char") `*/bpc` = `*/loss` / ln 2, bits per character.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from lightning.fabric.utilities.apply_func import move_data_to_device

from rnnlab import distributed
from rnnlab.nn import detach_state
from rnnlab.tasks.base import Task


class LanguageModelingTask(Task):
    shape, option = "lm", "task=lm"
    data_inputs = ("vocab_size",)
    takes_tokenizer = True
    summary_metrics = ("val/loss", "val/ppl", "val/ppl_gap", "test/ppl", "fit_seconds")
    report_metrics = ("val/loss", "val/ppl", "test/ppl")

    def __init__(self, vocab_size: int, model: dict[str, Any], optimizer: dict[str, Any],
                 scheduler: dict[str, Any] | None = None, carry_state: bool = True, tokenizer: dict | None = None):
        """model/optimizer/scheduler are plain config dicts (the `model`, `optimizer`, `scheduler`
        groups), kept as hyperparameters so a checkpoint alone rebuilds the task; so is tokenizer, the
        data's `tokenizer_state()`, so that a checkpoint alone also reads and writes text (generate.py)."""
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.model = self.build_network(model, vocab_size=vocab_size)
        self.carry_state = carry_state
        # a character is a token: the loss in bits is bits per character
        self.char_level = (tokenizer or {}).get("level") == "char"
        self._state: dict[str, Any] = {}  # carried recurrent state per stage
        # "<stage>" or "<stage>/<group>..." → [Σ value, tokens, Σ optimal, tokens with an optimum] of this
        # process's tokens; summed over the processes when the split is done
        self._totals: dict[str, torch.Tensor] = {}

    def forward(self, tokens, state=None):
        return self.model(tokens, state)

    def _logits(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        """(B, T, V) for one window; the state continues from the stage's previous window.

        A model that carries no state while training (model=transformer: one window alone) carries its context
        while evaluating: it reads each window after the stage's previous ones from its key/value cache, which
        slides past max_length, so that every token sees at least max_length // 2 tokens before it, as it would
        in a long text, instead of none at a window's start. Without that, an evaluation split cut into windows
        scores the Transformer on truncated contexts that an RNN, which carries its state, never suffers."""
        state = self._state.get(stage) if self.carry_state else None
        sliding = stage != "train" and self.carry_state and hasattr(self.model, "generation_state")
        if sliding and state is None:
            state = self.model.generation_state()
        logits, state = self.model(batch["inputs"], state)
        # evaluation runs without gradients: a cache has no graph to cut
        self._state[stage] = state if sliding else detach_state(state)
        return logits

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        """Mean NLL of one window."""
        return F.cross_entropy(self._logits(batch, stage).flatten(0, 1), batch["targets"].flatten())

    # --- training -----------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self._state.pop("train", None)
        super().on_train_epoch_start()

    def training_step(self, batch, batch_idx):
        loss = self._step(batch, "train")
        tokens = batch["targets"].numel()
        # token-weighted over the epoch (its last window may be shorter than bptt), over all processes
        self.train_epoch.log_step(self, loss, tokens)
        return loss

    # a run resumed mid-epoch also continues the hidden state carried from window to window
    def epoch_state(self) -> dict[str, Any]:
        return {**super().epoch_state(), "state": self._state.get("train")}

    def restore_epoch_state(self, state: dict[str, Any]) -> None:
        super().restore_epoch_state(state)
        self._state["train"] = state["state"]

    def on_train_start(self) -> None:
        self._state = move_data_to_device(self._state, self.device)  # a restored state is loaded onto the CPU

    # --- evaluation ---------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._state.pop("val", None)

    def on_test_epoch_start(self) -> None:
        self._state.pop("test", None)

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def _eval_step(self, batch, stage: str) -> None:
        logits = self._logits(batch, stage)  # (B, T, V)
        targets = batch["targets"]
        nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view_as(targets)
        optimal = batch.get("optimal_nll")
        self._update(stage, nll, optimal)
        for key, mask in batch.items():
            if not key.startswith("group/") or not mask.any():
                continue
            group = key.removeprefix("group/")
            name = f"{stage}/{group}"
            self._update(name, nll[mask], None if optimal is None else optimal[mask])
            choices = batch.get(f"choices/{group}")
            if choices is not None:
                # −log p(target | target ∈ choices): renormalise over the candidates only
                among = logits[mask][:, choices]  # (N, C)
                position = (targets[mask].unsqueeze(1) == choices).float().argmax(dim=1)
                choice_nll = F.cross_entropy(among, position, reduction="none")
                choice_optimal = batch.get(f"choice_optimal_nll/{group}")
                self._update(f"{name}/choice", choice_nll,
                             None if choice_optimal is None else choice_optimal.expand_as(choice_nll))
                classes = batch.get(f"choice_classes/{group}")
                if classes is not None:
                    # the most probable class: p summed over each class's choices, then argmax
                    class_p = among.softmax(-1).new_zeros(len(among), int(classes.max()) + 1)
                    class_p.index_add_(1, classes, among.softmax(-1))
                    correct = (class_p.argmax(-1) == classes[position]).float()
                    self._update(f"{name}/class", correct, None)

    def _update(self, name: str, values: torch.Tensor, optimal: torch.Tensor | None) -> None:
        """Accumulate per-token values (NLLs; 0/1 correctness for "/class") and their optimum."""
        tokens = values.new_tensor(values.numel())
        optimum = (optimal.sum(), tokens) if optimal is not None else (values.new_zeros(()), values.new_zeros(()))
        update = torch.stack([values.sum(), tokens, *optimum]).float()
        self._totals[name] = self._totals.get(name, 0) + update

    def on_validation_epoch_end(self) -> None:
        self._log_eval_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_eval_metrics("test")

    def _log_eval_metrics(self, stage: str) -> None:
        mine = {name: self._totals.pop(name) for name in list(self._totals) if name.split("/")[0] == stage}
        metrics = {}
        # summed over the processes: the whole split, every process the same
        for name, (value_sum, tokens, optimal_sum, optimal_tokens) in distributed.sum_by_key(mine, self.device).items():
            nll = value_sum / tokens  # token-weighted over the split
            optimal = optimal_sum / optimal_tokens if optimal_tokens > 0 else None
            if name == stage:
                metrics |= {f"{stage}/loss": nll, f"{stage}/ppl": nll.exp()}
                if self.char_level:
                    metrics[f"{stage}/bpc"] = nll / math.log(2)
                if optimal is not None:
                    metrics |= {f"{stage}/ppl_optimal": optimal.exp(),
                                f"{stage}/ppl_gap": (nll - optimal).exp() - 1}
            elif name.endswith("/class"):
                metrics[f"{name}_acc"] = nll  # here the mean is of 0/1 correctness, not an NLL
            elif name.endswith("/choice"):
                metrics[f"{name}_nll"] = nll
                if optimal is not None:
                    metrics[f"{name}_excess"] = nll - optimal
            else:
                metrics[f"{name}/loss"] = nll
                if optimal is not None:
                    metrics[f"{name}/excess_nll"] = nll - optimal
        if metrics:
            # already equal on every process; sync_dist (a mean of equal values) only tells Lightning so
            self.log_dict(metrics, prog_bar=False, sync_dist=True)
