"""The recurrent stack behind every task: `model.cell` = rnn | lstm | gru, `model.backend` = fused | scratch.

One interface for both backends, batch-first:

    outputs, final = layer(inputs (B, T, I), state=None, lengths=None)
    outputs (B, T, D·H): the last layer's h_t, both directions concatenated (D = 2 if bidirectional)
    final   (L·D, B, H): every layer's and direction's last state, torch's layout; (h, C) for an LSTM

- fused: torch.nn.RNN/LSTM/GRU (oneDNN/cuDNN kernels).
- scratch: the cells of rnnlab.nn.cells, the lecture's equations in Python, plus what torch lacks:
  leaky units, skip connections through time, the GRU's lecture form.

lengths (B,), when given, marks padded batches: outputs beyond a sequence's length are 0 and its
final state is the one at its last real token, in both directions (the backward direction starts
at each sequence's last real token, never at padding). Fused packs the batch; scratch freezes the
state of finished sequences and reverses each sequence within its own length.

layer(..., final=False) tells the layer that the caller reads only the outputs (taggers, classifiers): then fused
may run each direction over the padded batch instead of packing it, where that is faster (unpacked_is_faster: long
enough batches on the CPU), and returns None for the final state; the outputs are the same.
"""

from __future__ import annotations

import contextlib
import functools
import re

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnlab.nn.bptt import LSTMSequence
from rnnlab.nn.cells import CHRONO, RECURRENT_INITS, Cell, LSTMCell, lstm_gate_bias_, make_cell, orthogonal_recurrent_
from rnnlab.nn.dropout import make_dropout
from rnnlab.nn.padding import real_tokens, reverse_padded

CELLS = ("rnn", "lstm", "gru")
NONLINEARITIES = ("tanh", "relu")
BACKENDS = ("fused", "scratch")

# An LSTM carries (h, C); the others carry h alone.
RecurrentState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class Recurrent(nn.Module):
    """Shared by both backends: sizes, the learned initial state, inter-layer dropout setting."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float,
                 bidirectional: bool, learn_initial_state: bool, locked_dropout: bool = False):
        super().__init__()
        self.cell, self.input_size, self.hidden_size = cell, input_size, hidden_size
        self.num_layers, self.dropout, self.bidirectional = num_layers, dropout, bidirectional
        self.locked_dropout = locked_dropout
        self.directions = 2 if bidirectional else 1
        self.output_size = self.directions * hidden_size
        shape = (num_layers * self.directions, 1, hidden_size)
        # h_0 (and C_0) learned per layer and direction, shared across the batch; else zeros
        self.h0 = nn.Parameter(torch.zeros(shape)) if learn_initial_state else None
        self.C0 = nn.Parameter(torch.zeros(shape)) if learn_initial_state and cell == "lstm" else None

    def initial_state(self, batch_size: int) -> RecurrentState | None:
        if self.h0 is None:
            return None
        h0 = self.h0.expand(-1, batch_size, -1).contiguous()
        return (h0, self.C0.expand(-1, batch_size, -1).contiguous()) if self.C0 is not None else h0


class FusedRecurrent(Recurrent):
    """torch.nn.RNN / LSTM / GRU behind the common interface."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
                 bidirectional: bool = False, nonlinearity: str = "tanh", forget_bias: float | str | None = None,
                 chrono_max: float | None = None, recurrent_init: str = "default", learn_initial_state: bool = False,
                 locked_dropout: bool = False):
        super().__init__(cell, input_size, hidden_size, num_layers, dropout, bidirectional, learn_initial_state,
                         locked_dropout)
        # torch's kernel drops between layers with a fresh mask per step; a locked mask needs the layers
        # run one at a time (same parameters, see _forward_layerwise)
        self.layerwise = locked_dropout and num_layers > 1 and dropout > 0
        kwargs = dict(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
                      # torch warns on inter-layer dropout with one layer: there is no "between"
                      dropout=dropout if num_layers > 1 and not self.layerwise else 0.0,
                      bidirectional=bidirectional, batch_first=True)
        if cell == "rnn":
            self.module = nn.RNN(nonlinearity=nonlinearity, **kwargs)
        elif cell == "gru":
            self.module = nn.GRU(**kwargs)
        else:
            self.module = nn.LSTM(**kwargs)
        for layer in range(num_layers):
            for suffix in ["", "_reverse"][: self.directions]:
                get = lambda name: getattr(self.module, f"{name}_l{layer}{suffix}")  # noqa: B023
                if recurrent_init == "orthogonal":
                    orthogonal_recurrent_(get("weight_hh"), hidden_size)
                if cell == "lstm":  # torch stacks the gates (i, f, g, o); b_ih + b_hh is the effective bias
                    lstm_gate_bias_(get("bias_ih"), hidden_size, forget_bias, chrono_max, b_rec=get("bias_hh"))
        if self.layerwise:
            # one-layer modules of the same kind (first layer, upper layers), run with each layer's parameters
            # in turn; kept out of the module tree: their own parameters are never used, trained or saved
            one_layer = {**kwargs, "num_layers": 1, "dropout": 0.0, **({"nonlinearity": nonlinearity}
                                                                         if cell == "rnn" else {})}
            kind = type(self.module)
            self.__dict__["_templates"] = (kind(**one_layer), kind(**{**one_layer, "input_size": self.output_size}))
            self.inter_layer_dropout = make_dropout(dropout, locked=True)

    def forward(self, inputs, state=None, lengths=None, final: bool = True):
        """final=False: the caller reads only the outputs, which lets a long enough padded batch on the CPU run
        without packing (_run_by_direction); the final state returned is then None."""
        if state is None:
            state = self.initial_state(inputs.size(0))
        if not final and lengths is not None and not self.layerwise and unpacked_is_faster(self.cell, inputs):
            return self._run_by_direction(inputs, state, lengths), None
        if self.layerwise and self.training:  # in eval mode nothing is dropped: the fused kernel computes the same
            return self._forward_layerwise(inputs, state, lengths)
        if self.cell == "lstm" and one_small_step(inputs):
            with native_cpu_kernel():
                return _run_packed(self.module, inputs, state, lengths)
        return _run_packed(self.module, inputs, state, lengths)

    def _run_by_direction(self, inputs, state, lengths):
        """The stack's outputs, each layer and direction one call over the padded batch: the forward direction
        reads each sequence from its first token (padding comes after its last, so no real output reads it); the
        backward one reads each sequence reversed within its length (reverse_padded), so it too starts at a real
        token. Padding still runs through the states after a sequence ends, which is why the final states are not
        returned. Inter-layer dropout as torch's kernel does it: a fresh mask per element of a layer's outputs."""
        D, layer_input = self.directions, inputs
        for layer in range(self.num_layers):
            if layer > 0:
                layer_input = nn.functional.dropout(layer_input, self.dropout, self.training)
            outputs = []
            for direction, suffix in enumerate(["", "_reverse"][:D]):
                weights = {f"{name}_l0": getattr(self.module, f"{name}_l{layer}{suffix}")
                           for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
                row = slice(layer * D + direction, layer * D + direction + 1)
                initial = None if state is None else (
                    tuple(s[row] for s in state) if self.cell == "lstm" else state[row])
                x = layer_input if direction == 0 else reverse_padded(layer_input, lengths)
                template = self._one_way_templates()[min(layer, 1)]
                out, _ = torch.func.functional_call(template, weights, (x, initial))
                outputs.append(out if direction == 0 else reverse_padded(out, lengths))
            layer_input = torch.cat(outputs, -1) if D > 1 else outputs[0]
        real = real_tokens(lengths, inputs.size(1), inputs.device)
        return layer_input * real.unsqueeze(-1).to(layer_input.dtype)  # zeros past each length, as packing gives

    def _one_way_templates(self) -> tuple[nn.Module, nn.Module]:
        """One-layer, one-direction modules of the stack's kind (first layer, upper layers), run with each layer's
        and direction's parameters in turn; built on first use, under a forked random state (building one draws
        its own, unused, initial weights: the run's random numbers stay as they were), and kept out of the module
        tree: their own parameters are never used, trained or saved."""
        if "_one_way" not in self.__dict__:
            m = self.module
            one_way = dict(input_size=m.input_size, hidden_size=m.hidden_size, batch_first=True,
                           **({"nonlinearity": m.nonlinearity} if self.cell == "rnn" else {}))
            with torch.random.fork_rng(devices=[]):
                self.__dict__["_one_way"] = (type(m)(**one_way),
                                             type(m)(**{**one_way, "input_size": self.output_size}))
        return self.__dict__["_one_way"]

    def _forward_layerwise(self, inputs, state, lengths):
        lstm, D = self.cell == "lstm", self.directions
        finals, layer_input = [], inputs
        for layer in range(self.num_layers):
            if layer > 0:
                layer_input = self.inter_layer_dropout(layer_input)
            # torch names layer k's parameters weight_ih_l{k}[_reverse], ...; the template's are ..._l0
            suffix = re.compile(rf"_l{layer}(_reverse)?$")
            weights = {suffix.sub(lambda m: "_l0" + (m.group(1) or ""), name): value
                       for name, value in self.module.named_parameters() if suffix.search(name)}
            rows = slice(layer * D, (layer + 1) * D)
            initial = None if state is None else (tuple(s[rows] for s in state) if lstm else state[rows])
            template = self._templates[min(layer, 1)]
            one_layer = functools.partial(torch.func.functional_call, template, weights)
            layer_input, final = _run_packed(lambda x, h, f=one_layer: f((x, h)), layer_input, initial, lengths)
            finals.append(final)
        if lstm:
            return layer_input, (torch.cat([f[0] for f in finals]), torch.cat([f[1] for f in finals]))
        return layer_input, torch.cat(finals)


# On the CPU torch runs nn.LSTM through oneDNN, whose fixed cost per call outweighs one step of a few sequences:
# writing or decoding one token at a time, a 2 × 256 LSTM step takes ~0.9 ms there and ~0.2 ms in torch's own
# kernel (batch 1; 1.5× at a beam of 5, about even from ~300 rows), while over a training window oneDNN is the faster
# (1.6× at 32 × 64). Measured on one thread of an AMD EPYC, torch 2.13 (experiments/rnn_vs_transformer/speed.md).
# The GRU and the tanh RNN do not go through oneDNN. Same weights, same results (tests/test_recurrent.py).
SMALL_STEP_ROWS = 64


# Over a padded batch on the CPU, running each direction over the padded batch (_run_by_direction) beats torch's
# packed kernel once the batch is long enough: packed input steps through torch's generic kernel, padded input goes
# to oneDNN (LSTM) or to a kernel that projects all time steps' inputs at once (GRU, RNN), whose fixed costs (and the
# reversals) outweigh that on short batches. One thread, 2 layers × 2 directions × 256 over 384-d inputs, 32
# sequences, forward + backward, packed ÷ by direction at 5, 10, 15, 25, 50 tokens: LSTM 0.73, 1.06, 1.25, 1.91,
# 2.38; GRU 0.90, 1.02, 1.02, 1.30, 2.04; RNN 0.77, 0.85, 0.96, 1.11, 1.36 (Intel Xeon, torch 2.13, quiet;
# experiments/cell_speed/padded.py, results_padded.jsonl). Hence the least batch length per cell:
UNPACKED_MIN_STEPS = {"lstm": 12, "gru": 16, "rnn": 20}


def unpacked_is_faster(cell: str, inputs: torch.Tensor) -> bool:
    """Whether _run_by_direction beats packing for this padded batch (see above)."""
    if inputs.device.type != "cpu" or inputs.size(1) < UNPACKED_MIN_STEPS[cell]:
        return False  # cuDNN runs packed batches well; short batches pack faster
    if torch.compiler.is_compiling():
        return False  # compile=true: dynamo traces the packed stack as before, not the templates' functional calls
    return cell != "lstm" or (torch.backends.mkldnn.enabled and torch.backends.mkldnn.is_available())


def one_small_step(inputs: torch.Tensor) -> bool:
    """A single time step of at most SMALL_STEP_ROWS sequences on the CPU, outside training (writing, decoding)."""
    return (inputs.device.type == "cpu" and inputs.size(1) == 1 and inputs.size(0) <= SMALL_STEP_ROWS
            and not torch.is_grad_enabled())


@contextlib.contextmanager
def native_cpu_kernel():
    """torch's own CPU kernels instead of oneDNN's, for the duration."""
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


def _run_packed(module, inputs, state, lengths):
    """module(inputs, state), packing a padded batch so padding never reaches a state."""
    if lengths is None:
        return module(inputs, state)
    packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
    outputs, final = module(packed, state)
    outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=inputs.size(1))
    return outputs, final


class ScratchRecurrent(Recurrent):
    """Layers × directions of rnnlab.nn.cells, unrolled in Python."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
                 bidirectional: bool = False, learn_initial_state: bool = False, locked_dropout: bool = False,
                 **cell_options):
        super().__init__(cell, input_size, hidden_size, num_layers, dropout, bidirectional, learn_initial_state,
                         locked_dropout)
        self.cells = nn.ModuleList(
            make_cell(cell, input_size if layer == 0 else self.output_size, hidden_size, **cell_options)
            for layer in range(num_layers) for _ in range(self.directions))
        self.inter_layer_dropout = make_dropout(dropout if num_layers > 1 else 0.0, locked_dropout)
        # set to a list to record every step's h_t per cell (layer·D + direction) in the graph, for
        # gradient-through-time diagnostics: trace[index][t] is a tensor whose .grad can be asked for
        self.trace: list[list[torch.Tensor]] | None = None

    def forward(self, inputs, state=None, lengths=None, final: bool = True):  # noqa: ARG002 (always returns it)
        B, T, _ = inputs.shape
        if state is None:
            state = self.initial_state(B)
        lstm = self.cell == "lstm"
        if state is None:
            zeros = inputs.new_zeros(self.num_layers * self.directions, B, self.hidden_size)
            state = (zeros, zeros) if lstm else zeros
        h0s, C0s = state if lstm else (state, None)
        # (T, B, 1) masks of real tokens; None when nothing is padded (the fast path)
        mask = None
        if lengths is not None and bool((lengths < T).any()):
            lengths = lengths.to(inputs.device)
            mask = real_tokens(lengths, T).t().unsqueeze(-1)
        finals_h, finals_C = [], []
        layer_input = inputs
        for layer in range(self.num_layers):
            if layer > 0:
                layer_input = self.inter_layer_dropout(layer_input)
            outputs = []
            for direction in range(self.directions):
                index = layer * self.directions + direction
                x = layer_input if direction == 0 else reverse_padded(layer_input, lengths)
                initial = (h0s[index], C0s[index]) if lstm else h0s[index]
                steps = None if self.trace is None else []
                out, final = _unroll(self.cells[index], x, initial, mask, steps)
                if steps is not None:
                    self.trace.append(steps)
                outputs.append(out if direction == 0 else reverse_padded(out, lengths))
                finals_h.append(final[0] if lstm else final)
                if lstm:
                    finals_C.append(final[1])
            layer_input = torch.cat(outputs, dim=-1) if self.directions == 2 else outputs[0]
        h_n = torch.stack(finals_h)
        return layer_input, ((h_n, torch.stack(finals_C)) if lstm else h_n)


def _unroll(cell: Cell, x: torch.Tensor, state, mask: torch.Tensor | None, trace: list | None = None):
    """Run one cell over x (B, T, I) left to right → outputs (B, T, H), final state.

    Where mask (T, B, 1) is False the state is held and the output is 0, so padding after a
    sequence's end changes nothing. trace, if a list, receives each step's h_t.
    """
    # W_in x_t + b for all t: one GEMM outside the loop, time-major so each u_t is contiguous. A batch-major
    # x is copied to time-major first: the GEMM on the transposed view measured ~15 % slower than copy + GEMM
    u = cell.project(x.transpose(0, 1).contiguous())
    # Under mixed precision (autocast) the projection above runs in bfloat16/float16 and the recurrence below in
    # float32: the state is carried through every step (bfloat16 keeps 8 bits of mantissa), and the compiled
    # LSTM kernel is float32. torch's fused cells decide this for themselves.
    with torch.autocast(u.device.type, enabled=False):
        if u.dtype in (torch.bfloat16, torch.float16):
            u = u.float()
        state = tuple(s.to(u.dtype) for s in state) if isinstance(state, tuple) else state.to(u.dtype)
        return _unroll_projected(cell, u, state, mask, trace)


def _unroll_projected(cell: Cell, u: torch.Tensor, state, mask: torch.Tensor | None, trace: list | None):
    """_unroll from u = W_in x_t + b (T, B, G·H), time-major."""
    if isinstance(cell, LSTMCell) and mask is None and trace is None:
        hs, C = LSTMSequence.apply(u, *state, cell.W_rec)  # the same equations, backward by hand
        return hs.transpose(0, 1), (hs[-1], C)
    u = u.unbind(0)
    W = cell.weights()
    skip = getattr(cell, "skip", None)
    outputs = []
    for t, u_t in enumerate(u):
        if skip:
            h_skip = outputs[t - skip] if t >= skip else torch.zeros_like(state)
            new = cell.step(u_t, state, W, h_skip)
        else:
            new = cell.step(u_t, state, W)
        if mask is not None:
            m = mask[t]
            if isinstance(new, tuple):
                new = tuple(torch.where(m, n, s) for n, s in zip(new, state))
            else:
                new = torch.where(m, new, state)
        state = new
        h = state[0] if isinstance(state, tuple) else state
        outputs.append(h)
        if trace is not None:
            trace.append(h)
    out = torch.stack(outputs, dim=1)
    if mask is not None:
        out = out * mask.transpose(0, 1)
    return out, state


def recurrent_layer(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                    dropout: float = 0.0, bidirectional: bool = False, nonlinearity: str = "tanh",
                    forget_bias: float | str | None = None, backend: str = "fused", learn_initial_state: bool = False,
                    gru_form: str | None = None, leak: float | None = None, learn_leak: bool = False,
                    skip: int | None = None, locked_dropout: bool = False, recurrent_init: str = "default",
                    chrono_max: float | None = None) -> Recurrent:
    """A batch-first multi-layer recurrent stack; `dropout` applies between layers.

    locked_dropout: one dropout mask per sequence between layers (rnnlab.nn.dropout) instead of one per step.
    recurrent_init: "default" (torch's uniform init) or "orthogonal": each gate's H × H block of the
    hidden-to-hidden weights (weight_hh / W_rec) a random orthogonal matrix, in every layer and direction;
    input weights and biases keep the uniform init.
    forget_bias (lstm only): initial b_f of every layer and direction, so f_t starts near
    sigmoid(b_f) and the cell state is kept by default (Gers et al. 2000; Jozefowicz et al. 2015
    recommend 1). None keeps torch's uniform initialisation, which centres b_f on 0 (f_t ≈ 0.5).
    "chrono" draws b_f ~ log U(1, chrono_max − 1) per unit and sets b_i = −b_f (Tallec & Ollivier 2018);
    chrono_max = T_max, the longest dependency to be carried, in steps, is required with it and refused without.
    gru_form (gru, scratch only): "lecture" (default) or "torch"; fused is always the torch form.
    leak, learn_leak, skip (rnn, scratch only): leaky units and skip connections; see ElmanCell.
    """
    if cell not in CELLS:
        raise ValueError(f"cell={cell!r} is not one of {', '.join(CELLS)}")
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity={nonlinearity!r} is not one of {', '.join(NONLINEARITIES)}")
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of {', '.join(BACKENDS)}")
    if recurrent_init not in RECURRENT_INITS:
        raise ValueError(f"recurrent_init={recurrent_init!r} is not one of {', '.join(RECURRENT_INITS)}")
    _check_forget_bias(cell, forget_bias, chrono_max)
    scratch_only = {"leak": leak, "learn_leak": learn_leak or None, "skip": skip}
    if cell != "rnn" and any(v is not None for v in scratch_only.values()):
        raise ValueError(f"leak/learn_leak/skip apply to the Elman rnn cell only, not {cell}")
    if gru_form is not None and cell != "gru":
        raise ValueError(f"gru_form applies to gru only, not {cell}")
    common = dict(cell=cell, input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
                  dropout=dropout, bidirectional=bidirectional, learn_initial_state=learn_initial_state,
                  locked_dropout=locked_dropout, recurrent_init=recurrent_init)
    if backend == "fused":
        for key, value in {**scratch_only, "gru_form": None if gru_form in (None, "torch") else gru_form}.items():
            if value is not None:
                raise ValueError(f"{key} needs backend=scratch (torch's fused kernels have no such option)")
        return FusedRecurrent(nonlinearity=nonlinearity, forget_bias=forget_bias, chrono_max=chrono_max, **common)
    options = {"rnn": dict(nonlinearity=nonlinearity, leak=leak, learn_leak=learn_leak, skip=skip),
               "lstm": dict(forget_bias=forget_bias, chrono_max=chrono_max),
               "gru": dict(gru_form=gru_form or "lecture")}[cell]
    return ScratchRecurrent(**common, **options)


def _check_forget_bias(cell: str, forget_bias, chrono_max) -> None:
    """forget_bias: None, a number or "chrono"; chrono_max (T_max) goes with "chrono" and only with it."""
    if forget_bias is not None and cell != "lstm":
        raise ValueError(f"forget_bias applies to lstm only, not {cell} (chrono included: it sets the LSTM's b_f "
                         "and b_i)")
    if isinstance(forget_bias, bool) or not (forget_bias is None or forget_bias == CHRONO
                                             or isinstance(forget_bias, (int, float))):
        raise ValueError(f"forget_bias={forget_bias!r} is invalid: a number (the initial b_f), {CHRONO} or null")
    if forget_bias == CHRONO and chrono_max is None:
        raise ValueError(f"forget_bias={CHRONO} needs chrono_max=T_max, the longest dependency in steps (e.g. 25 "
                         "for data=synthetic_lm, whose verb comes up to 25 tokens after its subject)")
    if chrono_max is not None and forget_bias != CHRONO:
        raise ValueError(f"chrono_max applies to forget_bias={CHRONO} only (it is T_max there); set it to null")
    if chrono_max is not None and (isinstance(chrono_max, bool) or not isinstance(chrono_max, (int, float))
                                   or chrono_max < 2):
        raise ValueError(f"chrono_max={chrono_max!r} is invalid: a number ≥ 2 (T_max, the longest dependency "
                         "in steps)")


def detach_state(state: RecurrentState | None) -> RecurrentState | None:
    """Cut the graph behind a carried state: truncated BPTT backpropagates within one window only."""
    if state is None or isinstance(state, torch.Tensor):
        return None if state is None else state.detach()
    return tuple(s.detach() for s in state)


@torch.no_grad()
def copy_fused_weights(fused: FusedRecurrent, scratch: ScratchRecurrent) -> None:
    """Give `scratch` exactly the function of `fused` (the mapping the equality tests rely on).

    Per layer l and direction (suffix "" or "_reverse"), cell index l·D + direction:
        W_in = weight_ih_l{l},  W_rec = weight_hh_l{l},  b = bias_ih_l{l} + bias_hh_l{l}
    except for the GRU (torch form), whose candidate rows keep the two biases apart:
        b[2H:] = bias_ih[2H:],  b_rec = bias_hh[2H:]   (b_rec is multiplied by r_t)
    """
    if (fused.cell, fused.num_layers, fused.directions) != (scratch.cell, scratch.num_layers, scratch.directions):
        raise ValueError("copy_fused_weights needs the same cell, num_layers and bidirectional")
    H = fused.hidden_size
    for layer in range(fused.num_layers):
        for direction, suffix in enumerate(["", "_reverse"][: fused.directions]):
            cell = scratch.cells[layer * fused.directions + direction]
            get = lambda name: getattr(fused.module, f"{name}_l{layer}{suffix}")  # noqa: B023
            cell.W_in.copy_(get("weight_ih"))
            cell.W_rec.copy_(get("weight_hh"))
            cell.b.copy_(get("bias_ih") + get("bias_hh"))
            if getattr(cell, "form", None) == "torch":
                cell.b[2 * H :] = get("bias_ih")[2 * H :]
                cell.b_rec.copy_(get("bias_hh")[2 * H :])
            elif getattr(cell, "form", None) == "lecture":
                raise ValueError("a fused GRU equals the scratch GRU in gru_form='torch' only")
    if fused.h0 is not None and scratch.h0 is not None:
        scratch.h0.copy_(fused.h0)
        if fused.C0 is not None:
            scratch.C0.copy_(fused.C0)
