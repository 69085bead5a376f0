// The fused CUDA selective scan of the mamba plugin: the recurrence of sb::selective_scan
// (blocks/selective_scan.hpp) with time running *inside* one kernel, the N states of a channel in
// registers, instead of T launches of whole-tensor operations that stream the [B, E, N] state
// through memory at every step.
//
// One warp per (sequence b, channel e); lane l holds the states n = l, l + 32, …; y_t[e] is a warp
// reduction over n. Forward writes y and the state every `every` steps; backward walks each block
// of `every` steps in reverse after recomputing its states from that checkpoint (kept in shared
// memory), and adds the per-channel contributions to ∂B and ∂C with atomics.
//
// Plain C++ interface (no LibTorch types) so that nvcc compiles only the kernels. All pointers are
// float32, contiguous, on the current CUDA device: x, delta, dy, dx, ddelta [B, T, E]; A, dA
// [E, N]; Bm, Cm, dB, dC [B, T, N]; checkpoints [ceil(T / every), B, E, N]. dA, dB and dC must be
// zero on entry (they are accumulated).
#pragma once

#include <cstdint>

namespace sb::plugins::cuda_scan {

struct Shape {
  std::int64_t batch, steps, channels, states;  // B, T, E, N
  std::int64_t every;                           // checkpoint interval
};

// Largest N the kernels take (8 states per lane).
constexpr std::int64_t kMaxStates = 256;

// The checkpoint interval the backward's shared-memory buffer allows for N states.
std::int64_t checkpoint_interval(std::int64_t states);

void forward(const float* x, const float* delta, const float* A, const float* Bm, const float* Cm,
             float* y, float* checkpoints, const Shape& shape, void* stream);

void backward(const float* x, const float* delta, const float* A, const float* Bm, const float* Cm,
              const float* checkpoints, const float* dy, float* dx, float* ddelta, float* dA,
              float* dB, float* dC, const Shape& shape, void* stream);

// The last launch error as text, or empty.
const char* last_error();

}  // namespace sb::plugins::cuda_scan
