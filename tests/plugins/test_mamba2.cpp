// The mamba2 mixer (plugins/mamba2): parameters and their initialisation, the recurrence written
// out by hand, step == forward, chunk == recurrent mode, state size.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "plugins/mamba2/mamba2.hpp"
#include "tests/plugins/mixer_test_util.hpp"

namespace {

using sb::test::count_parameters;
using sb::test::rel_err;
using sb::test::run_steps;

using sb::plugins::describe_mamba2;
using sb::plugins::Mamba2Mixer;

std::shared_ptr<Mamba2Mixer> make_mamba2(std::int64_t d_model, std::int64_t n_heads,
                                         const std::map<std::string, sb::OptionValue>& options = {},
                                         std::uint64_t seed = 1) {
  const auto descriptor = describe_mamba2();
  sb::MixerContext ctx;
  ctx.d_model = d_model;
  ctx.n_heads = n_heads;
  ctx.options = sb::Options(descriptor.options);
  for (const auto& [name, value] : options) ctx.options.set(name, value);
  torch::manual_seed(seed);
  return std::dynamic_pointer_cast<Mamba2Mixer>(descriptor.factory(ctx));
}

// 6d² + 2dN + 2dH + 12d + 10N + 6H (models.md §5).
std::int64_t formula(std::int64_t d, std::int64_t N, std::int64_t H) {
  return 6 * d * d + 2 * d * N + 2 * d * H + 12 * d + 10 * N + 6 * H;
}

TEST(Mamba2, ParameterCountMatchesTheReference) {
  EXPECT_EQ(count_parameters(*make_mamba2(256, 4)), formula(256, 128, 4));
  EXPECT_EQ(count_parameters(*make_mamba2(1024, 8)), formula(1024, 128, 8));
  EXPECT_EQ(count_parameters(*make_mamba2(256, 4, {{"d_state", std::int64_t{64}}})),
            formula(256, 64, 4));
  const std::int64_t d = 256;
  EXPECT_EQ(8 * (formula(d, 128, 4) + 2 * d) + 42 * d + (d + 1) * 1601, 4147713);
}

TEST(Mamba2, ParameterNamesShapesAndInit) {
  auto m = make_mamba2(256, 4);  // E = 512, P = 64, h = 8, N = 128
  const std::map<std::string, std::vector<std::int64_t>> expected = {
      {"in_proj.weight", {2 * 512 + 2 * 128 + 8, 256}},
      {"conv1d.weight", {512 + 256, 1, 4}},
      {"conv1d.bias", {512 + 256}},
      {"dt_bias", {8}},
      {"A_log", {8}},
      {"D", {8}},
      {"norm.weight", {512}},
      {"out_proj.weight", {256, 512}},
  };
  auto params = m->named_parameters();
  EXPECT_EQ(params.size(), expected.size());
  for (const auto& [name, shape] : expected) {
    ASSERT_TRUE(params.contains(name)) << name;
    EXPECT_EQ(params[name].sizes().vec(), shape) << name;
  }
  const auto dt = torch::softplus(m->dt_bias);
  EXPECT_GE(dt.min().item<double>(), 1e-3 * (1 - 1e-5));
  EXPECT_LE(dt.max().item<double>(), 0.1 * (1 + 1e-5));
  const auto A = torch::exp(m->A_log);
  EXPECT_GE(A.min().item<double>(), 1.0);
  EXPECT_LE(A.max().item<double>(), 16.0);
  EXPECT_TRUE(torch::equal(m->D, torch::ones({8})));
}

TEST(Mamba2, ForwardMatchesTheRecurrenceWrittenOut) {
  auto m = make_mamba2(16, 2, {{"d_state", std::int64_t{4}}});  // E 32, P 8, h 4, N 4
  m->to(torch::kFloat64);
  torch::manual_seed(3);
  const auto u = torch::randn({2, 9, 16}, torch::kFloat64);
  const auto y = m->forward(u);
  // The spec's recurrence, one time step and one head at a time.
  torch::NoGradGuard no_grad;
  const std::int64_t E = 32, N = 4, h = 4, P = 8;
  const auto zxbcdt = m->in_proj(u);
  const auto z = zxbcdt.narrow(-1, 0, E);
  const auto xbc = m->conv1d(zxbcdt.narrow(-1, E, E + 2 * N));
  const auto dt = zxbcdt.narrow(-1, 2 * E + 2 * N, h);
  std::vector<torch::Tensor> outs;
  auto S = torch::zeros({2, h, P, N}, torch::kFloat64);
  for (std::int64_t t = 0; t < 9; ++t) {
    const auto x = xbc.select(1, t).narrow(-1, 0, E).view({2, h, P});
    const auto B = xbc.select(1, t).narrow(-1, E, N);
    const auto C = xbc.select(1, t).narrow(-1, E + N, N);
    const auto delta = torch::softplus(dt.select(1, t) + m->dt_bias);  // [2, h]
    const auto decay = torch::exp(delta * -torch::exp(m->A_log));      // [2, h]
    S = decay.view({2, h, 1, 1}) * S +
        (delta.view({2, h, 1}) * x).unsqueeze(-1) * B.view({2, 1, 1, N});
    auto yt = torch::matmul(S, C.view({2, 1, N, 1})).squeeze(-1) + m->D.view({h, 1}) * x;
    yt = yt.reshape({2, E}) * torch::silu(z.select(1, t));
    yt = yt * torch::rsqrt(yt.pow(2).mean(-1, true) + 1e-5) * m->norm->weight;
    outs.push_back(m->out_proj(yt));
  }
  EXPECT_LT(rel_err(y, torch::stack(outs, 1)), 1e-10);
}

TEST(Mamba2, StepEqualsForward) {
  auto m = make_mamba2(32, 4, {{"d_state", std::int64_t{16}}});
  torch::manual_seed(4);
  const auto x = torch::randn({2, 75, 32});  // > one chunk, not a multiple of it
  torch::NoGradGuard no_grad;
  EXPECT_LT(rel_err(run_steps(*m, x), m->forward(x)), 1e-5);
  m->to(torch::kFloat64);
  const auto x64 = x.to(torch::kFloat64);
  EXPECT_LT(rel_err(run_steps(*m, x64), m->forward(x64)), 1e-12);
}


TEST(Mamba2, StateElementsAsModelsSection4_8) {
  auto m = make_mamba2(256, 4);
  // 2dN recurrent state + (2d + 2N)·3 conv cache.
  EXPECT_EQ(m->state_elements(1), 2 * 256 * 128 + (512 + 256) * 3);
  EXPECT_EQ(m->state_elements(100000), m->state_elements(1));
  auto state = m->init_state(3, torch::kCPU, torch::kFloat32);
  std::int64_t carried = 0;
  for (const auto& t : state.tensors) carried += t.numel();
  EXPECT_EQ(carried, 3 * m->state_elements(1));
}

TEST(Mamba2, Descriptor) {
  const auto d = describe_mamba2();
  EXPECT_EQ(d.name, "mamba2");
  EXPECT_EQ(d.taxonomy.gate, sb::Gate::kScalarPerHead);
  EXPECT_EQ(d.cuda_dtype, torch::kFloat32);  // the reference trains mamba2 in float32
  EXPECT_THROW(make_mamba2(30, 4), std::invalid_argument);  // E = 60 is not a multiple of P = 7
}

}  // namespace
