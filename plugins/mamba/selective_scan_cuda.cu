// The fused CUDA selective scan (selective_scan_cuda.hpp): forward and reverse-time backward.
#include "selective_scan_cuda.hpp"

#include <cuda_runtime.h>

#include <algorithm>

namespace sb::plugins::cuda_scan {

namespace {

constexpr int kWarps = 4;  // channels per block
constexpr int kLanes = 32;
constexpr std::int64_t kSharedBytes = 40 * 1024;  // backward's per-block state buffer

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = kLanes / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// grid (ceil(E / kWarps), B), block kWarps · 32. J = states per lane (N ≤ 32 J).
template <int J>
__global__ void scan_forward(const float* __restrict__ x, const float* __restrict__ delta,
                             const float* __restrict__ A, const float* __restrict__ Bm,
                             const float* __restrict__ Cm, float* __restrict__ y,
                             float* __restrict__ checkpoints, Shape s) {
  const int lane = threadIdx.x % kLanes;
  const std::int64_t e = std::int64_t(blockIdx.x) * kWarps + threadIdx.x / kLanes;
  const std::int64_t b = blockIdx.y;
  if (e >= s.channels) return;  // whole warps only: the shuffles stay full
  const std::int64_t T = s.steps, E = s.channels, N = s.states;
  float h[J], a[J];
#pragma unroll
  for (int j = 0; j < J; ++j) {
    const std::int64_t n = lane + kLanes * j;
    h[j] = 0.f;
    a[j] = n < N ? A[e * N + n] : 0.f;
  }
  for (std::int64_t t = 0; t < T; ++t) {
    if (t % s.every == 0) {
      float* ck = checkpoints + (((t / s.every) * s.batch + b) * E + e) * N;
#pragma unroll
      for (int j = 0; j < J; ++j) {
        const std::int64_t n = lane + kLanes * j;
        if (n < N) ck[n] = h[j];
      }
    }
    const std::int64_t bt = b * T + t;
    const float dt = delta[bt * E + e];
    const float u = dt * x[bt * E + e];
    float acc = 0.f;
#pragma unroll
    for (int j = 0; j < J; ++j) {
      const std::int64_t n = lane + kLanes * j;
      if (n < N) {
        h[j] = expf(dt * a[j]) * h[j] + u * Bm[bt * N + n];
        acc += h[j] * Cm[bt * N + n];
      }
    }
    acc = warp_sum(acc);
    if (lane == 0) y[bt * E + e] = acc;
  }
}

template <int J>
__global__ void scan_backward(const float* __restrict__ x, const float* __restrict__ delta,
                              const float* __restrict__ A, const float* __restrict__ Bm,
                              const float* __restrict__ Cm, const float* __restrict__ checkpoints,
                              const float* __restrict__ dy, float* __restrict__ dx,
                              float* __restrict__ ddelta, float* __restrict__ dA,
                              float* __restrict__ dB, float* __restrict__ dC, Shape s) {
  extern __shared__ float shared[];  // [kWarps, every, N]: h before each step of the block
  const int warp = threadIdx.x / kLanes, lane = threadIdx.x % kLanes;
  const std::int64_t e = std::int64_t(blockIdx.x) * kWarps + warp;
  const std::int64_t b = blockIdx.y;
  if (e >= s.channels) return;
  const std::int64_t T = s.steps, E = s.channels, N = s.states;
  float* hs = shared + std::int64_t(warp) * s.every * N;
  float g[J], a[J], da[J];  // g = ∂L/∂h_t from the steps after t
#pragma unroll
  for (int j = 0; j < J; ++j) {
    const std::int64_t n = lane + kLanes * j;
    g[j] = 0.f;
    da[j] = 0.f;
    a[j] = n < N ? A[e * N + n] : 0.f;
  }
  for (std::int64_t start = ((T - 1) / s.every) * s.every; start >= 0; start -= s.every) {
    const std::int64_t stop = std::min(T, start + s.every);
    // Recompute the block's states from its checkpoint; each lane touches only its own n.
    const float* ck = checkpoints + (((start / s.every) * s.batch + b) * E + e) * N;
    float h[J];
#pragma unroll
    for (int j = 0; j < J; ++j) {
      const std::int64_t n = lane + kLanes * j;
      h[j] = n < N ? ck[n] : 0.f;
    }
    for (std::int64_t t = start; t < stop; ++t) {
      const std::int64_t bt = b * T + t;
      const float dt = delta[bt * E + e];
      const float u = dt * x[bt * E + e];
#pragma unroll
      for (int j = 0; j < J; ++j) {
        const std::int64_t n = lane + kLanes * j;
        if (n < N) {
          hs[(t - start) * N + n] = h[j];
          h[j] = expf(dt * a[j]) * h[j] + u * Bm[bt * N + n];
        }
      }
    }
    for (std::int64_t t = stop - 1; t >= start; --t) {
      const std::int64_t bt = b * T + t;
      const float dt = delta[bt * E + e];
      const float xv = x[bt * E + e];
      const float u = dt * xv;
      const float dyv = dy[bt * E + e];
      float d_delta = 0.f, du = 0.f;
#pragma unroll
      for (int j = 0; j < J; ++j) {
        const std::int64_t n = lane + kLanes * j;
        if (n < N) {
          const float bn = Bm[bt * N + n], cn = Cm[bt * N + n];
          const float decay = expf(dt * a[j]);
          const float h_prev = hs[(t - start) * N + n];
          const float h_t = decay * h_prev + u * bn;
          const float dh = g[j] + dyv * cn;           // ∂L/∂h_t
          const float d_log = dh * h_prev * decay;    // ∂L/∂(Δ A) of this step
          d_delta += d_log * a[j];
          da[j] += d_log * dt;
          du += dh * bn;
          atomicAdd(dC + bt * N + n, dyv * h_t);
          atomicAdd(dB + bt * N + n, u * dh);
          g[j] = dh * decay;
        }
      }
      d_delta = warp_sum(d_delta);
      du = warp_sum(du);
      if (lane == 0) {
        ddelta[bt * E + e] = d_delta + du * xv;
        dx[bt * E + e] = du * dt;
      }
    }
  }
#pragma unroll
  for (int j = 0; j < J; ++j) {
    const std::int64_t n = lane + kLanes * j;
    if (n < N) atomicAdd(dA + e * N + n, da[j]);
  }
}

int lanes_states(std::int64_t N) {
  return N <= 32 ? 1 : N <= 64 ? 2 : N <= 128 ? 4 : 8;
}

cudaError_t g_last = cudaSuccess;

}  // namespace

std::int64_t checkpoint_interval(std::int64_t states) {
  const std::int64_t fits = kSharedBytes / (kWarps * states * std::int64_t(sizeof(float)));
  return std::max<std::int64_t>(1, std::min<std::int64_t>(16, fits));
}

void forward(const float* x, const float* delta, const float* A, const float* Bm, const float* Cm,
             float* y, float* checkpoints, const Shape& shape, void* stream) {
  const dim3 grid(unsigned((shape.channels + kWarps - 1) / kWarps), unsigned(shape.batch));
  const dim3 block(kWarps * kLanes);
  auto st = static_cast<cudaStream_t>(stream);
  switch (lanes_states(shape.states)) {
    case 1: scan_forward<1><<<grid, block, 0, st>>>(x, delta, A, Bm, Cm, y, checkpoints, shape); break;
    case 2: scan_forward<2><<<grid, block, 0, st>>>(x, delta, A, Bm, Cm, y, checkpoints, shape); break;
    case 4: scan_forward<4><<<grid, block, 0, st>>>(x, delta, A, Bm, Cm, y, checkpoints, shape); break;
    default: scan_forward<8><<<grid, block, 0, st>>>(x, delta, A, Bm, Cm, y, checkpoints, shape);
  }
  g_last = cudaGetLastError();
}

void backward(const float* x, const float* delta, const float* A, const float* Bm,
              const float* Cm, const float* checkpoints, const float* dy, float* dx,
              float* ddelta, float* dA, float* dB, float* dC, const Shape& shape, void* stream) {
  const dim3 grid(unsigned((shape.channels + kWarps - 1) / kWarps), unsigned(shape.batch));
  const dim3 block(kWarps * kLanes);
  const auto bytes = std::size_t(kWarps * shape.every * shape.states) * sizeof(float);
  auto st = static_cast<cudaStream_t>(stream);
  switch (lanes_states(shape.states)) {
    case 1:
      scan_backward<1><<<grid, block, bytes, st>>>(x, delta, A, Bm, Cm, checkpoints, dy, dx,
                                                   ddelta, dA, dB, dC, shape);
      break;
    case 2:
      scan_backward<2><<<grid, block, bytes, st>>>(x, delta, A, Bm, Cm, checkpoints, dy, dx,
                                                   ddelta, dA, dB, dC, shape);
      break;
    case 4:
      scan_backward<4><<<grid, block, bytes, st>>>(x, delta, A, Bm, Cm, checkpoints, dy, dx,
                                                   ddelta, dA, dB, dC, shape);
      break;
    default:
      scan_backward<8><<<grid, block, bytes, st>>>(x, delta, A, Bm, Cm, checkpoints, dy, dx,
                                                   ddelta, dA, dB, dC, shape);
  }
  g_last = cudaGetLastError();
}

const char* last_error() { return g_last == cudaSuccess ? "" : cudaGetErrorString(g_last); }

}  // namespace sb::plugins::cuda_scan
