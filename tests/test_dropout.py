"""Variational (locked) dropout: one mask per sequence, the same function in both backends."""

from __future__ import annotations

import pytest
import torch

from rnnlab.errors import ConfigError
from rnnlab.models.language_model import RNNLanguageModel
from rnnlab.models.seq2seq import Seq2Seq
from rnnlab.nn import recurrent_layer
from rnnlab.nn.dropout import LockedDropout
from rnnlab.nn.recurrent import copy_fused_weights

TOL = dict(atol=1e-5, rtol=1e-5)


def test_one_mask_per_sequence_shared_by_every_step():
    torch.manual_seed(0)
    drop = LockedDropout(0.3).train()
    y = drop(torch.ones(64, 9, 50))
    assert torch.equal(y, y[:, :1].expand_as(y))  # every step of a sequence: the same units dropped
    assert not torch.equal(y[0], y[1])  # sequences get their own masks
    assert y.unique().tolist() == pytest.approx([0.0, 1 / 0.7])
    assert (y == 0).float().mean().item() == pytest.approx(0.3, abs=0.03)
    assert y.mean().item() == pytest.approx(1.0, abs=0.05)  # inverted dropout keeps the expectation
    x = torch.randn(2, 3, 4)
    assert torch.equal(drop.eval()(x), x)


def layers(cell, bidirectional, seed=0):
    torch.manual_seed(seed)
    common = dict(input_size=5, hidden_size=7, num_layers=3, dropout=0.4, bidirectional=bidirectional,
                  locked_dropout=True)
    fused = recurrent_layer(cell, **common)
    scratch = recurrent_layer(cell, **common, backend="scratch", **({"gru_form": "torch"} if cell == "gru" else {}))
    copy_fused_weights(fused, scratch)
    return fused, scratch


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_fused_layer_by_layer_equals_scratch_with_the_same_masks(cell, bidirectional):
    """The fused stack run one layer at a time (to drop with a locked mask between layers) computes what
    the scratch cells compute, masks drawn in the same order: outputs, final states, gradients."""
    fused, scratch = layers(cell, bidirectional)
    x = torch.randn(4, 6, 5)
    lengths = torch.tensor([6, 2, 5, 1])
    results = []
    for layer in (fused.train(), scratch.train()):
        torch.manual_seed(7)  # the same masks in both
        outputs, final = layer(x, lengths=lengths)
        h = final[0] if cell == "lstm" else final
        (outputs.square().sum() + h.sum()).backward()
        results.append((outputs.detach(), h.detach()))
    torch.testing.assert_close(results[1][0], results[0][0], **TOL)
    torch.testing.assert_close(results[1][1], results[0][1], **TOL)
    D = 2 if bidirectional else 1
    for layer in range(3):  # each layer's own parameters received its own gradient
        torch.testing.assert_close(scratch.cells[layer * D].W_rec.grad,
                                   getattr(fused.module, f"weight_hh_l{layer}").grad, **TOL)


def test_dropout_between_layers_is_locked_and_off_in_eval():
    fused, _ = layers("lstm", False)
    assert fused.module.dropout == 0  # torch's per-step dropout is not also applied
    assert [name for name, _ in fused.named_parameters()] == [name for name, _ in
                                                               recurrent_layer("lstm", 5, 7, 3).named_parameters()]
    x = torch.randn(2, 4, 5)
    fused.eval()
    torch.testing.assert_close(fused(x)[0], fused._forward_layerwise(x, None, None)[0], **TOL)
    torch.manual_seed(1)
    a = fused.train()(x)[0]
    torch.manual_seed(1)
    b = fused(x)[0]
    torch.manual_seed(2)
    c = fused(x)[0]
    assert torch.equal(a, b) and not torch.allclose(a, c)  # training mode drops, reproducibly from the seed


def test_language_model_locks_all_three_dropouts():
    model = RNNLanguageModel(30, cell="gru", embedding_size=8, hidden_size=8, num_layers=2, dropout=0.5,
                             locked_dropout=True)
    assert isinstance(model.dropout, LockedDropout) and isinstance(model.rnn.inter_layer_dropout, LockedDropout)
    logits, _ = model.train()(torch.randint(30, (3, 5)))
    assert logits.shape == (3, 5, 30)


def test_translation_refuses_locked_dropout_clearly():
    with pytest.raises(ConfigError, match="model.locked_dropout=true is implemented for task=lm only"):
        Seq2Seq(10, 10, 0, 1, 2, locked_dropout=True)
