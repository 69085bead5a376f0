// Rotary position embedding, half-split layout (see blocks/rotary.hpp for the math).
#include "selectivbench/blocks/rotary.hpp"

namespace sb {

torch::Tensor apply_rotary(const torch::Tensor& x, std::int64_t offset, double base,
                           RotaryConvention convention) {
  TORCH_CHECK(x.dim() == 4, "apply_rotary: expected x [B, T, H, K], got ", x.sizes());
  const auto T = x.size(1);
  const auto K = x.size(3);
  TORCH_CHECK(K % 2 == 0, "apply_rotary: the head dim must be even, got ", K);
  TORCH_CHECK(offset >= 0, "apply_rotary: offset must be non-negative, got ", offset);
  // float32 as the reference computes it; float64 inputs keep float64.
  const auto ct = x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const auto opts = torch::TensorOptions().dtype(ct).device(x.device());
  // θ_i = 1 / base^(2i/K), i = 0 .. K/2-1, evaluated as the reference does.
  const auto inv_freq =
      torch::pow(base, torch::arange(0, K, 2, opts) / static_cast<double>(K)).reciprocal();
  const auto pos = torch::arange(offset, offset + T, opts);
  const auto angle = torch::outer(pos, inv_freq).view({T, 1, K / 2});  // [T, 1, K/2]
  const auto cos = angle.cos();
  auto sin = angle.sin();
  if (convention == RotaryConvention::kNegated) sin = -sin;  // rotation by −φ

  const auto xf = x.to(ct);
  const auto x1 = xf.narrow(3, 0, K / 2);
  const auto x2 = xf.narrow(3, K / 2, K / 2);
  return torch::cat({x1 * cos - x2 * sin, x1 * sin + x2 * cos}, 3).to(x.scalar_type());
}

}  // namespace sb
