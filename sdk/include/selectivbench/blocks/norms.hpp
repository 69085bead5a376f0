// RMSNorm and gated RMSNorm as fla uses them (models.md §4 "RMSNorm_fla", "FusedRMSNormGated").
//
//   rmsnorm(x) = x · rsqrt(mean(x²) + eps) · w          over the last dim, computed in float32
//   gated(x, g) = rmsnorm(x) · silu(g)                  the swish gate after the norm
// The weight w [dim] starts at 1. Outputs have the input's dtype.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace sb {

class RMSNormImpl : public torch::nn::Module {
 public:
  explicit RMSNormImpl(std::int64_t dim, double eps = 1e-5);
  torch::Tensor forward(const torch::Tensor& x);  // [..., dim] -> [..., dim]
  torch::Tensor weight;                           // [dim]

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

class GatedRMSNormImpl : public torch::nn::Module {
 public:
  explicit GatedRMSNormImpl(std::int64_t dim, double eps = 1e-5);
  // x, gate: [..., dim] -> [..., dim]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& gate);
  torch::Tensor weight;  // [dim]

 private:
  double eps_;
};
TORCH_MODULE(GatedRMSNorm);

}  // namespace sb
