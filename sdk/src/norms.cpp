// RMSNorm and gated RMSNorm (see blocks/norms.hpp for the math).
#include "selectivbench/blocks/norms.hpp"
#include "selectivbench/blocks/wiring.hpp"

namespace sb {

namespace {

torch::Tensor rms_normalise(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(0), "RMSNorm: expected [..., ",
              weight.size(0), "], got ", x.sizes());
  const auto ct = compute_dtype(x);
  const auto xf = x.to(ct);
  return xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps) * weight.to(ct);
}

}  // namespace

RMSNormImpl::RMSNormImpl(std::int64_t dim, double eps) : eps_(eps) {
  TORCH_CHECK(dim > 0, "RMSNorm: dim must be positive, got ", dim);
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  return rms_normalise(x, weight, eps_).to(x.scalar_type());
}

GatedRMSNormImpl::GatedRMSNormImpl(std::int64_t dim, double eps) : eps_(eps) {
  TORCH_CHECK(dim > 0, "GatedRMSNorm: dim must be positive, got ", dim);
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor GatedRMSNormImpl::forward(const torch::Tensor& x, const torch::Tensor& gate) {
  TORCH_CHECK(gate.sizes() == x.sizes(), "GatedRMSNorm: gate ", gate.sizes(), " does not match x ",
              x.sizes());
  const auto y = rms_normalise(x, weight, eps_);
  return (y * torch::silu(gate.to(y.scalar_type()))).to(x.scalar_type());
}

}  // namespace sb
