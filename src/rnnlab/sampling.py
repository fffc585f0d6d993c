"""Drawing the next token from a model's logits: temperature, top-k, top-p (nucleus), then a draw.

The one sampler of language models (rnnlab.generation: generate.py, callbacks=samples) and of translation
(`task.decode=sample`, rnnlab.decoding). From logits z (..., V), in this order:

    temperature τ  p_τ(w) ∝ exp(z_w / τ) = p(w)^(1/τ): τ < 1 sharpens, τ > 1 flattens
    top_k          only the k most probable tokens stay (ties with the k-th stay too)
    top_p          nucleus (Holtzman et al. 2020): the most probable tokens of p_τ stay until their mass
                   reaches top_p; the most probable token always stays
    draw           w ~ p_τ renormalised over the tokens that stayed

The edge values mean the same everywhere (and in train configs as in the scripts):

    temperature = 0      greedy: the argmax, the limit τ → 0 of the draw. Not an error, so one knob goes
                         from greedy to wild. Must be a finite number ≥ 0.
    top_k = null or 0    no limit (0 as in most toolkits); top_k = 1 is greedy; k ≥ V keeps all V tokens.
    top_p = null or 1    no limit. Must be in (0, 1]: top_p → 0 keeps the most probable token alone, which is
                         spelt top_k=1 (or temperature=0), so top_p=0 is refused rather than guessed at.

Top-k does not depend on τ; the nucleus does (it is taken of p_τ, as in transformers).

Why written here: the same filtering exists as HF transformers' TemperatureLogitsWarper, TopKLogitsWarper
and TopPLogitsWarper, but transformers is not among our dependencies (nor is it installed), and neither
torch, Lightning nor torchmetrics offers it. It is a dozen lines of tensor code, not worth a dependency of
that size; its temperature also refuses 0, where we want greedy.
"""

from __future__ import annotations

import math

import torch

from rnnlab.errors import ConfigError


def check_sampling(temperature: float, top_k: int | None = None, top_p: float | None = None,
                   prefix: str = "") -> None:
    """ConfigError naming the first invalid setting as `<prefix>key=value`: prefix "task." in train configs,
    "" for the scripts' own keys."""
    if not _is_number(temperature) or not math.isfinite(temperature) or temperature < 0:
        raise ConfigError(f"{prefix}temperature={temperature} is invalid: must be a number ≥ 0 (0 = greedy)")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0):
        raise ConfigError(f"{prefix}top_k={top_k} is invalid: must be a positive integer (null or 0: no limit)")
    if top_p is not None and (not _is_number(top_p) or not 0 < top_p <= 1):
        raise ConfigError(f"{prefix}top_p={top_p} is invalid: must be in (0, 1] (null or 1: no limit)")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """logits (..., V) with every token that top_k or top_p leaves out set to −inf."""
    if top_k:
        kth_largest = logits.topk(min(top_k, logits.size(-1)), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs  # of the more probable tokens: the most probable has 0
        leave_out = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, mass_before >= top_p)
        logits = logits.masked_fill(leave_out, float("-inf"))
    return logits


def draw(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """Token ids (...) from logits (..., V): the argmax when temperature = 0, else a draw (module docstring)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = filter_logits(logits / temperature, top_k, top_p).softmax(dim=-1)
    drawn = torch.multinomial(probs.reshape(-1, probs.size(-1)), 1, generator=generator)  # (N, 1): 2-D at most
    return drawn.reshape(probs.shape[:-1])
