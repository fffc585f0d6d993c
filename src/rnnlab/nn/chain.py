"""Linear-chain inference over tag sequences: Viterbi (the best sequence) and forward–backward (each position's
tag marginals), first and second order, in log space, batched over sentences of different lengths.

A sentence y_1..y_n of n words (tags 0..K−1) scores

    first order:   s(y) = A[BOS, y_1] + Σ_{i=2..n} A[y_{i−1}, y_i] + A[y_n, EOS] + Σ_i E[i, y_i]
    second order:  s(y) = Σ_{i=1..n+1} A[y_{i−2}, y_{i−1}, y_i] + Σ_i E[i, y_i]     (y_{−1} = y_0 = BOS, y_{n+1} = EOS)

with `emissions` E (B, T, K) and `transitions` A, (K+1, K+1) or (K+1, K+1, K+1), whose index K is the sentence
boundary: BOS where it stands for an earlier tag, EOS where it stands for the next one. For an HMM, A = log p(y_i |
history) and E = log p(w_i | y_i) (up to a constant per position), so s(y) = log p(w, y) + const and

    viterbi(E, A, lengths)    = argmax_y s(y)                         (B, T) tag ids
    marginals(E, A, lengths)  = log p(y_i = k | w) = log Σ_{y: y_i = k} exp s(y) − log Σ_y exp s(y)   (B, T, K)

and for a linear-chain CRF (rnnlab.nn.crf), whose s(y) is learned and p(y | x) = exp s(y) / Z(x),

    log_partition(E, A, lengths)     = log Z = log Σ_y exp s(y)       (B,)
    path_score(E, A, tags, lengths)  = s(tags)                        (B,)

Both run the same recursion over positions, with max (Viterbi) or logsumexp (the forward algorithm) over the
previous state: the tag y_{i−1} (first order) or the pair (y_{i−2}, y_{i−1}) (second order, O(T K³)). A sentence
shorter than T keeps its state after its last word (lengths), so padding never changes its result; padded
positions of the outputs hold 0 (tags) or log(1/K) (marginals).
"""

from __future__ import annotations

import math

import torch

from rnnlab.nn.padding import real_tokens


def viterbi(emissions: torch.Tensor, transitions: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The highest-scoring tag sequence of each sentence, (B, T); 0 on padding."""
    step, start, end = _recursion(emissions, transitions)
    B, T, _ = emissions.shape
    lengths = lengths.to(emissions.device)
    score, pointers = start(emissions[:, 0]), []
    for t in range(1, T):
        new, pointer = step(score, emissions[:, t], reduce="max")
        score = torch.where((t < lengths).view(B, *[1] * (score.dim() - 1)), new, score)  # finished: kept
        pointers.append(pointer)  # pointers[t − 1]: into position t
    final = end(score)  # (B, states): the score of ending in each state
    best = torch.stack(torch.unravel_index(final.flatten(1).argmax(-1), final.shape[1:]), -1)  # (B, 1 or 2)
    last = (lengths - 1).unsqueeze(-1)
    tags = torch.zeros(B, T, dtype=torch.long, device=emissions.device)
    state = best
    for t in range(T - 1, -1, -1):
        if t + 1 < T:  # before a sentence's last word, the state follows the back-pointers; from there on, best
            state = torch.where(t < last, _back(pointers[t], state), best)
        tags[:, t] = torch.where(t <= last[:, 0], state[:, -1], 0)
    return tags


def _back(pointer: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """The state at position t, given the state at t + 1 and the back-pointers into it."""
    if state.size(1) == 1:  # first order: pointer (B, K) → the best y_t for each y_{t+1}
        return pointer.gather(1, state)
    # second order: state (y_t, y_{t+1}), pointer (B, K, K) → the best y_{t−1}; the state at t is (y_{t−1}, y_t)
    # (a state whose y_t is BOS only ends a one-word sentence, where nothing follows the pointers: clamped)
    y_t = state[:, 0].clamp(max=pointer.size(1) - 1)
    earlier = pointer[torch.arange(len(state)), y_t, state[:, 1]]
    return torch.stack([earlier, y_t], -1)


def marginals(emissions: torch.Tensor, transitions: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """log p(y_i = k | the sentence) for every position, (B, T, K); log(1/K) on padding."""
    alphas, end = _forward(emissions, transitions, lengths)
    backward_step = _backward_recursion(transitions)
    B, T, K = emissions.shape
    lengths = lengths.to(emissions.device)
    shape = (B, *[1] * (transitions.dim() - 1))
    betas: list[torch.Tensor] = [torch.zeros_like(alphas[0])] * T
    for t in range(T - 1, -1, -1):
        at_end = end(torch.zeros_like(alphas[t]))  # the score of the transition to EOS from each state
        if t + 1 < T:
            inner = backward_step(betas[t + 1], emissions[:, t + 1])
            betas[t] = torch.where((t == lengths - 1).view(shape), at_end,
                                   torch.where((t < lengths - 1).view(shape), inner, at_end))
        else:
            betas[t] = at_end
    log_z = torch.logsumexp(end(alphas[-1]).flatten(1), -1)  # (B,): the frozen alphas end at each last word
    out = torch.stack([(alpha + beta) if alpha.dim() == 2 else torch.logsumexp(alpha + beta, 1)
                       for alpha, beta in zip(alphas, betas)], 1)  # (B, T, K)
    out = out - log_z.view(B, 1, 1)
    real = real_tokens(lengths, T, emissions.device)
    return torch.where(real.unsqueeze(-1), out, torch.full_like(out, -math.log(K)))


def log_partition(emissions: torch.Tensor, transitions: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """log Σ_y exp s(y) over every tag sequence of each sentence's length (the forward algorithm), (B,)."""
    alphas, end = _forward(emissions, transitions, lengths)
    return torch.logsumexp(end(alphas[-1]).flatten(1), -1)  # the frozen alphas end at each last word


def path_score(emissions: torch.Tensor, transitions: torch.Tensor, tags: torch.Tensor, lengths: torch.Tensor
               ) -> torch.Tensor:
    """s(tags) of each sentence, (B,); tags (B, T), whatever they hold past a sentence's end."""
    B, T, K = emissions.shape
    order = transitions.dim() - 1
    lengths = lengths.to(emissions.device)
    real = real_tokens(lengths, T)  # (B, T)
    tags = torch.where(real, tags, K)  # the boundary from each sentence's end on: EOS, then never scored
    emitted = emissions.gather(-1, tags.clamp(max=K - 1).unsqueeze(-1)).squeeze(-1)  # (B, T) E[i, y_i]
    history = torch.cat([tags.new_full((B, order), K), tags, tags.new_full((B, 1), K)], 1)  # BOS.. y_1..y_T EOS
    # the transition into position i (1..n+1) reads history[i−1 .. i−1+order] (as a flat index into A)
    flat = sum(history[:, m: m + T + 1] * (K + 1) ** (order - m) for m in range(order + 1))  # (B, T+1)
    into = transitions.flatten()[flat]
    scored = real_tokens(lengths + 1, T + 1)  # the transitions into y_1..y_n and EOS
    return torch.where(real, emitted, 0).sum(1) + torch.where(scored, into, 0).sum(1)


def _forward(emissions: torch.Tensor, transitions: torch.Tensor, lengths: torch.Tensor):
    """The forward algorithm's alphas, [α_1, ..., α_T] (a sentence's own stay frozen after its last word), and the
    order's `end` (its transition to EOS)."""
    step, start, end = _recursion(emissions, transitions)
    B, T = emissions.shape[:2]
    lengths = lengths.to(emissions.device)
    shape = (B, *[1] * (transitions.dim() - 1))
    alphas = [start(emissions[:, 0])]
    for t in range(1, T):
        new, _ = step(alphas[-1], emissions[:, t], reduce="logsumexp")
        alphas.append(torch.where((t < lengths).view(shape), new, alphas[-1]))
    return alphas, end


# --- the recursions of each order ------------------------------------------------------------------------------
def _recursion(emissions: torch.Tensor, transitions: torch.Tensor):
    """(step, start, end) of the chain's order: step(score, emission_t, reduce) → (new score, back-pointers);
    start(emission_1) → the score of each state after the first word; end(score) → with the transition to EOS."""
    K = emissions.size(-1)
    if transitions.shape == (K + 1, K + 1):
        A, from_bos, to_eos = transitions[:K, :K], transitions[K, :K], transitions[:K, K]

        def step(score, emission, reduce):  # score (B, K) over y_{t−1}
            candidates = score.unsqueeze(-1) + A  # (B, y_{t−1}, y_t)
            if reduce == "max":
                best, pointer = candidates.max(1)
                return best + emission, pointer
            return torch.logsumexp(candidates, 1) + emission, None

        return step, lambda emission: from_bos + emission, lambda score: score + to_eos
    if transitions.shape == (K + 1, K + 1, K + 1):
        # states (y_{t−1}, y_t), y_{t−1} ∈ tags ∪ {BOS}: (B, K+1, K); only BOS before the first word
        A, to_eos = transitions[:, :K, :K], transitions[:, :K, K]  # (K+1, K, K), (K+1, K)
        exp_A = A.exp()

        def step(score, emission, reduce):
            if reduce == "max":
                best, pointer = (score.unsqueeze(-1) + A).max(1)  # over y_{t−1}: (B, y_t, y_{t+1})
            else:
                best, pointer = _sum_over_previous(score, exp_A), None
            new = best + emission.unsqueeze(1)
            return torch.cat([new, torch.full_like(new[:, :1], -math.inf)], 1), pointer  # no BOS after a word

        def start(emission):
            score = torch.full((emission.size(0), K + 1, K), -math.inf, dtype=emission.dtype, device=emission.device)
            score[:, K] = transitions[K, K, :K] + emission
            return score

        return step, start, lambda score: score + to_eos
    raise ValueError(f"transitions of shape {tuple(transitions.shape)} fit neither order with {K} tags: "
                     f"(K+1, K+1) or (K+1, K+1, K+1)")


def _backward_recursion(transitions: torch.Tensor):
    """backward(beta_{t+1}, emission_{t+1}) → beta_t: the log-sum of every continuation from each state at t."""
    if transitions.dim() == 2:
        K = transitions.size(0) - 1
        A = transitions[:K, :K]
        return lambda beta, emission: torch.logsumexp(A + (emission + beta).unsqueeze(1), -1)  # (B, y_t)
    K = transitions.size(0) - 1
    exp_A = transitions[:, :K, :K].exp()  # (y_{t−1}, y_t, y_{t+1})

    def backward(beta, emission):  # beta (B, K+1, K) over (y_t, y_{t+1}); rows of y_t = BOS unused
        return _sum_over_next(beta[:, :K] + emission.unsqueeze(1), exp_A)  # (B, y_{t−1}, y_t)

    return backward



def _sum_over_previous(score: torch.Tensor, exp_transitions: torch.Tensor) -> torch.Tensor:
    """log Σ_{y_{t−1}} exp(score + A) for score (B, y_{t−1}, y_t): (B, y_t, y_{t+1}), a batched matrix product
    instead of a (B, K, K, K) tensor; shifted by the maximum first, so nothing overflows."""
    shift = score.amax(1, keepdim=True).clamp(min=-1e30)  # (B, 1, y_t); a column of −inf stays −inf
    return torch.einsum("bpc,pcn->bcn", (score - shift).exp(), exp_transitions).log() + shift.transpose(1, 2)


def _sum_over_next(after: torch.Tensor, exp_transitions: torch.Tensor) -> torch.Tensor:
    """log Σ_{y_{t+1}} exp(A + after) for after (B, y_t, y_{t+1}): (B, y_{t−1}, y_t), likewise."""
    shift = after.amax(2, keepdim=True).clamp(min=-1e30)  # (B, y_t, 1)
    return torch.einsum("bcn,pcn->bpc", (after - shift).exp(), exp_transitions).log() + shift.transpose(1, 2)
