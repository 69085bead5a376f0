// The mamba2 mixer: Mamba-2's state-space dual layer as mamba_ssm's Mamba2, called the way the
// reference calls it (models.md §4.3; Dao & Gu 2024).
//
// With D = d_model, E = expand·D inner channels, P = head width (d_model / n_heads by default, as
// the reference passes headdim = d/H), h = E / P heads (2H at the defaults) and N = d_state:
//
//   [z, xBC, dt] = in_proj u                                   widths E, E + 2N, h
//   [x, B, C]    = silu(conv(xBC))                             one short conv (kernel 4, bias) over all three
//   Δ_t = softplus(dt_t + dt_bias),  A = −exp(A_log)           one scalar per head
//   per head:  S_t = e^{Δ_t A} S_{t−1} + B_t (Δ_t x_t)ᵀ,   y_t = S_tᵀ C_t + D·x_t      S ∈ R^{N×P}
//   out = out_proj( rmsnorm_E(y ⊙ silu(z)) · w )               the gate before the norm
//
// B_t and C_t are shared by the heads (ngroups = 1). The recurrence is gated linear attention with
// a per-head decay (q = C, k = B, v = Δ·x, log decay Δ·A), so forward runs the SDK's chunked
// primitive for one decay per head (sb::gla_scalar_chunked, [C, C] decays per chunk) — the same math
// as the reference's SSD chunked form — or, with mode = "recurrent", the sequential loop
// sb::gla_reference (the decay broadcast over N).
//
// Parameters (state-dict names as mamba_ssm's), 6D² + 2DN + 2DH + 12D + 10N + 6H at the defaults:
//   in_proj.weight                [2E + 2N + h, D]       no bias
//   conv1d.weight, conv1d.bias    [E + 2N, 1, 4], [E + 2N]
//   dt_bias, A_log, D             [h] each              softplus⁻¹(U_log(1e-3, 0.1)), log U(1, 16), 1
//   norm.weight                   [E]                    1
//   out_proj.weight               [D, E]                 no bias
//
// Recurrent form: MixerState::tensors = {S [B, h, N, P] (float32, float64 for float64), conv cache
// [B, E + 2N, 3]}: 2DN + 3(E + 2N) numbers per sequence at the defaults.
#pragma once

#include <selectivbench/sdk.hpp>

#include <cstdint>
#include <string>

namespace sb::plugins {

class Mamba2Mixer : public sb::Mixer {
 public:
  explicit Mamba2Mixer(const sb::MixerContext& ctx);

  torch::Tensor forward(const torch::Tensor& x) override;  // [B, T, D] -> [B, T, D]
  sb::MixerState init_state(std::int64_t batch, const torch::Device& device,
                            torch::ScalarType dtype) override;
  torch::Tensor step(const torch::Tensor& x_t, sb::MixerState& state) override;  // [B, D] -> [B, D]
  std::int64_t state_elements(std::int64_t seq_len) const override;
  std::string describe() const override;

  torch::nn::Linear in_proj{nullptr};  // [2E + 2N + h, D]
  sb::ShortConv conv1d{nullptr};       // E + 2N channels, bias, SiLU
  torch::Tensor dt_bias;               // [h]
  torch::Tensor A_log;                 // [h]
  torch::Tensor D;                     // [h]
  sb::RMSNorm norm{nullptr};           // over E
  torch::nn::Linear out_proj{nullptr};  // [D, E]

 private:
  // The scan inputs from in_proj's output and the conv output: q = C, k = B [..., h, N],
  // v = Δ·x [..., h, P], log decay g = Δ·A [..., h, N], and x [..., h, P] for the D skip.
  struct ScanInputs {
    torch::Tensor q, k, v, g, x;
  };
  ScanInputs scan_inputs(const torch::Tensor& xbc, const torch::Tensor& dt) const;
  // y [..., E] and z [..., E] -> out [..., D]
  torch::Tensor output(const torch::Tensor& y, const torch::Tensor& z);

  std::int64_t d_model_;
  std::int64_t inner_;     // E
  std::int64_t head_dim_;  // P
  std::int64_t n_heads_;   // h
  std::int64_t d_state_;   // N
  std::int64_t conv_size_;
  std::int64_t chunk_size_;
  bool recurrent_mode_;
};

sb::PluginDescriptor describe_mamba2();

}  // namespace sb::plugins
