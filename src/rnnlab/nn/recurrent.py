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
                    nonlinearity: str = "tanh", forget_bias: float | None = None) -> nn.RNNBase:
    """A batch-first multi-layer recurrent module; `dropout` applies between layers.

    forget_bias (lstm only): initial b_f of every layer and direction, so f_t starts near
    sigmoid(b_f) and the cell state is kept by default (Gers et al. 2000; Jozefowicz et al. 2015
    recommend 1). None keeps torch's uniform initialisation, which centres b_f on 0 (f_t ≈ 0.5).
    """
    if cell not in CELLS:
        raise ValueError(f"cell={cell!r} is not one of {', '.join(CELLS)}")
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity={nonlinearity!r} is not one of {', '.join(NONLINEARITIES)}")
    kwargs = dict(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
                  # torch warns on inter-layer dropout with one layer: there is no "between"
                  dropout=dropout if num_layers > 1 else 0.0,
                  bidirectional=bidirectional, batch_first=True)
    if forget_bias is not None and cell != "lstm":
        raise ValueError(f"forget_bias applies to lstm only, not {cell}")
    if cell == "rnn":
        return nn.RNN(nonlinearity=nonlinearity, **kwargs)
    if cell == "gru":
        return nn.GRU(**kwargs)
    lstm = nn.LSTM(**kwargs)
    if forget_bias is not None:
        with torch.no_grad():
            for name, bias in lstm.named_parameters():
                if name.startswith("bias_"):
                    # torch stacks the gates as (i, f, g, o); b_ih + b_hh is the effective b_f
                    bias[hidden_size : 2 * hidden_size] = forget_bias if name.startswith("bias_ih") else 0.0
    return lstm


def detach_state(state: RecurrentState | None) -> RecurrentState | None:
    """Cut the graph behind a carried state: truncated BPTT backpropagates within one window only."""
    if state is None or isinstance(state, torch.Tensor):
        return None if state is None else state.detach()
    return tuple(s.detach() for s in state)
