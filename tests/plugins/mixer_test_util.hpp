// Helpers shared by the plugin mixer tests: parameter counts, relative error, stepping a mixer.
#pragma once

#include <gtest/gtest.h>
#include <selectivbench/sdk.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace sb::test {

inline std::int64_t count_parameters(const torch::nn::Module& m) {
  std::int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

// ‖a − b‖ / ‖b‖.
inline double rel_err(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).norm().item<double>() / std::max(b.norm().item<double>(), 1e-300);
}

// Runs the mixer step by step over x [B, T, D] from its initial state; returns [B, T, D].
inline torch::Tensor run_steps(sb::Mixer& m, const torch::Tensor& x) {
  auto state = m.init_state(x.size(0), x.device(), x.scalar_type());
  std::vector<torch::Tensor> ys;
  for (std::int64_t t = 0; t < x.size(1); ++t) ys.push_back(m.step(x.select(1, t), state));
  EXPECT_EQ(state.position, x.size(1));
  return torch::stack(ys, 1);
}

}  // namespace sb::test
