// The linear_attention mixer (plugins/linear_attention): parameters, descriptor, step == forward,
// chunk == recurrent, the layer written out as a loop, causality, gradients, state size.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "plugins/linear_attention/linear_attention.hpp"
#include "tests/plugins/mixer_test_util.hpp"

namespace {

using sb::test::count_parameters;
using sb::test::rel_err;
using sb::test::run_steps;

using sb::plugins::describe_linear_attention;

std::shared_ptr<sb::Mixer> make_la(std::int64_t d_model, std::int64_t n_heads,
                                   const std::map<std::string, sb::OptionValue>& options = {},
                                   std::uint64_t seed = 1) {
  const auto descriptor = describe_linear_attention();
  sb::MixerContext ctx;
  ctx.d_model = d_model;
  ctx.n_heads = n_heads;
  ctx.options = sb::Options(descriptor.options);
  for (const auto& [name, value] : options) ctx.options.set(name, value);
  torch::manual_seed(seed);
  return descriptor.factory(ctx);
}

TEST(LinearAttention, ParameterCount) {
  // 8D² + 16D + 2D/H at the defaults: gla's 8D² + 49D + 2D/H minus gk_proj (16D + 16D + D).
  auto formula = [](std::int64_t D, std::int64_t H) { return 8 * D * D + 16 * D + 2 * D / H; };
  EXPECT_EQ(count_parameters(*make_la(256, 4)), 528512);
  EXPECT_EQ(formula(256, 4), 528512);
  EXPECT_EQ(count_parameters(*make_la(1024, 8)), 8405248);
  EXPECT_EQ(formula(1024, 8), 8405248);
  // gla at d = 256 has 536960 (models.md §5): exactly gk_proj's 33·256 more.
  EXPECT_EQ(536960 - 528512, 33 * 256);
  // The general formula 2·D·Dk + 3·D·Dv + c·(2·Dk + Dv) + Dv/H, at expand_k 0.5, expand_v 1, c 3.
  const std::int64_t D = 64, H = 4, Dk = 32, Dv = 64, c = 3;
  EXPECT_EQ(count_parameters(*make_la(
                D, H, {{"expand_k", 0.5}, {"expand_v", 1.0}, {"conv_size", std::int64_t{3}}})),
            2 * D * Dk + 3 * D * Dv + c * (2 * Dk + Dv) + Dv / H);
}

TEST(LinearAttention, ParameterNamesAndShapesAsGlaWithoutGkProj) {
  auto m = make_la(256, 4);
  const std::map<std::string, std::vector<std::int64_t>> expected = {
      {"q_proj.weight", {256, 256}},    {"k_proj.weight", {256, 256}},
      {"v_proj.weight", {512, 256}},    {"g_proj.weight", {512, 256}},
      {"q_conv1d.weight", {256, 1, 4}}, {"k_conv1d.weight", {256, 1, 4}},
      {"v_conv1d.weight", {512, 1, 4}}, {"g_norm_swish_gate.weight", {128}},
      {"o_proj.weight", {256, 512}},
  };
  auto params = m->named_parameters();
  EXPECT_EQ(params.size(), expected.size());
  for (const auto& [name, shape] : expected) {
    ASSERT_TRUE(params.contains(name)) << name;
    EXPECT_EQ(params[name].sizes().vec(), shape) << name;
  }
}

TEST(LinearAttention, WithoutShortConvHasNoConvParameters) {
  auto m = make_la(64, 4, {{"use_short_conv", false}});
  for (const auto& p : m->named_parameters()) {
    EXPECT_EQ(p.key().find("conv1d"), std::string::npos) << p.key();
  }
  EXPECT_EQ(count_parameters(*m), 8 * 64 * 64 + 2 * 64 / 4);
}

TEST(LinearAttention, Descriptor) {
  const auto d = describe_linear_attention();
  EXPECT_EQ(d.name, "linear_attention");
  EXPECT_EQ(d.taxonomy.recurrence, sb::Recurrence::kLinear);
  EXPECT_EQ(d.taxonomy.gate, sb::Gate::kNone);
  EXPECT_EQ(d.taxonomy.transition, sb::Transition::kDiagonal);
  EXPECT_EQ(d.taxonomy.state_expansion, sb::StateExpansion::kMatrixPerHead);
  EXPECT_EQ(d.taxonomy.memory, sb::Memory::kConstant);
  EXPECT_TRUE(d.taxonomy.short_conv);
  EXPECT_TRUE(d.capabilities.recurrent_step);
  EXPECT_FALSE(d.capabilities.reference_only);
  EXPECT_EQ(d.cuda_dtype, torch::kFloat32);
  const sb::Options o(d.options);
  EXPECT_DOUBLE_EQ(o.get_float("expand_k"), 1.0);
  EXPECT_DOUBLE_EQ(o.get_float("expand_v"), 2.0);
  EXPECT_EQ(o.get_int("conv_size"), 4);
  EXPECT_TRUE(o.get_bool("use_short_conv"));
  EXPECT_EQ(o.get_int("chunk_size"), 64);
  EXPECT_DOUBLE_EQ(o.get_float("norm_eps"), 1e-5);
  EXPECT_EQ(o.get_string("mode"), "chunk");
}

TEST(LinearAttention, RejectsWidthsNotDivisibleByHeads) {
  EXPECT_THROW(make_la(100, 8), std::invalid_argument);
}

TEST(LinearAttention, ForwardShapeAndDtype) {
  auto m = make_la(64, 4);
  for (std::int64_t T : {1, 2, 13, 70, 131}) {
    auto y = m->forward(torch::randn({3, T, 64}));
    EXPECT_EQ(y.sizes().vec(), (std::vector<std::int64_t>{3, T, 64}));
    EXPECT_EQ(y.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  }
  EXPECT_EQ(m->describe(), "linear_attention(d=64, H=4, K=16, V=32, conv=4, mode=chunk, chunk=64)");
}

// The layer written out as a loop over time from the parameters: S_t = S_{t−1} + k_t v_tᵀ.
torch::Tensor naive_linear_attention(sb::Mixer& m, const torch::Tensor& x, std::int64_t H,
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
  auto q = conv_silu("q_conv1d", proj("q_proj", x));
  auto k = conv_silu("k_conv1d", proj("k_proj", x));
  auto v = conv_silu("v_conv1d", proj("v_proj", x));
  const auto K = q.size(2) / H, V = v.size(2) / H;
  q = q.view({B, T, H, K}) / std::sqrt(double(K));
  k = k.view({B, T, H, K});
  v = v.view({B, T, H, V});
  auto gate = proj("g_proj", x).view({B, T, H, V});
  auto S = torch::zeros({B, H, K, V}, x.options());
  std::vector<torch::Tensor> outputs;
  for (std::int64_t t = 0; t < T; ++t) {
    S = S + k.select(1, t).unsqueeze(-1) * v.select(1, t).unsqueeze(-2);
    auto o = (q.select(1, t).unsqueeze(-1) * S).sum(2);  // [B, H, V]
    o = o / torch::sqrt(o.pow(2).mean(-1, true) + eps) * P["g_norm_swish_gate.weight"];
    auto g = gate.select(1, t);
    o = o * g * torch::sigmoid(g);
    outputs.push_back(proj("o_proj", o.reshape({B, H * V})));
  }
  return torch::stack(outputs, 1);
}

TEST(LinearAttention, ForwardMatchesTheLoopWrittenOut) {
  torch::NoGradGuard no_grad;
  for (auto [d, h] : {std::pair<std::int64_t, std::int64_t>{32, 4}, {18, 2}}) {
    auto m = make_la(d, h, {{"chunk_size", std::int64_t{16}}});
    m->to(torch::kFloat64);
    auto w = m->named_parameters()["g_norm_swish_gate.weight"];
    w.add_(0.1 * torch::randn_like(w));  // a norm weight that matters
    auto x = torch::randn({2, 37, d}, torch::kFloat64);
    EXPECT_LT(rel_err(m->forward(x), naive_linear_attention(*m, x, h)), 1e-10) << m->describe();
  }
}

// A hand-checkable property of the missing decay: the state is a plain sum Σ_s k_s v_sᵀ, so its
// terms commute. Without short convs (which see the order) swapping the first two inputs gives the
// same state after step 2 and the same outputs from step 2 on.
TEST(LinearAttention, StateIsAnOrderFreeSumWithoutConvs) {
  torch::NoGradGuard no_grad;
  auto m = make_la(16, 2, {{"use_short_conv", false}});
  m->to(torch::kFloat64);
  auto x = torch::randn({1, 5, 16}, torch::kFloat64);
  auto swapped = x.clone();
  swapped.select(1, 0).copy_(x.select(1, 1));
  swapped.select(1, 1).copy_(x.select(1, 0));
  auto a = m->init_state(1, torch::kCPU, torch::kFloat64);
  auto b = m->init_state(1, torch::kCPU, torch::kFloat64);
  for (std::int64_t t = 0; t < 5; ++t) {
    auto ya = m->step(x.select(1, t), a);
    auto yb = m->step(swapped.select(1, t), b);
    if (t >= 2) {
      EXPECT_LT(rel_err(ya, yb), 1e-12) << "t=" << t;
    }
  }
  EXPECT_LT(rel_err(a.tensors[0], b.tensors[0]), 1e-12);
}

TEST(LinearAttention, StepEqualsForwardInFloat32) {
  torch::NoGradGuard no_grad;
  auto m = make_la(64, 4);
  m->eval();
  auto x = torch::randn({2, 150, 64});
  EXPECT_LT(rel_err(run_steps(*m, x), m->forward(x)), 1e-4);
}


TEST(LinearAttention, StateElementsConstant) {
  torch::NoGradGuard no_grad;
  // H·K·V + 3·(D + D + 2D) at the defaults, as gla.
  auto big = make_la(256, 4);
  EXPECT_EQ(big->state_elements(1), 4 * 64 * 128 + 3 * (256 + 256 + 512));
  EXPECT_EQ(big->state_elements(1), big->state_elements(10000));
  EXPECT_EQ(make_la(256, 4, {{"use_short_conv", false}})->state_elements(5), 4 * 64 * 128);
  for (bool conv : {true, false}) {
    auto m = make_la(32, 4, {{"use_short_conv", conv}});
    const std::int64_t B = 3, T = 6;
    auto state = m->init_state(B, torch::kCPU, torch::kFloat32);
    for (std::int64_t t = 0; t < T; ++t) m->step(torch::randn({B, 32}), state);
    std::int64_t held = 0;
    for (const auto& s : state.tensors) held += s.numel();
    EXPECT_EQ(held / B, m->state_elements(T)) << "conv=" << conv;
  }
}

}  // namespace
