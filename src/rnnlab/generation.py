"""Text from a language model, one token at a time: x_{t+1} ~ softmax(logits_t / temperature).

The lecture's generator: read the prompt, then repeatedly draw the next token from the model's softmax
and feed it back in, until `<eos>` (word models) or `max_tokens`. Drawing, not argmax, so that every
sample differs; argmax (greedy) is the limit temperature → 0. What shapes the draw, in this order:

    unk=resample   `<unk>` is never drawn: redrawing until the token is not `<unk>` is drawing from p
                   renormalised without it, which is what is done (unk=keep: drawn like any token)
    temperature, top_k, top_p, and the draw itself: rnnlab.sampling, shared with translation's decode=sample

Any model with the language models' interface samples: `model(tokens (B, T), state) → logits (B, T, V),
state`, i.e. `RNNLanguageModel`, `NGramLanguageModel` and `TransformerLM`. Writing starts from the state None,
or from the model's `generation_state()` where it has one: the Transformer's empty key/value cache (it carries
nothing between training windows, but writing one token at a time it keeps the past; past its max_length the
window slides, rnnlab/models/transformer.py). A checkpoint of task=lm keeps the data's
tokenizer in its hyperparameters, so `load_checkpoint` gives back a model that reads prompts and
writes text with nothing else at hand; `ckpt` may also be the MLflow run id that train.py printed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from typing import Any

import torch

from rnnlab.checkpoints import resolve_checkpoint
from rnnlab.errors import ConfigError
from rnnlab.sampling import check_sampling, draw
from rnnlab.tasks.language_modeling import LanguageModelingTask

UNK_POLICIES = ("keep", "resample")


# --- sampling ---------------------------------------------------------------------------------
def check_settings(max_tokens: int, temperature: float, top_k: int | None, top_p: float | None,
                   unk_policy: str) -> None:
    """ConfigError naming the first invalid setting (keys as in conf/generate.yaml)."""
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0:
        raise ConfigError(f"max_tokens={max_tokens} is invalid: must be an integer ≥ 0")
    check_sampling(temperature, top_k, top_p)
    if unk_policy not in UNK_POLICIES:
        raise ConfigError(f"unk={unk_policy!r} is invalid: choose keep or resample")


def next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
               greedy: bool = False, banned: int | None = None, generator: torch.Generator | None = None) -> int:
    """One token from logits (V,), never `banned`: argmax when greedy or temperature = 0, else a draw."""
    logits = logits.detach().float().cpu()
    if banned is not None:
        logits = logits.clone()
        logits[banned] = float("-inf")
    return int(draw(logits, 0 if greedy else temperature, top_k, top_p, generator))


@torch.no_grad()
def sample(model: torch.nn.Module, prompt_ids: Sequence[int], max_tokens: int, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None, greedy: bool = False, unk_policy: str = "keep",
           unk_id: int | None = None, eos_id: int | None = None,
           generator: torch.Generator | None = None) -> list[int]:
    """The tokens drawn after prompt_ids (not empty), at most max_tokens; ends with eos_id if that was drawn."""
    check_settings(max_tokens, temperature, top_k, top_p, unk_policy)
    if not prompt_ids:
        raise ConfigError("the prompt is empty: a language model needs at least one token to continue from")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    banned = unk_id if unk_policy == "resample" else None
    was_training = model.training
    model.eval()  # no dropout while writing
    try:
        start = model.generation_state() if hasattr(model, "generation_state") else None
        logits, state = model(torch.tensor([list(prompt_ids)], device=device), start)
        drawn: list[int] = []
        for _ in range(max_tokens):
            token = next_token(logits[0, -1], temperature, top_k, top_p, greedy, banned, generator)
            drawn.append(token)
            if token == eos_id:
                break
            logits, state = model(torch.tensor([[token]], device=device), state)
    finally:
        model.train(was_training)
    return drawn


# --- text in, text out ------------------------------------------------------------------------
def load_tokenizer(state: dict) -> Any:
    """The tokenizer a task=lm checkpoint kept (`datamodule.tokenizer_state()`): encode, decode, unk_id, eos_id."""
    if state.get("level") == "symbols":
        from rnnlab.data.synthetic_lm import SymbolTokenizer

        return SymbolTokenizer.from_state(state)
    from rnnlab.data.text import from_state

    return from_state(state)


def encode_prompt(tokenizer: Any, prompt: str) -> tuple[list[int], list[int], list[str]]:
    """(ids the model reads, ids of them that belong to the text, the prompt's pieces outside the vocabulary).

    An empty prompt starts where a line starts: after `<eos>` (or the synthetic corpus's "."), or after a
    line break at character level; that token is read but is not part of the text. Characters (char level)
    or words outside the vocabulary are read as `<unk>`; a vocabulary without `<unk>` refuses them.
    """
    pieces = list(prompt) if tokenizer.level == "char" else prompt.split()
    known = set(tokenizer.vocab)
    unknown = list(dict.fromkeys(piece for piece in pieces if piece not in known))
    if unknown and tokenizer.unk_id is None:
        raise ConfigError(f"prompt={prompt!r}: {unknown[0]!r} is not in the model's vocabulary, which has no "
                          f"<unk>; use its words, e.g. {' '.join(tokenizer.vocab[:3])}")
    ids = tokenizer.encode(prompt)
    if ids:
        return ids, ids, unknown
    if tokenizer.eos_id is not None:
        return [tokenizer.eos_id], [], unknown
    if "\n" in known:
        return [tokenizer.vocab.index("\n")], [], unknown
    raise ConfigError("prompt='' is empty and the vocabulary has no line break to start from; give a prompt, "
                      "e.g. prompt='ROMEO:'")


def write(model: torch.nn.Module, tokenizer: Any, prompt: str = "", max_tokens: int = 500, temperature: float = 1.0,
          top_k: int | None = None, top_p: float | None = None, greedy: bool = False, unk_policy: str = "keep",
          generator: torch.Generator | None = None) -> str:
    """The prompt and its continuation, as text."""
    read, shown, _ = encode_prompt(tokenizer, prompt)
    drawn = sample(model, read, max_tokens, temperature, top_k, top_p, greedy, unk_policy, tokenizer.unk_id,
                   tokenizer.eos_id, generator)
    return tokenizer.decode(shown + drawn)


# --- checkpoints ------------------------------------------------------------------------------
def load_checkpoint(ckpt: str | None, tracking_uri: str | None = None,
                    device: str = "cpu") -> tuple[torch.nn.Module, Any]:
    """(language model, tokenizer) of a task=lm checkpoint: a .ckpt path, or an MLflow run id (its best checkpoint)."""
    with tempfile.TemporaryDirectory() as download_dir:
        task = LanguageModelingTask.from_checkpoint(resolve_checkpoint(ckpt, tracking_uri, download_dir), str(ckpt),
                                                    device)
    if not task.hparams.get("tokenizer"):
        raise ConfigError(f"ckpt={ckpt} holds no tokenizer (trained before checkpoints kept one, or on data "
                          f"without text), so its token ids cannot be written as text; retrain it")
    return task.model, load_tokenizer(task.hparams["tokenizer"])
