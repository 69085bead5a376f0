// Helpers shared by the plugin mixer tests: parameter counts, relative error, stepping a mixer.
#pragma once

#include <gtest/gtest.h>
#include <selectivbench/sdk.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sb::test {

inline std::int64_t count_parameters(const torch::nn::Module& m) {
  std::int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

// A plugin's mixer at width d_model with n_heads, the descriptor's defaults overridden by
// `options`, its parameters drawn after torch::manual_seed(seed).
inline std::shared_ptr<sb::Mixer> make_mixer(
    const sb::PluginDescriptor& descriptor, std::int64_t d_model, std::int64_t n_heads,
    const std::map<std::string, sb::OptionValue>& options = {}, std::uint64_t seed = 1) {
  sb::MixerContext ctx;
  ctx.d_model = d_model;
  ctx.n_heads = n_heads;
  ctx.options = sb::Options(descriptor.options);
  for (const auto& [name, value] : options) ctx.options.set(name, value);
  torch::manual_seed(seed);
  return descriptor.factory(ctx);
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
