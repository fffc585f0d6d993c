"""Gradient through time, σ_max(W_rec), and per-step gradient norms, checked against references."""

from __future__ import annotations

import mlflow
import pytest
import torch
import torch.nn.functional as F

from rnnlab.callbacks.gradient_diagnostics import gradient_through_time, spectral_norms
from rnnlab.models import RNNLanguageModel
from rnnlab.training import train


def reference_curve(model, inputs, targets):
    """‖∂L_T/∂h_k‖ with torch's own single-step cells (nn.RNNCell/LSTMCell/GRUCell) given the
    fused stack's weights, unrolled layer by layer so every h_k^(l) is a node of the graph."""
    rnn = model.rnn.module
    make = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[model.rnn.cell]
    cells = []
    for layer in range(rnn.num_layers):
        cell = make(rnn.input_size if layer == 0 else rnn.hidden_size, rnn.hidden_size)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).data.copy_(getattr(rnn, f"{name}_l{layer}"))
        cells.append(cell)
    B, T = inputs.shape
    embedded = model.embedding(inputs)
    states = [None] * len(cells)
    hs = []  # hs[k][l]
    for k in range(T):
        x, step = embedded[:, k], []
        for layer, cell in enumerate(cells):
            states[layer] = cell(x, states[layer])
            x = states[layer][0] if isinstance(states[layer], tuple) else states[layer]
            step.append(x)
        hs.append(step)
    loss = F.cross_entropy(model.decoder(x), targets[:, -1])
    grads = torch.autograd.grad(loss, [h for step in hs for h in step])
    squares = torch.stack([g.pow(2).sum(-1) for g in grads]).view(T, len(cells), B).sum(1)
    return squares.sqrt().mean(-1)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_gradient_through_time_matches_a_stepwise_reference(cell):
    torch.manual_seed(0)
    model = RNNLanguageModel(30, cell=cell, embedding_size=8, hidden_size=12, num_layers=2)
    tokens = torch.randint(30, (3, 15))
    curve = gradient_through_time(model, tokens, tokens)
    torch.testing.assert_close(curve, reference_curve(model, tokens, tokens), rtol=1e-4, atol=1e-9)
    assert curve.shape == (15,)


def test_skip_and_leak_carry_gradient_further_back_at_initialisation():
    """The lecture's claim at its simplest: same seed, g_1 / g_T grows by orders of magnitude."""
    ratios = {}
    for name, options in {"plain": {}, "skip": {"skip": 4}, "leaky": {"leak": 0.3}}.items():
        torch.manual_seed(0)
        model = RNNLanguageModel(30, cell="rnn", embedding_size=16, hidden_size=32, num_layers=1,
                                 backend="scratch", **options)
        tokens = torch.randint(30, (8, 40), generator=torch.Generator().manual_seed(1))
        curve = gradient_through_time(model, tokens, tokens)
        ratios[name] = float(curve[0] / curve[-1])
    assert ratios["skip"] > 100 * ratios["plain"]
    assert ratios["leaky"] > 100 * ratios["plain"]


def test_spectral_norm_is_the_largest_singular_value():
    torch.manual_seed(0)
    model = RNNLanguageModel(30, cell="rnn", embedding_size=8, hidden_size=12, num_layers=2)
    norms = spectral_norms(model)
    assert set(norms) == {"l0", "l1"}
    largest = torch.linalg.svdvals(model.rnn.module.weight_hh_l1.detach())[0]
    assert norms["l1"] == pytest.approx(float(largest), rel=1e-5)
    assert spectral_norms(RNNLanguageModel(30, cell="lstm", embedding_size=8, hidden_size=12)) == {}


def test_training_logs_diagnostics_and_grad_norm(make_cfg):
    cfg = make_cfg("model=skip_rnn", "trainer.max_epochs=2", "data.train_tokens=12000", "data.val_tokens=2000",
                   "data.test_tokens=2000")
    metrics = train(cfg)
    client = mlflow.MlflowClient(cfg.logger.mlflow.tracking_uri)
    run = client.search_runs([e.experiment_id for e in client.search_experiments()])[0]
    run_id = run.info.run_id
    assert metrics["val/loss"] < 4.0
    for key in ("diag/grad_h_first", "diag/grad_h_last", "diag/grad_ratio", "diag/sigma_max_W_rec/l0"):
        history = client.get_metric_history(run_id, key)
        assert len(history) == 2, key  # after each of the two epochs
    first, last, ratio = (run.data.metrics[k] for k in ("diag/grad_h_first", "diag/grad_h_last", "diag/grad_ratio"))
    assert ratio == pytest.approx(first / last, rel=1e-5)
    grad_norms = client.get_metric_history(run_id, "train/grad_norm")
    assert len(grad_norms) == len(client.get_metric_history(run_id, "train/loss"))
    assert all(g.value > 0 for g in grad_norms)
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"gradients_through_time.png", "gradients_through_time.json"} <= artifacts
