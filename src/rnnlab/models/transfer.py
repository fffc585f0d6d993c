"""A language model's weights as the start of another task's encoder (`model.init_from`, ULMFiT's idea).

A classifier or a tagger reads words as rnnlab's language model does (models/language_model.py): an embedding,
then a recurrent stack. Started from a trained LM's, the encoder begins with what the LM learned about words and
their contexts (Dai & Le, 2015; Howard & Ruder, 2018) instead of from random numbers:

- embedding rows by word: each word of the network's own vocabulary that the LM's vocabulary also holds gets the
  LM's vector (the two vocabularies share neither ids nor size); a word the LM lacks keeps its random init;
- the recurrent stack layer by layer into the forward direction: the LM read left to right, so its layer l becomes
  the forward direction's layer l; a bidirectional network's backward direction keeps its random init. Where the
  network's layer reads more than the LM's did (a bidirectional stack's upper layer reads [→h; ←h], a tagger's
  first layer [E x; c(x)] with character features), the LM's input weights fill the columns of the part the LM
  read, the first ones, and the others keep their init. A learned initial state is copied where both have one;
- the output layer (classes, tags) is the task's own and starts random.

The LM must have the same cell (and form), embedding_size, hidden_size and backend, and at least as many layers (a
network with fewer takes the LM's first ones); otherwise a one-line ConfigError names the keys to change. Tensors
and dicts only: the task reads the checkpoint (tasks/base.py).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.models.language_model import RNNLanguageModel

SPECIALS = ("<unk>", "<eos>")  # copied by name like words, but not counted as words
# what must agree for the LM's weights to mean the same in the network: always, and per cell (scratch options)
SHARED_KEYS = ("cell", "embedding_size", "hidden_size", "backend")
CELL_KEYS = {"rnn": ("nonlinearity", "leak", "learn_leak", "skip"), "gru": ("gru_form",), "lstm": ()}
DEFAULTS = {name: p.default for name, p in inspect.signature(RNNLanguageModel).parameters.items()
            if p.default is not inspect.Parameter.empty}


@dataclass(frozen=True)
class Transferred:
    """What was copied: `covered` of the network's `words` (its vocabulary less <unk> and <eos>) got the LM's
    vector; `layers` recurrent layers went into the forward direction of a stack with `directions` directions."""

    words: int
    covered: int
    layers: int
    directions: int

    @property
    def coverage(self) -> float:
        return self.covered / max(self.words, 1)

    def metrics(self) -> dict[str, float]:
        return {"init_from/words_covered": float(self.covered), "init_from/vocab_coverage": self.coverage,
                "init_from/layers": float(self.layers)}

    def describe(self, source: str) -> str:
        backward = "; the backward direction keeps its random init" if self.directions == 2 else ""
        return (f"model.init_from={source}: the language model's vectors for {self.covered:,} of the network's "
                f"{self.words:,} words ({100 * self.coverage:.1f}%; the rest keep their random init), its "
                f"{self.layers} recurrent layer(s) into the forward direction{backward}")


def check_compatible(model: dict[str, Any], layers: int, lm_model: dict[str, Any], source: str) -> None:
    """A one-line ConfigError naming every model.* key in which the network (`model`, with `layers` recurrent
    layers) and the LM differ so that the LM's weights would not fit or would mean something else."""
    def value(config: dict[str, Any], key: str) -> Any:
        found = config.get(key, DEFAULTS.get(key))
        if key == "gru_form" and config.get("backend", DEFAULTS["backend"]) == "scratch":
            return found or "lecture"  # the scratch GRU's default form; fused is always torch's
        return None if key == "gru_form" else found

    cell = value(model, "cell")
    keys = (*SHARED_KEYS, *(CELL_KEYS.get(cell, ()) if value(lm_model, "cell") == cell else ()))
    differ = [key for key in keys if value(model, key) != value(lm_model, key)]
    if differ:
        theirs = " ".join(f"model.{key}={value(lm_model, key)}" for key in differ)
        ours = " ".join(f"model.{key}={value(model, key)}" for key in differ)
        raise ConfigError(f"model.init_from={source} is a language model with {theirs}, this model has {ours}: set "
                          f"{theirs} (or give a language model trained with {ours})")
    lm_layers = value(lm_model, "num_layers")
    if layers > lm_layers:
        raise ConfigError(f"model.init_from={source} has {lm_layers} recurrent layer(s), this model "
                          f"model.num_layers={layers}: set model.num_layers={lm_layers} or fewer (the first ones are "
                          f"copied), or give a deeper language model")


@torch.no_grad()
def copy_language_model(network: nn.Module, model: dict[str, Any], words: list[str], lm_model: dict[str, Any],
                        lm_words: list[str], lm_state: dict[str, torch.Tensor], source: str) -> Transferred:
    """Copy the LM's embedding rows (by word) and recurrent weights (forward direction) into `network`, whose
    `embedding` reads `words` and whose `rnn` is its recurrent stack; lm_state is the LM network's state dict."""
    rnn, directions, layers = network.rnn, network.rnn.directions, network.rnn.num_layers
    check_compatible(model, layers, lm_model, source)
    lm_row = {word: row for row, word in enumerate(lm_words)}
    shared = [(row, lm_row[word]) for row, word in enumerate(words) if word in lm_row]
    if shared:
        rows, lm_rows = (torch.tensor(ids) for ids in zip(*shared))
        network.embedding.weight[rows] = lm_state["embedding.weight"][lm_rows].to(network.embedding.weight)
    own = dict(rnn.named_parameters())
    for name, lm_value in lm_state.items():
        if not name.startswith("rnn."):
            continue
        name = name.removeprefix("rnn.")
        if name in ("h0", "C0"):  # (layers·D, 1, H): the forward rows are l·D
            if own.get(name) is not None:
                own[name][::directions] = lm_value[:layers].to(own[name])
            continue
        target = forward_name(name, directions, layers)
        if target is not None:
            fill_leading(own[target], lm_value, f"model.init_from={source}: {name}")
    counted = [word for word in words if word not in SPECIALS]
    return Transferred(len(counted), sum(word in lm_row for word in counted), layers, directions)


def forward_name(name: str, directions: int, layers: int) -> str | None:
    """The network's name for the LM's recurrent parameter `name`, in the forward direction; None for a layer past
    `layers`. Fused: torch's `module.weight_ih_l{l}` (the backward direction's end in `_reverse`); scratch: cell
    l·D + direction (rnnlab.nn.recurrent)."""
    fused = re.fullmatch(r"module\.\w+_l(\d+)", name)
    if fused:
        return name if int(fused[1]) < layers else None
    scratch = re.fullmatch(r"cells\.(\d+)\.(\w+)", name)
    if scratch:
        layer = int(scratch[1])
        return f"cells.{layer * directions}.{scratch[2]}" if layer < layers else None
    raise ConfigError(f"the language model's recurrent parameter {name!r} has no counterpart here; was it written "
                      f"by another version of rnnlab? retrain it")


def fill_leading(target: torch.Tensor, source: torch.Tensor, what: str) -> None:
    """target = source where the shapes agree; where target reads more inputs (more columns), its first columns."""
    if target.shape == source.shape:
        target.copy_(source)
    elif target.dim() == 2 and target.shape[0] == source.shape[0] and target.shape[1] > source.shape[1]:
        target[:, : source.shape[1]] = source
    else:
        raise ConfigError(f"{what} has the shape {tuple(source.shape)}, which does not fit {tuple(target.shape)}; "
                          f"give a language model of this model's sizes")
