// The retnet mixer (plugins/retnet): parameters, descriptor, decays, the layer written out with
// RoPE by hand, step == forward, chunk == recurrent, causality, gradients, state size.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "plugins/retnet/retnet.hpp"
#include "tests/plugins/mixer_test_util.hpp"

namespace {

using sb::test::count_parameters;
using sb::test::rel_err;
using sb::test::run_steps;

using sb::plugins::describe_retnet;
using sb::plugins::RetNetMixer;

std::shared_ptr<sb::Mixer> make_retnet(std::int64_t d_model, std::int64_t n_heads,
                                       const std::map<std::string, sb::OptionValue>& options = {},
                                       std::uint64_t seed = 1) {
  const auto descriptor = describe_retnet();
  sb::MixerContext ctx;
  ctx.d_model = d_model;
  ctx.n_heads = n_heads;
  ctx.options = sb::Options(descriptor.options);
  for (const auto& [name, value] : options) ctx.options.set(name, value);
  torch::manual_seed(seed);
  return descriptor.factory(ctx);
}

TEST(RetNet, ParameterCount) {
  // 8D² + 16D + 2D/H at the defaults: q, k [D, D]; v, g [2D, D]; o [D, 2D]; convs 4·(D + D + 2D);
  // the norm weight [2D/H]. The decays are not parameters.
  auto formula = [](std::int64_t D, std::int64_t H) { return 8 * D * D + 16 * D + 2 * D / H; };
  EXPECT_EQ(count_parameters(*make_retnet(256, 4)), 528512);
  EXPECT_EQ(formula(256, 4), 528512);
  EXPECT_EQ(count_parameters(*make_retnet(1024, 8)), 8405248);
  EXPECT_EQ(formula(1024, 8), 8405248);
  // The general formula 2·D·Dk + 3·D·Dv + c·(2·Dk + Dv) + Dv/H, at expand_k 0.5, expand_v 1, c 3.
  const std::int64_t D = 64, H = 4, Dk = 32, Dv = 64, c = 3;
  EXPECT_EQ(count_parameters(*make_retnet(
                D, H, {{"expand_k", 0.5}, {"expand_v", 1.0}, {"conv_size", std::int64_t{3}}})),
            2 * D * Dk + 3 * D * Dv + c * (2 * Dk + Dv) + Dv / H);
  EXPECT_EQ(count_parameters(*make_retnet(64, 4, {{"use_short_conv", false}})),
            8 * 64 * 64 + 2 * 64 / 4);
}

TEST(RetNet, ParameterNamesAndShapesAsFla) {
  auto m = make_retnet(256, 4);
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
  EXPECT_TRUE(m->named_buffers().is_empty());
}

TEST(RetNet, Descriptor) {
  const auto d = describe_retnet();
  EXPECT_EQ(d.name, "retnet");
  EXPECT_EQ(d.taxonomy.recurrence, sb::Recurrence::kLinear);
  EXPECT_EQ(d.taxonomy.gate, sb::Gate::kFixedDecay);
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

TEST(RetNet, RejectsOddHeadDimsAndIndivisibleWidths) {
  EXPECT_THROW(make_retnet(100, 8), std::invalid_argument);
  EXPECT_THROW(make_retnet(648, 8), std::invalid_argument);  // K = 81: RoPE needs an even dim
}

TEST(RetNet, DecaysAreOneMinusTwoToMinusFiveMinusH) {
  auto m = std::dynamic_pointer_cast<RetNetMixer>(make_retnet(64, 4));
  ASSERT_TRUE(m);
  auto g = m->decays();
  ASSERT_EQ(g.numel(), 4);
  EXPECT_DOUBLE_EQ(g[0].item<double>(), 0.96875);     // 1 − 1/32
  EXPECT_DOUBLE_EQ(g[1].item<double>(), 0.984375);    // 1 − 1/64
  EXPECT_DOUBLE_EQ(g[2].item<double>(), 0.9921875);   // 1 − 1/128
  EXPECT_DOUBLE_EQ(g[3].item<double>(), 0.99609375);  // 1 − 1/256
  auto m8 = std::dynamic_pointer_cast<RetNetMixer>(make_retnet(1024, 8));
  EXPECT_DOUBLE_EQ(m8->decays()[7].item<double>(), 1.0 - 1.0 / 4096.0);
}

// By hand: after one input, zero inputs (without short convs: q = k = v = 0) add nothing, so the
// state of head h after n more steps is exactly γ_h^n times the state after the first.
TEST(RetNet, StateDecaysByGammaPerHead) {
  torch::NoGradGuard no_grad;
  auto m = make_retnet(32, 4, {{"use_short_conv", false}});
  m->to(torch::kFloat64);
  auto state = m->init_state(2, torch::kCPU, torch::kFloat64);
  m->step(torch::randn({2, 32}, torch::kFloat64), state);
  auto S0 = state.tensors[0].clone();  // [B, H, K, V]
  const int n = 10;
  for (int i = 0; i < n; ++i) m->step(torch::zeros({2, 32}, torch::kFloat64), state);
  for (std::int64_t h = 0; h < 4; ++h) {
    const double gamma = 1.0 - std::pow(2.0, -5.0 - double(h));
    auto expected = S0.select(1, h) * std::pow(gamma, n);
    EXPECT_LT(rel_err(state.tensors[0].select(1, h), expected), 1e-14) << "h=" << h;
  }
}

// The layer written out as a loop over time from the parameters, with RoPE by hand:
// θ_i = 10000^{−2i/K}, [x1 | x2] → [x1 cos tθ − x2 sin tθ | x1 sin tθ + x2 cos tθ].
torch::Tensor naive_retnet(sb::Mixer& m, const torch::Tensor& x, std::int64_t H,
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
  q = q.view({B, T, H, K});
  k = k.view({B, T, H, K});
  v = v.view({B, T, H, V});
  auto rope = [&](const torch::Tensor& u, std::int64_t t) {  // [B, H, K] at position t
    auto out = torch::empty_like(u);
    for (std::int64_t i = 0; i < K / 2; ++i) {
      const double phi = double(t) * std::pow(10000.0, -2.0 * double(i) / double(K));
      auto a = u.select(2, i), b = u.select(2, i + K / 2);
      out.select(2, i).copy_(a * std::cos(phi) - b * std::sin(phi));
      out.select(2, i + K / 2).copy_(a * std::sin(phi) + b * std::cos(phi));
    }
    return out;
  };
  auto gamma = (1.0 - torch::pow(2.0, -5.0 - torch::arange(H, x.options()))).view({1, H, 1, 1});
  auto gate = proj("g_proj", x).view({B, T, H, V});
  auto S = torch::zeros({B, H, K, V}, x.options());
  std::vector<torch::Tensor> outputs;
  for (std::int64_t t = 0; t < T; ++t) {
    auto qt = rope(q.select(1, t), t) / std::sqrt(double(K));
    auto kt = rope(k.select(1, t), t);
    S = gamma * S + kt.unsqueeze(-1) * v.select(1, t).unsqueeze(-2);
    auto o = (qt.unsqueeze(-1) * S).sum(2);  // [B, H, V]
    o = o / torch::sqrt(o.pow(2).mean(-1, true) + eps) * P["g_norm_swish_gate.weight"];
    auto g = gate.select(1, t);
    o = o * g * torch::sigmoid(g);
    outputs.push_back(proj("o_proj", o.reshape({B, H * V})));
  }
  return torch::stack(outputs, 1);
}

TEST(RetNet, ForwardMatchesTheLoopWrittenOut) {
  torch::NoGradGuard no_grad;
  for (auto [d, h] : {std::pair<std::int64_t, std::int64_t>{32, 4}, {20, 2}}) {
    auto m = make_retnet(d, h, {{"chunk_size", std::int64_t{16}}});
    m->to(torch::kFloat64);
    auto w = m->named_parameters()["g_norm_swish_gate.weight"];
    w.add_(0.1 * torch::randn_like(w));  // a norm weight that matters
    auto x = torch::randn({2, 37, d}, torch::kFloat64);
    EXPECT_LT(rel_err(m->forward(x), naive_retnet(*m, x, h)), 1e-10) << m->describe();
  }
}

TEST(RetNet, StepEqualsForwardInFloat32) {
  torch::NoGradGuard no_grad;
  auto m = make_retnet(64, 4);
  m->eval();
  auto x = torch::randn({2, 150, 64});
  EXPECT_LT(rel_err(run_steps(*m, x), m->forward(x)), 1e-4);
}

TEST(RetNet, DescribeNamesTheRecurrentMode) {
  EXPECT_EQ(make_retnet(32, 4, {{"mode", std::string("recurrent")}})->describe(),
            "retnet(d=32, H=4, K=8, V=16, conv=4, mode=recurrent)");
}

TEST(RetNet, StateElementsConstant) {
  torch::NoGradGuard no_grad;
  auto big = make_retnet(256, 4);
  EXPECT_EQ(big->state_elements(1), 4 * 64 * 128 + 3 * (256 + 256 + 512));
  EXPECT_EQ(big->state_elements(1), big->state_elements(10000));
  for (bool conv : {true, false}) {
    auto m = make_retnet(32, 4, {{"use_short_conv", conv}});
    const std::int64_t B = 3, T = 6;
    auto state = m->init_state(B, torch::kCPU, torch::kFloat32);
    for (std::int64_t t = 0; t < T; ++t) m->step(torch::randn({B, 32}), state);
    std::int64_t held = 0;
    for (const auto& s : state.tensors) held += s.numel();
    EXPECT_EQ(held / B, m->state_elements(T)) << "conv=" << conv;
  }
}

}  // namespace
