// The transformer mixer (plugins/transformer): parameters, shapes, step == forward, causality, the
// reference's double residual, gradients, state size.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "plugins/transformer/transformer.hpp"
#include "tests/plugins/mixer_test_util.hpp"

namespace {

using sb::test::count_parameters;
using sb::test::rel_err;
using sb::test::run_steps;

using sb::plugins::describe_transformer;

std::shared_ptr<sb::Mixer> make_transformer(std::int64_t d_model, std::int64_t n_heads,
                                            bool double_residual = false, std::uint64_t seed = 1) {
  const auto descriptor = describe_transformer();
  sb::MixerContext ctx;
  ctx.d_model = d_model;
  ctx.n_heads = n_heads;
  ctx.options = sb::Options(descriptor.options);
  ctx.options.set("double_residual", double_residual);
  torch::manual_seed(seed);
  return descriptor.factory(ctx);
}

TEST(Transformer, ParameterCountMatchesTheReference) {
  // 16D² + 14D + 2K + 1 (models.md §5): q, k, v, out 4(D² + D); q_norm, k_norm 2K; out_norm D;
  // linear1 8D² + 8D; linear2 4D² + D; beta 1.
  EXPECT_EQ(count_parameters(*make_transformer(256, 4)), 1052289);
  EXPECT_EQ(count_parameters(*make_transformer(768, 8)), 9448129);
  // The whole reference network at d = 256 (L = 8, V_in = 41, C = 1601), models.md §5.
  const std::int64_t d = 256, C = 1601, V_in = 41;
  EXPECT_EQ(8 * (1052289 + 2 * d) + (V_in + 1) * d + (d + 1) * C, 8844617);
}

TEST(Transformer, ParameterNamesAndShapes) {
  auto m = make_transformer(64, 4);
  const std::map<std::string, std::vector<std::int64_t>> expected = {
      {"q.weight", {64, 64}},    {"q.bias", {64}},
      {"k.weight", {64, 64}},    {"k.bias", {64}},
      {"v.weight", {64, 64}},    {"v.bias", {64}},
      {"out.weight", {64, 64}},  {"out.bias", {64}},
      {"q_norm.weight", {16}},   {"k_norm.weight", {16}},
      {"out_norm.weight", {64}}, {"linear1.weight", {512, 64}},
      {"linear1.bias", {512}},   {"linear2.weight", {64, 256}},
      {"linear2.bias", {64}},    {"beta", {}},
  };
  auto params = m->named_parameters();
  EXPECT_EQ(params.size(), expected.size());
  for (const auto& [name, shape] : expected) {
    ASSERT_TRUE(params.contains(name)) << name;
    EXPECT_EQ(params[name].sizes().vec(), shape) << name;
  }
  EXPECT_DOUBLE_EQ(params["beta"].item<double>(), 1.0);
  EXPECT_TRUE(torch::equal(params["q_norm.weight"], torch::ones({16})));
}

TEST(Transformer, Descriptor) {
  const auto d = describe_transformer();
  EXPECT_EQ(d.name, "transformer");
  EXPECT_EQ(d.taxonomy.recurrence, sb::Recurrence::kNone);
  EXPECT_EQ(d.taxonomy.gate, sb::Gate::kNone);
  EXPECT_EQ(d.taxonomy.transition, sb::Transition::kNotApplicable);
  EXPECT_EQ(d.taxonomy.state_expansion, sb::StateExpansion::kNotApplicable);
  EXPECT_EQ(d.taxonomy.memory, sb::Memory::kGrowsWithLength);
  EXPECT_FALSE(d.taxonomy.short_conv);
  EXPECT_TRUE(d.capabilities.recurrent_step);
  EXPECT_TRUE(d.capabilities.cuda);
  EXPECT_TRUE(d.capabilities.bf16);
  EXPECT_FALSE(d.capabilities.reference_only);
  EXPECT_EQ(d.cuda_dtype, torch::kFloat32);
  const sb::Options defaults(d.options);
  EXPECT_DOUBLE_EQ(defaults.get_float("rope_base"), 1000.0);
  EXPECT_DOUBLE_EQ(defaults.get_float("dropout"), 0.2);
}

TEST(Transformer, RejectsOddHeadDim) {
  EXPECT_THROW(make_transformer(648, 8), std::invalid_argument);  // head dim 81
  EXPECT_THROW(make_transformer(100, 8), std::invalid_argument);  // not a multiple
}

TEST(Transformer, ForwardShapeAndDtype) {
  auto m = make_transformer(64, 4);
  m->eval();
  for (std::int64_t T : {1, 2, 13, 70}) {
    auto y = m->forward(torch::randn({3, T, 64}));
    EXPECT_EQ(y.sizes().vec(), (std::vector<std::int64_t>{3, T, 64}));
    EXPECT_EQ(y.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  }
  EXPECT_NE(m->describe().find("transformer(d=64, H=4, K=16"), std::string::npos);
}

// The layer written out from models.md §4.1, one query position at a time, from the parameters.
torch::Tensor naive_transformer(sb::Mixer& m, const torch::Tensor& x, std::int64_t H, double base,
                                bool double_residual) {
  auto P = m.named_parameters();
  const auto B = x.size(0), T = x.size(1), D = x.size(2), K = D / H;
  auto linear = [&](const std::string& name, const torch::Tensor& in) {
    return torch::matmul(in, P[name + ".weight"].t()) + P[name + ".bias"];
  };
  auto repo_rms = [](const torch::Tensor& in, const torch::Tensor& w) {
    auto rms = in.pow(2).sum(-1, true).sqrt() / std::sqrt(double(in.size(-1)));
    return in / (rms + 1e-8) * w;
  };
  auto rope = [&](const torch::Tensor& in) {  // [B, T, H, K], rotation by −φ
    auto y = torch::empty_like(in);
    for (std::int64_t t = 0; t < T; ++t) {
      for (std::int64_t i = 0; i < K / 2; ++i) {
        const double phi = double(t) * std::pow(base, -2.0 * double(i) / double(K));
        auto x1 = in.select(1, t).select(2, i), x2 = in.select(1, t).select(2, K / 2 + i);
        y.select(1, t).select(2, i).copy_(x1 * std::cos(phi) + x2 * std::sin(phi));
        y.select(1, t).select(2, K / 2 + i).copy_(-x1 * std::sin(phi) + x2 * std::cos(phi));
      }
    }
    return y;
  };
  auto q = rope(repo_rms(linear("q", x).view({B, T, H, K}), P["q_norm.weight"]));
  auto k = rope(repo_rms(linear("k", x).view({B, T, H, K}), P["k_norm.weight"]));
  auto v = linear("v", x).view({B, T, H, K});
  std::vector<torch::Tensor> outputs;
  for (std::int64_t t = 0; t < T; ++t) {
    auto scores = (q.select(1, t).unsqueeze(1) * k.narrow(1, 0, t + 1)).sum(-1) /
                  std::sqrt(double(K));                                         // [B, t+1, H]
    auto p = torch::softmax(scores, 1);                                         // over the keys
    auto a = (p.unsqueeze(-1) * v.narrow(1, 0, t + 1)).sum(1).reshape({B, D});  // [B, D]
    auto x_t = x.select(1, t);
    auto attn = repo_rms(linear("out", a), P["out_norm.weight"]);
    auto x1 = x_t + attn;
    auto u = linear("linear1", x1);
    auto u1 = u.narrow(-1, 0, 4 * D), u2 = u.narrow(-1, 4 * D, 4 * D);
    auto f = linear("linear2", u1 * torch::sigmoid(P["beta"] * u1) * u2);
    outputs.push_back(double_residual ? x1 + f : attn + f);
  }
  return torch::stack(outputs, 1);
}

TEST(Transformer, ForwardMatchesTheSpecWrittenOut) {
  torch::NoGradGuard no_grad;
  for (bool double_residual : {false, true}) {
    auto m = make_transformer(32, 4, double_residual);
    m->to(torch::kFloat64);
    m->eval();
    // Non-trivial norm weights and beta, so that every parameter matters.
    for (auto& p : m->parameters()) p.add_(0.1 * torch::randn_like(p));
    auto x = torch::randn({2, 23, 32}, torch::kFloat64);
    EXPECT_LT(rel_err(m->forward(x), naive_transformer(*m, x, 4, 1000.0, double_residual)), 1e-10)
        << "double_residual=" << double_residual;
  }
}

TEST(Transformer, StepEqualsForwardInFloat32) {
  torch::NoGradGuard no_grad;
  auto m = make_transformer(64, 4);
  m->eval();
  auto x = torch::randn({2, 40, 64});
  EXPECT_LT(rel_err(run_steps(*m, x), m->forward(x)), 1e-4);
}

TEST(Transformer, ReferenceQuirkAddsTheInputOnce) {
  torch::NoGradGuard no_grad;
  auto plain = make_transformer(32, 4, /*double_residual=*/false, /*seed=*/7);
  auto quirk = make_transformer(32, 4, /*double_residual=*/true, /*seed=*/7);
  for (auto* m : {plain.get(), quirk.get()}) {
    m->to(torch::kFloat64);
    m->eval();
  }
  auto x = torch::randn({2, 15, 32}, torch::kFloat64);
  auto difference = quirk->forward(x) - plain->forward(x);
  EXPECT_TRUE(torch::allclose(difference, x, 0.0, 1e-12));
  EXPECT_NE(quirk->describe().find("double_residual=on"), std::string::npos);
}

TEST(Transformer, DropoutOnlyInTraining) {
  torch::NoGradGuard no_grad;
  auto m = make_transformer(32, 4);
  auto x = torch::randn({2, 9, 32});
  m->train();
  EXPECT_FALSE(torch::allclose(m->forward(x), m->forward(x)));
  m->eval();
  EXPECT_TRUE(torch::equal(m->forward(x), m->forward(x)));
}

TEST(Transformer, StateElementsIsTheKvCache) {
  torch::NoGradGuard no_grad;
  auto m = make_transformer(32, 4);
  m->eval();
  EXPECT_EQ(m->state_elements(0), 0);
  EXPECT_EQ(m->state_elements(1), 64);
  EXPECT_EQ(m->state_elements(100), 6400);
  EXPECT_EQ(make_transformer(256, 4)->state_elements(1000), 2 * 1000 * 256);
  // The cache really holds that many numbers per sequence.
  const std::int64_t B = 3, T = 5;
  auto state = m->init_state(B, torch::kCPU, torch::kFloat32);
  for (std::int64_t t = 0; t < T; ++t) m->step(torch::randn({B, 32}), state);
  std::int64_t held = 0;
  for (const auto& s : state.tensors) held += s.numel();
  EXPECT_EQ(held / B, m->state_elements(T));
}

TEST(Transformer, RunsOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::NoGradGuard no_grad;
  auto m = make_transformer(64, 4);
  m->eval();
  auto x = torch::randn({2, 70, 64});
  auto cpu = m->forward(x);
  m->to(torch::kCUDA);
  auto xc = x.to(torch::kCUDA);
  auto gpu = m->forward(xc);
  EXPECT_LT(rel_err(gpu.cpu(), cpu), 1e-4);
  EXPECT_LT(rel_err(run_steps(*m, xc).cpu(), cpu), 1e-4);
  m->to(torch::kBFloat16);
  auto half = m->forward(xc.to(torch::kBFloat16));
  EXPECT_EQ(half.scalar_type(), torch::kBFloat16);
  EXPECT_LT(rel_err(half.cpu().to(torch::kFloat32), cpu), 5e-2);
}

}  // namespace
