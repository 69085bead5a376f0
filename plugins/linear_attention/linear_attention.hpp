// The linear_attention mixer: plain (ungated) linear attention, our taxonomy's baseline with no
// gate and no decay (Katharopoulos et al. 2020). It is the gla layer (models.md §4.4, plugins/gla)
// with the decay projection gk_proj removed, so that comparing the two isolates the gate.
//
// With D = d_model, H heads, key width D·expand_k split into H heads of K, value width D·expand_v
// split into H heads of V (defaults: K = D/H, V = 2D/H):
//
//   q = silu(conv(Wq u)),  k = silu(conv(Wk u)),  v = silu(conv(Wv u))      short convs, kernel 4
//   per head:  S_t = S_{t−1} + k_t v_tᵀ,   o_t = S_tᵀ (q_t · K^−½)            S ∈ R^{K×V}
//   o   = rmsnorm_V(o) · w ⊙ silu(W_gate u)                                per head
//   out = Wo concat_heads(o)
//
// The state is never forgotten: it grows with t, and the per-head output RMSNorm is what keeps the
// outputs at unit scale. No feature map other than the SiLU of the short convs (as gla), and no
// l2norm on q/k. Without short convolutions (use_short_conv = false) q, k and v are the bare
// projections, with no activation, as in gla.
//
// Parameters (names as gla's), with Dk = D·expand_k, Dv = D·expand_v, c = conv_size:
//   q_proj.weight, k_proj.weight                 [Dk, D]
//   v_proj.weight, g_proj.weight                 [Dv, D]
//   q_conv1d.weight, k_conv1d.weight             [Dk, 1, c]   (no bias; only with short convs)
//   v_conv1d.weight                              [Dv, 1, c]
//   g_norm_swish_gate.weight                     [V]          shared by the heads
//   o_proj.weight                                [D, Dv]
//   total = 2·D·Dk + 3·D·Dv + c·(2·Dk + Dv) + Dv/H
//         = 8D² + 16D + 2D/H at the defaults  (gla's 8D² + 49D + 2D/H minus gk_proj's 33D)
// All keep PyTorch's default initialisation.
//
// Forward runs the chunked form (sb::gla_scalar_chunked with zero log decays) by default, or with
// mode = "recurrent" the plain sequential loop (sb::gla_reference), which is slow and for checking.
//
// Recurrent form: MixerState::tensors = {S [B, H, K, V]} followed, with short convs, by the conv
// caches {q [B, Dk, c−1], k [B, Dk, c−1], v [B, Dv, c−1]}. S is kept in float32 (float64 for
// float64 states) whatever the activations' dtype: it only accumulates, so bf16 would lose it.
#pragma once

#include <selectivbench/sdk.hpp>

#include <cstdint>
#include <string>

namespace sb::plugins {

class LinearAttentionMixer : public sb::Mixer {
 public:
  // D = ctx.d_model, H = ctx.n_heads; options as in describe_linear_attention().
  explicit LinearAttentionMixer(const sb::MixerContext& ctx);

  torch::Tensor forward(const torch::Tensor& x) override;  // [B, T, D] -> [B, T, D]

  sb::MixerState init_state(std::int64_t batch, const torch::Device& device,
                            torch::ScalarType dtype) override;
  torch::Tensor step(const torch::Tensor& x_t, sb::MixerState& state) override;  // [B, D] -> [B, D]

  // H·K·V for the state plus (conv_size − 1)·(2·Dk + Dv) for the conv caches: constant in T.
  std::int64_t state_elements(std::int64_t seq_len) const override;
  std::string describe() const override;

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr};  // [H·K, D]
  torch::nn::Linear v_proj{nullptr}, g_proj{nullptr};  // [H·V, D]
  sb::ShortConv q_conv1d{nullptr}, k_conv1d{nullptr};  // H·K channels; null without short convs
  sb::ShortConv v_conv1d{nullptr};                     // H·V channels
  sb::GatedRMSNorm g_norm_swish_gate{nullptr};         // over V
  torch::nn::Linear o_proj{nullptr};                   // [D, H·V]

 private:
  std::int64_t d_model_;
  std::int64_t n_heads_;
  std::int64_t key_dim_;    // H·K
  std::int64_t value_dim_;  // H·V
  std::int64_t head_k_;     // K
  std::int64_t head_v_;     // V
  std::int64_t conv_size_;
  std::int64_t chunk_size_;
  bool use_short_conv_;
  bool recurrent_mode_;
};

// The plugin's descriptor: name "linear_attention", taxonomy, capabilities, options, factory.
sb::PluginDescriptor describe_linear_attention();

}  // namespace sb::plugins
