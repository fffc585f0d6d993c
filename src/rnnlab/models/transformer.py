"""Transformer (Vaswani et al. 2017): self-attention in place of recurrence, for task=lm and task=translation.

    x_0     = dropout(√d · E x + P)                       token embedding, scaled, plus position t's P_t
                                                          (positional: sinusoidal, or learned, a table of max_length)
    layer   x = x + dropout(MultiHead(x, x, x))           self-attention: every position reads those it may see
            x = x + dropout(MultiHead(x, m, m))           cross-attention (translation's decoder): reads the source
            x = x + dropout(W_2 dropout(ReLU(W_1 x + b_1)) + b_2)      feed-forward, per position
    output  logits = W_o LayerNorm(x_L) + b_o             W_o = E when tie_weights

    MultiHead(q, k, v) = [head_1; …; head_h] W^O,   head_i = softmax(q W^Q_i (k W^K_i)ᵀ / √d_k + mask) v W^V_i

d = d_model, h = nhead, d_k = d / h. norm_first (pre-LN, the default): each sublayer reads LayerNorm(x) and a
last LayerNorm ends the stack; norm_first=false (post-LN, the paper's): x = LayerNorm(x + dropout(sublayer(x)))
and no last one. The masks give −∞ to what a position may not read: later positions (causal, in every decoder)
and source padding (in the encoder and in cross-attention). attention_dropout drops attention weights,
dropout the embeddings' sum, every sublayer's output and the feed-forward's hidden layer.

    task=lm           TransformerLM, decoder-only: causal self-attention over one BPTT window. Nothing carries
                      to the next window (the state it returns is None): a window longer than max_length is an
                      error, and the positions of every window count from 0.
    task=translation  TransformerSeq2Seq: an encoder (self-attention over the source) and a decoder (causal
                      self-attention, then cross-attention to the encoder's output m).

Incremental decoding (generate.py, every decoder of rnnlab/decoding.py). A new token's query reads the keys and
values of every earlier position, which do not change once computed: each layer keeps them (`KeyValues`), so a
step projects one position, not the whole prefix, and appends it. Cross-attention's keys and values come from the
source alone: computed once per sentence by `encode`, kept in `TransformerMemory`. Tested equal to the full
(teacher-forced) recomputation.

Built from torch's parts (nn.Linear, nn.LayerNorm, nn.Embedding, F.scaled_dot_product_attention), but not from
nn.MultiheadAttention or nn.TransformerEncoderLayer/DecoderLayer: those take the whole prefix as keys and values
and project all of it at every call, so an incremental decoder would pay O(t) projections per token, and they
cannot return a layer's projected keys and values to be kept. Our layer is tested equal to torch's (same weights).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.models.seq2seq import Seq2SeqOutput
from rnnlab.nn.padding import real_tokens

POSITIONAL = ("sinusoidal", "learned")


# --- what a decoder keeps between steps --------------------------------------------------------------------
@dataclass
class KeyValues:
    """One attention's projected keys and values, (B, H, S, d_k) each: a layer's past, or the source's."""

    keys: torch.Tensor
    values: torch.Tensor

    def extend(self, new: KeyValues) -> KeyValues:
        return KeyValues(torch.cat([self.keys, new.keys], dim=2), torch.cat([self.values, new.values], dim=2))

    def index_select(self, index: torch.Tensor) -> KeyValues:
        return KeyValues(self.keys.index_select(0, index), self.values.index_select(0, index))


@dataclass
class TokenCache:
    """The language model's state while writing (generation): the tokens read, and each layer's keys and values of
    them; empty to begin with (TransformerLM.generation_state)."""

    tokens: torch.Tensor | None = None  # (B, n), n ≤ max_length
    layers: list[KeyValues] | None = None

    @property
    def length(self) -> int:
        return 0 if self.tokens is None else self.tokens.size(1)


@dataclass
class DecoderCache:
    """The translation decoder's state from step to step: each layer's self-attention keys and values so far."""

    layers: list[KeyValues] | None = None
    length: int = 0  # target positions read: the next one's position

    def index_select(self, index: torch.Tensor) -> DecoderCache:
        """Sentences reordered or repeated (beam search)."""
        layers = None if self.layers is None else [layer.index_select(index) for layer in self.layers]
        return DecoderCache(layers, self.length)


@dataclass
class TransformerMemory:
    """The encoder's side of cross-attention: each decoder layer's keys and values of the source, and its mask."""

    layers: list[KeyValues]
    mask: torch.Tensor  # (B, S) True at real source tokens

    def index_select(self, index: torch.Tensor) -> TransformerMemory:
        """Sentences reordered or repeated (beam search: one copy per beam)."""
        return TransformerMemory([layer.index_select(index) for layer in self.layers], self.mask.index_select(0, index))


# --- layers ------------------------------------------------------------------------------------------------
class MultiHeadAttention(nn.Module):
    """MultiHead(q, k, v) of the module docstring; keys and values projected apart (`keys_values`) so they can be
    kept. A mask (bool, broadcast to (B, H, T, S)) is True where a query may read a key."""

    def __init__(self, d_model: int, nhead: int, dropout: float):
        super().__init__()
        self.nhead, self.dropout = nhead, dropout
        self.W_q, self.W_k, self.W_v, self.W_o = (nn.Linear(d_model, d_model) for _ in range(4))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d) → (B, H, T, d_k)."""
        return x.unflatten(-1, (self.nhead, -1)).transpose(1, 2)

    def keys_values(self, x: torch.Tensor) -> KeyValues:
        """k W^K, v W^V of (B, S, d), per head."""
        return KeyValues(self._heads(self.W_k(x)), self._heads(self.W_v(x)))

    def forward(self, x: torch.Tensor, memory: KeyValues, mask: torch.Tensor | None = None,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """queries x (B, T, d) read memory → (B, T, d), and the weights (B, H, T, S) when need_weights."""
        queries = self._heads(self.W_q(x))  # (B, H, T, d_k)
        dropout = self.dropout if self.training else 0.0
        weights = None
        if need_weights:  # scaled_dot_product_attention keeps its weights to itself: the same softmax, written out
            scores = queries @ memory.keys.transpose(-2, -1) / math.sqrt(queries.size(-1))  # (B, H, T, S)
            weights = scores.masked_fill(~mask, float("-inf")).softmax(-1) if mask is not None else scores.softmax(-1)
            context = F.dropout(weights, dropout) @ memory.values
        else:
            context = F.scaled_dot_product_attention(queries, memory.keys, memory.values, attn_mask=mask,
                                                     dropout_p=dropout)
        return self.W_o(context.transpose(1, 2).flatten(2)), weights  # heads concatenated: (B, T, d)


class TransformerLayer(nn.Module):
    """Self-attention, cross-attention (with_memory: translation's decoder), feed-forward; each a residual
    sublayer, its LayerNorm before (norm_first) or after the sum."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float, attention_dropout: float,
                 norm_first: bool, with_memory: bool = False):
        super().__init__()
        self.norm_first = norm_first
        self.self_attention = MultiHeadAttention(d_model, nhead, attention_dropout)
        self.self_norm = nn.LayerNorm(d_model)
        self.cross_attention = MultiHeadAttention(d_model, nhead, attention_dropout) if with_memory else None
        self.cross_norm = nn.LayerNorm(d_model) if with_memory else None
        self.feed_forward = nn.Sequential(nn.Linear(d_model, dim_feedforward), nn.ReLU(), nn.Dropout(dropout),
                                          nn.Linear(dim_feedforward, d_model))
        self.feed_forward_norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, past: KeyValues | None = None,
                memory: KeyValues | None = None, memory_mask: torch.Tensor | None = None, need_weights: bool = False
                ) -> tuple[torch.Tensor, KeyValues, torch.Tensor | None]:
        """x (B, T, d) → x (B, T, d); the self-attention keys and values of past and these T positions; the
        cross-attention weights (B, H, T, S) when need_weights."""
        h = self._sublayer_input(x, self.self_norm)
        present = self.self_attention.keys_values(h)
        if past is not None:
            present = past.extend(present)
        x = self._residual(x, self.self_attention(h, present, mask)[0], self.self_norm)
        weights = None
        if self.cross_attention is not None:
            context, weights = self.cross_attention(self._sublayer_input(x, self.cross_norm), memory, memory_mask,
                                                    need_weights)
            x = self._residual(x, context, self.cross_norm)
        x = self._residual(x, self.feed_forward(self._sublayer_input(x, self.feed_forward_norm)),
                           self.feed_forward_norm)
        return x, present, weights

    def _sublayer_input(self, x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
        return norm(x) if self.norm_first else x

    def _residual(self, x: torch.Tensor, update: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
        x = x + self.dropout(update)
        return x if self.norm_first else norm(x)


class TransformerStack(nn.Module):
    """num_layers layers, and (pre-LN) the LayerNorm that ends the stack."""

    def __init__(self, num_layers: int, d_model: int, nhead: int, dim_feedforward: int, dropout: float,
                 attention_dropout: float, norm_first: bool, with_memory: bool = False):
        super().__init__()
        self.layers = nn.ModuleList(TransformerLayer(d_model, nhead, dim_feedforward, dropout, attention_dropout,
                                                     norm_first, with_memory) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model) if norm_first else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, past: list[KeyValues] | None = None,
                memory: TransformerMemory | None = None, need_weights: bool = False
                ) -> tuple[torch.Tensor, list[KeyValues], torch.Tensor | None]:
        """x (B, T, d) → x (B, T, d), every layer's keys and values, the last layer's cross-attention (B, H, T, S)."""
        memory_mask = None if memory is None else memory.mask[:, None, None, :]  # (B, 1, 1, S)
        presents, weights = [], None
        for i, layer in enumerate(self.layers):
            last = i == len(self.layers) - 1
            x, present, weights = layer(x, mask, past[i] if past else None, memory.layers[i] if memory else None,
                                        memory_mask, need_weights and last)
            presents.append(present)
        return (self.norm(x) if self.norm is not None else x), presents, weights


class TokenEmbedding(nn.Module):
    """x_0 = dropout(√d · E x_t + P_{offset + t}): E initialised N(0, 1/d), so √d · E x starts at unit scale."""

    def __init__(self, vocab_size: int, d_model: int, max_length: int, positional: str, dropout: float):
        super().__init__()
        self.scale = math.sqrt(d_model)
        self.tokens = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.tokens.weight, std=d_model**-0.5)
        self.positions = None
        if positional == "learned":
            self.positions = nn.Embedding(max_length, d_model)
            nn.init.normal_(self.positions.weight, std=d_model**-0.5)
        else:  # a function of the position, not a weight: rebuilt, not saved
            self.register_buffer("sinusoid", sinusoid(max_length, d_model), persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """tokens (B, T) at positions offset .. offset + T − 1 → (B, T, d)."""
        table = self.positions.weight if self.positions is not None else self.sinusoid
        return self.dropout(self.tokens(tokens) * self.scale + table[offset: offset + tokens.size(1)])


def sinusoid(length: int, d_model: int) -> torch.Tensor:
    """P (length, d): P_{t, 2i} = sin(t / 10000^(2i/d)), P_{t, 2i+1} = cos(t / 10000^(2i/d))."""
    positions = torch.arange(length, dtype=torch.float32)[:, None]
    frequencies = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(positions * frequencies)
    table[:, 1::2] = torch.cos(positions * frequencies)[:, : d_model // 2]
    return table


def causal_mask(length: int, offset: int, device: torch.device) -> torch.Tensor:
    """(length, offset + length): query offset + t reads keys 0 .. offset + t."""
    keys = torch.arange(offset + length, device=device)
    return keys[None, :] <= offset + torch.arange(length, device=device)[:, None]


# --- task=lm -----------------------------------------------------------------------------------------------
class TransformerLM(nn.Module):
    """Decoder-only, causal: see the module docstring. `model.*` options; vocab_size comes from the data.

    num_encoder_layers and num_decoder_layers belong to translation: here they must stay null (num_layers counts
    the layers). max_length: the longest window; learned positions have this many.
    """

    def __init__(self, vocab_size: int, d_model: int = 256, nhead: int = 4, num_layers: int = 2,
                 num_encoder_layers: int | None = None, num_decoder_layers: int | None = None,
                 dim_feedforward: int = 1024, dropout: float = 0.1, attention_dropout: float = 0.0,
                 positional: str = "sinusoidal", norm_first: bool = True, tie_weights: bool = True,
                 max_length: int = 256):
        super().__init__()
        check_architecture(d_model=d_model, nhead=nhead, num_layers=num_layers, dim_feedforward=dim_feedforward,
                           dropout=dropout, attention_dropout=attention_dropout, positional=positional,
                           norm_first=norm_first, tie_weights=tie_weights, max_length=max_length)
        for key, value in (("num_encoder_layers", num_encoder_layers), ("num_decoder_layers", num_decoder_layers)):
            if value is not None:
                raise ConfigError(f"model.{key}={value} applies to task=translation only: task=lm stacks "
                                  f"model.num_layers decoder layers; set model.{key}=null")
        self.max_length = max_length
        self.embedding = TokenEmbedding(vocab_size, d_model, max_length, positional, dropout)
        self.decoder = TransformerStack(num_layers, d_model, nhead, dim_feedforward, dropout, attention_dropout,
                                        norm_first)
        self.output = nn.Linear(d_model, vocab_size)
        if tie_weights:
            self.output.weight = self.embedding.tokens.weight
        nn.init.zeros_(self.output.bias)

    def forward(self, tokens: torch.Tensor, state: TokenCache | None = None
                ) -> tuple[torch.Tensor, TokenCache | None]:
        """tokens (B, T) → logits (B, T, V), state.

        state None: one window alone, and None again (nothing carries to the next window). state a TokenCache
        (generation): these tokens continue the cached ones, and the cache grows by them (`_continue`)."""
        if state is not None:
            return self._continue(tokens, state)
        if tokens.size(1) > self.max_length:
            raise ConfigError(f"model.max_length={self.max_length} is shorter than the window of {tokens.size(1)} "
                              f"tokens (data.bptt): set model.max_length ≥ {tokens.size(1)} or data.bptt ≤ "
                              f"{self.max_length}")
        logits, _ = self._read(tokens, None)
        return logits, None

    def generation_state(self) -> TokenCache:
        """The state to write from (rnnlab.generation): an empty cache, so each new token costs one position."""
        return TokenCache()

    def _read(self, tokens: torch.Tensor, past: TokenCache | None) -> tuple[torch.Tensor, list[KeyValues]]:
        """tokens after the past's (B, T) → logits (B, T, V), every layer's keys and values of past and tokens."""
        offset = 0 if past is None else past.length
        mask = causal_mask(tokens.size(1), offset, tokens.device) if tokens.size(1) > 1 else None
        x, layers, _ = self.decoder(self.embedding(tokens, offset), mask, None if past is None else past.layers)
        return self.output(x), layers

    def _continue(self, tokens: torch.Tensor, cache: TokenCache) -> tuple[torch.Tensor, TokenCache]:
        """Read tokens after the cached ones, sliding the window when it is full: past max_length positions the
        last max_length // 2 tokens are read again from position 0 (their logits unused), so that every token
        still sees at least that many before it, at positions the model was trained on."""
        logits = []
        while tokens.size(1):
            if cache.length == self.max_length:
                kept = cache.tokens[:, cache.length - self.max_length // 2:]
                cache = TokenCache(kept, self._read(kept, None)[1]) if kept.size(1) else TokenCache()
            chunk, tokens = tokens[:, : self.max_length - cache.length], tokens[:, self.max_length - cache.length:]
            chunk_logits, layers = self._read(chunk, cache)
            read = chunk if cache.tokens is None else torch.cat([cache.tokens, chunk], dim=1)
            cache = TokenCache(read, layers)
            logits.append(chunk_logits)
        return torch.cat(logits, dim=1), cache


# --- task=translation --------------------------------------------------------------------------------------
class TransformerSeq2Seq(nn.Module):
    """Encoder–decoder: see the module docstring. Sizes and special ids come from the data; the rest are `model.*`.

    num_encoder_layers, num_decoder_layers: each stack's depth (null = num_layers). max_length: the longest source
    and the longest target (decoders stop a hypothesis there); learned positions have this many.
    tie_weights: the target embedding is the output layer (W_o = E_tgt).
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, pad_id: int, bos_id: int, eos_id: int,
                 d_model: int = 256, nhead: int = 4, num_layers: int = 2, num_encoder_layers: int | None = None,
                 num_decoder_layers: int | None = None, dim_feedforward: int = 1024, dropout: float = 0.1,
                 attention_dropout: float = 0.0, positional: str = "sinusoidal", norm_first: bool = True,
                 tie_weights: bool = True, max_length: int = 256):
        super().__init__()
        num_encoder_layers = num_layers if num_encoder_layers is None else num_encoder_layers
        num_decoder_layers = num_layers if num_decoder_layers is None else num_decoder_layers
        check_architecture(d_model=d_model, nhead=nhead, num_layers=num_layers, dim_feedforward=dim_feedforward,
                           dropout=dropout, attention_dropout=attention_dropout, positional=positional,
                           norm_first=norm_first, tie_weights=tie_weights, max_length=max_length,
                           num_encoder_layers=num_encoder_layers, num_decoder_layers=num_decoder_layers)
        for key, value in (("pad_id", pad_id), ("bos_id", bos_id), ("eos_id", eos_id)):
            if not 0 <= value < tgt_vocab_size:
                raise ConfigError(f"{key}={value} is outside the target vocabulary (size {tgt_vocab_size}); "
                                  "check the data's special tokens")
        self.pad_id, self.bos_id, self.eos_id, self.max_length = pad_id, bos_id, eos_id, max_length
        sizes = dict(d_model=d_model, nhead=nhead, dim_feedforward=dim_feedforward, dropout=dropout,
                     attention_dropout=attention_dropout, norm_first=norm_first)
        self.src_embedding = TokenEmbedding(src_vocab_size, d_model, max_length, positional, dropout)
        self.tgt_embedding = TokenEmbedding(tgt_vocab_size, d_model, max_length, positional, dropout)
        self.encoder = TransformerStack(num_encoder_layers, **sizes)
        self.decoder = TransformerStack(num_decoder_layers, **sizes, with_memory=True)
        self.output = nn.Linear(d_model, tgt_vocab_size)
        if tie_weights:
            self.output.weight = self.tgt_embedding.tokens.weight
        nn.init.zeros_(self.output.bias)

    @property
    def attention(self) -> MultiHeadAttention:
        """The attention the translation task draws (its heatmaps): the last decoder layer's cross-attention, its
        weights averaged over the heads."""
        return self.decoder.layers[-1].cross_attention

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[TransformerMemory, DecoderCache]:
        """src (B, S) padded, src_lengths (B,) ≥ 1 → every decoder layer's keys and values of the encoder's output,
        and the decoder's empty cache."""
        self._check_length(src.size(1), "source")
        mask = real_tokens(src_lengths, src.size(1), src.device)  # (B, S)
        states, _, _ = self.encoder(self.src_embedding(src), mask[:, None, None, :])  # (B, S, d)
        layers = [layer.cross_attention.keys_values(states) for layer in self.decoder.layers]
        return TransformerMemory(layers, mask), DecoderCache()

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor) -> Seq2SeqOutput:
        """Teacher-forced: src (B, S), src_lengths (B,), tgt_in (B, T) = [bos, y_1 .. y_{T-1}] → logits (B, T, V)
        for y_1 .. y_T and the last layer's cross-attention (B, T, S), averaged over heads."""
        memory, cache = self.encode(src, src_lengths)
        self._check_length(tgt_in.size(1), "target")
        logits, _, weights = self._decode(tgt_in, memory, cache)
        return Seq2SeqOutput(logits, weights)

    def step(self, prev_tokens: torch.Tensor, state: DecoderCache, memory: TransformerMemory
             ) -> tuple[torch.Tensor, DecoderCache, torch.Tensor]:
        """One decoder step: y_{t-1} (B,) → logits (B, V), the cache one position longer, a_t (B, S)."""
        logits, layers, weights = self._decode(prev_tokens[:, None], memory, state)
        return logits[:, 0], DecoderCache(layers, state.length + 1), weights[:, 0]

    def _decode(self, tgt_in: torch.Tensor, memory: TransformerMemory, cache: DecoderCache
                ) -> tuple[torch.Tensor, list[KeyValues], torch.Tensor]:
        T = tgt_in.size(1)
        mask = causal_mask(T, cache.length, tgt_in.device) if T > 1 else None
        x, layers, weights = self.decoder(self.tgt_embedding(tgt_in, cache.length), mask, cache.layers, memory,
                                          need_weights=True)
        return self.output(x), layers, weights.mean(dim=1)  # heads averaged: (B, T, S)

    def _check_length(self, length: int, side: str) -> None:
        if length > self.max_length:
            raise ConfigError(f"a {side} sentence of {length} tokens is longer than model.max_length="
                              f"{self.max_length}: set model.max_length ≥ {length} (or leave such pairs out of "
                              f"the data)")


# --- options -----------------------------------------------------------------------------------------------
def check_architecture(*, d_model, nhead, num_layers, dim_feedforward, dropout, attention_dropout, positional,
                       norm_first, tie_weights, max_length, **layers) -> None:
    """Raise ConfigError naming the first invalid `model.*` value (layers: num_encoder_layers, num_decoder_layers)."""
    counts = dict(d_model=d_model, nhead=nhead, num_layers=num_layers, dim_feedforward=dim_feedforward,
                  max_length=max_length, **layers)
    for key, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"model.{key}={value} is invalid: must be a positive integer")
    if d_model % nhead:
        nearest_nhead = min((h for h in range(1, d_model + 1) if d_model % h == 0), key=lambda h: (abs(h - nhead), -h))
        nearest_d_model = max(round(d_model / nhead), 1) * nhead
        raise ConfigError(f"model.d_model={d_model} is not divisible by model.nhead={nhead}: each head gets "
                          f"d_model / nhead dimensions; choose e.g. model.nhead={nearest_nhead} or "
                          f"model.d_model={nearest_d_model}")
    for key, value in (("dropout", dropout), ("attention_dropout", attention_dropout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ConfigError(f"model.{key}={value} is invalid: must be in [0, 1)")
    if positional not in POSITIONAL:
        raise ConfigError(f"model.positional={positional!r} is invalid: choose one of {', '.join(POSITIONAL)}")
    for key, value in (("norm_first", norm_first), ("tie_weights", tie_weights)):
        if not isinstance(value, bool):
            raise ConfigError(f"model.{key}={value} is invalid: must be true or false")
