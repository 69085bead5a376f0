// Linear attention with one decay per head and step, chunked (RetNet, Mamba-2, plain linear
// attention; models.md §4.3, §7.1):
//
//   S_t = exp(g_t) · S_{t−1} + k_t v_tᵀ        S ∈ R^{K×V},  g_t ≤ 0 a scalar per head
//   o_t = S_tᵀ q_t
//
// It is sb::gla_chunked (blocks/gla.hpp) with the log decay the same in every key channel, but the
// chunked form needs only the [C, C] decays of a chunk, exp(G_t − G_s) with G the within-chunk
// cumulative sum, not gla's [C, C, K]: inside a chunk o = ((Q Kᵀ) ⊙ decays) V + e^{G} ⊙ (Q S_n),
// the state S_n is passed from chunk to chunk. Every exponent it forms is ≤ 0, so it is stable for
// any decay, and memory per layer is K times smaller than the per-channel form's.
// The sequential reference is sb::gla_reference with g broadcast over K.
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "selectivbench/blocks/gla.hpp"

namespace sb {

// q, k: [B, T, H, K]; v: [B, T, H, V]; g: [B, T, H] (log decays ≤ 0); initial_state: [B, H, K, V]
// or undefined (zeros). Computes in float32 (float64 for float64 q); the output has q's dtype, the
// state is float32 (float64).
GlaResult gla_scalar_chunked(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& g, const torch::Tensor& initial_state = {},
                             std::int64_t chunk = 64);

}  // namespace sb
