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

// Outputs before t0 stay exactly the same when the inputs from t0 on change; the output at t0
// does change. m in float64 and eval mode.
inline void expect_causal(sb::Mixer& m, std::int64_t d_model, std::int64_t T = 40,
                          std::int64_t t0 = 19) {
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, T, d_model}, torch::kFloat64);
  auto x2 = x.clone();
  x2.narrow(1, t0, T - t0).add_(torch::randn({2, T - t0, d_model}, torch::kFloat64));
  auto y = m.forward(x), y2 = m.forward(x2);
  EXPECT_TRUE(torch::allclose(y.narrow(1, 0, t0), y2.narrow(1, 0, t0), 0.0, 1e-12)) << m.describe();
  EXPECT_FALSE(torch::allclose(y.narrow(1, t0, 1), y2.narrow(1, t0, 1))) << m.describe();
}

// Every parameter receives a finite, non-zero gradient from a random projection of forward(x).
inline void expect_gradients(sb::Mixer& m, const torch::Tensor& x) {
  auto y = m.forward(x);
  (y * torch::randn_like(y)).sum().backward();
  for (const auto& p : m.named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << m.describe() << " " << p.key();
    EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>())
        << m.describe() << " " << p.key();
    EXPECT_GT(p.value().grad().abs().max().item<double>(), 0.0) << m.describe() << " " << p.key();
  }
}

// After `steps` steps from init_state the state holds exactly state_elements(steps) numbers per
// sequence.
inline void expect_state_elements_carried(sb::Mixer& m, std::int64_t d_model,
                                          std::int64_t batch = 3, std::int64_t steps = 5) {
  torch::NoGradGuard no_grad;
  auto state = m.init_state(batch, torch::kCPU, torch::kFloat32);
  for (std::int64_t t = 0; t < steps; ++t) m.step(torch::randn({batch, d_model}), state);
  std::int64_t held = 0;
  for (const auto& s : state.tensors) held += s.numel();
  EXPECT_EQ(held / batch, m.state_elements(steps)) << m.describe();
}

}  // namespace sb::test
