// The selective scan of Mamba (models.md §4.2): a diagonal recurrence per channel c and state n,
//
//   h_t[c, n] = exp(Δ_t[c] · A[c, n]) · h_{t−1}[c, n] + Δ_t[c] · B_t[n] · x_t[c]
//   y_t[c]    = Σ_n h_t[c, n] · C_t[n]
//
// Its decay differs per (channel, state) pair, so it has no chunked matmul form that fits in memory
// (the pairwise decays of a chunk would be [B, C, C, E, N]). sb::selective_scan instead runs the
// recurrence *outside* the autograd graph, with a hand-written backward pass that walks time in
// reverse: the graph holds one node, and memory is the inputs plus one saved state every
// `checkpoint_every` steps (states in between are recomputed during backward). On the CPU the
// time loop runs inside a fused kernel per (sequence, channel), the N states in a small array and
// the N loops vectorised (parallel over sequences and channels); on other devices it is a loop of
// whole-tensor operations over [B, E, N] (the mamba plugin has a fused CUDA kernel of its own). The
// D skip, the gate and the projections stay with the caller.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace sb {

struct ScanResult {
  torch::Tensor output;  // y [B, T, E], in x's dtype
  torch::Tensor state;   // h_T [B, E, N], float32 (float64 for float64 inputs)
};

// x, delta: [B, T, E]; A: [E, N] (≤ 0 for a decay); B, C: [B, T, N]; initial_state: [B, E, N] or
// undefined (zeros). Differentiable in every input. Computes in float32 (float64 for float64 x).
ScanResult selective_scan(const torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& A,
                          const torch::Tensor& B, const torch::Tensor& C,
                          const torch::Tensor& initial_state = {},
                          std::int64_t checkpoint_every = 16);

// The same, as a plain autograd loop over time steps (slow, memory-hungry): the tests' reference.
ScanResult selective_scan_reference(const torch::Tensor& x, const torch::Tensor& delta,
                                    const torch::Tensor& A, const torch::Tensor& B,
                                    const torch::Tensor& C,
                                    const torch::Tensor& initial_state = {});

// One step: x_t, delta_t [B, E]; B_t, C_t [B, N]; state [B, E, N] (replaced, not written in place).
// Returns y_t [B, E].
torch::Tensor selective_scan_step(const torch::Tensor& x_t, const torch::Tensor& delta_t,
                                  const torch::Tensor& A, const torch::Tensor& B_t,
                                  const torch::Tensor& C_t, torch::Tensor& state);

}  // namespace sb
