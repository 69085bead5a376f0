// The transformer mixer: the reference's TransformerDecoderLayer (models.md §4.1).
//
// Causal softmax attention with QK-norm and RoPE, an RMS-normed attention output, and a SwiGLU
// feed-forward block with a trainable swish beta, all in one layer:
//
//   q, k, v = Wq x + bq, Wk x + bk, Wv x + bv                  split into H heads of K = D/H
//   q, k    = rope(rms_K(q; gq)), rope(rms_K(k; gk))           one norm weight shared by the heads
//   a       = Wo · softmax(q kᵀ / √K + causal mask) v + bo
//   x1      = x + rms_D(a; go)
//   u1, u2  = split(W1 x1 + b1)                                each 4D wide
//   f       = W2 (u1 · σ(beta · u1) ⊙ u2) + b2
//   layer   = x1 + Dropout(f)                                   what the reference layer returns
//
// The reference layer already adds its input (x1 contains x), and the network adds x once more
// (models.md §3.3 item 1). With the option `double_residual = true` this mixer returns the
// reference's full `x1 + Dropout(f)`; by default it returns only the update `rms_D(a) + Dropout(f)`,
// so that the network's residual adds x exactly once.
//
// rms_n is the reference repository's own RMSNorm, with the epsilon outside the square root:
//   y = x / (‖x‖₂ / √n + 1e-8) · w,  w starts at 1.
// RoPE is the half-split layout rotated by −φ (RotaryConvention::kNegated), base `rope_base`.
//
// Parameters (state-dict names), 16D² + 14D + 2K + 1 in all:
//   q.{weight,bias}, k.{weight,bias}, v.{weight,bias}, out.{weight,bias}   [D, D], [D]
//   q_norm.weight, k_norm.weight                                           [K]
//   out_norm.weight                                                        [D]
//   linear1.{weight,bias}                                                  [8D, D], [8D]
//   linear2.{weight,bias}                                                  [D, 4D], [D]
//   beta                                                                   [] (starts at 1)
// The reference also holds a `rotary.inv_freq` buffer; here the frequencies are computed on the
// fly.
//
// Recurrent form: a KV cache. MixerState::tensors = {keys [B, H, S, K], values [B, H, S, K]}, the
// keys after norm and rotary, S = steps consumed so far (= state.position).
#pragma once

#include <selectivbench/sdk.hpp>

#include <cstdint>
#include <string>

namespace sb::plugins {

// The reference repository's RMSNorm: y = x / (‖x‖₂/√n + 1e-8) · w over the last dim (size n).
// Computed in float32 (float64 for float64 inputs); the output has x's dtype.
class RepoRMSNormImpl : public torch::nn::Module {
 public:
  explicit RepoRMSNormImpl(std::int64_t dim);
  torch::Tensor forward(const torch::Tensor& x);  // [..., n] -> [..., n]
  torch::Tensor weight;                           // [n]

 private:
  std::int64_t dim_;
};
TORCH_MODULE(RepoRMSNorm);

class TransformerMixer : public sb::Mixer {
 public:
  // D = ctx.d_model, H = ctx.n_heads; options rope_base and dropout (describe_transformer()).
  explicit TransformerMixer(const sb::MixerContext& ctx);

  torch::Tensor forward(const torch::Tensor& x) override;  // [B, T, D] -> [B, T, D]

  // KV cache, empty: {keys [B, H, 0, K], values [B, H, 0, K]}.
  sb::MixerState init_state(std::int64_t batch, const torch::Device& device,
                            torch::ScalarType dtype) override;
  torch::Tensor step(const torch::Tensor& x_t, sb::MixerState& state) override;  // [B, D] -> [B, D]

  // The KV cache: 2·T·D numbers after T steps.
  std::int64_t state_elements(std::int64_t seq_len) const override;
  std::string describe() const override;

  torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, out{nullptr};  // [D, D] + bias
  RepoRMSNorm q_norm{nullptr}, k_norm{nullptr};                        // over K, shared by heads
  RepoRMSNorm out_norm{nullptr};                                       // over D
  torch::nn::Linear linear1{nullptr};                                  // [8D, D] + bias
  torch::nn::Linear linear2{nullptr};                                  // [D, 4D] + bias
  torch::Tensor beta;                                                  // [] swish beta
  torch::nn::Dropout dropout{nullptr};                                 // on the FFN output

 private:
  // Everything after the attention: a [..., D] (heads concatenated), x [..., D] -> the output.
  torch::Tensor finish(const torch::Tensor& x, const torch::Tensor& a);

  std::int64_t d_model_;
  std::int64_t n_heads_;
  std::int64_t head_dim_;
  double rope_base_;
  double dropout_p_;
  bool double_residual_;
};

// The plugin's descriptor: name "transformer", taxonomy, capabilities, options, factory.
sb::PluginDescriptor describe_transformer();

}  // namespace sb::plugins
