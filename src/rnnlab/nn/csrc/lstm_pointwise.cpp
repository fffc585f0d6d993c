// The LSTM's per-step gate math in one pass over each step's gates: the scratch backend's fast path
// (rnnlab/nn/bptt.py holds the same equations as torch ops, and the GEMMs; rnnlab/nn/kernels.py builds this).
//
// Why by hand: between two GEMMs a step, the eager gate math is ~15 ATen calls, each a pass over memory with
// its own dispatch; on 2 CPU threads that cost the char-level LSTM ~13 % against oneDNN's fused LSTM.
// torch.compile's CPU kernels for the same math measured slower than the eager ops (experiments/cell_speed/).
//
// Built with -O3 -ffast-math and no -march: GCC then vectorizes exp and tanh through glibc's libmvec (it does
// not without fast-math), and the binary runs on any CPU of the architecture. Nothing here compares floats, so
// fast-math's no-inf/no-NaN assumption changes no result; NaN and inf still propagate through the arithmetic.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>

namespace {

template <typename T>
inline T sigmoid(T x) { return T(1) / (T(1) + std::exp(-x)); }

// a (B, 4H): the pre-activations u_t + W_rec h_{t-1}, overwritten with i, f, C̃, o;  C_prev (B, H);
// writes C (B, H) and h (B, H):
//     i, f, o = sigmoid(a^{i,f,o}),  C̃ = tanh(a^C),  C_t = f ⊙ C_{t-1} + i ⊙ C̃,  h_t = o ⊙ tanh(C_t)
template <typename T>
void forward_rows(T* a, const T* C_prev, T* C, T* h, int64_t B, int64_t H) {
  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      T* a_b = a + b * 4 * H;
      const T* C_prev_b = C_prev + b * H;
      T* C_b = C + b * H;
      T* h_b = h + b * H;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const T i = sigmoid(a_b[j]), f = sigmoid(a_b[H + j]);
        const T C_tilde = std::tanh(a_b[2 * H + j]), o = sigmoid(a_b[3 * H + j]);
        a_b[j] = i, a_b[H + j] = f, a_b[2 * H + j] = C_tilde, a_b[3 * H + j] = o;
        const T C_t = f * C_prev_b[j] + i * C_tilde;
        C_b[j] = C_t;
        h_b[j] = o * std::tanh(C_t);
      }
    }
  });
}

// gates (B, 4H): i, f, C̃, o of step t;  C_prev, C (B, H): C_{t-1}, C_t;  d_h (B, H): ∂L/∂h_t, all paths;
// d_C (B, H): ∂L/∂C_t from step t+1 on entry, ∂L/∂C_{t-1} on exit;  writes d_a (B, 4H) = ∂L/∂a_t:
//     δC = d_C + δh ⊙ o ⊙ (1 − tanh²C_t)
//     δa = [δC ⊙ C̃ ⊙ i(1−i),  δC ⊙ C_{t-1} ⊙ f(1−f),  δC ⊙ i ⊙ (1−C̃²),  δh ⊙ tanh(C_t) ⊙ o(1−o)]
//     ∂L/∂C_{t-1} = δC ⊙ f
template <typename T>
void backward_rows(const T* gates, const T* C_prev, const T* C, const T* d_h, T* d_C, T* d_a, int64_t B,
                   int64_t H) {
  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const T* g_b = gates + b * 4 * H;
      const T* C_prev_b = C_prev + b * H;
      const T* C_b = C + b * H;
      const T* d_h_b = d_h + b * H;
      T* d_C_b = d_C + b * H;
      T* d_a_b = d_a + b * 4 * H;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const T i = g_b[j], f = g_b[H + j], C_tilde = g_b[2 * H + j], o = g_b[3 * H + j];
        const T tanh_C = std::tanh(C_b[j]);
        const T dC = d_C_b[j] + d_h_b[j] * o * (T(1) - tanh_C * tanh_C);
        d_a_b[j] = dC * C_tilde * i * (T(1) - i);
        d_a_b[H + j] = dC * C_prev_b[j] * f * (T(1) - f);
        d_a_b[2 * H + j] = dC * i * (T(1) - C_tilde * C_tilde);
        d_a_b[3 * H + j] = d_h_b[j] * tanh_C * o * (T(1) - o);
        d_C_b[j] = dC * f;
      }
    }
  });
}

void check(const torch::Tensor& t, const torch::Tensor& like, int64_t columns, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous() && t.dim() == 2, name, " must be a contiguous 2-d CPU tensor");
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), name, " must have the dtype of the gates");
  TORCH_CHECK(t.size(0) == like.size(0) && t.size(1) == columns, name, " has the wrong shape");
}

void forward_step(torch::Tensor a, torch::Tensor C_prev, torch::Tensor C, torch::Tensor h) {
  const int64_t B = a.size(0), H = a.size(1) / 4;
  check(a, a, 4 * H, "a");
  check(C_prev, a, H, "C_prev");
  check(C, a, H, "C");
  check(h, a, H, "h");
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "lstm_forward_step", [&] {
    forward_rows<scalar_t>(a.data_ptr<scalar_t>(), C_prev.data_ptr<scalar_t>(), C.data_ptr<scalar_t>(),
                           h.data_ptr<scalar_t>(), B, H);
  });
}

void backward_step(torch::Tensor gates, torch::Tensor C_prev, torch::Tensor C, torch::Tensor d_h,
                   torch::Tensor d_C, torch::Tensor d_a) {
  const int64_t B = gates.size(0), H = gates.size(1) / 4;
  check(gates, gates, 4 * H, "gates");
  check(C_prev, gates, H, "C_prev");
  check(C, gates, H, "C");
  check(d_h, gates, H, "d_h");
  check(d_C, gates, H, "d_C");
  check(d_a, gates, 4 * H, "d_a");
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_backward_step", [&] {
    backward_rows<scalar_t>(gates.data_ptr<scalar_t>(), C_prev.data_ptr<scalar_t>(), C.data_ptr<scalar_t>(),
                            d_h.data_ptr<scalar_t>(), d_C.data_ptr<scalar_t>(), d_a.data_ptr<scalar_t>(), B, H);
  });
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward_step", &forward_step, "LSTM gate math of one step, forward (in place on a; writes C, h)");
  m.def("backward_step", &backward_step, "LSTM gate math of one step, backward (writes d_a; updates d_C)");
}
