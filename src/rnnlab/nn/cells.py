"""Recurrent cells written as the lecture's equations (`model.backend=scratch`).

Symbols: x_t input (B, I), h_t hidden state (B, H), σ the cell's nonlinearity, ⊙ elementwise.
A weight acting on the concatenation [h_{t-1}, x_t] is stored as its two blocks,
W·[h_{t-1}, x_t] = W_rec h_{t-1} + W_in x_t, and the gates' blocks are stacked row-wise, so that

  * every W_in x_t + b of a sequence is one GEMM before the time loop (`project`), and
  * inside the loop only W_rec h_{t-1} remains (`step`), one GEMM per step for all gates.

Stacking order is torch's (LSTM: i, f, C̃, o; GRU: r, z, candidate), so weights copy one to one
from torch.nn modules; the one bias b stands for torch's b_ih + b_hh (their sum is all that
matters, except for the GRU's torch form, which keeps a separate recurrent candidate bias).

Each cell's `step(u_t, state, W)` takes u_t = W_in x_t + b (precomputed) and mirrors its equations
line by line. `state` is h_{t-1} for all cells but the LSTM, whose state is (h_{t-1}, C_{t-1}).
W = `cell.weights()` holds the recurrent weights as the step uses them (transposed, split by gate),
made once per sequence: a view made inside the loop would add a graph node per step, and its
backward would materialise a full-size gradient per step.

Initialisation is torch.nn.RNN/LSTM/GRU's (every weight and bias ~ U(−1/√H, 1/√H)), so both backends start
from the same distribution; `recurrent_init`, `forget_bias` and `chrono_max` change it the same way for
both (the helpers below are shared with rnnlab/nn/recurrent.py's fused layer).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}
RECURRENT_INITS = ("default", "orthogonal")
CHRONO = "chrono"  # the forget_bias value that asks for chrono initialisation


def orthogonal_recurrent_(W_rec: torch.Tensor, hidden_size: int) -> None:
    """Each gate's H × H block of W_rec (G·H, H) becomes a random orthogonal matrix, in place.

    An orthogonal W_rec keeps every singular value at 1, so h_{t-1} ↦ W_rec h_{t-1} neither shrinks nor blows
    up a signal or its gradient over many steps at the start (Saxe et al. 2014); the gates each get their own.
    """
    with torch.no_grad():
        for block in W_rec.split(hidden_size):
            nn.init.orthogonal_(block)


def lstm_gate_bias_(b: torch.Tensor, hidden_size: int, forget_bias: float | str | None,
                    chrono_max: float | None = None, b_rec: torch.Tensor | None = None) -> None:
    """The LSTM's initial gate biases, in place in b (4H, rows i, f, C̃, o):

        forget_bias = a number:  b_f = forget_bias                   (Gers et al. 2000; 1 in Jozefowicz et al. 2015)
        forget_bias = "chrono":  b_f ~ log U(1, T_max − 1) per unit,  b_i = −b_f,  T_max = chrono_max
                                 (Tallec & Ollivier 2018: f_t ≈ 1 − 1/T keeps a unit's memory for about T steps,
                                 so the units' time scales spread over 2..T_max; i_t = 1 − f_t writes as much as
                                 it forgets)
        forget_bias = None:      unchanged

    b_rec is torch's second bias vector (b_hh, added to b = b_ih): its rows set here become 0, so that the sum
    b + b_rec, the bias the gates see, is the one intended.
    """
    if forget_bias is None:
        return
    H = hidden_size
    with torch.no_grad():
        if forget_bias == CHRONO:
            b_f = b.new_empty(H).uniform_(1, chrono_max - 1).log()
            b[:H], b[H : 2 * H] = -b_f, b_f
            rows = slice(0, 2 * H)
        else:
            b[H : 2 * H] = forget_bias
            rows = slice(H, 2 * H)
        if b_rec is not None:
            b_rec[rows] = 0


class Cell(nn.Module):
    """Parameters W_in (G·H, I), W_rec (G·H, H), b (G·H) for a cell with G gate blocks."""

    blocks = 1
    carries_cell_state = False

    def __init__(self, input_size: int, hidden_size: int, recurrent_init: str = "default"):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.recurrent_init = recurrent_init
        rows = self.blocks * hidden_size
        self.W_in = nn.Parameter(torch.empty(rows, input_size))
        self.W_rec = nn.Parameter(torch.empty(rows, hidden_size))
        self.b = nn.Parameter(torch.empty(rows))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # torch.nn.RNN/LSTM/GRU's initialisation, so both backends start from the same distribution
        bound = 1 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)
        if self.recurrent_init == "orthogonal":
            orthogonal_recurrent_(self.W_rec, self.hidden_size)

    def project(self, inputs: torch.Tensor) -> torch.Tensor:
        """W_in x_t + b for every t at once: (B, T, I) → (B, T, G·H)."""
        return F.linear(inputs, self.W_in, self.b)

    def weights(self) -> tuple:
        return (self.W_rec.t(),)

    def step(self, u_t: torch.Tensor, state, W: tuple):
        raise NotImplementedError


class ElmanCell(Cell):
    """Elman RNN:  h_t = σ(W_in x_t + W_rec h_{t-1} + b),  σ ∈ {tanh, relu}.

    leak α (leaky unit):  h_t = (1 − α) ⊙ h_{t-1} + α ⊙ σ(W_in x_t + W_rec h_{t-1} + b).
    α is a fixed number in (0, 1], or, with learn_leak, learned per unit as α = sigmoid(a)
    (initialised at the given value), so each unit picks its own time scale.

    skip d (skip connection through time):  σ(W_in x_t + W_rec h_{t-1} + W_skip h_{t-d} + b),
    so a gradient can reach step t − k in about k/d multiplications instead of k. The layer
    supplies h_{t-d} (zeros before the start of the sequence or TBPTT window). recurrent_init applies to
    W_rec only; W_skip keeps the uniform initialisation.
    """

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh",
                 leak: float | None = None, learn_leak: bool = False, skip: int | None = None,
                 recurrent_init: str = "default"):
        super().__init__(input_size, hidden_size, recurrent_init)
        self.sigma = NONLINEARITIES[nonlinearity]
        if skip is not None and (not isinstance(skip, int) or skip < 2):
            raise ValueError(f"skip={skip} must be an integer ≥ 2 (d = 1 is the ordinary recurrence)")
        self.skip = skip
        self.W_skip = None
        if skip is not None:
            self.W_skip = nn.Parameter(torch.empty(hidden_size, hidden_size))
            nn.init.uniform_(self.W_skip, -1 / math.sqrt(hidden_size), 1 / math.sqrt(hidden_size))
        if leak is not None and not 0 < leak <= 1:
            raise ValueError(f"leak={leak} must be in (0, 1] (α, the share of the new state)")
        if learn_leak and leak is None:
            leak = 0.5
        self.leak = None if leak is None or (leak == 1 and not learn_leak) else leak
        if learn_leak:
            # α = sigmoid(a) keeps every unit's leak in (0, 1) while it learns
            start = torch.full((hidden_size,), min(leak, 1 - 1e-3))
            self.leak_logit = nn.Parameter(torch.log(start) - torch.log1p(-start))
        else:
            self.leak_logit = None

    def alpha(self) -> torch.Tensor | float | None:
        return torch.sigmoid(self.leak_logit) if self.leak_logit is not None else self.leak

    def weights(self) -> tuple:
        return self.W_rec.t(), None if self.W_skip is None else self.W_skip.t(), self.alpha()

    def step(self, u_t, h, W, h_skip: torch.Tensor | None = None):
        W_rec_T, W_skip_T, alpha = W
        pre = torch.addmm(u_t, h, W_rec_T)  # W_in x_t + b + W_rec h_{t-1}
        if W_skip_T is not None:
            pre = torch.addmm(pre, h_skip, W_skip_T)  # + W_skip h_{t-d}
        candidate = self.sigma(pre)
        if alpha is None:
            return candidate
        return torch.lerp(h, candidate, alpha)  # (1 − α) h_{t-1} + α σ(·)


class LSTMCell(Cell):
    """LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000):

        i_t = sigmoid(W_i·[h_{t-1}, x_t] + b_i)           input gate
        f_t = sigmoid(W_f·[h_{t-1}, x_t] + b_f)           forget gate
        C̃_t = tanh(W_C·[h_{t-1}, x_t] + b_C)              candidate cell state
        o_t = sigmoid(W_o·[h_{t-1}, x_t] + b_o)           output gate
        C_t = f_t ⊙ C_{t-1} + i_t ⊙ C̃_t
        h_t = o_t ⊙ tanh(C_t)

    forget_bias: initial b_f, a number or "chrono" (with chrono_max; see lstm_gate_bias_). None keeps the
    uniform init, b_f ≈ 0 so f_t ≈ 0.5.
    """

    blocks = 4
    carries_cell_state = True

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float | str | None = None,
                 chrono_max: float | None = None, recurrent_init: str = "default"):
        super().__init__(input_size, hidden_size, recurrent_init)
        lstm_gate_bias_(self.b, hidden_size, forget_bias, chrono_max)

    def step(self, u_t, state, W):
        (W_rec_T,) = W
        h, C = state
        i, f, C_tilde, o = torch.addmm(u_t, h, W_rec_T).chunk(4, dim=-1)
        i, f, C_tilde, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(C_tilde), torch.sigmoid(o)
        C = torch.addcmul(f * C, i, C_tilde)  # f ⊙ C_{t-1} + i ⊙ C̃_t
        h = o * torch.tanh(C)
        return h, C


class GRUCell(Cell):
    """GRU (Cho et al. 2014), in one of two forms.

    form="lecture" (the course's equations):
        r_t = sigmoid(W_r·[h_{t-1}, x_t] + b_r)           reset gate
        z_t = sigmoid(W_z·[h_{t-1}, x_t] + b_z)           update gate
        h̃_t = tanh(W·[r_t ⊙ h_{t-1}, x_t] + b)            candidate: reset before the matmul
        h_t = (1 − z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t             z_t = 1 writes the candidate

    form="torch" (torch.nn.GRU, cuDNN):
        r_t, z_t as above
        h̃_t = tanh(W_in x_t + b + r_t ⊙ (W_rec h_{t-1} + b_rec))   reset after the matmul
        h_t = (1 − z_t) ⊙ h̃_t + z_t ⊙ h_{t-1}             z_t = 1 keeps the old state

    Weight mapping to torch.nn.GRU (used by the equality tests), per layer and direction:
        W_in = weight_ih,  W_rec = weight_hh,  b = bias_ih + bias_hh except the candidate rows,
        where b = bias_ih[2H:] and b_rec = bias_hh[2H:] (b_rec sits inside r_t ⊙ ·).
    The two forms are different functions, not reparametrisations of one another: swapping z's
    orientation is exact (W_z → −W_z, b_z → −b_z), but where r_t is applied is not.
    """

    blocks = 3

    def __init__(self, input_size: int, hidden_size: int, form: str = "lecture", recurrent_init: str = "default"):
        if form not in ("lecture", "torch"):
            raise ValueError(f"gru_form={form!r} must be 'lecture' or 'torch'")
        self.form = form
        super().__init__(input_size, hidden_size, recurrent_init)
        self.b_rec = nn.Parameter(torch.empty(hidden_size)) if form == "torch" else None
        if self.b_rec is not None:
            nn.init.uniform_(self.b_rec, -1 / math.sqrt(hidden_size), 1 / math.sqrt(hidden_size))

    def weights(self) -> tuple:
        H = self.hidden_size
        return self.W_rec[: 2 * H].t(), self.W_rec[2 * H :].t()  # the gates' rows, the candidate's rows

    def step(self, u_t, h, W):
        W_rz_T, W_c_T = W
        u_rz, u_c = u_t.split([2 * self.hidden_size, self.hidden_size], dim=-1)
        r, z = torch.sigmoid(torch.addmm(u_rz, h, W_rz_T)).chunk(2, dim=-1)
        if self.form == "lecture":
            h_tilde = torch.tanh(torch.addmm(u_c, r * h, W_c_T))  # W·[r ⊙ h_{t-1}, x_t] + b
            return torch.lerp(h, h_tilde, z)  # (1 − z) h_{t-1} + z h̃_t
        h_tilde = torch.tanh(torch.addcmul(u_c, r, torch.addmm(self.b_rec, h, W_c_T)))  # r ⊙ (W_rec h + b_rec)
        return torch.lerp(h_tilde, h, z)  # (1 − z) h̃_t + z h_{t-1}


def make_cell(cell: str, input_size: int, hidden_size: int, nonlinearity: str = "tanh",
              forget_bias: float | str | None = None, chrono_max: float | None = None, gru_form: str = "lecture",
              leak: float | None = None, learn_leak: bool = False, skip: int | None = None,
              recurrent_init: str = "default") -> Cell:
    if cell == "rnn":
        return ElmanCell(input_size, hidden_size, nonlinearity, leak=leak, learn_leak=learn_leak, skip=skip,
                         recurrent_init=recurrent_init)
    if cell == "lstm":
        return LSTMCell(input_size, hidden_size, forget_bias=forget_bias, chrono_max=chrono_max,
                        recurrent_init=recurrent_init)
    if cell == "gru":
        return GRUCell(input_size, hidden_size, form=gru_form, recurrent_init=recurrent_init)
    raise ValueError(f"cell={cell!r} is not one of rnn, lstm, gru")
