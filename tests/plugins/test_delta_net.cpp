// The delta_net mixer (plugins/delta_net): parameters, shapes, the spec written out, step ==
// forward, chunk == recurrent, causality, gradients, state size.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "plugins/delta_net/delta_net.hpp"
#include "tests/plugins/mixer_test_util.hpp"

namespace {

using sb::test::count_parameters;
using sb::test::rel_err;
using sb::test::run_steps;

using sb::plugins::describe_delta_net;

std::shared_ptr<sb::Mixer> make_dn(std::int64_t d_model, std::int64_t n_heads,
                                   const std::map<std::string, sb::OptionValue>& options = {},
                                   std::uint64_t seed = 1) {
  const auto descriptor = describe_delta_net();
  sb::MixerContext ctx;
  ctx.d_model = d_model;
  ctx.n_heads = n_heads;
  ctx.options = sb::Options(descriptor.options);
  for (const auto& [name, value] : options) ctx.options.set(name, value);
  torch::manual_seed(seed);
  return descriptor.factory(ctx);
}

// 6D² + DH + 16D + 2D/H (models.md §5).
std::int64_t formula(std::int64_t d, std::int64_t h) {
  return 6 * d * d + d * h + 16 * d + 2 * d / h;
}

TEST(DeltaNet, ParameterCountMatchesTheReference) {
  EXPECT_EQ(count_parameters(*make_dn(256, 4)), formula(256, 4));
  EXPECT_EQ(count_parameters(*make_dn(256, 4)), 398464);
  EXPECT_EQ(count_parameters(*make_dn(1024, 8)), formula(1024, 8));
  EXPECT_EQ(count_parameters(*make_dn(648, 8)), formula(648, 8));  // head dims 81 / 162
  // The whole reference network at d = 256 (L = 8, V_in = 41, C = 1601), models.md §5.
  const std::int64_t d = 256, C = 1601, V_in = 41;
  EXPECT_EQ(8 * (formula(d, 4) + 2 * d) + (V_in + 1) * d + (d + 1) * C, 3614017);
}

TEST(DeltaNet, ParameterNamesAndShapesAsFla) {
  auto m = make_dn(256, 4);
  const std::map<std::string, std::vector<std::int64_t>> expected = {
      {"q_proj.weight", {256, 256}},    {"k_proj.weight", {256, 256}},
      {"v_proj.weight", {512, 256}},    {"b_proj.weight", {4, 256}},
      {"q_conv1d.weight", {256, 1, 4}}, {"k_conv1d.weight", {256, 1, 4}},
      {"v_conv1d.weight", {512, 1, 4}}, {"o_norm.weight", {128}},
      {"o_proj.weight", {256, 512}},
  };
  auto params = m->named_parameters();
  EXPECT_EQ(params.size(), expected.size());
  for (const auto& [name, shape] : expected) {
    ASSERT_TRUE(params.contains(name)) << name;
    EXPECT_EQ(params[name].sizes().vec(), shape) << name;
  }
  EXPECT_TRUE(torch::equal(params["o_norm.weight"], torch::ones({128})));
}

TEST(DeltaNet, WithoutShortConvHasNoConvParameters) {
  auto m = make_dn(64, 4, {{"use_short_conv", false}});
  for (const auto& p : m->named_parameters()) {
    EXPECT_EQ(p.key().find("conv1d"), std::string::npos) << p.key();
  }
  EXPECT_EQ(count_parameters(*m), 6 * 64 * 64 + 64 * 4 + 2 * 64 / 4);
}

TEST(DeltaNet, Descriptor) {
  const auto d = describe_delta_net();
  EXPECT_EQ(d.name, "delta_net");
  EXPECT_EQ(d.taxonomy.recurrence, sb::Recurrence::kLinear);
  EXPECT_EQ(d.taxonomy.gate, sb::Gate::kNone);
  EXPECT_EQ(d.taxonomy.transition, sb::Transition::kDiagonalPlusLowRank);
  EXPECT_EQ(d.taxonomy.state_expansion, sb::StateExpansion::kMatrixPerHead);
  EXPECT_EQ(d.taxonomy.memory, sb::Memory::kConstant);
  EXPECT_TRUE(d.taxonomy.short_conv);
  EXPECT_TRUE(d.capabilities.recurrent_step);
  EXPECT_TRUE(d.capabilities.bf16);
  EXPECT_FALSE(d.capabilities.reference_only);
  EXPECT_EQ(d.cuda_dtype, torch::kBFloat16);
  const sb::Options o(d.options);
  EXPECT_DOUBLE_EQ(o.get_float("expand_k"), 1.0);
  EXPECT_DOUBLE_EQ(o.get_float("expand_v"), 2.0);
  EXPECT_EQ(o.get_int("conv_size"), 4);
  EXPECT_TRUE(o.get_bool("use_short_conv"));
  EXPECT_EQ(o.get_int("chunk_size"), 64);
  EXPECT_DOUBLE_EQ(o.get_float("norm_eps"), 1e-5);
  EXPECT_EQ(o.get_string("mode"), "chunk");
}

TEST(DeltaNet, RejectsWidthsNotDivisibleByHeads) {
  EXPECT_THROW(make_dn(100, 8), std::invalid_argument);
}

TEST(DeltaNet, ForwardShapeAndDtype) {
  auto m = make_dn(64, 4);
  for (std::int64_t T : {1, 2, 13, 70, 131}) {
    auto y = m->forward(torch::randn({3, T, 64}));
    EXPECT_EQ(y.sizes().vec(), (std::vector<std::int64_t>{3, T, 64}));
    EXPECT_EQ(y.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  }
  EXPECT_EQ(m->describe(), "delta_net(d=64, H=4, K=16, V=32, conv=4, mode=chunk, chunk=64)");
}

// The layer written out from models.md §4.5 as a loop over time, from the parameters.
torch::Tensor naive_delta_net(sb::Mixer& m, const torch::Tensor& x, std::int64_t H,
                              double eps = 1e-5) {
  auto P = m.named_parameters();
  const auto B = x.size(0), T = x.size(1);
  auto proj = [&](const std::string& name, const torch::Tensor& in) {
    return torch::matmul(in, P[name + ".weight"].t());
  };
  auto conv_silu = [&](const std::string& name, const torch::Tensor& in) {  // [B, T, C]
    auto w = P[name + ".weight"];                                           // [C, 1, 4]
    auto y = torch::zeros_like(in);
    for (std::int64_t t = 0; t < T; ++t) {
      for (std::int64_t j = 0; j < 4; ++j) {
        const auto s = t - 3 + j;
        if (s >= 0) y.select(1, t).add_(w.select(1, 0).select(1, j) * in.select(1, s));
      }
    }
    return y * torch::sigmoid(y);
  };
  auto l2 = [](const torch::Tensor& a) { return a / torch::sqrt((a * a).sum(-1, true) + 1e-6); };
  auto q = conv_silu("q_conv1d", proj("q_proj", x));
  auto k = conv_silu("k_conv1d", proj("k_proj", x));
  auto v = conv_silu("v_conv1d", proj("v_proj", x));
  const auto K = q.size(2) / H, V = v.size(2) / H;
  q = l2(q.view({B, T, H, K})) / std::sqrt(double(K));
  k = l2(k.view({B, T, H, K}));
  v = v.view({B, T, H, V});
  auto beta = torch::sigmoid(proj("b_proj", x));  // [B, T, H]
  auto S = torch::zeros({B, H, K, V}, x.options());
  std::vector<torch::Tensor> outputs;
  for (std::int64_t t = 0; t < T; ++t) {
    auto kt = k.select(1, t), vt = v.select(1, t);
    auto pred = (kt.unsqueeze(-1) * S).sum(2);  // Sᵀ k  [B, H, V]
    S = S + beta.select(1, t).unsqueeze(-1).unsqueeze(-1) * kt.unsqueeze(-1) *
                (vt - pred).unsqueeze(-2);
    auto o = (q.select(1, t).unsqueeze(-1) * S).sum(2);  // [B, H, V]
    o = o / torch::sqrt(o.pow(2).mean(-1, true) + eps) * P["o_norm.weight"];
    outputs.push_back(proj("o_proj", o.reshape({B, H * V})));
  }
  return torch::stack(outputs, 1);
}

TEST(DeltaNet, ForwardMatchesTheSpecWrittenOut) {
  torch::NoGradGuard no_grad;
  for (auto [d, h] : {std::pair<std::int64_t, std::int64_t>{32, 4}, {18, 2}}) {
    auto m = make_dn(d, h, {{"chunk_size", std::int64_t{16}}});
    m->to(torch::kFloat64);
    auto w = m->named_parameters()["o_norm.weight"];
    w.add_(0.1 * torch::randn_like(w));  // a norm weight that matters
    auto x = torch::randn({2, 37, d}, torch::kFloat64);
    EXPECT_LT(rel_err(m->forward(x), naive_delta_net(*m, x, h)), 1e-10) << m->describe();
  }
}

struct Variant {
  std::int64_t d, h;
  std::map<std::string, sb::OptionValue> options;
};
const std::vector<Variant>& variants() {
  static const std::vector<Variant> v = {
      {32, 4, {}},
      {18, 2, {}},  // K = 9, V = 18
      {32, 4, {{"use_short_conv", false}}},
      {32, 2, {{"chunk_size", std::int64_t{16}}, {"expand_k", 0.5}}},
  };
  return v;
}

TEST(DeltaNet, StepEqualsForwardInFloat32) {
  torch::NoGradGuard no_grad;
  auto m = make_dn(64, 4);
  m->eval();
  auto x = torch::randn({2, 90, 64});
  EXPECT_LT(rel_err(run_steps(*m, x), m->forward(x)), 1e-4);
}

TEST(DeltaNet, DescribeNamesTheRecurrentMode) {
  EXPECT_EQ(make_dn(32, 4, {{"mode", std::string("recurrent")}})->describe(),
            "delta_net(d=32, H=4, K=8, V=16, conv=4, mode=recurrent)");
}

TEST(DeltaNet, BFloat16ForwardAndStep) {
  torch::NoGradGuard no_grad;
  auto m = make_dn(64, 4);
  auto x = torch::randn({2, 80, 64});
  auto ref = m->forward(x);
  m->to(torch::kBFloat16);
  auto xb = x.to(torch::kBFloat16);
  auto y = m->forward(xb);
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  EXPECT_LT(rel_err(y.to(torch::kFloat32), ref), 5e-2);
  auto state = m->init_state(2, torch::kCPU, torch::kBFloat16);
  EXPECT_EQ(state.tensors[0].scalar_type(), torch::kFloat32);  // the matrix state stays float32
  EXPECT_LT(rel_err(run_steps(*m, xb).to(torch::kFloat32), ref), 5e-2);
}

TEST(DeltaNet, StateElementsConstant) {
  torch::NoGradGuard no_grad;
  // H·K·V + 3·(D + D + 2D) at the defaults.
  auto big = make_dn(256, 4);
  EXPECT_EQ(big->state_elements(1), 4 * 64 * 128 + 3 * (256 + 256 + 512));
  EXPECT_EQ(big->state_elements(1), big->state_elements(10000));
  EXPECT_EQ(make_dn(256, 4, {{"use_short_conv", false}})->state_elements(5), 4 * 64 * 128);
  // The state really holds that many numbers per sequence.
  for (bool conv : {true, false}) {
    auto m = make_dn(32, 4, {{"use_short_conv", conv}});
    const std::int64_t B = 3, T = 6;
    auto state = m->init_state(B, torch::kCPU, torch::kFloat32);
    for (std::int64_t t = 0; t < T; ++t) m->step(torch::randn({B, 32}), state);
    std::int64_t held = 0;
    for (const auto& s : state.tensors) held += s.numel();
    EXPECT_EQ(held / B, m->state_elements(T)) << "conv=" << conv;
  }
}

TEST(DeltaNet, RunsOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::NoGradGuard no_grad;
  auto m = make_dn(64, 4);
  auto x = torch::randn({2, 150, 64});
  auto cpu = m->forward(x);
  m->to(torch::kCUDA);
  auto xc = x.to(torch::kCUDA);
  EXPECT_LT(rel_err(m->forward(xc).cpu(), cpu), 1e-4);
  EXPECT_LT(rel_err(run_steps(*m, xc).cpu(), cpu), 1e-4);
  m->to(torch::kBFloat16);
  auto half = m->forward(xc.to(torch::kBFloat16));
  EXPECT_EQ(half.scalar_type(), torch::kBFloat16);
  EXPECT_LT(rel_err(half.cpu().to(torch::kFloat32), cpu), 5e-2);
}

}  // namespace
