// The gru mixer (plugins/gru): parameters, descriptor, step == forward, the equations written out,
// a hand-computed case, causality, gradients, state size.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "plugins/gru/gru.hpp"
#include "tests/plugins/mixer_test_util.hpp"

namespace {

using sb::test::count_parameters;
using sb::test::rel_err;
using sb::test::run_steps;

using sb::plugins::describe_gru;

std::shared_ptr<sb::Mixer> make_gru(std::int64_t d_model, std::int64_t n_heads = 4,
                                    std::uint64_t seed = 1) {
  const auto descriptor = describe_gru();
  sb::MixerContext ctx;
  ctx.d_model = d_model;
  ctx.n_heads = n_heads;
  ctx.options = sb::Options(descriptor.options);
  torch::manual_seed(seed);
  return descriptor.factory(ctx);
}

TEST(Gru, ParameterCount) {
  // 6D² + 6D: two [3D, D] weights and two [3D] biases; n_heads plays no part.
  auto formula = [](std::int64_t D) { return 6 * D * D + 6 * D; };
  EXPECT_EQ(count_parameters(*make_gru(256, 4)), 394752);
  EXPECT_EQ(formula(256), 394752);
  EXPECT_EQ(count_parameters(*make_gru(1024, 8)), 6297600);
  EXPECT_EQ(formula(1024), 6297600);
}

TEST(Gru, ParameterNamesAndShapes) {
  auto m = make_gru(256);
  const std::map<std::string, std::vector<std::int64_t>> expected = {
      {"gru.weight_ih_l0", {768, 256}},
      {"gru.weight_hh_l0", {768, 256}},
      {"gru.bias_ih_l0", {768}},
      {"gru.bias_hh_l0", {768}},
  };
  auto params = m->named_parameters();
  EXPECT_EQ(params.size(), expected.size());
  for (const auto& [name, shape] : expected) {
    ASSERT_TRUE(params.contains(name)) << name;
    EXPECT_EQ(params[name].sizes().vec(), shape) << name;
  }
  // PyTorch's default init: every entry in U(±1/√D).
  for (const auto& p : m->parameters()) {
    EXPECT_LE(p.abs().max().item<double>(), 1.0 / 16.0);
  }
}

TEST(Gru, Descriptor) {
  const auto d = describe_gru();
  EXPECT_EQ(d.name, "gru");
  EXPECT_EQ(d.taxonomy.recurrence, sb::Recurrence::kNonlinear);
  EXPECT_EQ(d.taxonomy.gate, sb::Gate::kVectorPerChannel);
  EXPECT_EQ(d.taxonomy.transition, sb::Transition::kDense);
  EXPECT_EQ(d.taxonomy.state_expansion, sb::StateExpansion::kVectorPerChannel);
  EXPECT_EQ(d.taxonomy.memory, sb::Memory::kConstant);
  EXPECT_FALSE(d.taxonomy.short_conv);
  EXPECT_TRUE(d.capabilities.recurrent_step);
  EXPECT_FALSE(d.capabilities.reference_only);
  EXPECT_EQ(d.cuda_dtype, torch::kFloat32);
  EXPECT_TRUE(d.options.empty());
}

TEST(Gru, ForwardShapeAndDtype) {
  auto m = make_gru(64);
  for (std::int64_t T : {1, 2, 13, 131}) {
    auto y = m->forward(torch::randn({3, T, 64}));
    EXPECT_EQ(y.sizes().vec(), (std::vector<std::int64_t>{3, T, 64}));
    EXPECT_EQ(y.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  }
  EXPECT_EQ(m->describe(), "gru(d=64, layers=1)");
}

// The GRU equations of gru.hpp written out as a loop, from the parameters.
torch::Tensor naive_gru(sb::Mixer& m, const torch::Tensor& x) {
  auto P = m.named_parameters();
  const auto B = x.size(0), T = x.size(1), D = x.size(2);
  auto gi = torch::matmul(x, P["gru.weight_ih_l0"].t()) + P["gru.bias_ih_l0"];  // [B, T, 3D]
  auto h = torch::zeros({B, D}, x.options());
  std::vector<torch::Tensor> ys;
  for (std::int64_t t = 0; t < T; ++t) {
    auto gh = torch::matmul(h, P["gru.weight_hh_l0"].t()) + P["gru.bias_hh_l0"];  // [B, 3D]
    auto i = gi.select(1, t);
    auto r = torch::sigmoid(i.narrow(1, 0, D) + gh.narrow(1, 0, D));
    auto z = torch::sigmoid(i.narrow(1, D, D) + gh.narrow(1, D, D));
    auto n = torch::tanh(i.narrow(1, 2 * D, D) + r * gh.narrow(1, 2 * D, D));
    h = (1 - z) * n + z * h;
    ys.push_back(h);
  }
  return torch::stack(ys, 1);
}

TEST(Gru, ForwardMatchesTheEquationsWrittenOut) {
  torch::NoGradGuard no_grad;
  auto m = make_gru(24);
  m->to(torch::kFloat64);
  auto x = torch::randn({2, 33, 24}, torch::kFloat64);
  EXPECT_LT(rel_err(m->forward(x), naive_gru(*m, x)), 1e-12);
}

// By hand: all weights and biases zero except b_in = 1 (the candidate's input bias). Then
// r = z = σ(0) = ½ and n = tanh(1) at every step, so h_t = ½ tanh(1) + ½ h_{t−1}, i.e.
// h_t = tanh(1) · (1 − 2^{−(t+1)}), whatever the input.
TEST(Gru, HandComputedCase) {
  torch::NoGradGuard no_grad;
  const std::int64_t D = 8, T = 6;
  auto m = make_gru(D);
  m->to(torch::kFloat64);
  for (auto& p : m->parameters()) p.zero_();
  m->named_parameters()["gru.bias_ih_l0"].narrow(0, 2 * D, D).fill_(1.0);
  auto x = torch::randn({2, T, D}, torch::kFloat64);
  auto y = m->forward(x);
  auto ys = run_steps(*m, x);
  for (std::int64_t t = 0; t < T; ++t) {
    const double expected = std::tanh(1.0) * (1.0 - std::pow(2.0, -double(t + 1)));
    EXPECT_NEAR(y.select(1, t).min().item<double>(), expected, 1e-14) << "t=" << t;
    EXPECT_NEAR(y.select(1, t).max().item<double>(), expected, 1e-14) << "t=" << t;
    EXPECT_NEAR(ys.select(1, t).max().item<double>(), expected, 1e-14) << "t=" << t;
  }
}

TEST(Gru, StepEqualsForward) {
  torch::NoGradGuard no_grad;
  {
    auto m = make_gru(32);
    m->to(torch::kFloat64);
    for (std::int64_t T : {1, 7, 70}) {
      auto x = torch::randn({2, T, 32}, torch::kFloat64);
      EXPECT_LT(rel_err(run_steps(*m, x), m->forward(x)), 1e-12) << "T=" << T;
    }
  }
  auto m = make_gru(64);
  auto x = torch::randn({3, 150, 64});
  EXPECT_LT(rel_err(run_steps(*m, x), m->forward(x)), 1e-5);
}

TEST(Gru, Causal) {
  torch::NoGradGuard no_grad;
  auto m = make_gru(32);
  m->to(torch::kFloat64);
  const std::int64_t T = 40, t0 = 19;
  auto x = torch::randn({2, T, 32}, torch::kFloat64);
  auto x2 = x.clone();
  x2.narrow(1, t0, T - t0).add_(torch::randn({2, T - t0, 32}, torch::kFloat64));
  auto y = m->forward(x), y2 = m->forward(x2);
  EXPECT_TRUE(torch::equal(y.narrow(1, 0, t0), y2.narrow(1, 0, t0)));
  EXPECT_FALSE(torch::allclose(y.narrow(1, t0, 1), y2.narrow(1, t0, 1)));
}

TEST(Gru, StateElementsConstant) {
  torch::NoGradGuard no_grad;
  auto m = make_gru(32);
  EXPECT_EQ(m->state_elements(1), 32);
  EXPECT_EQ(m->state_elements(100000), 32);
  const std::int64_t B = 3;
  auto state = m->init_state(B, torch::kCPU, torch::kFloat32);
  for (std::int64_t t = 0; t < 5; ++t) m->step(torch::randn({B, 32}), state);
  std::int64_t held = 0;
  for (const auto& s : state.tensors) held += s.numel();
  EXPECT_EQ(held / B, m->state_elements(5));
}

}  // namespace
