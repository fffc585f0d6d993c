"""model.embedding_init: the word vectors' scale at init, which sets what the first recurrent layer reads."""

from __future__ import annotations

import math

import pytest
import torch

from rnnlab.models.language_model import RNNLanguageModel

SIZES = dict(embedding_size=128, hidden_size=256, num_layers=2)


def build(seed: int = 0, **options) -> RNNLanguageModel:
    torch.manual_seed(seed)
    return RNNLanguageModel(4000, **{**SIZES, **options})


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_unit_gives_the_first_layer_unit_variance_pre_activations(cell):
    model = build(cell=cell)
    words = model.embedding.weight.detach()
    assert words.std().item() == pytest.approx(math.sqrt(3 * 256 / 128), rel=0.02)
    pre_activations = words @ model.rnn.module.weight_ih_l0.detach().T  # every gate's W_ih·e, every word
    assert pre_activations.var().item() == pytest.approx(1.0, rel=0.1)
    # U(±0.1), the default before: std 0.024 at these sizes, so every gate starts at σ(0) whatever the word
    small = build(cell=cell, embedding_init="uniform").embedding.weight.detach()
    assert (small @ model.rnn.module.weight_ih_l0.detach().T).std().item() == pytest.approx(0.024, rel=0.1)


def test_the_init_changes_the_embedding_only():
    models = {how: build(embedding_init=how) for how in ("unit", "uniform", "normal")}
    assert models["uniform"].embedding.weight.abs().max().item() <= 0.1
    assert models["normal"].embedding.weight.std().item() == pytest.approx(1.0, rel=0.02)
    for name, value in models["unit"].state_dict().items():
        if name != "embedding.weight":
            for how in ("uniform", "normal"):
                torch.testing.assert_close(models[how].state_dict()[name], value, rtol=0, atol=0)


def test_tied_weights_start_small_whatever_the_init():
    # the matrix is also the output layer: N(0, 3H/E) rows would start the logits at a scale of tens
    tied = build(embedding_size=256, tie_weights=True)
    assert tied.decoder.weight is tied.embedding.weight
    assert tied.embedding.weight.abs().max().item() <= 0.1
