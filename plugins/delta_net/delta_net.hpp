// The delta_net mixer: the delta rule as fla's DeltaNet layer, called the way the reference calls
// it (models.md §4.5; Schlag et al. 2021, Yang et al. 2024).
//
// With D = d_model, H heads, key width D·expand_k split into H heads of K, value width D·expand_v
// split into H heads of V (defaults: K = D/H, V = 2D/H):
//
//   q = silu(conv(Wq u)),  k = silu(conv(Wk u)),  v = silu(conv(Wv u))      short convs, kernel 4
//   per head:  q = l2norm(q) · K^−½,  k = l2norm(k),  β = σ(W_b u)           β ∈ (0, 1)
//              S_t = S_{t−1} + β_t k_t (v_t − S_{t−1}ᵀ k_t)ᵀ,   o_t = S_tᵀ q_t      S ∈ R^{K×V}
//   o   = rmsnorm_V(o) · w                                                 per head, no output gate
//   out = Wo concat_heads(o)
// l2norm(x) = x / sqrt(Σx² + 1e-6), computed in float32 (float64 for float64 inputs).
//
// Without short convolutions (use_short_conv = false) q, k and v are silu of the bare projections.
//
// Parameters (state-dict names as fla's), 6D² + DH + 16D + 2D/H at the defaults:
//   q_proj.weight, k_proj.weight                 [D·expand_k, D]
//   v_proj.weight                                [D·expand_v, D]
//   b_proj.weight                                [H, D]
//   q_conv1d.weight, k_conv1d.weight             [D·expand_k, 1, conv_size]   (no bias)
//   v_conv1d.weight                              [D·expand_v, 1, conv_size]
//   o_norm.weight                                [V]                 shared by the heads
//   o_proj.weight                                [D, D·expand_v]
// All keep PyTorch's default initialisation (fla's HF init is not applied; models.md §4).
//
// Forward runs the chunked form (sb::delta_rule_chunked) by default, or with mode = "recurrent" the
// plain sequential loop (sb::delta_rule_reference), which is slow and meant for checking.
//
// Recurrent form: MixerState::tensors = {S [B, H, K, V]} followed, with short convs, by the conv
// caches {q [B, D·expand_k, conv_size−1], k [B, D·expand_k, conv_size−1], v [B, D·expand_v,
// conv_size−1]}. S is kept in float32 (float64 for float64 states) whatever the activations' dtype.
#pragma once

#include <selectivbench/sdk.hpp>

#include <cstdint>
#include <string>
#include <tuple>

namespace sb::plugins {

class DeltaNetMixer : public sb::Mixer {
 public:
  // D = ctx.d_model, H = ctx.n_heads; options as in describe_delta_net().
  explicit DeltaNetMixer(const sb::MixerContext& ctx);

  torch::Tensor forward(const torch::Tensor& x) override;  // [B, T, D] -> [B, T, D]

  sb::MixerState init_state(std::int64_t batch, const torch::Device& device,
                            torch::ScalarType dtype) override;
  torch::Tensor step(const torch::Tensor& x_t, sb::MixerState& state) override;  // [B, D] -> [B, D]

  // H·K·V for the state plus (conv_size − 1)·(2·D·expand_k + D·expand_v) for the conv caches:
  // constant in the sequence length.
  std::int64_t state_elements(std::int64_t seq_len) const override;
  std::string describe() const override;

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr};  // [H·K, D]
  torch::nn::Linear v_proj{nullptr};                   // [H·V, D]
  torch::nn::Linear b_proj{nullptr};                   // [H, D]
  sb::ShortConv q_conv1d{nullptr}, k_conv1d{nullptr};  // H·K channels; null without short convs
  sb::ShortConv v_conv1d{nullptr};                     // H·V channels
  sb::RMSNorm o_norm{nullptr};                         // over V
  torch::nn::Linear o_proj{nullptr};                   // [D, H·V]

 private:
  // The activated projections q, k, v: [..., D] -> [..., H·K], [..., H·K], [..., H·V]. With short
  // convs, x is [B, T, D] (forward, state null) or one step [B, D] (the state's caches advance).
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> qkv(const torch::Tensor& x,
                                                              sb::MixerState* state);

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

// The plugin's descriptor: name "delta_net", taxonomy, capabilities, options, factory.
sb::PluginDescriptor describe_delta_net();

}  // namespace sb::plugins
