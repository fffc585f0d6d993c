"""Count-based n-gram language models: interpolated Kneser–Ney (Chen & Goodman 1998) and add-k.

The order n counts the tokens of an n-gram: w_t is predicted from the n − 1 tokens before it, so the
model is a Markov chain of order n − 1 (order 1 = unigram, order 2 = bigram = the first-order chain).

Interpolated modified Kneser–Ney (the default). With h a context of m − 1 tokens and h' its last
m − 2 tokens, for m = n, n − 1, …, 1:

    p_m(w | h) = max(c_m(hw) − D_m(c_m(hw)), 0) / c_m(h·) + γ_m(h) · p_{m−1}(w | h')    if c_m(h·) > 0
    p_m(w | h) = p_{m−1}(w | h')                                                        if c_m(h·) = 0
    γ_m(h)     = [D_m,1 · N_1(h·) + D_m,2 · N_2(h·) + D_m,3+ · N_3+(h·)] / c_m(h·)
    p_0(w)     = 1 / V

- c_m is the raw count at the highest order (m = n) and the continuation count below it:
  c_m(hw) = N_1+(·hw) = |{v : c(vhw) > 0}|, the number of distinct tokens seen before hw.
  c_m(h·) = Σ_w c_m(hw), and N_k(h·) = |{w : c_m(hw) = k}| (N_3+: ≥ 3).
- Three discounts per order, from that order's counts-of-counts n_k = |{hw : c_m(hw) = k}|:
      Y = n_1 / (n_1 + 2 n_2),  D_m,1 = 1 − 2Y n_2/n_1,  D_m,2 = 2 − 3Y n_3/n_2,  D_m,3+ = 3 − 4Y n_4/n_3.
  On tiny or odd corpora an estimate can fall outside (0, k] (or be 0/0); that D_m,k is then replaced
  by Y (the single-discount estimate), or by 1/2 where Y is not in (0, 1]. `discount=d` instead
  gives plain interpolated Kneser–Ney: one discount d ∈ (0, 1] for every order and count.
- Exact normalisation: 0 < D_m,k ≤ k ≤ c, so the max never clips and Σ_w of the first term is
  1 − γ_m(h); by induction from the uniform p_0, p_m(·|h) sums to 1 over the whole vocabulary for
  every context, seen or not. p_0 also makes every vocabulary entry possible, even one never seen in
  training (a token absent from the training text, or `<unk>` at char level).
- A context never seen (c_m(h·) = 0) passes the lower order through unchanged (γ = 1).

Add-k (`smoothing="add_k"`), with backoff for unseen contexts: for the longest context h of at most
n − 1 tokens with c(h·) > 0 (raw counts at every order),

    p(w | h) = (c(hw) + k) / (c(h·) + k·V),

and the uniform 1/V if even the unigram count c(·) is 0 (nothing fitted).

Streams. `fit` and `nll` take one stream (N,) or a matrix (B, L) of B independent rows, as
`streams.batchify` cuts a split: n-grams are counted, and contexts read, inside a row only. `nll`
scores tokens[..., 1:], exactly the targets the RNN is scored on when BPTTWindows reads the same
matrix; the first n − 2 targets of a row use the longest context the row holds (the missing
context is "unseen", so the equations above fall through to the shorter one). Perplexity is
exp(mean NLL) over those targets.

Design. Each n-gram gets an integer id level by level: the m-gram ending at position t is the
(m − 1)-gram ending at t − 1 followed by w_t, so its key is id_{m−1}(t − 1) · V + w_t (an int64 for
any order, since ids are < N), and `np.unique` over all keys of a level gives the sorted key table,
the ids and the counts in one vectorised pass. The continuation count of an m-gram is the number
of (m + 1)-gram types whose suffix (the m-gram ending at the same position) it is: one `bincount`.
Per level the model keeps the sorted keys, each m-gram's count, and per context its total c_m(h·)
and discounted mass; scoring looks every level's ids up with `searchsorted` and applies the
equations above to all positions at once. Memory and time are O(n · N log N) for N training tokens.

As a language model. `next_token_distributions` gives the whole p(· | x_≤t) at every position of rows at
once, level by level as p_m = backoff · p_{m−1} + own (`_weights`: own is non-zero on the seen n-grams only,
so it is worked out once per distinct context). `NGramLanguageModel` puts that behind the recurrent models'
`forward(tokens, state) → (logits, state)`, so that task=lm counts, scores and samples it like an RNN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from rnnlab.errors import ConfigError

SMOOTHINGS = ("kneser_ney", "add_k")


def estimate_discounts(counts: np.ndarray) -> np.ndarray:
    """(D_1, D_2, D_3+) of Chen & Goodman from the counts-of-counts of one order's counts."""
    n1, n2, n3, n4 = (np.count_nonzero(counts == k) for k in (1, 2, 3, 4))
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.float64(n1) / (n1 + 2 * n2)
        discounts = np.array([1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3])
    fallback = y if 0 < y <= 1 else 0.5
    usable = np.isfinite(discounts) & (discounts > 0) & (discounts <= np.array([1, 2, 3]))
    return np.where(usable, discounts, fallback)


def _lookup(table: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Index of each key in the sorted table, or −1 where it is absent (or the key is negative)."""
    if len(table) == 0:
        return np.full(keys.shape, -1, dtype=np.int64)
    position = np.searchsorted(table, keys).clip(max=len(table) - 1)
    return np.where((table[position] == keys) & (keys >= 0), position, -1)


class NGramLM:
    """An n-gram LM over token ids 0..V−1 (see the module docstring for the equations)."""

    def __init__(self, vocab_size: int, order: int = 3, smoothing: str = "kneser_ney", discount: float | None = None,
                 k: float = 1.0):
        if not isinstance(vocab_size, int) or vocab_size < 1:
            raise ConfigError(f"vocab_size={vocab_size} is invalid: must be a positive integer")
        if not isinstance(order, int) or isinstance(order, bool) or order < 1:
            raise ConfigError(f"model.order={order} is invalid: must be a positive integer (1 = unigram, "
                              f"2 = bigram, ...)")
        if smoothing not in SMOOTHINGS:
            raise ConfigError(f"model.smoothing={smoothing!r} is invalid: choose one of {', '.join(SMOOTHINGS)}")
        if discount is not None and not 0 < discount <= 1:
            raise ConfigError(f"model.discount={discount} is invalid: must be in (0, 1], or null to estimate "
                              f"three discounts per order from the counts")
        if not k > 0:
            raise ConfigError(f"model.k={k} is invalid: must be > 0")
        self.vocab_size, self.order, self.smoothing = vocab_size, order, smoothing
        self.discount, self.k = discount, k
        # per level m = 1..n (index 0 unused): sorted keys (context id · V + w), each m-gram's count,
        # and per context (an (m−1)-gram id; the one empty context at m = 1) c_m(h·) and Σ_w D(c_m(hw))
        self.keys: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []
        self.context_total: list[np.ndarray] = []
        self.backoff_mass: list[np.ndarray] = []
        self.discounts: list[np.ndarray] = []  # per level (D_1, D_2, D_3+); Kneser–Ney only
        self.fitted = False

    # --- counting -----------------------------------------------------------------------------
    def fit(self, tokens: torch.Tensor | np.ndarray | Sequence[int]) -> NGramLM:
        """Count n-grams of one stream (N,) or of independent rows (B, L)."""
        rows = self._rows(tokens)
        V, n = self.vocab_size, self.order
        flat = rows.reshape(-1)
        column = np.tile(np.arange(rows.shape[1]), rows.shape[0])
        raw: list[np.ndarray] = [np.zeros(0)]
        continuation: list[np.ndarray] = [np.zeros(0)] * (n + 1)
        self.keys = [np.zeros(1, dtype=np.int64)]  # level 0: the empty context, id 0
        previous_ids = np.zeros(len(flat), dtype=np.int64)  # id of the (m−1)-gram ending at each position
        for m in range(1, n + 1):
            valid = column >= m - 1  # the m-gram ending here lies inside its row
            context = previous_ids if m == 1 else np.concatenate([[-1], previous_ids[:-1]])
            positions = np.flatnonzero(valid)
            keys, first, inverse = np.unique(context[positions] * V + flat[positions], return_index=True,
                                             return_inverse=True)
            ids = np.full(len(flat), -1, dtype=np.int64)
            ids[positions] = inverse
            raw.append(np.bincount(inverse, minlength=len(keys)).astype(np.float64))
            if m > 1:  # N_1+(·g) of each (m−1)-gram g: the m-gram types ending in g
                suffixes = previous_ids[positions[first]]
                continuation[m - 1] = np.bincount(suffixes, minlength=len(self.keys[m - 1])).astype(np.float64)
            self.keys.append(keys)
            previous_ids = ids

        self.counts, self.context_total, self.backoff_mass = [np.zeros(0)], [np.zeros(0)], [np.zeros(0)]
        self.discounts = [np.zeros(3)]
        for m in range(1, n + 1):
            counts = raw[m] if self.smoothing == "add_k" or m == n else continuation[m]
            contexts = self.keys[m] // V
            if self.smoothing == "kneser_ney":
                self.discounts.append(estimate_discounts(counts) if self.discount is None
                                      else np.full(3, float(self.discount)))
            else:
                self.discounts.append(np.zeros(3))
            self.counts.append(counts)
            self.context_total.append(np.bincount(contexts, weights=counts, minlength=len(self.keys[m - 1])))
            self.backoff_mass.append(np.bincount(contexts, weights=self._discount(m, counts),
                                                 minlength=len(self.keys[m - 1])))
        self.fitted = True
        return self

    def _discount(self, m: int, counts: np.ndarray) -> np.ndarray:
        """D_m(c): D_m,1 for c = 1, D_m,2 for c = 2, D_m,3+ for c ≥ 3, 0 for c = 0."""
        index = np.minimum(counts, 3).astype(np.int64)
        return np.concatenate([[0.0], self.discounts[m]])[index]

    def _interpolate(self, m: int, counts: np.ndarray, total: np.ndarray, mass: np.ndarray,
                     lower: np.ndarray) -> np.ndarray:
        """p_m(w | h) for contexts seen at level m (total = c_m(h·) > 0), given p_{m−1}(w | h')."""
        own, backoff = self._weights(m, counts, total, mass)
        return own + backoff * (lower if self.smoothing == "kneser_ney" else 1.0 / self.vocab_size)

    def _weights(self, m: int, counts: np.ndarray | float, total: np.ndarray,
                 mass: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """p_m(w | h) = own + backoff · (p_{m−1}(w | h') for Kneser–Ney, 1/V for add-k): (own, backoff).

        own, the share of c_m(hw), is 0 where that count is 0 (so only seen n-grams need it):
            Kneser–Ney  own = max(c_m(hw) − D_m(c_m(hw)), 0) / c_m(h·),  backoff = γ_m(h)
            add-k       own = c(hw) / (c(h·) + k·V),                     backoff = k·V / (c(h·) + k·V)
        """
        if self.smoothing == "add_k":
            denominator = total + self.k * self.vocab_size
            return counts / denominator, self.k * self.vocab_size / denominator
        return np.maximum(counts - self._discount(m, np.asarray(counts)), 0) / total, mass / total

    # --- scoring ------------------------------------------------------------------------------
    def nll(self, tokens: torch.Tensor | np.ndarray | Sequence[int]) -> np.ndarray:
        """−log p of tokens[..., 1:] given the tokens before each in its row: (N − 1,) or (B, L − 1)."""
        self._check_fitted()
        one_stream = np.ndim(tokens.cpu() if isinstance(tokens, torch.Tensor) else tokens) == 1
        rows = self._rows(tokens)
        B, L = rows.shape
        V = self.vocab_size
        flat = rows.reshape(-1)
        column = np.tile(np.arange(L), B)
        target = column >= 1
        p = np.full(np.count_nonzero(target), 1.0 / V)  # p_0
        previous_ids = np.zeros(len(flat), dtype=np.int64)
        for m in range(1, self.order + 1):
            context = previous_ids if m == 1 else np.concatenate([[-1], previous_ids[:-1]])
            context = np.where(column >= m - 1, context, -1)  # a context reaching into the previous row: unseen
            ids = _lookup(self.keys[m], np.where(context >= 0, context * V + flat, -1))
            h, g = context[target], ids[target]
            total = np.where(h >= 0, self.context_total[m][h.clip(min=0)], 0.0)
            seen = total > 0
            counts = np.where(g >= 0, self.counts[m][g.clip(min=0)], 0.0)[seen]
            p[seen] = self._interpolate(m, counts, total[seen], self.backoff_mass[m][h[seen]], p[seen])
            previous_ids = ids
        nll = -np.log(p).reshape(B, L - 1)
        return nll[0] if one_stream else nll

    def perplexity(self, tokens: torch.Tensor | np.ndarray | Sequence[int]) -> float:
        """exp(mean NLL) over tokens[..., 1:], the same targets a language model is scored on."""
        return float(np.exp(self.nll(tokens).mean()))

    def distribution(self, context: Sequence[int] | np.ndarray | torch.Tensor) -> np.ndarray:
        """p(· | context) over the whole vocabulary, (V,); only the last n − 1 tokens of context matter."""
        self._check_fitted()
        context = [int(t) for t in (context.tolist() if hasattr(context, "tolist") else context)]
        V = self.vocab_size
        p = np.full(V, 1.0 / V)
        for m in range(1, self.order + 1):
            if m - 1 > len(context):
                break
            h = self._id(context[len(context) - (m - 1):])
            if h < 0 or self.context_total[m][h] == 0:
                continue
            lo, hi = np.searchsorted(self.keys[m], [h * V, (h + 1) * V])
            counts = np.zeros(V)
            counts[self.keys[m][lo:hi] - h * V] = self.counts[m][lo:hi]
            p = self._interpolate(m, counts, self.context_total[m][h], self.backoff_mass[m][h], p)
        return p

    def next_token_distributions(self, tokens: torch.Tensor | np.ndarray | Sequence[int], first: int = 0) -> np.ndarray:
        """p(· | its row up to and including column t) for each column t ≥ first of rows (B, L): (B, L − first, V).

        `distribution` for every position at once (what a language model's logits hold); as in `nll`, a
        context never reaches before column 0 of its row.
        """
        self._check_fitted()
        rows = self._rows(tokens)
        B, L = rows.shape
        V = self.vocab_size
        flat = rows.reshape(-1)
        column = np.tile(np.arange(L), B)
        wanted = column >= first
        p = np.full((np.count_nonzero(wanted), V), 1.0 / V)  # p_0
        grams = np.zeros(len(flat), dtype=np.int64)  # id of the (m−1)-gram ending at each position: the context
        for m in range(1, self.order + 1):
            h = grams[wanted]
            total = np.where(h >= 0, self.context_total[m][h.clip(min=0)], 0.0)
            seen = np.flatnonzero(total > 0)
            if len(seen):
                # p = backoff · lower + own, where own is non-zero on the m-grams h·w seen in training only: the
                # keys in [h·V, (h + 1)·V). Worked out once per distinct context (the unigram level has one).
                contexts, context_of_position = np.unique(h[seen], return_inverse=True)
                total_c, mass_c = self.context_total[m][contexts], self.backoff_mass[m][contexts]
                lo, hi = np.searchsorted(self.keys[m], contexts * V), np.searchsorted(self.keys[m], (contexts + 1) * V)
                lengths = hi - lo
                context_of = np.repeat(np.arange(len(contexts)), lengths)
                entry = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths - lo, lengths)
                own_seen, _ = self._weights(m, self.counts[m][entry], total_c[context_of], mass_c[context_of])
                own = np.zeros((len(contexts), V))
                own[context_of, self.keys[m][entry] - contexts[context_of] * V] = own_seen
                _, backoff = self._weights(m, 0.0, total_c, mass_c)
                lower = p[seen] if self.smoothing == "kneser_ney" else 1.0 / V
                p[seen] = backoff[context_of_position, None] * lower + own[context_of_position]
            if m < self.order:  # the m-gram ending at t: the (m−1)-gram ending at t − 1, then w_t
                context = grams if m == 1 else np.concatenate([[-1], grams[:-1]])
                context = np.where(column >= m - 1, context, -1)
                grams = _lookup(self.keys[m], np.where(context >= 0, context * V + flat, -1))
        return p.reshape(B, L - first, V)

    def log_prob(self, context: Sequence[int] | np.ndarray | torch.Tensor, next_id: int) -> float:
        """log p(next_id | context)."""
        return float(np.log(self.distribution(context)[next_id]))

    def sample(self, context: Sequence[int] = (), num_tokens: int = 100, seed: int | None = None,
               temperature: float = 1.0) -> list[int]:
        """num_tokens ids drawn one by one from p(· | context so far)^(1/temperature), renormalised."""
        if not temperature > 0:
            raise ConfigError(f"temperature={temperature} is invalid: must be > 0")
        rng = np.random.default_rng(seed)
        history, drawn = list(context), []
        for _ in range(num_tokens):
            p = self.distribution(history[-(self.order - 1):] if self.order > 1 else [])
            if temperature != 1.0:
                p = np.exp((np.log(p) - np.log(p).max()) / temperature)
                p /= p.sum()
            token = int(rng.choice(self.vocab_size, p=p))
            history.append(token)
            drawn.append(token)
        return drawn

    # --- helpers ------------------------------------------------------------------------------
    def _id(self, ngram: Sequence[int]) -> int:
        """Id of an m-gram (m = len(ngram)) among the training m-grams, −1 if never seen; 0 for ()."""
        h = 0
        for m, w in enumerate(ngram, start=1):
            h = int(_lookup(self.keys[m], np.array([h * self.vocab_size + w]))[0])
            if h < 0:
                return -1
        return h

    def _rows(self, tokens: torch.Tensor | np.ndarray | Sequence[int]) -> np.ndarray:
        rows = np.asarray(tokens.cpu() if isinstance(tokens, torch.Tensor) else tokens, dtype=np.int64)
        if rows.ndim == 1:
            rows = rows[None, :]
        if rows.ndim != 2:
            raise ValueError(f"tokens must be one stream (N,) or rows (B, L), got shape {rows.shape}")
        if rows.size and (rows.min() < 0 or rows.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got {rows.min()}..{rows.max()}")
        return rows

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError("NGramLM.fit(tokens) must come before scoring or sampling")


class NGramLanguageModel(nn.Module):
    """An NGramLM behind the recurrent language model's interface, so that task=lm scores and samples it unchanged.

        forward(tokens (B, T), state) → logits (B, T, V), state      logits_t = log p(· | x_≤t)

    softmax(log p) = p, so the task's cross-entropy is exactly −log p(x_{t+1} | x_≤t). The state is the last
    n − 2 tokens read: all the next window's first contexts need (its "hidden state"). No parameters: `fit`
    counts, and before it every token is equally likely (p_0 = 1/V). The counts travel in the state_dict.
    """

    def __init__(self, vocab_size: int, order: int = 5, smoothing: str = "kneser_ney", discount: float | None = None,
                 k: float = 1.0):
        super().__init__()
        self.ngram = NGramLM(vocab_size, order, smoothing, discount, k)

    def fit(self, tokens: torch.Tensor) -> NGramLanguageModel:
        """Count the n-grams of one stream (N,) or of independent rows (B, L)."""
        self.ngram.fit(tokens)
        return self

    def forward(self, tokens: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        context = tokens if state is None else torch.cat([state, tokens], dim=1)  # (B, S + T)
        first = context.size(1) - tokens.size(1)
        if self.ngram.fitted:
            p = torch.from_numpy(self.ngram.next_token_distributions(context.cpu(), first))
            logits = p.log().float().to(tokens.device)
        else:
            logits = tokens.new_zeros(*tokens.shape, self.ngram.vocab_size, dtype=torch.float)
        return logits, context[:, max(context.size(1) - (self.ngram.order - 2), 0):]

    # the counts are this model's weights: a checkpoint's state_dict carries them (as tensors, so that
    # torch.load(weights_only=True) reads it)
    _TABLES = ("keys", "counts", "context_total", "backoff_mass", "discounts")

    def get_extra_state(self) -> dict:
        tables = {name: [torch.from_numpy(table) for table in getattr(self.ngram, name)] for name in self._TABLES}
        return {"fitted": self.ngram.fitted, **tables}

    def set_extra_state(self, state: dict) -> None:
        for name in self._TABLES:
            setattr(self.ngram, name, [table.numpy() for table in state[name]])
        self.ngram.fitted = state["fitted"]
