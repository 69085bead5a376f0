// The gated_delta_product mixer: the gated delta rule with n_h generalized Householder updates per
// token, as fla's GatedDeltaProduct layer, called the way the reference calls it (models.md §4.7;
// Siems et al. 2025, DeltaProduct).
//
// With D = d_model, H heads of key dim K = D/H, value width D·expand_v split into H heads of V
// (default V = 2D/H) and n_h = num_householder (default 4):
//
//   q = silu(conv(Wq u))                                       [D] channels
//   k = silu(conv(Wk u)),  v = silu(conv(Wv u))                n_h·D and n_h·D·expand_v channels,
//                                                              laid out [n_h][H][K] and [n_h][H][V]
//   per head:  q = l2norm(q) · K^−½,  k_j = l2norm(k_j),  β_j = 2σ(W_b u)_j   β ∈ (0, 2), [n_h][H]
//              g = −exp(A_log) · softplus(W_a u + dt_bias)           one log decay per token, float32
//              S ← exp(g_t) S
//              for j = 0 … n_h−1:  S ← S + β_{t,j} k_{t,j} (v_{t,j} − Sᵀ k_{t,j})ᵀ
//              o_t = Sᵀ q_t
//   o   = rmsnorm_V(o) · w ⊙ silu(W_g u)                                   per head (use_output_gate)
//   out = Wo concat_heads(o)
// The transition of one token is exp(g_t)·Π_j (I − β_{t,j} k_{t,j} k_{t,j}ᵀ): a scalar times identity
// plus a rank-n_h term. With allow_neg_eigval = false β = σ(W_b u) ∈ (0, 1); without the forget gate
// (use_forget_gate = false) there is no decay (g ≡ 0) and no a_proj, A_log, dt_bias; without the
// output gate o = rmsnorm_V(o) · w and there is no g_proj; without short convolutions q, k and v are
// silu of the bare projections. l2norm(x) = x / sqrt(Σx² + 1e-6), in float32 (float64 for float64).
//
// Parameters (state-dict names as fla's), 17D² + 5DH + 52D + 2H + 2D/H at the defaults:
//   q_proj.weight                                [D, D]
//   k_proj.weight                                [n_h·D, D]
//   v_proj.weight                                [n_h·D·expand_v, D]
//   b_proj.weight                                [n_h·H, D]
//   a_proj.weight                                [H, D]               (use_forget_gate)
//   A_log, dt_bias                               [H]                  (use_forget_gate)
//   q_conv1d.weight                              [D, 1, conv_size]            (no bias)
//   k_conv1d.weight                              [n_h·D, 1, conv_size]
//   v_conv1d.weight                              [n_h·D·expand_v, 1, conv_size]
//   g_proj.weight                                [D·expand_v, D]      (use_output_gate)
//   o_norm.weight                                [V]                  shared by the heads
//   o_proj.weight                                [D, D·expand_v]
// Init as the layer's own (models.md §4.6, §4.7): A = U(0, 16), A_log = log A; dt = exp(U(log 1e-3,
// log 0.1)) floored at 1e-4, dt_bias = softplus⁻¹(dt). Everything else keeps PyTorch's default
// initialisation (fla's _initialize_weights is never called by the reference; models.md §4).
//
// Forward runs the chunked gated delta rule (sb::delta_rule_chunked) on the interleaved sequence of
// length n_h·T, ordered (t,0), (t,1), …, (t,n_h−1), (t+1,0), …: keys, values and β from the n_h
// streams, the log decay g_t at sub-step 0 and 0 at the others, the query q_t at the last sub-step
// (zero elsewhere); only the outputs at the last sub-steps are kept. chunk_size counts interleaved
// sub-steps (64 = 16 tokens at n_h = 4), as fla's. With mode = "recurrent" the same interleaved
// sequence goes through the plain sequential loop (sb::delta_rule_reference), slow, for checking.
//
// Recurrent form: MixerState::tensors = {S [B, H, K, V]} followed, with short convs, by the conv
// caches {q [B, D, conv_size−1], k [B, n_h·D, conv_size−1], v [B, n_h·D·expand_v, conv_size−1]}. One
// step is n_h delta-rule steps, the decay applied at the first only. S is kept in float32 (float64
// for float64 states) whatever the activations' dtype.
#pragma once

#include <selectivbench/sdk.hpp>

#include <cstdint>
#include <string>
#include <tuple>

namespace sb::plugins {

class GatedDeltaProductMixer : public sb::Mixer {
 public:
  // D = ctx.d_model, H = ctx.n_heads; options as in describe_gated_delta_product().
  explicit GatedDeltaProductMixer(const sb::MixerContext& ctx);

  torch::Tensor forward(const torch::Tensor& x) override;  // [B, T, D] -> [B, T, D]

  sb::MixerState init_state(std::int64_t batch, const torch::Device& device,
                            torch::ScalarType dtype) override;
  torch::Tensor step(const torch::Tensor& x_t, sb::MixerState& state) override;  // [B, D] -> [B, D]

  // H·K·V for the state plus (conv_size − 1)·(D + n_h·D + n_h·D·expand_v) for the conv caches:
  // constant in the sequence length.
  std::int64_t state_elements(std::int64_t seq_len) const override;
  std::string describe() const override;

  torch::nn::Linear q_proj{nullptr};                   // [H·K, D]
  torch::nn::Linear k_proj{nullptr};                   // [n_h·H·K, D]
  torch::nn::Linear v_proj{nullptr};                   // [n_h·H·V, D]
  torch::nn::Linear b_proj{nullptr};                   // [n_h·H, D]
  torch::nn::Linear a_proj{nullptr};                   // [H, D]; null without use_forget_gate
  torch::Tensor A_log;                                 // [H]; undefined without use_forget_gate
  torch::Tensor dt_bias;                               // [H]; undefined without use_forget_gate
  sb::ShortConv q_conv1d{nullptr}, k_conv1d{nullptr};  // H·K, n_h·H·K channels; null without convs
  sb::ShortConv v_conv1d{nullptr};                     // n_h·H·V channels
  torch::nn::Linear g_proj{nullptr};                   // [H·V, D]; null without use_output_gate
  sb::GatedRMSNorm o_norm_gated{nullptr};              // "o_norm" over V, with use_output_gate
  sb::RMSNorm o_norm{nullptr};                         // "o_norm" over V, without
  torch::nn::Linear o_proj{nullptr};                   // [D, H·V]

 private:
  // The activated projections q, k, v: [..., D] -> [..., H·K], [..., n_h·H·K], [..., n_h·H·V].
  // With short convs, x is [B, T, D] (forward, state null) or one step [B, D] (the caches advance).
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> qkv(const torch::Tensor& x,
                                                              sb::MixerState* state);
  // β = σ(W_b x), doubled with allow_neg_eigval: [..., D] -> [..., n_h·H].
  torch::Tensor betas(const torch::Tensor& x);
  // Log decays g = −exp(A_log)·softplus(W_a x + dt_bias): [..., D] -> [..., H] in dtype `ct`.
  torch::Tensor log_decay(const torch::Tensor& x, torch::ScalarType ct);
  // The normed (and gated) per-head output: o [..., H, V], x [..., D] -> [..., H, V].
  torch::Tensor output_norm(const torch::Tensor& o, const torch::Tensor& x);

  std::int64_t d_model_;
  std::int64_t n_heads_;
  std::int64_t num_householder_;  // n_h
  std::int64_t key_dim_;          // H·K = D
  std::int64_t value_dim_;        // H·V
  std::int64_t head_k_;           // K
  std::int64_t head_v_;           // V
  std::int64_t conv_size_;
  std::int64_t chunk_size_;  // in interleaved sub-steps
  bool use_short_conv_;
  bool use_forget_gate_;
  bool use_output_gate_;
  bool allow_neg_eigval_;
  bool recurrent_mode_;
};

// The plugin's descriptor: name "gated_delta_product", taxonomy, capabilities, options, factory.
sb::PluginDescriptor describe_gated_delta_product();

}  // namespace sb::plugins
