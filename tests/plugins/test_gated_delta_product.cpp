// The gated_delta_product mixer (plugins/gated_delta_product): parameters, shapes, the spec written
// out, step == forward, chunk == recurrent, the n_h = 1 case against gated_delta_net, causality,
// gradients, state size.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "plugins/gated_delta_net/gated_delta_net.hpp"
#include "plugins/gated_delta_product/gated_delta_product.hpp"
#include "tests/plugins/mixer_test_util.hpp"

namespace {

using sb::test::count_parameters;
using sb::test::rel_err;
using sb::test::run_steps;

using sb::plugins::describe_gated_delta_net;
using sb::plugins::describe_gated_delta_product;

std::shared_ptr<sb::Mixer> make_mixer(const sb::PluginDescriptor& descriptor, std::int64_t d_model,
                                      std::int64_t n_heads,
                                      const std::map<std::string, sb::OptionValue>& options,
                                      std::uint64_t seed) {
  sb::MixerContext ctx;
  ctx.d_model = d_model;
  ctx.n_heads = n_heads;
  ctx.options = sb::Options(descriptor.options);
  for (const auto& [name, value] : options) ctx.options.set(name, value);
  torch::manual_seed(seed);
  return descriptor.factory(ctx);
}

std::shared_ptr<sb::Mixer> make_gdp(std::int64_t d_model, std::int64_t n_heads,
                                    const std::map<std::string, sb::OptionValue>& options = {},
                                    std::uint64_t seed = 1) {
  return make_mixer(describe_gated_delta_product(), d_model, n_heads, options, seed);
}

// 17D² + 5DH + 52D + 2H + 2D/H (models.md §5), n_h = 4.
std::int64_t formula(std::int64_t d, std::int64_t h) {
  return 17 * d * d + 5 * d * h + 52 * d + 2 * h + 2 * d / h;
}

TEST(GatedDeltaProduct, ParameterCountMatchesTheReference) {
  EXPECT_EQ(count_parameters(*make_gdp(256, 4)), formula(256, 4));
  EXPECT_EQ(count_parameters(*make_gdp(256, 4)), 1132680);
  EXPECT_EQ(count_parameters(*make_gdp(1024, 8)), formula(1024, 8));
  EXPECT_EQ(count_parameters(*make_gdp(648, 8)), formula(648, 8));  // head dims 81 / 162
  // The whole reference network at d = 256 (L = 8, V_in = 41, C = 1601), models.md §5.
  const std::int64_t d = 256, C = 1601, V_in = 41;
  EXPECT_EQ(8 * (formula(d, 4) + 2 * d) + (V_in + 1) * d + (d + 1) * C, 9487745);
}

TEST(GatedDeltaProduct, ParameterNamesAndShapesAsFla) {
  auto m = make_gdp(256, 4);
  const std::map<std::string, std::vector<std::int64_t>> expected = {
      {"q_proj.weight", {256, 256}},
      {"k_proj.weight", {1024, 256}},
      {"v_proj.weight", {2048, 256}},
      {"b_proj.weight", {16, 256}},
      {"a_proj.weight", {4, 256}},
      {"A_log", {4}},
      {"dt_bias", {4}},
      {"q_conv1d.weight", {256, 1, 4}},
      {"k_conv1d.weight", {1024, 1, 4}},
      {"v_conv1d.weight", {2048, 1, 4}},
      {"g_proj.weight", {512, 256}},
      {"o_norm.weight", {128}},
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

TEST(GatedDeltaProduct, DecayParametersInitAsTheLayer) {
  auto params = make_gdp(1024, 256, {{"num_householder", std::int64_t{1}}})->named_parameters();
  const auto A = params["A_log"].exp();  // ~ U(0, 16)
  EXPECT_GT(A.min().item<double>(), 0.0);
  EXPECT_LT(A.max().item<double>(), 16.0);
  EXPECT_GT(A.max().item<double>(), 12.0);
  EXPECT_LT(A.min().item<double>(), 4.0);
  const auto dt = torch::softplus(params["dt_bias"].to(torch::kDouble));  // log-uniform [1e-3, 0.1]
  EXPECT_GE(dt.min().item<double>(), 1e-3 * (1 - 1e-5));
  EXPECT_LE(dt.max().item<double>(), 0.1 * (1 + 1e-5));
  EXPECT_NEAR(dt.log().mean().item<double>(), 0.5 * (std::log(1e-3) + std::log(0.1)), 0.4);
}

TEST(GatedDeltaProduct, OptionalPartsHaveNoParameters) {
  const std::int64_t d = 256, h = 4;
  auto no_gate = make_gdp(d, h, {{"use_output_gate", false}});
  EXPECT_FALSE(no_gate->named_parameters().contains("g_proj.weight"));
  EXPECT_TRUE(no_gate->named_parameters().contains("o_norm.weight"));
  EXPECT_EQ(count_parameters(*no_gate), formula(d, h) - 2 * d * d);
  auto no_forget = make_gdp(d, h, {{"use_forget_gate", false}});
  for (const auto* name : {"a_proj.weight", "A_log", "dt_bias"}) {
    EXPECT_FALSE(no_forget->named_parameters().contains(name)) << name;
  }
  EXPECT_EQ(count_parameters(*no_forget), formula(d, h) - d * h - 2 * h);
  auto no_conv = make_gdp(64, 4, {{"use_short_conv", false}});
  for (const auto& p : no_conv->named_parameters()) {
    EXPECT_EQ(p.key().find("conv1d"), std::string::npos) << p.key();
  }
  EXPECT_EQ(count_parameters(*no_conv), formula(64, 4) - 52 * 64);
  // n_h = 2: k, v, b projections and the k, v convs scale with n_h.
  EXPECT_EQ(count_parameters(*make_gdp(d, h, {{"num_householder", std::int64_t{2}}})),
            (5 + 2 * 3) * d * d + (2 + 1) * d * h + (4 + 2 * 12) * d + 2 * h + 2 * d / h);
}

TEST(GatedDeltaProduct, Descriptor) {
  const auto d = describe_gated_delta_product();
  EXPECT_EQ(d.name, "gated_delta_product");
  EXPECT_EQ(d.taxonomy.recurrence, sb::Recurrence::kLinear);
  EXPECT_EQ(d.taxonomy.gate, sb::Gate::kScalarPerHead);
  EXPECT_EQ(d.taxonomy.transition, sb::Transition::kDiagonalPlusLowRank);
  EXPECT_EQ(d.taxonomy.state_expansion, sb::StateExpansion::kMatrixPerHead);
  EXPECT_EQ(d.taxonomy.memory, sb::Memory::kConstant);
  EXPECT_TRUE(d.taxonomy.short_conv);
  EXPECT_TRUE(d.capabilities.recurrent_step);
  EXPECT_TRUE(d.capabilities.bf16);
  EXPECT_FALSE(d.capabilities.reference_only);
  EXPECT_EQ(d.cuda_dtype, torch::kBFloat16);
  const sb::Options o(d.options);
  EXPECT_EQ(o.get_int("num_householder"), 4);
  EXPECT_TRUE(o.get_bool("allow_neg_eigval"));
  EXPECT_TRUE(o.get_bool("use_forget_gate"));
  EXPECT_TRUE(o.get_bool("use_output_gate"));
  EXPECT_DOUBLE_EQ(o.get_float("expand_v"), 2.0);
  EXPECT_EQ(o.get_int("conv_size"), 4);
  EXPECT_TRUE(o.get_bool("use_short_conv"));
  EXPECT_EQ(o.get_int("chunk_size"), 64);
  EXPECT_DOUBLE_EQ(o.get_float("norm_eps"), 1e-5);
  EXPECT_EQ(o.get_string("mode"), "chunk");
}

TEST(GatedDeltaProduct, RejectsWidthsNotDivisibleByHeads) {
  EXPECT_THROW(make_gdp(100, 8), std::invalid_argument);
}

TEST(GatedDeltaProduct, ForwardShapeAndDtype) {
  auto m = make_gdp(64, 4);
  for (std::int64_t T : {1, 2, 13, 70}) {
    auto y = m->forward(torch::randn({3, T, 64}));
    EXPECT_EQ(y.sizes().vec(), (std::vector<std::int64_t>{3, T, 64}));
    EXPECT_EQ(y.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  }
  EXPECT_EQ(m->describe(),
            "gated_delta_product(d=64, H=4, K=16, V=32, householder=4, beta=(0,2), conv=4, "
            "forget=on, gate=on, mode=chunk, chunk=64)");
}

// The layer written out from models.md §4.7 as a loop over tokens and Householder factors, from the
// parameters.
torch::Tensor naive_gdp(sb::Mixer& m, const torch::Tensor& x, std::int64_t H, std::int64_t NH,
                        bool neg, bool forget, bool gated, double eps = 1e-5) {
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
  auto q = conv_silu("q_conv1d", proj("q_proj", x));  // [B, T, H·K]
  auto k = conv_silu("k_conv1d", proj("k_proj", x));  // [B, T, n_h·H·K]
  auto v = conv_silu("v_conv1d", proj("v_proj", x));  // [B, T, n_h·H·V]
  const auto K = q.size(2) / H, V = v.size(2) / (NH * H);
  q = l2(q.view({B, T, H, K})) / std::sqrt(double(K));  // [B, T, H, K]
  k = l2(k.view({B, T, NH, H, K}));                     // [B, T, n_h, H, K]
  v = v.view({B, T, NH, H, V});                         // [B, T, n_h, H, V]
  auto beta = torch::sigmoid(proj("b_proj", x)).view({B, T, NH, H}) * (neg ? 2.0 : 1.0);
  torch::Tensor decay;  // [B, T, H]
  if (forget) {
    decay = -P["A_log"].exp() * torch::log1p(torch::exp(proj("a_proj", x) + P["dt_bias"]));
  }
  auto gate = gated ? proj("g_proj", x).view({B, T, H, V}) : torch::Tensor();
  auto S = torch::zeros({B, H, K, V}, x.options());
  std::vector<torch::Tensor> outputs;
  for (std::int64_t t = 0; t < T; ++t) {
    if (forget) S = torch::exp(decay.select(1, t)).unsqueeze(-1).unsqueeze(-1) * S;
    for (std::int64_t j = 0; j < NH; ++j) {
      auto kt = k.select(1, t).select(1, j), vt = v.select(1, t).select(1, j);  // [B, H, ·]
      auto bt = beta.select(1, t).select(1, j);                                 // [B, H]
      auto pred = (kt.unsqueeze(-1) * S).sum(2);                                // Sᵀ k  [B, H, V]
      S = S + bt.unsqueeze(-1).unsqueeze(-1) * kt.unsqueeze(-1) * (vt - pred).unsqueeze(-2);
    }
    auto o = (q.select(1, t).unsqueeze(-1) * S).sum(2);  // [B, H, V]
    o = o / torch::sqrt(o.pow(2).mean(-1, true) + eps) * P["o_norm.weight"];
    if (gated) o = o * gate.select(1, t) * torch::sigmoid(gate.select(1, t));
    outputs.push_back(proj("o_proj", o.reshape({B, H * V})));
  }
  return torch::stack(outputs, 1);
}

TEST(GatedDeltaProduct, ForwardMatchesTheSpecWrittenOut) {
  torch::NoGradGuard no_grad;
  struct Case {
    std::int64_t d, h, nh;
    bool neg, forget, gated;
  };
  for (const auto& c : {Case{32, 4, 4, true, true, true}, Case{18, 2, 3, true, true, true},
                        Case{32, 4, 2, false, true, false}, Case{32, 4, 4, true, false, true},
                        Case{32, 4, 1, true, true, true}}) {
    for (const std::string mode : {"chunk", "recurrent"}) {
      auto m = make_gdp(c.d, c.h,
                        {{"chunk_size", std::int64_t{16}},
                         {"num_householder", c.nh},
                         {"allow_neg_eigval", c.neg},
                         {"use_forget_gate", c.forget},
                         {"use_output_gate", c.gated},
                         {"mode", mode}});
      m->to(torch::kFloat64);
      auto w = m->named_parameters()["o_norm.weight"];
      w.add_(0.1 * torch::randn_like(w));  // a norm weight that matters
      auto x = torch::randn({2, 37, c.d}, torch::kFloat64);
      EXPECT_LT(rel_err(m->forward(x), naive_gdp(*m, x, c.h, c.nh, c.neg, c.forget, c.gated)),
                1e-10)
          << m->describe();
    }
  }
}

struct Variant {
  std::int64_t d, h;
  std::map<std::string, sb::OptionValue> options;
};
const std::vector<Variant>& variants() {
  static const std::vector<Variant> v = {
      {32, 4, {}},
      {18, 2, {{"num_householder", std::int64_t{3}}}},  // K = 9, V = 18
      {32, 4, {{"use_short_conv", false}}},
      {32, 2, {{"chunk_size", std::int64_t{16}}, {"expand_v", 1.0}}},
      {32, 4, {{"use_output_gate", false}, {"use_forget_gate", false}}},
      {32, 4, {{"allow_neg_eigval", false}, {"num_householder", std::int64_t{1}}}},
  };
  return v;
}

TEST(GatedDeltaProduct, StepEqualsForwardInFloat32) {
  torch::NoGradGuard no_grad;
  auto m = make_gdp(64, 4);
  m->eval();
  auto x = torch::randn({2, 50, 64});
  EXPECT_LT(rel_err(run_steps(*m, x), m->forward(x)), 1e-4);
}

TEST(GatedDeltaProduct, DescribeNamesTheRecurrentMode) {
  EXPECT_EQ(make_gdp(32, 4, {{"mode", std::string("recurrent")}})->describe(),
            "gated_delta_product(d=32, H=4, K=8, V=16, householder=4, beta=(0,2), conv=4, "
            "forget=on, gate=on, mode=recurrent)");
}

// With one Householder factor and β ∈ (0, 1) the layer is Gated DeltaNet: same parameter names and
// shapes, same outputs given the same weights.
TEST(GatedDeltaProduct, OneHouseholderFactorIsGatedDeltaNet) {
  torch::NoGradGuard no_grad;
  auto gdp = make_gdp(32, 4, {{"num_householder", std::int64_t{1}}, {"allow_neg_eigval", false}},
                      /*seed=*/3);
  auto gdn = make_mixer(describe_gated_delta_net(), 32, 4, {}, /*seed=*/4);
  gdp->to(torch::kFloat64);
  gdn->to(torch::kFloat64);
  auto from = gdp->named_parameters();
  auto to = gdn->named_parameters();
  ASSERT_EQ(from.size(), to.size());
  for (const auto& p : from) {
    ASSERT_TRUE(to.contains(p.key())) << p.key();
    ASSERT_EQ(to[p.key()].sizes(), p.value().sizes()) << p.key();
    to[p.key()].copy_(p.value());
  }
  auto x = torch::randn({2, 30, 32}, torch::kFloat64);
  EXPECT_LT(rel_err(gdp->forward(x), gdn->forward(x)), 1e-10);
  EXPECT_LT(rel_err(run_steps(*gdp, x), run_steps(*gdn, x)), 1e-10);
}

TEST(GatedDeltaProduct, BFloat16ForwardAndStep) {
  torch::NoGradGuard no_grad;
  auto m = make_gdp(64, 4);
  auto x = torch::randn({2, 40, 64});
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

TEST(GatedDeltaProduct, StateElementsConstant) {
  torch::NoGradGuard no_grad;
  // H·K·V + 3·(D + 4D + 8D) at the defaults (models.md §4.8).
  auto big = make_gdp(256, 4);
  EXPECT_EQ(big->state_elements(1), 4 * 64 * 128 + 3 * (256 + 1024 + 2048));
  EXPECT_EQ(big->state_elements(1), big->state_elements(10000));
  EXPECT_EQ(make_gdp(256, 4, {{"use_short_conv", false}})->state_elements(5), 4 * 64 * 128);
  // The state really holds that many numbers per sequence.
  for (bool conv : {true, false}) {
    for (std::int64_t nh : {1, 3}) {
      auto m = make_gdp(32, 4, {{"use_short_conv", conv}, {"num_householder", nh}});
      const std::int64_t B = 3, T = 6;
      auto state = m->init_state(B, torch::kCPU, torch::kFloat32);
      for (std::int64_t t = 0; t < T; ++t) m->step(torch::randn({B, 32}), state);
      std::int64_t held = 0;
      for (const auto& s : state.tensors) held += s.numel();
      EXPECT_EQ(held / B, m->state_elements(T)) << "conv=" << conv << " n_h=" << nh;
    }
  }
}

TEST(GatedDeltaProduct, RunsOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::NoGradGuard no_grad;
  auto m = make_gdp(64, 4);
  auto x = torch::randn({2, 100, 64});
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
