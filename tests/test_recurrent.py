"""The recurrent layer factory: cells, options, and the LSTM forget-gate bias."""

from __future__ import annotations

import pytest
import torch

from rnnlab.nn import recurrent_layer


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_shapes(cell, bidirectional):
    layer = recurrent_layer(cell, input_size=5, hidden_size=7, num_layers=3, bidirectional=bidirectional)
    outputs, state = layer(torch.randn(2, 4, 5))
    directions = 2 if bidirectional else 1
    assert outputs.shape == (2, 4, 7 * directions)
    h = state[0] if cell == "lstm" else state
    assert h.shape == (3 * directions, 2, 7)


def test_forget_bias_sets_every_layer_and_direction():
    lstm = recurrent_layer("lstm", 3, 4, num_layers=2, bidirectional=True, forget_bias=1.0)
    effective = {}
    for name, bias in lstm.named_parameters():
        if name.startswith("bias_"):
            suffix = name.split("_", 2)[2]  # l0, l0_reverse, l1, ...
            effective[suffix] = effective.get(suffix, 0) + bias.detach()
    assert len(effective) == 4
    for bias in effective.values():
        assert torch.equal(bias[4:8], torch.ones(4))  # f gate: b_ih + b_hh = 1
        assert not torch.equal(bias[:4], torch.zeros(4))  # other gates keep torch's init
    # f_t = sigmoid(1) with zero input and state, in the first step of the first layer
    single = recurrent_layer("lstm", 3, 4, forget_bias=1.0)
    with torch.no_grad():
        for p in single.parameters():
            if not p.dim() == 1:
                p.zero_()
    assert single.bias_ih_l0[4:8].tolist() == [1.0] * 4


def test_forget_bias_rejected_for_other_cells():
    with pytest.raises(ValueError, match="forget_bias applies to lstm only"):
        recurrent_layer("gru", 3, 4, forget_bias=1.0)
