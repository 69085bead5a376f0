// Small pieces several mixers share (models.md §4): the l2 normalisation of q and k in the
// delta-rule family, and the Mamba-style initialisation of the step size Δ.
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <cstdint>

namespace sb {

// x / sqrt(Σx² + 1e-6) over the last dim (fla's l2norm).
inline torch::Tensor l2norm(const torch::Tensor& x) {
  return x * torch::rsqrt(x.pow(2).sum(-1, /*keepdim=*/true) + 1e-6);
}

// softplus⁻¹(y) = y + log(−expm1(−y)), so that softplus(softplus⁻¹(y)) = y.
inline torch::Tensor inverse_softplus(const torch::Tensor& y) {
  return y + torch::log(-torch::expm1(-y));
}

// The bias that makes softplus(bias) a step size Δ drawn log-uniformly in [dt_min, dt_max] and
// floored at dt_floor: [n], from the global generator (Mamba, Mamba2, gated delta rules).
inline torch::Tensor step_size_bias(std::int64_t n, double dt_min, double dt_max, double dt_floor) {
  const double lo = std::log(dt_min), hi = std::log(dt_max);
  return inverse_softplus(torch::exp(torch::rand({n}) * (hi - lo) + lo).clamp_min(dt_floor));
}

}  // namespace sb
