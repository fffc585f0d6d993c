"""Backpropagation through time written out for the LSTM: the scratch backend's fast path.

Why by hand: autograd through `LSTMCell.step` records ~10 nodes per step and, in the backward pass,
computes ∂L/∂W_rec as T small (H × B) · (B × 4H) products. torch's CPU LSTM runs oneDNN's fused
kernel instead, which measured ~1.35× faster than that per-step autograd. Here the forward pass
is the same equations without recording a graph, and the backward pass is their derivative,
step by step, with the weight gradient summed in one GEMM over all steps at the end:

    forward, t = 1..T:     a_t = u_t + W_rec h_{t-1}          (u_t = W_in x_t + b, precomputed)
                           i, f, o = sigmoid(a_t^{i,f,o}),  C̃ = tanh(a_t^C)
                           C_t = f ⊙ C_{t-1} + i ⊙ C̃,  h_t = o ⊙ tanh(C_t)

    backward, t = T..1:    δh = ∂L/∂h_t (from above and from step t+1),  δC = ∂L/∂C_t (from t+1)
                           δo = δh ⊙ tanh(C_t)
                           δC ← δC + δh ⊙ o ⊙ (1 − tanh²(C_t))
                           δi = δC ⊙ C̃,  δC̃ = δC ⊙ i,  δf = δC ⊙ C_{t-1},  ∂L/∂C_{t-1} = δC ⊙ f
                           δa = [δi ⊙ i(1−i), δf ⊙ f(1−f), δC̃ ⊙ (1−C̃²), δo ⊙ o(1−o)]
                           ∂L/∂h_{t-1} += W_rec^T δa,   ∂L/∂u_t = δa
    and at the end         ∂L/∂W_rec = Σ_t δa_t h_{t-1}^T   (one (4H × T·B) · (T·B × H) GEMM)

Used for unpadded batches only (padding and the gradient diagnostics' per-step trace take the
autograd path through `LSTMCell.step`); tests check both paths give the same outputs and gradients.

The pointwise lines of each step (everything but the two GEMMs) run in one compiled pass on the CPU
(csrc/lstm_pointwise.cpp, the same equations; rnnlab/nn/kernels.py builds it) and as the torch ops below
elsewhere, or when no compiler is found, or with RNNLAB_KERNELS=0.
"""

from __future__ import annotations

import torch

from rnnlab.nn import kernels


class LSTMSequence(torch.autograd.Function):
    """(u (T, B, 4H), h_0, C_0 (B, H), W_rec (4H, H)) → (h_1..h_T (T, B, H), C_T (B, H))."""

    @staticmethod
    def forward(ctx, u, h0, C0, W_rec):
        T, H = u.size(0), h0.size(-1)
        W_rec_T = W_rec.t().contiguous()  # (H, 4H) row-major: the faster GEMM layout here
        gates = u.new_empty(u.shape)  # i, f, C̃, o after their nonlinearities
        hs = u.new_empty(T + 1, *h0.shape)  # h_0 .. h_T
        Cs = u.new_empty(T + 1, *C0.shape)  # C_0 .. C_T
        hs[0], Cs[0] = h0, C0
        compiled = kernels.lstm_pointwise() if kernels.usable(u, h0, C0, W_rec) else None
        ctx.compiled = compiled
        for t in range(T):
            a = torch.addmm(u[t], hs[t], W_rec_T, out=gates[t])
            if compiled is not None:
                compiled.forward_step(a, Cs[t], Cs[t + 1], hs[t + 1])
                continue
            torch.sigmoid(a[:, : 2 * H], out=a[:, : 2 * H])  # i, f
            torch.tanh(a[:, 2 * H : 3 * H], out=a[:, 2 * H : 3 * H])  # C̃
            torch.sigmoid(a[:, 3 * H :], out=a[:, 3 * H :])  # o
            i, f, C_tilde, o = a.chunk(4, dim=-1)
            torch.addcmul(f * Cs[t], i, C_tilde, out=Cs[t + 1])
            torch.mul(o, torch.tanh(Cs[t + 1]), out=hs[t + 1])
        ctx.save_for_backward(gates, hs, Cs, W_rec)
        return hs[1:].clone(), Cs[T].clone()

    @staticmethod
    def backward(ctx, d_hs, d_CT):
        gates, hs, Cs, W_rec = ctx.saved_tensors
        T = gates.size(0)
        d_gates = torch.empty_like(gates)  # δa_t for every t
        contiguous = torch.contiguous_format  # the compiled kernel reads and writes rows in place
        d_h = torch.zeros_like(hs[0]) if d_hs is None else d_hs[-1].clone(memory_format=contiguous)
        d_C = torch.zeros_like(Cs[0]) if d_CT is None else d_CT.clone(memory_format=contiguous)
        compiled = ctx.compiled
        for t in reversed(range(T)):
            if d_hs is not None and t < T - 1:
                d_h += d_hs[t]
            if compiled is not None:
                compiled.backward_step(gates[t], Cs[t], Cs[t + 1], d_h, d_C, d_gates[t])  # d_C becomes ∂L/∂C_{t-1}
                d_h = d_gates[t] @ W_rec
                continue
            i, f, C_tilde, o = gates[t].chunk(4, dim=-1)
            tanh_C = torch.tanh(Cs[t + 1])
            d_C.addcmul_(d_h * o, 1 - tanh_C * tanh_C)  # δC += δh ⊙ o ⊙ (1 − tanh²C_t)
            d_i, d_f, d_C_tilde, d_o = d_gates[t].chunk(4, dim=-1)
            torch.mul(d_C * C_tilde, i * (1 - i), out=d_i)
            torch.mul(d_C * Cs[t], f * (1 - f), out=d_f)
            torch.mul(d_C * i, 1 - C_tilde * C_tilde, out=d_C_tilde)
            torch.mul(d_h * tanh_C, o * (1 - o), out=d_o)
            d_C = d_C * f  # ∂L/∂C_{t-1}
            d_h = d_gates[t] @ W_rec  # ∂L/∂h_{t-1} through the recurrence
        # Σ_t δa_t h_{t-1}^T over all steps and sequences at once
        d_W_rec = d_gates.flatten(0, 1).t() @ hs[:-1].flatten(0, 1)
        return d_gates, d_h, d_C, d_W_rec
