// The delta rule with an optional scalar gate per head: the chunked primitive, its sequential
// reference and a single step (models.md §4.5, §4.6; DeltaNet, Gated DeltaNet).
//
// Per head, with β_t ∈ (0, 1) and an optional log decay g_t ≤ 0 (g ≡ 0 without a gate):
//   S'  = exp(g_t) · S_{t−1}
//   S_t = S' + β_t k_t (v_t − S'ᵀ k_t)ᵀ  = (I − β_t k_t k_tᵀ) S' + β_t k_t v_tᵀ    S ∈ R^{K×V}
//   o_t = S_tᵀ q_t
// The caller normalises and scales q and k (the mixers pass l2norm(q)·K^−½ and l2norm(k)); with
// ‖k_t‖ ≤ 1 and β_t ∈ (0, 1) every transition is a contraction, which the chunked form relies on
// for its accuracy (the triangular systems it solves are then well conditioned).
//
// The chunked form (the WY / UT representation) splits T into chunks of `chunk` steps. Inside a
// chunk the corrections u_s = β_s (v_s − S'_sᵀ k_s) of all rows follow from one unit lower
// triangular solve; the outputs are dense matmuls; only the state is passed sequentially from chunk
// to chunk. Gate factors are only ever exp of sums of log decays over the steps they cover (≤ 0),
// so nothing overflows however strong the decays.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace sb {

struct DeltaRuleResult {
  torch::Tensor output;  // [B, T, H, V]
  torch::Tensor state;   // [B, H, K, V], the state after the last step
};

// q, k: [B, T, H, K]; v: [B, T, H, V]; beta: [B, T, H]; g: [B, T, H] log decays or undefined (no
// gate); initial_state: [B, H, K, V] or undefined (zeros).
// The computation runs in float32 (or float64 for float64 inputs); the output has q's dtype, the
// state the compute dtype.
DeltaRuleResult delta_rule_chunked(const torch::Tensor& q, const torch::Tensor& k,
                                   const torch::Tensor& v, const torch::Tensor& beta,
                                   const torch::Tensor& g = {},
                                   const torch::Tensor& initial_state = {},
                                   std::int64_t chunk = 64);

// The same, as a plain loop over time steps.
DeltaRuleResult delta_rule_reference(const torch::Tensor& q, const torch::Tensor& k,
                                     const torch::Tensor& v, const torch::Tensor& beta,
                                     const torch::Tensor& g = {},
                                     const torch::Tensor& initial_state = {});

// One step: q_t, k_t [B, H, K]; v_t [B, H, V]; beta_t [B, H]; g_t [B, H] or undefined; state
// [B, H, K, V] or undefined (zeros), updated in place of the handle, not the storage
// (autograd-safe). Returns o_t [B, H, V] in q_t's dtype; the state is in the compute dtype.
torch::Tensor delta_rule_step(const torch::Tensor& q_t, const torch::Tensor& k_t,
                              const torch::Tensor& v_t, const torch::Tensor& beta_t,
                              const torch::Tensor& g_t, torch::Tensor& state);

}  // namespace sb
