"""Decoding a trained encoder–decoder: greedy, sampling, and beam search batched across sentences.

Every decoder drives the model through two calls (rnnlab/models/seq2seq.py):

    memory, state = model.encode(src, src_lengths)
    logits, state, attention = model.step(prev_tokens, state, memory)      y_{t-1} (N,) → (N, V), a_t (N, S)

and reads model.bos_id, model.eos_id, model.pad_id (and model.max_length where it has one). Call them with the
model in eval mode (dropout off); they run without gradients. bos and pad are never generated. The state
(rnnlab/models/seq2seq.py: the recurrent state; rnnlab/models/transformer.py: each layer's keys and values so
far) and the memory are the model's own; beam search asks both for `index_select(rows)`.

Output length: max_len is an int (the same cap for every sentence) or a pair (a, b), capping
sentence b at ⌊a·S_b + b⌋ tokens, eos included, and never past the model's max_length (a Transformer's
positions end there); a hypothesis that reaches its cap ends there without eos.

Beam search, K = beam_size, all B sentences × K beams in one (B·K, ·) batch:

    score(y_1..y_n) = Σ_t log p(y_t | y_<t, x)                    kept for the live beams
    normalised      = score / n^α                                  α = length_penalty, n counts eos

  * At each step the K·V extensions of every sentence are ranked and the top 2K kept. Those among
    the first K that end (eos, or the length cap) are finished: their normalised score is compared
    with the sentence's best finished hypothesis so far. The K best extensions that did not end
    become the live beams (2K candidates always hold K that did not end: each beam has one eos).
    This is fairseq's scheme: a finished hypothesis leaves the beam instead of occupying a slot.
  * A sentence is done once K hypotheses have finished (or its cap is reached); its best is then
    final and it leaves the batch (its K rows of state and memory), so the steps after it cost
    less; the search stops as soon as every sentence is done.
  * At the start only beam 0 is live (the others score −∞), so the K beams never duplicate.

With K = 1 this is greedy decoding exactly: the one candidate kept is the argmax, and it finishes
when the argmax is eos.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from rnnlab.sampling import check_sampling, draw

MaxLen = int | tuple[float, int]


@dataclass
class Hypotheses:
    """One hypothesis per sentence."""

    tokens: list[list[int]]  # without bos and eos
    scores: torch.Tensor  # (B,) greedy and sample: Σ log p(y_t) (eos included); beam: that / n^α
    attention: list[torch.Tensor] | None = None  # a_t per sentence (len(tokens), S_b): rows = output tokens


def length_limits(src_lengths: torch.Tensor, max_len: MaxLen, model_limit: int | None = None) -> torch.Tensor:
    """Each sentence's cap on output tokens (eos included), (B,) ≥ 1, at most model_limit."""
    if isinstance(max_len, int):
        limits = torch.full_like(src_lengths, max_len)
    else:
        a, b = max_len
        limits = (a * src_lengths.double() + b).floor().long()
    return limits.clamp(min=1, max=model_limit)


@torch.no_grad()
def greedy(model, src: torch.Tensor, src_lengths: torch.Tensor, max_len: MaxLen = (1.5, 10),
           return_attention: bool = False) -> Hypotheses:
    """y_t = argmax p(y | y_<t, x) until eos or the length cap."""
    return _left_to_right(model, src, src_lengths, max_len, lambda log_probs: log_probs.argmax(-1), return_attention)


@torch.no_grad()
def sample(model, src: torch.Tensor, src_lengths: torch.Tensor, max_len: MaxLen = (1.5, 10),
           temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
           generator: torch.Generator | None = None, return_attention: bool = False) -> Hypotheses:
    """y_t ~ softmax(logits / temperature), kept to the top_k tokens and the top_p nucleus (rnnlab.sampling);
    temperature 0 is greedy.

    scores are the model's own log-probabilities of the sampled tokens (temperature 1, no top-k or top-p),
    so samples can be compared or reranked with greedy and beam outputs.
    """
    check_sampling(temperature, top_k, top_p)
    choose = lambda log_probs: draw(log_probs, temperature, top_k, top_p, generator)
    return _left_to_right(model, src, src_lengths, max_len, choose, return_attention)


def decode(model, src: torch.Tensor, src_lengths: torch.Tensor, settings, return_attention: bool = False
           ) -> Hypotheses:
    """Hypotheses by the decoder that `settings` names (a task's keys: decode = greedy | sample | beam, with
    max_len_a, max_len_b, temperature, top_k, top_p, beam_size, length_penalty). Sampling draws from torch's
    global generator: seed it for reproducible samples."""
    max_len = (settings["max_len_a"], settings["max_len_b"])
    if settings["decode"] == "greedy":
        return greedy(model, src, src_lengths, max_len, return_attention)
    if settings["decode"] == "sample":
        return sample(model, src, src_lengths, max_len, settings["temperature"], settings["top_k"],
                      settings["top_p"], return_attention=return_attention)
    return beam_search(model, src, src_lengths, settings["beam_size"], settings["length_penalty"], max_len,
                       return_attention)


def _log_probs(model, logits: torch.Tensor) -> torch.Tensor:
    """log p(y_t | ·) (N, V) with bos and pad impossible: they are never outputs."""
    logits = logits.clone()
    logits[:, [model.bos_id, model.pad_id]] = float("-inf")
    return torch.log_softmax(logits, dim=-1)


def _left_to_right(model, src, src_lengths, max_len: MaxLen, choose: Callable, return_attention: bool) -> Hypotheses:
    """One token per step for every sentence at once, until each has produced eos or hit its cap."""
    memory, state = model.encode(src, src_lengths)
    B = src.size(0)
    limits = length_limits(src_lengths, max_len, getattr(model, "max_length", None)).to(src.device)
    prev_tokens = torch.full((B,), model.bos_id, dtype=torch.long, device=src.device)
    alive = torch.ones(B, dtype=torch.bool, device=src.device)
    lengths = torch.zeros(B, dtype=torch.long, device=src.device)  # output tokens so far, eos excluded
    scores = torch.zeros(B, device=src.device)
    outputs, attention = [], []
    for t in range(int(limits.max())):
        logits, state, weights = model.step(prev_tokens, state, memory)
        log_probs = _log_probs(model, logits)
        tokens = choose(log_probs)
        scores = scores + torch.where(alive, log_probs.gather(1, tokens[:, None]).squeeze(1), 0.0)
        ended = tokens == model.eos_id
        lengths = lengths + (alive & ~ended).long()
        outputs.append(tokens)
        attention.append(weights)
        alive = alive & ~ended & (t + 1 < limits)
        if not alive.any():
            break
        prev_tokens = tokens
    tokens = torch.stack(outputs, 1)  # (B, T); beyond each sentence's length: ignored
    weights = torch.stack(attention, 1) if return_attention and attention[0] is not None else None
    return _hypotheses(tokens, lengths, scores, weights, src_lengths)


def _hypotheses(tokens, lengths, scores, weights, src_lengths) -> Hypotheses:
    """Cut each sentence's tokens (and attention rows, real source columns) to its length."""
    rows = tokens.tolist()
    lengths, src_lengths = lengths.tolist(), src_lengths.tolist()
    attention = None
    if weights is not None:
        attention = [weights[b, :n, :s] for b, (n, s) in enumerate(zip(lengths, src_lengths))]
    return Hypotheses([row[:n] for row, n in zip(rows, lengths)], scores, attention)


@torch.no_grad()
def beam_search(model, src: torch.Tensor, src_lengths: torch.Tensor, beam_size: int = 5,
                length_penalty: float = 1.0, max_len: MaxLen = (1.5, 10),
                return_attention: bool = False) -> Hypotheses:
    """The best hypothesis per sentence by Σ log p / length^α; see the module docstring."""
    if not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"beam_size={beam_size} must be a positive integer")
    B, K, device = src.size(0), beam_size, src.device
    memory, state = model.encode(src, src_lengths)
    beams = torch.arange(K, device=device)
    sentence_of_row = torch.arange(B, device=device).repeat_interleave(K)  # row b·K + k is beam k of sentence b
    memory, state = memory.index_select(sentence_of_row), state.index_select(sentence_of_row)
    limits = length_limits(src_lengths, max_len, getattr(model, "max_length", None)).to(device)
    T, S = int(limits.max()), src.size(1)

    # the sentences still searched (b of them; `searched` holds their places in the batch) and their search
    searched = torch.arange(B, device=device)
    beam_scores = torch.full((B, K), float("-inf"), device=device)
    beam_scores[:, 0] = 0.0
    history = torch.empty(B * K, 0, dtype=torch.long, device=device)  # live beams' tokens so far
    history_attention = torch.empty(B * K, 0, S, device=device) if return_attention else None
    best_scores = torch.full((B,), float("-inf"), device=device)
    best_tokens = torch.full((B, T), model.pad_id, dtype=torch.long, device=device)
    best_lengths = torch.zeros(B, dtype=torch.long, device=device)  # eos excluded
    best_attention = torch.zeros(B, T, S, device=device) if return_attention else None
    finished = torch.zeros(B, dtype=torch.long, device=device)
    prev_tokens = torch.full((B * K,), model.bos_id, dtype=torch.long, device=device)
    # the results, written as sentences leave the search
    out_scores, out_tokens, out_lengths = best_scores.clone(), best_tokens.clone(), best_lengths.clone()
    out_attention = best_attention.clone() if return_attention else None

    for t in range(T):
        logits, state, weights = model.step(prev_tokens, state, memory)
        if weights is None:  # a model without attention has none to return
            return_attention, best_attention, out_attention = False, None, None
        log_probs = _log_probs(model, logits)  # (b·K, V)
        b, V = searched.numel(), log_probs.size(-1)
        candidates = (beam_scores.view(b * K, 1) + log_probs).view(b, K * V)
        top_scores, top_index = candidates.topk(min(2 * K, K * V), dim=1)  # (b, 2K), best first
        parents, tokens = top_index // V, top_index % V
        rows = torch.arange(b, device=device)[:, None] * K + parents  # (b, 2K) the row each candidate extends
        n = t + 1  # candidate length, eos included

        # finish: eos among the first K candidates, or all of the first K at the length cap
        ends = (tokens == model.eos_id) | (n >= limits)[:, None]
        ends[:, K:] = False
        ends &= torch.isfinite(top_scores)
        normalised = (top_scores / n**length_penalty).masked_fill(~ends, float("-inf"))
        candidate_best, pick = normalised.max(dim=1)
        improves = candidate_best > best_scores
        if improves.any():
            best_scores = torch.where(improves, candidate_best, best_scores)
            best_row, best_token = rows.gather(1, pick[:, None]).squeeze(1), tokens.gather(1, pick[:, None])
            path = torch.cat([history[best_row], best_token], dim=1)  # (b, n)
            best_tokens[:, :n] = torch.where(improves[:, None], path, best_tokens[:, :n])
            ended_by_eos = best_token.squeeze(1) == model.eos_id
            best_lengths = torch.where(improves, n - ended_by_eos.long(), best_lengths)
            if return_attention:
                path_attention = torch.cat([history_attention[best_row], weights[best_row][:, None]], dim=1)
                best_attention[:, :n] = torch.where(improves[:, None, None], path_attention, best_attention[:, :n])
        finished += ends.sum(dim=1)
        done = (finished >= K) | (n >= limits)
        if bool(done.any()):  # a done sentence's best is final: it leaves the search, and the batch shrinks
            out_scores[searched[done]], out_tokens[searched[done]] = best_scores[done], best_tokens[done]
            out_lengths[searched[done]] = best_lengths[done]
            if return_attention:
                out_attention[searched[done]] = best_attention[done]
            if bool(done.all()):
                break
            going_on = (~done).nonzero().squeeze(1)
            searched, limits, finished = searched[going_on], limits[going_on], finished[going_on]
            best_scores, best_tokens = best_scores[going_on], best_tokens[going_on]
            best_lengths = best_lengths[going_on]
            if return_attention:
                best_attention = best_attention[going_on]
            top_scores, tokens, rows = top_scores[going_on], tokens[going_on], rows[going_on]
            memory = memory.index_select((going_on[:, None] * K + beams).view(-1))

        # the K best candidates that did not end go on
        live_scores = top_scores.masked_fill(tokens == model.eos_id, float("-inf"))
        beam_scores, keep = live_scores.topk(K, dim=1)  # (b, K)
        rows, tokens = rows.gather(1, keep).view(-1), tokens.gather(1, keep).view(-1)
        state = state.index_select(rows)
        history = torch.cat([history[rows], tokens[:, None]], dim=1)
        if return_attention:
            history_attention = torch.cat([history_attention[rows], weights[rows][:, None]], dim=1)
        prev_tokens = tokens

    return _hypotheses(out_tokens, out_lengths, out_scores, out_attention, src_lengths)
