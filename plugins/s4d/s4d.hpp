// The s4d mixer: the diagonal state space layer S4D, as the reference's in-repo `S4D` module that
// its secondary model `s4` builds (models.md §7.3; Gu et al. 2022, "On the Parameterization and
// Initialization of Diagonal State Space Models").
//
// Each of the D = d_model channels h is its own linear time-invariant system with N/2 complex modes
// (N = d_state; the conjugate modes are implied by taking twice the real part):
//
//   Δ_h = exp(log_dt_h),  A_hn = −exp(log_A_real_hn) + i·A_imag_hn           (n < N/2)
//   x_t = e^{Δ A} ⊙ x_{t−1} + (e^{Δ A} − 1)/A · u_t                        ZOH, B = 1
//   y_t = 2·Re(Σ_n C_hn x_t,n) + D_h u_t
// which is the causal convolution y = K ∗ u + D u with the kernel
//   K_h[l] = 2·Re Σ_n C_hn (e^{Δ A_hn} − 1)/A_hn · e^{Δ A_hn l},   l = 0 .. T−1.
// Then   z = act(y)  (GELU: the reference's act_function 'none'; or ReLU),
//        dropout tied over time (one mask per sequence and channel, training only),
//        out = GLU(W z + b) = (W z + b)[:D] ⊙ σ((W z + b)[D:])            W [2D, D] (a 1×1 conv).
// The input and output are [B, T, D]; the reference's transposed [B, D, T] layout is internal.
// No input-dependent gate: the decays Δ·Re A are learnt but the same at every step (LTI).
//
// Forward (mode "fft") builds K from the parameters and convolves by FFT over 2T points: no loop
// over time. mode "recurrent" runs the recurrence above step by step (the reference path).
//
// Parameters (state-dict names as the reference's S4D), N' = N/2:
//   D                                  [D]          ~ N(0, 1)
//   kernel.C                           [D, N', 2]   complex C as (re, im), each ~ N(0, ½)
//   kernel.log_dt                      [D]          U(log dt_min, log dt_max)
//   kernel.log_A_real                  [D, N']      log ½
//   kernel.A_imag                      [D, N']      π·n
//   output_linear.0.weight / .bias     [2D, D, 1] / [2D]   PyTorch's default Conv1d init
//   total = 2D² + 2DN + 4D
// The reference trains log_dt, log_A_real and A_imag with their own learning rate min(1e-3, lr)
// and no weight decay (an AdamW parameter group); this SDK has no per-parameter optimiser groups,
// so here they train with the run's settings (README, Plugins).
//
// Recurrent form: MixerState::tensors = {Re x, Im x}, each [B, D, N'], float32 (float64 for
// float64): D·N numbers per sequence.
#pragma once

#include <selectivbench/sdk.hpp>

#include <cstdint>
#include <string>

namespace sb::plugins {

// The discretised system of every channel, in a real dtype: complex numbers as (re, im) pairs.
struct S4DSystem {
  torch::Tensor decay_re, decay_im;  // e^{Δ A}              [D, N']
  torch::Tensor input_re, input_im;  // (e^{Δ A} − 1) / A    [D, N']
  torch::Tensor c_re, c_im;          // C                    [D, N']
  torch::Tensor log_re, log_im;      // Δ A                  [D, N']
};

class S4DKernelImpl : public torch::nn::Module {
 public:
  S4DKernelImpl(std::int64_t channels, std::int64_t d_state, double dt_min, double dt_max);

  S4DSystem system(torch::ScalarType dtype) const;
  // K [D, T] in `dtype`.
  torch::Tensor kernel(std::int64_t length, torch::ScalarType dtype) const;

  // The system's parameters stay float32 (or float64) when the layer moves to a narrower dtype:
  // in bfloat16, A_imag = π·n (up to ~100) and the phases Δ·Im A·l would lose all precision.
  void to(torch::Device device, torch::Dtype dtype, bool non_blocking = false) override;
  void to(torch::Dtype dtype, bool non_blocking = false) override;
  using torch::nn::Module::to;

  torch::Tensor C;           // [D, N', 2]
  torch::Tensor log_dt;      // [D]
  torch::Tensor log_A_real;  // [D, N']
  torch::Tensor A_imag;      // [D, N']
};
TORCH_MODULE(S4DKernel);

class S4DMixer : public sb::Mixer {
 public:
  // D = ctx.d_model (heads are not used); options as in describe_s4d().
  explicit S4DMixer(const sb::MixerContext& ctx);

  torch::Tensor forward(const torch::Tensor& x) override;  // [B, T, D] -> [B, T, D]

  sb::MixerState init_state(std::int64_t batch, const torch::Device& device,
                            torch::ScalarType dtype) override;
  torch::Tensor step(const torch::Tensor& x_t, sb::MixerState& state) override;  // [B, D] -> [B, D]

  // D·N (N/2 complex modes per channel): constant in T.
  std::int64_t state_elements(std::int64_t seq_len) const override;
  std::string describe() const override;

  torch::Tensor D;  // [D]
  S4DKernel kernel{nullptr};
  torch::nn::Sequential output_linear{nullptr};  // Conv1d(D, 2D, 1)

 private:
  // act, tied dropout, 1×1 conv and GLU on y [B, T, D] (or [B, 1, D] for a step) -> [B, T, D].
  torch::Tensor output(const torch::Tensor& y, torch::ScalarType out_dtype);

  std::int64_t d_model_;
  std::int64_t d_state_;
  double dropout_;
  bool relu_;
  bool recurrent_mode_;
};

// The plugin's descriptor: name "s4d", taxonomy, capabilities, options, factory.
sb::PluginDescriptor describe_s4d();

}  // namespace sb::plugins
