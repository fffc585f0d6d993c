"""Both recurrent backends: scratch cells equal torch's fused kernels; padding never leaks."""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from torch.func import functional_call
from torch.utils import cpp_extension

from rnnlab.nn import kernels, recurrent_layer
from rnnlab.nn.bptt import LSTMSequence
from rnnlab.nn.recurrent import (
    UNPACKED_MIN_STEPS,
    copy_fused_weights,
    native_cpu_kernel,
    one_small_step,
    unpacked_is_faster,
)

TOL = dict(atol=1e-5, rtol=1e-5)
# (cell, options): the four functions both backends implement
FUNCTIONS = [("rnn", {"nonlinearity": "tanh"}), ("rnn", {"nonlinearity": "relu"}), ("lstm", {}),
             ("gru", {"gru_form": "torch"})]


def pair(cell, options, num_layers, bidirectional, input_size=5, hidden_size=7, seed=0):
    torch.manual_seed(seed)
    fused_options = {k: v for k, v in options.items() if k != "gru_form"}
    fused = recurrent_layer(cell, input_size, hidden_size, num_layers, bidirectional=bidirectional, **fused_options)
    scratch = recurrent_layer(cell, input_size, hidden_size, num_layers, bidirectional=bidirectional,
                              backend="scratch", **options)
    copy_fused_weights(fused, scratch)
    return fused, scratch


def flat(state):
    return torch.cat([s.flatten() for s in state]) if isinstance(state, tuple) else state.flatten()


@torch.no_grad()
def test_an_lstm_step_of_few_rows_runs_torchs_own_kernel_with_the_same_result():
    """Writing and decoding step an LSTM one token at a time: outside oneDNN there (faster), the same numbers."""
    torch.manual_seed(0)
    lstm = recurrent_layer("lstm", 5, 7, 2).eval()
    for row_count in (1, 64, 65):
        inputs = torch.randn(row_count, 1, 5)
        assert one_small_step(inputs) == (row_count <= 64)
        assert torch.backends.mkldnn.enabled
        calls = []
        original = lstm.module.forward
        def spy(*args, calls=calls, original=original):  # the flag as the kernel is called
            calls.append(torch.backends.mkldnn.enabled)
            return original(*args)

        lstm.module.forward = spy
        ours, _ = lstm(inputs)
        del lstm.module.forward
        assert calls == [row_count > 64] and torch.backends.mkldnn.enabled  # oneDNN off for small steps only
        with native_cpu_kernel():
            native = lstm(inputs)[0]
        assert torch.allclose(ours, lstm.module(inputs)[0], **TOL) and torch.allclose(ours, native, **TOL)
    assert not one_small_step(torch.randn(1, 2, 5))  # a window: oneDNN
    with torch.enable_grad():
        assert not one_small_step(torch.randn(1, 1, 5))  # training keeps oneDNN


@pytest.mark.parametrize("cell,options", FUNCTIONS, ids=["rnn-tanh", "rnn-relu", "lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
def test_scratch_equals_fused(cell, options, num_layers, bidirectional, padded):
    """Outputs, final states and every parameter gradient agree within 1e-5 (fp32)."""
    fused, scratch = pair(cell, options, num_layers, bidirectional)
    x = torch.randn(4, 6, 5)
    lengths = torch.tensor([6, 2, 5, 1]) if padded else None
    results = []
    for layer in (fused, scratch):
        outputs, final = layer(x, lengths=lengths)
        # a loss that weighs every output and final-state entry differently (randn_like would
        # follow each tensor's strides, and fused outputs are laid out differently)
        torch.manual_seed(1)
        loss = (outputs * torch.randn(outputs.shape)).sum() + (flat(final) * torch.randn(flat(final).shape)).sum()
        layer.zero_grad()
        loss.backward()
        results.append((outputs.detach(), flat(final).detach()))
    torch.testing.assert_close(results[1][0], results[0][0], **TOL)
    torch.testing.assert_close(results[1][1], results[0][1], **TOL)
    # gradients, mapped back through the documented weight correspondence
    H, D = 7, 2 if bidirectional else 1
    for layer in range(num_layers):
        for direction, suffix in enumerate(["", "_reverse"][:D]):
            c = scratch.cells[layer * D + direction]
            g = lambda name: getattr(fused.module, f"{name}_l{layer}{suffix}").grad  # noqa: B023
            torch.testing.assert_close(c.W_in.grad, g("weight_ih"), **TOL)
            torch.testing.assert_close(c.W_rec.grad, g("weight_hh"), **TOL)
            torch.testing.assert_close(c.b.grad, g("bias_ih"), **TOL)  # ∂L/∂b = ∂L/∂b_ih
            if cell == "gru":
                torch.testing.assert_close(c.b_rec.grad, g("bias_hh")[2 * H :], **TOL)
            else:
                torch.testing.assert_close(c.b.grad, g("bias_hh"), **TOL)


@pytest.mark.parametrize("cell,options", FUNCTIONS, ids=["rnn-tanh", "rnn-relu", "lstm", "gru"])
def test_scratch_equals_fused_with_given_state(cell, options):
    fused, scratch = pair(cell, options, 2, True)
    x = torch.randn(3, 4, 5)
    h0 = torch.randn(4, 3, 7)
    state = (h0, torch.randn(4, 3, 7)) if cell == "lstm" else h0
    lengths = torch.tensor([4, 1, 3])
    a, b = fused(x, state, lengths), scratch(x, state, lengths)
    torch.testing.assert_close(b[0], a[0], **TOL)
    torch.testing.assert_close(flat(b[1]), flat(a[1]), **TOL)


SCRATCH = [("rnn", {}), ("rnn", {"leak": 0.3}), ("rnn", {"leak": 0.5, "learn_leak": True}),
           ("rnn", {"skip": 3}), ("lstm", {}), ("gru", {}), ("gru", {"gru_form": "torch"})]
SCRATCH_IDS = ["rnn", "leaky", "learned-leak", "skip", "lstm", "gru-lecture", "gru-torch"]


@pytest.mark.parametrize("backend", ["fused", "scratch"])
@pytest.mark.parametrize("cell,options", SCRATCH, ids=SCRATCH_IDS)
def test_padded_batch_equals_each_sequence_alone(cell, options, backend):
    """The seeds' "[pad] [pad] …" problem: padding must change no output and no final state."""
    if backend == "fused" and options and options != {"gru_form": "torch"}:
        pytest.skip("scratch-only option")
    options = {} if backend == "fused" else options
    torch.manual_seed(0)
    layer = recurrent_layer(cell, 5, 7, num_layers=2, bidirectional=True, backend=backend, **options).eval()
    lengths = torch.tensor([6, 2, 4])
    x = torch.randn(3, 6, 5)
    x_padded = x.clone()
    for i, n in enumerate(lengths):
        x_padded[i, n:] = 100.0  # garbage in the padding: it must not matter
    outputs, final = layer(x_padded, lengths=lengths)
    for i, n in enumerate(lengths.tolist()):
        alone, alone_final = layer(x[i : i + 1, :n])
        torch.testing.assert_close(outputs[i : i + 1, :n], alone, **TOL)
        assert torch.all(outputs[i, n:] == 0)
        finals = final if isinstance(final, tuple) else (final,)
        alone_finals = alone_final if isinstance(alone_final, tuple) else (alone_final,)
        for f, a in zip(finals, alone_finals):
            torch.testing.assert_close(f[:, i : i + 1], a, **TOL)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, False), (1, True), (2, True)],
                         ids=["1-uni", "2-uni", "1-bi", "2-bi"])
def test_outputs_without_the_final_state_equal_the_packed_ones(cell, num_layers, bidirectional):
    """final=False runs each direction over the padded batch (no packing, see unpacked_is_faster): the outputs and
    every gradient equal the packed stack's, padding to 3× the length included; the final state is not returned."""
    torch.manual_seed(0)
    layer = recurrent_layer(cell, 5, 7, num_layers, bidirectional=bidirectional, learn_initial_state=True)
    with torch.no_grad():
        for p in (layer.h0, layer.C0):
            if p is not None:
                p.normal_()  # a non-zero initial state: each direction must start from its own row
    T = max(UNPACKED_MIN_STEPS.values())  # long enough for every cell to take the unpacked path
    lengths = torch.tensor([T, 2, 9, 1])
    x = torch.randn(4, 3 * T, 5)
    for i, n in enumerate(lengths.tolist()):
        x[i, n:] = 100.0  # garbage in the padding
    assert unpacked_is_faster(cell, x)
    results = []
    for final in (True, False):
        layer.zero_grad()
        outputs, last = layer(x, lengths=lengths, final=final)
        assert (last is None) == (not final)
        (outputs * torch.linspace(-1, 1, outputs.numel()).view_as(outputs)).sum().backward()
        results.append((outputs, [p.grad.clone() for p in layer.parameters()]))
    (packed, packed_grads), (unpacked, unpacked_grads) = results
    torch.testing.assert_close(unpacked, packed, **TOL)
    for i, n in enumerate(lengths.tolist()):
        assert torch.all(unpacked[i, n:] == 0)
    for a, b in zip(unpacked_grads, packed_grads):
        torch.testing.assert_close(a, b, **TOL)


def test_the_unpacked_path_drops_between_layers_in_training_only():
    torch.manual_seed(0)
    layer = recurrent_layer("lstm", 5, 7, 2, dropout=0.5, bidirectional=True)
    T = UNPACKED_MIN_STEPS["lstm"]
    x, lengths = torch.randn(3, T, 5), torch.tensor([T, 3, 1])
    layer.eval()
    reference, _ = layer(x, lengths=lengths)
    torch.testing.assert_close(layer(x, lengths=lengths, final=False)[0], reference, **TOL)
    layer.train()
    a, _ = layer(x, lengths=lengths, final=False)
    b, _ = layer(x, lengths=lengths, final=False)
    assert not torch.allclose(a, b)  # a fresh mask each call
    assert torch.all(a[1, 3:] == 0) and torch.all(a[2, 1:] == 0)


def test_short_batches_stay_packed():
    for cell in ("rnn", "lstm", "gru"):
        assert not unpacked_is_faster(cell, torch.zeros(2, UNPACKED_MIN_STEPS[cell] - 1, 4))
        long_batch = torch.zeros(2, UNPACKED_MIN_STEPS[cell], 4)
        assert unpacked_is_faster(cell, long_batch) == (cell != "lstm" or torch.backends.mkldnn.is_available())


@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
@pytest.mark.parametrize("cell,options", SCRATCH, ids=SCRATCH_IDS)
def test_scratch_cells_run_under_bf16_autocast_with_a_float32_recurrence(cell, options, padded):
    """trainer.precision=bf16-mixed: W_in x_t + b in bfloat16, the state carried in float32 (it failed on mixed
    dtypes before); the result is the float32 one to bfloat16's precision, and every parameter gets a gradient."""
    torch.manual_seed(0)
    layer = recurrent_layer(cell, 5, 7, num_layers=2, bidirectional=True, backend="scratch", **options)
    x = torch.randn(3, 6, 5)
    lengths = torch.tensor([6, 2, 4]) if padded else None
    reference, _ = layer(x, lengths=lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs, final = layer(x, lengths=lengths)
    assert outputs.dtype == torch.float32 and flat(final).dtype == torch.float32
    torch.testing.assert_close(outputs, reference, atol=3e-2, rtol=0)
    outputs.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())


@pytest.mark.parametrize("cell,options", SCRATCH, ids=SCRATCH_IDS)
def test_gradcheck_float64(cell, options):
    """Autograd through every scratch cell, leaky and skip included, against finite differences."""
    torch.manual_seed(0)
    layer = recurrent_layer(cell, 3, 4, num_layers=2, bidirectional=True, backend="scratch", **options).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([5, 3])
    names, weights = zip(*[(n, p.detach().clone().requires_grad_(True)) for n, p in layer.named_parameters()])

    def functional(x, *weights):  # the layer as a function of its input and weights
        outputs, final = functional_call(layer, dict(zip(names, weights)), (x,), {"lengths": lengths})
        return outputs, *(final if isinstance(final, tuple) else (final,))

    assert torch.autograd.gradcheck(functional, (x, *weights), eps=1e-6, atol=1e-5)


def test_learned_initial_state_is_used_and_trained():
    torch.manual_seed(0)
    for backend in ("fused", "scratch"):
        layer = recurrent_layer("lstm", 3, 4, num_layers=2, backend=backend, learn_initial_state=True)
        with torch.no_grad():
            layer.h0.fill_(0.5)
        x = torch.randn(2, 3, 3)
        out_learned, _ = layer(x)
        out_zero, _ = layer(x, (torch.zeros(2, 2, 4), torch.zeros(2, 2, 4)))
        assert not torch.allclose(out_learned, out_zero)
        out_learned.sum().backward()
        assert layer.h0.grad.abs().sum() > 0 and layer.C0.grad.abs().sum() > 0


def effective_biases(layer) -> list[torch.Tensor]:
    """The bias each gate sees, per layer and direction: fused b_ih + b_hh, scratch b."""
    if hasattr(layer, "cells"):
        return [cell.b.detach() for cell in layer.cells]
    return [getattr(layer.module, f"bias_ih_{suffix}").detach() + getattr(layer.module, f"bias_hh_{suffix}").detach()
            for suffix in recurrent_weight_suffixes(layer)]


def recurrent_weight_suffixes(layer) -> list[str]:
    return [f"l{k}{direction}" for k in range(layer.num_layers) for direction in ["", "_reverse"][: layer.directions]]


def recurrent_weights(layer) -> list[torch.Tensor]:
    """W_hh (G·H, H) per layer and direction, either backend."""
    if hasattr(layer, "cells"):
        return [cell.W_rec.detach() for cell in layer.cells]
    return [getattr(layer.module, f"weight_hh_{suffix}").detach() for suffix in recurrent_weight_suffixes(layer)]


def test_forget_bias_sets_every_layer_and_direction():
    fused = recurrent_layer("lstm", 3, 4, num_layers=2, bidirectional=True, forget_bias=1.0)
    assert len(effective_biases(fused)) == 4
    for bias in effective_biases(fused):
        assert torch.equal(bias[4:8], torch.ones(4))  # f gate: b_ih + b_hh = 1
        assert not torch.equal(bias[:4], torch.zeros(4))  # other gates keep torch's init
    scratch = recurrent_layer("lstm", 3, 4, num_layers=2, bidirectional=True, forget_bias=1.0, backend="scratch")
    for bias in effective_biases(scratch):
        assert torch.equal(bias[4:8], torch.ones(4))


@pytest.mark.parametrize("backend", ["fused", "scratch"])
def test_chrono_bias_spreads_the_forget_gates_time_scales_over_2_to_T_max(backend):
    """b_f ~ log U(1, T_max − 1), b_i = −b_f, so 1 / (1 − f_t) at the start lies in (2, T_max); fused: b_ih + b_hh."""
    torch.manual_seed(0)
    H, T_max = 200, 25
    layer = recurrent_layer("lstm", 3, H, num_layers=2, bidirectional=True, forget_bias="chrono", chrono_max=T_max,
                            backend=backend)
    biases = effective_biases(layer)
    assert len(biases) == 4
    for bias in biases:
        b_i, b_f = bias[:H], bias[H : 2 * H]
        assert b_f.min() >= 0 and b_f.max() <= math.log(T_max - 1)
        time_scale = 1 / (1 - torch.sigmoid(b_f))  # = 1 + exp(b_f), uniform on (2, T_max)
        assert abs(time_scale.mean().item() - (2 + T_max) / 2) < 2  # 200 draws: the mean's std is ≈ 0.5
        torch.testing.assert_close(b_i, -b_f, rtol=0, atol=1e-6)
    assert not torch.equal(biases[0][H : 2 * H], biases[1][H : 2 * H])  # each layer and direction draws its own
    if backend == "fused":  # torch's second bias is 0 on the rows chrono sets, so the sum is the intended bias
        for suffix in recurrent_weight_suffixes(layer):
            assert torch.equal(getattr(layer.module, f"bias_hh_{suffix}")[: 2 * H].detach(), torch.zeros(2 * H))


@pytest.mark.parametrize("backend", ["fused", "scratch"])
@pytest.mark.parametrize("cell,options", [("rnn", {}), ("lstm", {}), ("gru", {"gru_form": "torch"}),
                                          ("gru", {"gru_form": "lecture"})], ids=["rnn", "lstm", "gru-torch", "gru"])
def test_orthogonal_init_makes_each_gate_block_of_W_hh_orthogonal(cell, options, backend):
    if backend == "fused":
        options = {k: v for k, v in options.items() if k != "gru_form"}
    H = 6
    torch.manual_seed(0)
    default = recurrent_layer(cell, 5, H, num_layers=2, bidirectional=True, backend=backend, **options)
    torch.manual_seed(0)
    layer = recurrent_layer(cell, 5, H, num_layers=2, bidirectional=True, backend=backend,
                            recurrent_init="orthogonal", **options)
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    for W_hh in recurrent_weights(layer):
        assert W_hh.shape == (gates * H, H)
        for block in W_hh.split(H):
            torch.testing.assert_close(block @ block.T, torch.eye(H), rtol=0, atol=1e-5)
    # input weights and biases keep torch's init: the same numbers as without it where the draws line up (fused:
    # every layer, since torch draws them all before the orthogonal blocks; scratch: the first cell's W_in and b,
    # drawn before its W_rec is redrawn)
    kept = [name for name in default.state_dict() if "weight_hh" not in name] if backend == "fused" else \
        ["cells.0.W_in", "cells.0.b"]
    assert all(torch.equal(layer.state_dict()[name], default.state_dict()[name]) for name in kept)


@pytest.mark.parametrize("backend", ["fused", "scratch"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_default_recurrent_init_is_the_init_of_before(cell, backend):
    """recurrent_init=default draws exactly what the layer drew before the option existed: torch's own module's
    weights (fused), and nothing more from the random stream (both)."""
    torch.manual_seed(0)
    before = recurrent_layer(cell, 5, 6, num_layers=2, backend=backend)
    next_before = torch.rand(1)
    torch.manual_seed(0)
    default = recurrent_layer(cell, 5, 6, num_layers=2, backend=backend, recurrent_init="default")
    assert torch.equal(torch.rand(1), next_before)
    for name, value in before.state_dict().items():
        assert torch.equal(default.state_dict()[name], value), name
    if backend == "fused":
        torch.manual_seed(0)
        torch_module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](5, 6, num_layers=2)
        for name, value in torch_module.state_dict().items():
            assert torch.equal(default.module.state_dict()[name], value), name


def test_leak_one_is_the_plain_rnn_and_skip_changes_the_function():
    torch.manual_seed(0)
    plain = recurrent_layer("rnn", 3, 4, backend="scratch")
    torch.manual_seed(0)
    leaky = recurrent_layer("rnn", 3, 4, backend="scratch", leak=1.0)
    x = torch.randn(2, 6, 3)
    torch.testing.assert_close(leaky(x)[0], plain(x)[0])
    torch.manual_seed(0)
    skip = recurrent_layer("rnn", 3, 4, backend="scratch", skip=2)
    # the first d outputs see no h_{t-d} yet; from t = d on the skip path contributes
    torch.testing.assert_close(skip(x)[0][:, :2], plain(x)[0][:, :2])
    assert not torch.allclose(skip(x)[0][:, 2:], plain(x)[0][:, 2:])


def test_gru_lecture_form_follows_its_equations():
    """One step by hand: r, z, h̃ = tanh(W_in x + b + W_rec[r ⊙ h]), h = (1 − z) h + z h̃."""
    torch.manual_seed(0)
    layer = recurrent_layer("gru", 3, 4, backend="scratch")
    c = layer.cells[0]
    x, h = torch.randn(1, 3), torch.randn(1, 4)
    u = x @ c.W_in.T + c.b
    r = torch.sigmoid(u[:, :4] + h @ c.W_rec[:4].T)
    z = torch.sigmoid(u[:, 4:8] + h @ c.W_rec[4:8].T)
    h_tilde = torch.tanh(u[:, 8:] + (r * h) @ c.W_rec[8:].T)
    expected = (1 - z) * h + z * h_tilde
    out, _ = layer(x[:, None], h[None])
    torch.testing.assert_close(out[:, 0], expected)


@pytest.mark.parametrize("kwargs,message", [
    (dict(cell="gru", forget_bias=1.0), "forget_bias applies to lstm only"),
    (dict(cell="rnn", leak=0.5), "leak needs backend=scratch"),
    (dict(cell="rnn", skip=3), "skip needs backend=scratch"),
    (dict(cell="gru", gru_form="lecture"), "gru_form needs backend=scratch"),
    (dict(cell="lstm", leak=0.5, backend="scratch"), "apply to the Elman rnn cell only"),
    (dict(cell="rnn", skip=1, backend="scratch"), "skip=1 must be an integer ≥ 2"),
    (dict(cell="rnn", leak=1.5, backend="scratch"), "leak=1.5 must be in"),
    (dict(cell="rnn", backend="cudnn"), "backend='cudnn' is not one of fused, scratch"),
    (dict(cell="gru", recurrent_init="xavier"), "recurrent_init='xavier' is not one of default, orthogonal"),
    (dict(cell="gru", forget_bias="chrono", chrono_max=25), "forget_bias applies to lstm only, not gru"),
    (dict(cell="lstm", forget_bias="chrono"), "forget_bias=chrono needs chrono_max=T_max"),
    (dict(cell="lstm", forget_bias="chrno"), "forget_bias='chrno' is invalid: a number .*, chrono or null"),
    (dict(cell="lstm", forget_bias=1.0, chrono_max=25), "chrono_max applies to forget_bias=chrono only"),
    (dict(cell="lstm", forget_bias="chrono", chrono_max=1), "chrono_max=1 is invalid: a number ≥ 2"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        recurrent_layer(input_size=3, hidden_size=4, **kwargs)


@pytest.fixture(params=["compiled", "torch_ops"])
def gate_math(request, monkeypatch):
    """The LSTM fast path's gate math both ways: the compiled kernel (rnnlab/nn/kernels.py) and torch ops."""
    if request.param == "torch_ops":
        monkeypatch.setattr(kernels, "lstm_pointwise", lambda: None)
    elif kernels.lstm_pointwise() is None:
        if shutil.which("c++") or shutil.which("g++"):
            pytest.fail("a C++ compiler is here but the kernel did not build: see the warning logged above")
        pytest.skip("no C++ compiler: the compiled gate math is not built here")
    return request.param


def test_lstm_handwritten_bptt_matches_autograd_and_finite_differences(gate_math):
    """The scratch LSTM's fast path (rnnlab/nn/bptt.py) against the step-by-step autograd path."""
    torch.manual_seed(0)
    layer = recurrent_layer("lstm", 3, 4, num_layers=2, backend="scratch").double()
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    state = (torch.randn(2, 2, 4, dtype=torch.float64), torch.randn(2, 2, 4, dtype=torch.float64))
    results = []
    for trace in (None, []):  # a trace makes the layer record every h_t: the autograd path
        layer.trace = trace
        layer.zero_grad()
        outputs, (h, C) = layer(x, state)
        (outputs.sin().sum() + h.cos().sum() + (C * C).sum()).backward()
        results.append([outputs, h, C] + [p.grad.clone() for p in layer.parameters()])
    layer.trace = None
    for fast, reference in zip(*results):
        torch.testing.assert_close(fast, reference, rtol=1e-10, atol=1e-12)
    u, h0, C0, W = (torch.randn(*shape, dtype=torch.float64, requires_grad=True)
                    for shape in ((5, 2, 12), (2, 3), (2, 3), (12, 3)))
    assert torch.autograd.gradcheck(LSTMSequence.apply, (u, h0, C0, W))


def test_compiled_gate_math_equals_torch_ops_float32(monkeypatch):
    """Outputs and every gradient, at a char-level-like width, with the gradient of a batch-first output
    (a transposed, non-contiguous d_hs) and without a gradient for C_T."""
    if kernels.lstm_pointwise() is None:
        pytest.skip("no compiled gate math here (see test_lstm_handwritten_bptt_matches_autograd_...)")
    torch.manual_seed(0)
    u, h0, C0 = torch.randn(9, 6, 4 * 40), torch.randn(6, 40), torch.randn(6, 40)
    W = torch.randn(4 * 40, 40) * 0.2
    results = []
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(kernels, "lstm_pointwise", lambda: None)
        inputs = [t.clone().requires_grad_(True) for t in (u, h0, C0, W)]
        hs, C = LSTMSequence.apply(*inputs)
        target = torch.randn(6, 9, 40, generator=torch.Generator().manual_seed(1))
        (hs.transpose(0, 1) * target).sum().backward()
        results.append([hs, C] + [t.grad for t in inputs])
    for fast, reference in zip(*results):
        torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-6)


def test_without_a_compiler_the_gate_math_runs_as_torch_ops(monkeypatch, caplog):
    monkeypatch.setenv("CXX", "no-such-compiler-rnnlab")
    monkeypatch.setattr(kernels, "lstm_pointwise", kernels.lstm_pointwise.__wrapped__)  # uncached
    with caplog.at_level(logging.WARNING, logger="rnnlab.nn.kernels"):
        assert kernels.lstm_pointwise() is None
    assert "no C++ compiler (no-such-compiler-rnnlab) found" in caplog.text
    layer = recurrent_layer("lstm", 3, 4, backend="scratch")
    outputs, _ = layer(torch.randn(2, 5, 3))
    assert outputs.shape == (2, 5, 4) and torch.isfinite(outputs).all()


def test_a_lock_left_by_a_killed_build_is_removed(monkeypatch, caplog):
    """torch's extension loader waits on the lock file of a build in progress: one a killed build left behind
    must not hang every later run."""
    if kernels.lstm_pointwise() is None:
        pytest.skip("no compiled gate math here")
    lock = Path(cpp_extension._get_build_directory(kernels.build_name(), verbose=False)) / "lock"
    lock.write_text("")
    old = time.time() - kernels.STALE_LOCK_SECONDS - 60
    os.utime(lock, (old, old))
    monkeypatch.setattr(kernels, "lstm_pointwise", kernels.lstm_pointwise.__wrapped__)  # uncached
    with caplog.at_level(logging.WARNING, logger="rnnlab.nn.kernels"):
        assert kernels.lstm_pointwise() is not None
    assert not lock.exists() and "left by a build that did not finish" in caplog.text


def test_the_compiled_gate_math_is_built_per_source_and_per_torch_installation(monkeypatch):
    """Two virtualenvs share torch's extension cache: under one name each would rebuild the other's build."""
    here = kernels.build_name()
    assert here == kernels.build_name() and here.startswith("rnnlab_lstm_pointwise_")
    other_venv = type("Torch", (), {"__version__": torch.__version__,
                                    "__file__": "/elsewhere/.venv/lib/python3.11/site-packages/torch/__init__.py"})
    monkeypatch.setattr(kernels, "torch", other_venv)
    assert kernels.build_name() != here
    monkeypatch.undo()
    monkeypatch.setattr(kernels, "SOURCE", Path(__file__))  # an edited source
    assert kernels.build_name() != here
