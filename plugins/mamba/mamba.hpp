// The mamba mixer: Mamba's selective state-space layer as mamba_ssm's Mamba ("mamba_simple",
// v2.2.4), called the way the reference calls it (models.md §4.2; Gu & Dao 2023).
//
// With D = d_model, E = expand·D inner channels, N = d_state and R = ceil(D/16):
//
//   [x, z] = in_proj u                                     E channels each
//   x'     = silu(conv(x))                                 short conv, kernel 4, with bias
//   [δ, B, C] = x_proj x'                                  widths R, N, N (B, C shared by the
//   channels) Δ = softplus(dt_proj δ),  A = −exp(A_log)              Δ per channel, A per (channel,
//   state) h_t[c, n] = e^{Δ_t[c] A[c, n]} h_{t−1}[c, n] + Δ_t[c] B_t[n] x'_t[c] y_t[c]    = Σ_n
//   h_t[c, n] C_t[n] + D[c] x'_t[c] out       = out_proj(y ⊙ silu(z))
//
// On CUDA (float32 and bfloat16: the scan computes in float32) training runs the fused kernel of
// selective_scan_cuda.hpp when the build has it (nvcc found, LibTorch with CUDA; N ≤ 256): time
// runs inside one kernel with the states in registers. Elsewhere it runs the SDK's selective scan
// (sb::selective_scan: whole-tensor steps outside the autograd graph with a hand-written
// reverse-time backward). mode = "reference" uses the SDK's plain autograd loop (slow, for
// checking); fused_cuda = false keeps the SDK scan on CUDA too.
//
// Parameters (state-dict names as mamba_ssm's), 6D² + 4DR + 6DN + 14D at the defaults:
//   in_proj.weight               [2E, D]          no bias
//   conv1d.weight, conv1d.bias   [E, 1, 4], [E]
//   x_proj.weight                [R + 2N, E]      no bias
//   dt_proj.weight, .bias        [E, R], [E]      U(±R^−½); softplus⁻¹(Δ_init), Δ_init log-uniform
//   in [1e-3, 0.1] A_log                        [E, N]           log(1 .. N) in every row
//   (S4D-real) D                            [E]              1 out_proj.weight              [D, E]
//   no bias
//
// Recurrent form: MixerState::tensors = {h [B, E, N] (float32; float64 for float64), conv cache
// [B, E, 3]}: 2DN + 6D numbers per sequence at the defaults.
#pragma once

#include <selectivbench/sdk.hpp>

#include <cstdint>
#include <string>

namespace sb::plugins {

class MambaMixer : public sb::Mixer {
 public:
  explicit MambaMixer(const sb::MixerContext& ctx);

  torch::Tensor forward(const torch::Tensor& x) override;  // [B, T, D] -> [B, T, D]
  sb::MixerState init_state(std::int64_t batch, const torch::Device& device,
                            torch::ScalarType dtype) override;
  torch::Tensor step(const torch::Tensor& x_t, sb::MixerState& state) override;  // [B, D] -> [B, D]
  std::int64_t state_elements(std::int64_t seq_len) const override;
  std::string describe() const override;

  torch::nn::Linear in_proj{nullptr};   // [2E, D]
  sb::ShortConv conv1d{nullptr};        // E channels, bias, SiLU
  torch::nn::Linear x_proj{nullptr};    // [R + 2N, E]
  torch::nn::Linear dt_proj{nullptr};   // [E, R] + bias
  torch::Tensor A_log;                  // [E, N]
  torch::Tensor D;                      // [E]
  torch::nn::Linear out_proj{nullptr};  // [D, E]

 private:
  // x' [..., E] -> (Δ [..., E], B [..., N], C [..., N]), Δ in float32 (float64).
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> selection(const torch::Tensor& xc);

  std::int64_t d_model_;
  std::int64_t inner_;    // E
  std::int64_t d_state_;  // N
  std::int64_t dt_rank_;  // R
  std::int64_t conv_size_;
  std::int64_t checkpoint_every_;
  bool reference_mode_;
  bool fused_cuda_;
};

sb::PluginDescriptor describe_mamba();

// True when this build has the fused CUDA scan (selective_scan_cuda.hpp).
bool fused_cuda_scan_built();

// The selective scan y [B, T, E] from h_0 = 0 by the fused CUDA kernel, differentiable in every
// input: x, delta [B, T, E], A [E, N], B, C [B, T, N], CUDA tensors (computed in float32, y in
// float32), N ≤ 256. Throws when the build has no such kernel.
torch::Tensor selective_scan_fused_cuda(const torch::Tensor& x, const torch::Tensor& delta,
                                        const torch::Tensor& A, const torch::Tensor& B,
                                        const torch::Tensor& C);

}  // namespace sb::plugins
