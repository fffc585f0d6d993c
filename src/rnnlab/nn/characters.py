"""A word's vector from its characters, so that a word the vocabulary lacks is still read by its spelling (an unseen
"-ly" word is an adverb, a capitalised one a name): the taggers' `model.char_features`.

    cnn:   c_w = max_j tanh(W · [e_{j−k+1}; …; e_j] + b)          a convolution of width k over the character
                                                                  embeddings e_1..e_n, max-pooled over its windows
                                                                  (Ma & Hovy 2016; Kim et al. 2016)
    lstm:  c_w = [→h_n; ←h_1]                                     the final states of a bidirectional LSTM over
                                                                  e_1..e_n (Lample et al. 2016)

Both read words as character ids (N, L), right-padded with PAD (0), and give (N, output_size). Padding never
changes a vector: the padding character embeds to zeros (the convolution's own zero padding), the windows that hold
no character of the word are left out of the maximum, and the LSTM is packed by each word's length.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from rnnlab.nn.padding import real_tokens

PAD = 0  # the padding character's id (the data's character vocabulary puts it first)
KINDS = ("none", "cnn", "lstm")


class CharCNN(nn.Module):
    def __init__(self, num_chars: int, char_dim: int, char_hidden: int, kernel: int):
        super().__init__()
        self.embedding = nn.Embedding(num_chars, char_dim, padding_idx=PAD)
        # a wide convolution (k − 1 zeros each side): every character, the first and the last too, is at every
        # place of some window, so a one-character word and k-character endings are read whatever k is
        self.conv = nn.Conv1d(char_dim, char_hidden, kernel, padding=kernel - 1)
        self.kernel, self.output_size = kernel, char_hidden

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        lengths = (chars != PAD).sum(1).clamp(min=1)  # (N,)
        windows = self.conv(self.embedding(chars).transpose(1, 2))  # (N, H, L + k − 1); window j ends at char j
        # window j covers characters j − k + 1 .. j: those up to n + k − 2 hold one of the word's n characters
        holds_the_word = torch.arange(windows.size(-1), device=chars.device) < (lengths + self.kernel - 1)[:, None]
        return torch.tanh(windows.masked_fill(~holds_the_word[:, None, :], -torch.inf).amax(-1))  # (N, H)


class CharBiLSTM(nn.Module):
    def __init__(self, num_chars: int, char_dim: int, char_hidden: int):
        super().__init__()
        self.embedding = nn.Embedding(num_chars, char_dim, padding_idx=PAD)
        self.lstm = nn.LSTM(char_dim, char_hidden, batch_first=True, bidirectional=True)
        self.output_size = 2 * char_hidden

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        lengths = (chars != PAD).sum(1).clamp(min=1)  # (N,)
        packed = pack_padded_sequence(self.embedding(chars), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (final, _) = self.lstm(packed)  # (2, N, H): →h_n, ←h_1
        return torch.cat([final[0], final[1]], -1)  # (N, 2H)


def char_encoder(kind: str, num_chars: int, char_dim: int, char_hidden: int, kernel: int) -> nn.Module | None:
    """The encoder `kind` names (None for "none")."""
    if kind == "cnn":
        return CharCNN(num_chars, char_dim, char_hidden, kernel)
    if kind == "lstm":
        return CharBiLSTM(num_chars, char_dim, char_hidden)
    if kind == "none":
        return None
    raise ValueError(f"char encoder {kind!r}: one of {', '.join(KINDS)}")


def word_char_vectors(encoder: nn.Module, chars: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """chars (B, T, L) of sentences of `lengths` words → (B, T, D), each real word's vector, zeros on padding
    (padding words are never encoded)."""
    B, T, _ = chars.shape
    real = real_tokens(lengths, T, chars.device)  # (B, T)
    vectors = encoder(chars[real])  # (N, D): the sentences' N words, in order
    out = vectors.new_zeros(B, T, vectors.size(-1))
    out[real] = vectors
    return out
