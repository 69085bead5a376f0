// The selective scan's CPU kernels (selective_scan_cpu.hpp). Compiled with fast math so that the
// N loops vectorise std::exp through libmvec; nothing here compares with infinities or NaNs.
#include "selective_scan_cpu.hpp"

#include <algorithm>
#include <cmath>

namespace sb::detail::scan_cpu {

namespace {

template <typename S>
[[gnu::always_inline]] inline void forward_body(const S* __restrict__ x,
                                                const S* __restrict__ delta,
                                                const S* __restrict__ a, const S* __restrict__ Bm,
                                                const S* __restrict__ Cm, S* __restrict__ h,
                                                S* __restrict__ y, S* __restrict__ checkpoints,
                                                const Layout& l) {
  const std::int64_t N = l.states;
  for (std::int64_t t = 0; t < l.steps; ++t) {
    if (t % l.every == 0) std::copy(h, h + N, checkpoints + (t / l.every) * l.checkpoint_stride);
    const S dt = delta[t * l.channels];
    const S u = dt * x[t * l.channels];
    const S* __restrict__ b = Bm + t * N;
    const S* __restrict__ c = Cm + t * N;
    S acc = 0;
#pragma omp simd reduction(+ : acc)
    for (std::int64_t n = 0; n < N; ++n) {
      h[n] = std::exp(dt * a[n]) * h[n] + u * b[n];
      acc += h[n] * c[n];
    }
    y[t * l.channels] = acc;
  }
}

template <typename S>
[[gnu::always_inline]] inline void backward_body(
    const S* __restrict__ x, const S* __restrict__ delta, const S* __restrict__ a,
    const S* __restrict__ Bm, const S* __restrict__ Cm, const S* __restrict__ checkpoints,
    const S* __restrict__ dy, S* __restrict__ g, S* __restrict__ dx, S* __restrict__ ddelta,
    S* __restrict__ da, S* __restrict__ dB, S* __restrict__ dC, S* __restrict__ hs,
    const Layout& l) {
  const std::int64_t N = l.states, E = l.channels, T = l.steps;
  for (std::int64_t start = ((T - 1) / l.every) * l.every; start >= 0; start -= l.every) {
    const std::int64_t stop = std::min(T, start + l.every);
    // hs[i] = the state before step start + i, recomputed from the block's checkpoint.
    const S* ck = checkpoints + (start / l.every) * l.checkpoint_stride;
    std::copy(ck, ck + N, hs);
    for (std::int64_t t = start; t + 1 < stop; ++t) {
      const S dt = delta[t * E];
      const S u = dt * x[t * E];
      const S* __restrict__ prev = hs + (t - start) * N;
      S* __restrict__ next = hs + (t - start + 1) * N;
      const S* __restrict__ b = Bm + t * N;
#pragma omp simd
      for (std::int64_t n = 0; n < N; ++n) next[n] = std::exp(dt * a[n]) * prev[n] + u * b[n];
    }
    for (std::int64_t t = stop - 1; t >= start; --t) {
      const S dt = delta[t * E];
      const S xv = x[t * E];
      const S u = dt * xv;
      const S dyv = dy[t * E];
      const S* __restrict__ h_prev = hs + (t - start) * N;
      const S* __restrict__ b = Bm + t * N;
      const S* __restrict__ c = Cm + t * N;
      S* __restrict__ db = dB + t * N;
      S* __restrict__ dc = dC + t * N;
      S d_delta = 0, du = 0;
#pragma omp simd reduction(+ : d_delta, du)
      for (std::int64_t n = 0; n < N; ++n) {
        const S decay = std::exp(dt * a[n]);
        const S h_t = decay * h_prev[n] + u * b[n];
        const S dh = g[n] + dyv * c[n];  // ∂L/∂h_t
        const S d_log = dh * h_prev[n] * decay;
        dc[n] += dyv * h_t;
        db[n] += u * dh;
        d_delta += d_log * a[n];
        da[n] += d_log * dt;
        du += dh * b[n];
        g[n] = dh * decay;
      }
      ddelta[t * E] = d_delta + du * xv;
      dx[t * E] = du * dt;
    }
  }
}

}  // namespace

// An AVX2 clone beside the baseline one, chosen once at load time (x86-64 with GCC only).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SB_SCAN_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SB_SCAN_CLONES
#endif

SB_SCAN_CLONES void channel_forward(const float* x, const float* delta, const float* a,
                                    const float* Bm, const float* Cm, float* h, float* y,
                                    float* checkpoints, const Layout& l) {
  forward_body(x, delta, a, Bm, Cm, h, y, checkpoints, l);
}

SB_SCAN_CLONES void channel_forward(const double* x, const double* delta, const double* a,
                                    const double* Bm, const double* Cm, double* h, double* y,
                                    double* checkpoints, const Layout& l) {
  forward_body(x, delta, a, Bm, Cm, h, y, checkpoints, l);
}

SB_SCAN_CLONES void channel_backward(const float* x, const float* delta, const float* a,
                                     const float* Bm, const float* Cm, const float* checkpoints,
                                     const float* dy, float* g, float* dx, float* ddelta, float* da,
                                     float* dB, float* dC, float* buffer, const Layout& l) {
  backward_body(x, delta, a, Bm, Cm, checkpoints, dy, g, dx, ddelta, da, dB, dC, buffer, l);
}

SB_SCAN_CLONES void channel_backward(const double* x, const double* delta, const double* a,
                                     const double* Bm, const double* Cm, const double* checkpoints,
                                     const double* dy, double* g, double* dx, double* ddelta,
                                     double* da, double* dB, double* dC, double* buffer,
                                     const Layout& l) {
  backward_body(x, delta, a, Bm, Cm, checkpoints, dy, g, dx, ddelta, da, dB, dC, buffer, l);
}

}  // namespace sb::detail::scan_cpu
