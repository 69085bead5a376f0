// The mesa_net mixer: MesaNet's layer as fla's MesaNet, called the way the reference's secondary
// model `mesa_net` calls it (models.md §7.2; von Oswald et al. 2025, "MesaNet: Sequence Modeling by
// Locally Optimal Test-Time Training").
//
// With D = d_model, H heads of K = V = D/H channels, per head and token t:
//
//   q = l2norm(silu(conv(Wq u))),  k = l2norm(silu(conv(Wk u))),  v = Wv u     short convs on q, k
//   β_t = σ(Wb u + bb),  g_t = log σ(Wa u + ba)                  one scalar each per head and token
//   λ   = softplus(λ_param) + λ_min                              [H, K], learnt, not per token
//   H_kk,t = e^{g_t} H_kk,t−1 + β_t k_t k_tᵀ                     [K, K]
//   H_kv,t = e^{g_t} H_kv,t−1 + β_t k_t v_tᵀ                     [K, V]
//   q*_t  ≈ (H_kk,t + diag λ)⁻¹ q_t                              conjugate gradient, `cg_steps`
//   steps o_t   = H_kv,tᵀ q*_t out   = Wo concat_heads(rmsnorm_K(o))                         (·
//   silu(Wg u) with the output gate)
// No 1/√K scale on q (fla applies none). The solve is the layer's "mesa" step: q* is the readout of
// the ridge regression of v on k over the (decayed) past, so the layer fits the best linear map at
// every token instead of accumulating k vᵀ.
//
// Conjugate gradient, exactly as fla's training kernel: x₀ = 0, r₀ = p₀ = q, then `cg_steps` times
//   α = (r·r)/(p·Ap + 1e−5),  x += αp,  r −= αAp,  p = r + (r'·r')/(r·r + 1e−5) p
// with no stopping tolerance. fla's decoding kernel starts from the Jacobi guess
// q / (diag H_kk + λ); this port's `step` starts from 0 like training, so that step and forward
// compute the same numbers (they differ only by the CG error otherwise).
//
// Forward (mode "chunk") never forms a per-token state: T is cut into chunks of C = chunk_size
// tokens, the states at the chunk starts are built once, and A_t p_t = (H_kk,t + diag λ) p_t for
// all tokens at once is two batched matmuls per chunk:
//   A p = e^{G_t} H_kk[n] p_t + Σ_{s≤t in chunk} e^{G_t − G_s} β_s (k_s·p_t) k_s + λ ⊙ p_t
// (G the within-chunk cumulative sum of g). Each CG step is one such product; the readout
// o = H_kvᵀ q* is linear attention with query q*, key k and value β v (sb::gla_scalar_chunked). The
// backward pass
// does not differentiate through the CG steps: it solves the adjoint system A y = ∂L/∂q* with the
// same CG (implicit differentiation, as fla), so memory does not grow with cg_steps. mode
// "reference" runs the plain per-token loop with explicit [K, K] matrices and autograd through it.
//
// Parameters (state-dict names as fla's):
//   q_proj.weight, k_proj.weight, v_proj.weight     [D, D]
//   a_proj.weight / .bias, b_proj.weight / .bias    [H, D] / [H]
//   lambda_params                                   [D]        softplus⁻¹(1 − λ_min): λ = 1
//   q_conv1d.weight, k_conv1d.weight                [D, 1, c]  no bias (v has no conv)
//   o_norm.weight                                   [K]        shared by the heads
//   g_proj.weight                                   [D, D]     only with use_output_gate
//   o_proj.weight                                   [D, D]
//   total = 4D² + 2H(D + 1) + D + 2cD + D/H  =  4D² + 2DH + 2H + 9D + D/H at the defaults
// All others keep PyTorch's default initialisation (fla's HF init is not applied; models.md §4).
// fla builds the q/k convolutions whatever use_short_conv says, and so does this layer.
//
// Recurrent form: MixerState::tensors = {H_kk [B, H, K, K], H_kv [B, H, K, V], q conv cache
// [B, D, c−1], k conv cache [B, D, c−1]}; the states are float32 (float64 for float64).
#pragma once

#include <selectivbench/sdk.hpp>

#include <cstdint>
#include <string>

namespace sb::plugins {

class MesaNetMixer : public sb::Mixer {
 public:
  // D = ctx.d_model, H = ctx.n_heads; options as in describe_mesa_net().
  explicit MesaNetMixer(const sb::MixerContext& ctx);

  torch::Tensor forward(const torch::Tensor& x) override;  // [B, T, D] -> [B, T, D]

  sb::MixerState init_state(std::int64_t batch, const torch::Device& device,
                            torch::ScalarType dtype) override;
  torch::Tensor step(const torch::Tensor& x_t, sb::MixerState& state) override;  // [B, D] -> [B, D]

  // H·K·K + H·K·V for the two states plus 2·D·(conv_size − 1) for the caches: constant in T.
  std::int64_t state_elements(std::int64_t seq_len) const override;
  std::string describe() const override;

  // λ = softplus(lambda_params) + λ_min as [H, K], in the compute dtype of `like`.
  torch::Tensor lambda_like(const torch::Tensor& like) const;

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr};  // [D, D]
  torch::nn::Linear a_proj{nullptr}, b_proj{nullptr};                   // [H, D] with bias
  torch::Tensor lambda_params;                                          // [D]
  sb::ShortConv q_conv1d{nullptr}, k_conv1d{nullptr};                   // D channels, SiLU
  sb::RMSNorm o_norm{nullptr};                                          // over K (no gate)
  sb::GatedRMSNorm o_norm_gated{nullptr};                               // with use_output_gate
  torch::nn::Linear g_proj{nullptr};                                    // [D, D], output gate
  torch::nn::Linear o_proj{nullptr};                                    // [D, D]

 private:
  torch::Tensor finish(const torch::Tensor& o, const torch::Tensor& x);  // o [.., H, V] -> [.., D]

  std::int64_t d_model_;
  std::int64_t n_heads_;
  std::int64_t head_dim_;  // K = V
  std::int64_t conv_size_;
  std::int64_t chunk_size_;
  std::int64_t cg_steps_training_;
  std::int64_t cg_steps_decoding_;
  double lambda_lower_bound_;
  bool use_output_gate_;
  bool reference_mode_;
};

// The guard fla adds to both CG denominators. It also bounds how far CG converges: once r·r is
// near it the search directions lose conjugacy, so 30 steps reach ~1e−4 of the exact solve for
// unit-norm q, not round-off. The tests pass a tiny eps to compare with exact solves.
constexpr double kMesaCgEps = 1e-5;

// The chunked forward of the mesa layer (see above): q, k [B, T, H, K]; v [B, T, H, V]; beta, g
// [B, T, H]; lambda [H, K]. Differentiable (implicit gradient through the solve). Computes in
// float32 (float64 for float64 q); returns o [B, T, H, V] in the compute dtype.
torch::Tensor mesa_chunked(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                           const torch::Tensor& beta, const torch::Tensor& g,
                           const torch::Tensor& lambda, std::int64_t cg_steps,
                           std::int64_t chunk = 64, double cg_eps = kMesaCgEps);

// The same as a plain loop over tokens with explicit per-token matrices and the same CG; autograd
// differentiates through the CG steps. The tests' reference.
torch::Tensor mesa_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& beta, const torch::Tensor& g,
                             const torch::Tensor& lambda, std::int64_t cg_steps,
                             double cg_eps = kMesaCgEps);

// `steps` conjugate-gradient steps on (M + diag λ) x = rhs from x = 0, with explicit matrices:
// M [.., K, K] symmetric positive semi-definite, lambda broadcastable to rhs [.., K].
torch::Tensor mesa_cg_explicit(const torch::Tensor& M, const torch::Tensor& lambda,
                               const torch::Tensor& rhs, std::int64_t steps,
                               double eps = kMesaCgEps);

// The plugin's descriptor: name "mesa_net", taxonomy, capabilities, options, factory.
sb::PluginDescriptor describe_mesa_net();

}  // namespace sb::plugins
