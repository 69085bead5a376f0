// The gated_delta_net mixer: the gated delta rule as fla's GatedDeltaNet layer, called the way the
// reference calls it (models.md §4.6; Yang, Kautz & Hatamizadeh 2025).
//
// With D = d_model, H heads of key dim K = D/H, value width D·expand_v split into H heads of V
// (default V = 2D/H):
//
//   q = silu(conv(Wq u)),  k = silu(conv(Wk u)),  v = silu(conv(Wv u))      short convs, kernel 4
//   per head:  q = l2norm(q) · K^−½,  k = l2norm(k),  β = σ(W_b u)           β ∈ (0, 1)
//              g = −exp(A_log) · softplus(W_a u + dt_bias)                   log decay ≤ 0, float32
//              S' = exp(g_t) S_{t−1},  S_t = S' + β_t k_t (v_t − S'ᵀ k_t)ᵀ,  o_t = S_tᵀ q_t
//   o   = rmsnorm_V(o) · w ⊙ silu(W_g u)                                   per head (use_gate)
//   out = Wo concat_heads(o)
// l2norm(x) = x / sqrt(Σx² + 1e-6), computed in float32 (float64 for float64 inputs). Without the
// output gate (use_gate = false) o = rmsnorm_V(o) · w and there is no g_proj. Without short
// convolutions (use_short_conv = false) q, k and v are silu of the bare projections.
//
// Parameters (state-dict names as fla's), 8D² + 2DH + 16D + 2H + 2D/H at the defaults:
//   q_proj.weight, k_proj.weight                 [D, D]
//   v_proj.weight, g_proj.weight                 [D·expand_v, D]
//   a_proj.weight, b_proj.weight                 [H, D]
//   A_log, dt_bias                               [H]
//   q_conv1d.weight, k_conv1d.weight             [D, 1, conv_size]            (no bias)
//   v_conv1d.weight                              [D·expand_v, 1, conv_size]
//   o_norm.weight                                [V]                 shared by the heads
//   o_proj.weight                                [D, D·expand_v]
// Init as the layer's own (models.md §4.6): A = U(0, 16), A_log = log A; dt = exp(U(log 1e-3,
// log 0.1)) floored at 1e-4, dt_bias = softplus⁻¹(dt). Everything else keeps PyTorch's default
// initialisation (fla's HF init is not applied; models.md §4).
//
// Forward runs the chunked form (sb::delta_rule_chunked with the gate) by default, or with
// mode = "recurrent" the plain sequential loop (sb::delta_rule_reference), slow, for checking.
//
// Recurrent form: MixerState::tensors = {S [B, H, K, V]} followed, with short convs, by the conv
// caches {q [B, D, conv_size−1], k [B, D, conv_size−1], v [B, D·expand_v, conv_size−1]}. S is kept
// in float32 (float64 for float64 states) whatever the activations' dtype.
#pragma once

#include <selectivbench/sdk.hpp>

#include <cstdint>
#include <string>
#include <tuple>

namespace sb::plugins {

class GatedDeltaNetMixer : public sb::Mixer {
 public:
  // D = ctx.d_model, H = ctx.n_heads; options as in describe_gated_delta_net().
  explicit GatedDeltaNetMixer(const sb::MixerContext& ctx);

  torch::Tensor forward(const torch::Tensor& x) override;  // [B, T, D] -> [B, T, D]

  sb::MixerState init_state(std::int64_t batch, const torch::Device& device,
                            torch::ScalarType dtype) override;
  torch::Tensor step(const torch::Tensor& x_t, sb::MixerState& state) override;  // [B, D] -> [B, D]

  // H·K·V for the state plus (conv_size − 1)·(2·D + D·expand_v) for the conv caches: constant in
  // the sequence length.
  std::int64_t state_elements(std::int64_t seq_len) const override;
  std::string describe() const override;

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr};  // [H·K, D]
  torch::nn::Linear v_proj{nullptr};                   // [H·V, D]
  torch::nn::Linear g_proj{nullptr};                   // [H·V, D]; null without use_gate
  torch::nn::Linear a_proj{nullptr}, b_proj{nullptr};  // [H, D]
  torch::Tensor A_log;                                 // [H]
  torch::Tensor dt_bias;                               // [H]
  sb::ShortConv q_conv1d{nullptr}, k_conv1d{nullptr};  // H·K channels; null without short convs
  sb::ShortConv v_conv1d{nullptr};                     // H·V channels
  sb::GatedRMSNorm o_norm_gated{nullptr};              // "o_norm" over V, with use_gate
  sb::RMSNorm o_norm{nullptr};                         // "o_norm" over V, without
  torch::nn::Linear o_proj{nullptr};                   // [D, H·V]

 private:
  // The activated projections q, k, v: [..., D] -> [..., H·K], [..., H·K], [..., H·V]. With short
  // convs, x is [B, T, D] (forward, state null) or one step [B, D] (the state's caches advance).
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> qkv(const torch::Tensor& x,
                                                              sb::MixerState* state);
  // Log decays g = −exp(A_log)·softplus(W_a x + dt_bias): [..., D] -> [..., H] in dtype `ct`.
  torch::Tensor log_decay(const torch::Tensor& x, torch::ScalarType ct);
  // The normed (and gated) per-head output: o [..., H, V], x [..., D] -> [..., H, V].
  torch::Tensor output_norm(const torch::Tensor& o, const torch::Tensor& x);

  std::int64_t d_model_;
  std::int64_t n_heads_;
  std::int64_t key_dim_;    // H·K = D
  std::int64_t value_dim_;  // H·V
  std::int64_t head_k_;     // K
  std::int64_t head_v_;     // V
  std::int64_t conv_size_;
  std::int64_t chunk_size_;
  bool use_short_conv_;
  bool use_gate_;
  bool recurrent_mode_;
};

// The plugin's descriptor: name "gated_delta_net", taxonomy, capabilities, options, factory.
sb::PluginDescriptor describe_gated_delta_net();

}  // namespace sb::plugins
