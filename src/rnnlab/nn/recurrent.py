"""The recurrent stack behind every task: `model.cell` = rnn | lstm | gru.

For now these are torch's fused modules (cuDNN / oneDNN kernels); all run batch-first:
inputs (B, T, I) → outputs (B, T, D·H) and final state (L·D, B, H), D = 2 if bidirectional.

    rnn   h_t = σ(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),  σ = tanh | relu   (Elman)
    lstm  state (h_t, C_t): input/forget/output gates and a cell state
    gru   update and reset gates
"""

from __future__ import annotations

import torch
from torch import nn

CELLS = ("rnn", "lstm", "gru")
NONLINEARITIES = ("tanh", "relu")

# An LSTM carries (h, C); the others carry h alone.
RecurrentState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def recurrent_layer(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                    dropout: float = 0.0, bidirectional: bool = False,
                    nonlinearity: str = "tanh") -> nn.RNNBase:
    """A batch-first multi-layer recurrent module; `dropout` applies between layers."""
    if cell not in CELLS:
        raise ValueError(f"cell={cell!r} is not one of {', '.join(CELLS)}")
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity={nonlinearity!r} is not one of {', '.join(NONLINEARITIES)}")
    kwargs = dict(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
                  # torch warns on inter-layer dropout with one layer: there is no "between"
                  dropout=dropout if num_layers > 1 else 0.0,
                  bidirectional=bidirectional, batch_first=True)
    if cell == "rnn":
        return nn.RNN(nonlinearity=nonlinearity, **kwargs)
    return nn.LSTM(**kwargs) if cell == "lstm" else nn.GRU(**kwargs)


def detach_state(state: RecurrentState | None) -> RecurrentState | None:
    """Cut the graph behind a carried state: truncated BPTT backpropagates within one window only."""
    if state is None or isinstance(state, torch.Tensor):
        return None if state is None else state.detach()
    return tuple(s.detach() for s in state)
