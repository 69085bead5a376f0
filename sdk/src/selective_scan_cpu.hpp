// The selective scan's CPU kernels (internal to the SDK; see blocks/selective_scan.hpp for the
// math). One call runs the whole time loop of one (sequence, channel) pair with its N states in a
// small array, instead of T whole-tensor steps that stream the [B, E, N] state through memory.
// The N loops are vectorised, exp included (glibc's libmvec), with an AVX2 clone chosen at load.
//
// Plain C++ on raw pointers: this file and its source include no LibTorch header, so that their
// compile flags (fast math for the vector exp) stay away from everything else.
#pragma once

#include <cstdint>

namespace sb::detail::scan_cpu {

struct Layout {
  std::int64_t steps;              // T
  std::int64_t channels;           // E: stride over t of x, delta, y, dx, ddelta
  std::int64_t states;             // N: stride over t of B, C, dB, dC
  std::int64_t every;              // checkpoint interval
  std::int64_t checkpoint_stride;  // B·E·N: from one checkpoint of a channel to the next
};

// One channel of one sequence, forward. x, delta, y point at [b, 0, e] of [B, T, E]; Bm, Cm at
// [b, 0, 0] of [B, T, N]; a at A[e] [N]; h [N] holds h_0 and is left at h_T; checkpoints at
// [0, b, e, 0] of [K, B, E, N] receives h before steps 0, every, 2·every, …
void channel_forward(const float* x, const float* delta, const float* a, const float* Bm,
                     const float* Cm, float* h, float* y, float* checkpoints, const Layout& l);
void channel_forward(const double* x, const double* delta, const double* a, const double* Bm,
                     const double* Cm, double* h, double* y, double* checkpoints, const Layout& l);

// The same channel, backward. g [N] holds ∂L/∂h_T and is left at ∂L/∂h_0; dx, ddelta (as x) are
// written; da [N] (∂L/∂A[e]), dB, dC (as Bm) are accumulated; buffer holds every·N numbers.
void channel_backward(const float* x, const float* delta, const float* a, const float* Bm,
                      const float* Cm, const float* checkpoints, const float* dy, float* g,
                      float* dx, float* ddelta, float* da, float* dB, float* dC, float* buffer,
                      const Layout& l);
void channel_backward(const double* x, const double* delta, const double* a, const double* Bm,
                      const double* Cm, const double* checkpoints, const double* dy, double* g,
                      double* dx, double* ddelta, double* da, double* dB, double* dC,
                      double* buffer, const Layout& l);

}  // namespace sb::detail::scan_cpu
