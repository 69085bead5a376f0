// The gla mixer: gated linear attention as fla's GatedLinearAttention layer, called the way the
// reference calls it (models.md §4.4; Yang et al. 2024).
//
// With D = d_model, H heads, key width D·expand_k split into H heads of K, value width D·expand_v
// split into H heads of V (defaults: K = D/H, V = 2D/H):
//
//   q = silu(conv(Wq u)),  k = silu(conv(Wk u)),  v = silu(conv(Wv u))      short convs, kernel 4
//   α = logsigmoid(W_g2 (W_g1 u) + b_g2) / gate_logit_normalizer           per key channel, ≤ 0
//   per head:  S_t = diag(exp(α_t)) S_{t−1} + k_t v_tᵀ,   o_t = S_tᵀ (q_t · K^−½)   S ∈ R^{K×V}
//   o   = rmsnorm_V(o) · w ⊙ silu(W_gate u)                                per head
//   out = Wo concat_heads(o)
//
// Without short convolutions (use_short_conv = false) q, k and v are the bare projections, with no
// activation, as in fla.
//
// Parameters (state-dict names as fla's), 8D² + 49D + 2D/H at the defaults:
//   q_proj.weight, k_proj.weight                 [D·expand_k, D]
//   v_proj.weight, g_proj.weight                 [D·expand_v, D]
//   gk_proj.0.weight                             [r, D]              r = gate_low_rank_dim (16)
//   gk_proj.1.weight, gk_proj.1.bias             [D·expand_k, r], [D·expand_k]
//   q_conv1d.weight, k_conv1d.weight             [D·expand_k, 1, conv_size]   (no bias)
//   v_conv1d.weight                              [D·expand_v, 1, conv_size]
//   g_norm_swish_gate.weight                     [V]                 shared by the heads
//   o_proj.weight                                [D, D·expand_v]
// All keep PyTorch's default initialisation (fla's HF init is not applied; models.md §4).
//
// Forward runs the chunked form (sb::gla_chunked) by default, or with mode = "recurrent" the plain
// sequential loop (sb::gla_reference), which is slow and meant for checking.
//
// Recurrent form: MixerState::tensors = {S [B, H, K, V]} followed, with short convs, by the conv
// caches {q [B, D·expand_k, conv_size−1], k [B, D·expand_k, conv_size−1], v [B, D·expand_v,
// conv_size−1]}. S is kept in float32 (float64 for float64 states) whatever the activations' dtype.
#pragma once

#include <selectivbench/sdk.hpp>

#include <cstdint>
#include <string>

namespace sb::plugins {

class GlaMixer : public sb::Mixer {
 public:
  // D = ctx.d_model, H = ctx.n_heads; options as in describe_gla().
  explicit GlaMixer(const sb::MixerContext& ctx);

  torch::Tensor forward(const torch::Tensor& x) override;  // [B, T, D] -> [B, T, D]

  sb::MixerState init_state(std::int64_t batch, const torch::Device& device,
                            torch::ScalarType dtype) override;
  torch::Tensor step(const torch::Tensor& x_t, sb::MixerState& state) override;  // [B, D] -> [B, D]

  // H·K·V for the state plus (conv_size − 1)·(2·D·expand_k + D·expand_v) for the conv caches:
  // constant in the sequence length.
  std::int64_t state_elements(std::int64_t seq_len) const override;
  std::string describe() const override;

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr};  // [H·K, D]
  torch::nn::Linear v_proj{nullptr}, g_proj{nullptr};  // [H·V, D]
  torch::nn::Linear gk_proj0{nullptr};                 // [r, D], registered as gk_proj.0
  torch::nn::Linear gk_proj1{nullptr};                 // [H·K, r] + bias, registered as gk_proj.1
  sb::ShortConv q_conv1d{nullptr}, k_conv1d{nullptr};  // H·K channels; null without short convs
  sb::ShortConv v_conv1d{nullptr};                     // H·V channels
  sb::GatedRMSNorm g_norm_swish_gate{nullptr};         // over V
  torch::nn::Linear o_proj{nullptr};                   // [D, H·V]

 private:
  // Log decays from the input: [..., D] -> [..., H·K], each ≤ 0.
  torch::Tensor log_decay(const torch::Tensor& x);

  std::int64_t d_model_;
  std::int64_t n_heads_;
  std::int64_t key_dim_;    // H·K
  std::int64_t value_dim_;  // H·V
  std::int64_t head_k_;     // K
  std::int64_t head_v_;     // V
  std::int64_t conv_size_;
  std::int64_t chunk_size_;
  double gate_logit_normalizer_;
  bool use_short_conv_;
  bool recurrent_mode_;
};

// The plugin's descriptor: name "gla", taxonomy, capabilities, options, factory.
sb::PluginDescriptor describe_gla();

}  // namespace sb::plugins
