// Gated linear attention, the chunked primitive and its sequential reference (models.md §4.4).
//
// Per head, with a per-key-channel log decay g_t ≤ 0:
//   S_t = diag(exp(g_t)) · S_{t−1} + k_t v_tᵀ        S ∈ R^{K×V}
//   o_t = S_tᵀ q_t
// A scalar decay per head (RetNet, Mamba2) is the special case of g_t constant over K.
//
// The chunked form splits T into chunks of `chunk` steps: inside a chunk the outputs are dense
// matmuls with the decays applied pairwise; the state is passed between chunks sequentially. It is
// numerically stable for log decays down to −30 per step in float32 (never forms exp(−b) alone).
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace sb {

struct GlaResult {
  torch::Tensor output;  // [B, T, H, V]
  torch::Tensor state;   // [B, H, K, V], the state after the last step
};

// q, k, g: [B, T, H, K]; v: [B, T, H, V]; initial_state: [B, H, K, V] or undefined (zeros).
// The computation runs in float32 (or float64 for float64 inputs); the output has q's dtype.
GlaResult gla_chunked(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                      const torch::Tensor& g, const torch::Tensor& initial_state = {},
                      std::int64_t chunk = 64);

// The same, as a plain loop over time steps.
GlaResult gla_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& g, const torch::Tensor& initial_state = {});

// One step: q_t, k_t, g_t [B, H, K]; v_t [B, H, V]; state [B, H, K, V] (updated in place of the
// handle, not the storage: autograd-safe). Returns o_t [B, H, V].
torch::Tensor gla_step(const torch::Tensor& q_t, const torch::Tensor& k_t,
                       const torch::Tensor& v_t, const torch::Tensor& g_t, torch::Tensor& state);

}  // namespace sb
