// The s4d mixer (plugins/s4d): parameters, descriptor, initialisation, the kernel against complex
// arithmetic, FFT == recurrent, the layer written out, step == forward, causality, tied dropout,
// gradients, state size.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "plugins/s4d/s4d.hpp"
#include "tests/plugins/mixer_test_util.hpp"

namespace {

using sb::test::count_parameters;
using sb::test::rel_err;
using sb::test::run_steps;

using sb::plugins::describe_s4d;
using sb::plugins::S4DMixer;

std::shared_ptr<sb::Mixer> make_s4d(std::int64_t d_model,
                                    const std::map<std::string, sb::OptionValue>& options = {},
                                    std::uint64_t seed = 1) {
  return sb::test::make_mixer(describe_s4d(), d_model, 4, options, seed);
}

TEST(S4D, ParameterCount) {
  // 2D² + 2DN + 4D: the 1×1 conv [2D, D] + [2D]; C [D, N/2, 2]; log_A_real, A_imag [D, N/2];
  // log_dt, D [D].
  auto formula = [](std::int64_t D, std::int64_t N) { return 2 * D * D + 2 * D * N + 4 * D; };
  EXPECT_EQ(formula(256, 64), 164864);
  EXPECT_EQ(count_parameters(*make_s4d(256)), 164864);
  EXPECT_EQ(count_parameters(*make_s4d(1024, {{"d_state", std::int64_t{128}}})),
            formula(1024, 128));
  EXPECT_EQ(formula(1024, 128), 2363392);
  // The whole network at d = 256 (L = 8, V_in = 41, C = 1601; models.md §5 conventions).
  const std::int64_t d = 256, C = 1601, V_in = 41;
  EXPECT_EQ(8 * (164864 + 2 * d) + (V_in + 1) * d + (d + 1) * C, 1745217);
}

TEST(S4D, ParameterNamesShapesAndInitAsTheReference) {
  auto m = make_s4d(256);
  const std::map<std::string, std::vector<std::int64_t>> expected = {
      {"D", {256}},
      {"kernel.C", {256, 32, 2}},
      {"kernel.log_dt", {256}},
      {"kernel.log_A_real", {256, 32}},
      {"kernel.A_imag", {256, 32}},
      {"output_linear.0.weight", {512, 256, 1}},
      {"output_linear.0.bias", {512}},
  };
  auto P = m->named_parameters();
  EXPECT_EQ(P.size(), expected.size());
  for (const auto& [name, shape] : expected) {
    ASSERT_TRUE(P.contains(name)) << name;
    EXPECT_EQ(P[name].sizes().vec(), shape) << name;
  }
  EXPECT_LT((P["kernel.log_A_real"] - std::log(0.5)).abs().max().item<double>(), 1e-7);
  EXPECT_NEAR(P["kernel.A_imag"][7][5].item<double>(), 5 * M_PI, 1e-5);
  EXPECT_NEAR(P["kernel.A_imag"][0][0].item<double>(), 0.0, 0.0);
  const auto log_dt = P["kernel.log_dt"];
  EXPECT_GE(log_dt.min().item<double>(), std::log(0.001));
  EXPECT_LE(log_dt.max().item<double>(), std::log(0.1));
  EXPECT_GT(log_dt.std().item<double>(), 0.5);  // spread over the range, not constant
  // C complex standard normal: real and imaginary parts ~ N(0, ½), so E|C|² = 1.
  EXPECT_NEAR(P["kernel.C"].pow(2).sum(-1).mean().item<double>(), 1.0, 0.1);
}

TEST(S4D, SystemParametersStayFloat32InBfloat16) {
  auto m = make_s4d(16);
  m->to(torch::kBFloat16);
  auto P = m->named_parameters();
  for (const auto* name : {"kernel.C", "kernel.log_dt", "kernel.log_A_real", "kernel.A_imag"}) {
    EXPECT_EQ(P[name].scalar_type(), torch::kFloat32) << name;
  }
  EXPECT_EQ(P["output_linear.0.weight"].scalar_type(), torch::kBFloat16);
  EXPECT_EQ(P["D"].scalar_type(), torch::kBFloat16);
  m->to(torch::kFloat64);
  EXPECT_EQ(m->named_parameters()["kernel.A_imag"].scalar_type(), torch::kFloat64);
  torch::NoGradGuard no_grad;
  m->to(torch::kBFloat16);
  m->eval();
  EXPECT_EQ(m->forward(torch::randn({2, 9, 16}).to(torch::kBFloat16)).scalar_type(),
            torch::kBFloat16);
}

TEST(S4D, Descriptor) {
  const auto d = describe_s4d();
  EXPECT_EQ(d.name, "s4d");
  EXPECT_EQ(d.taxonomy.recurrence, sb::Recurrence::kLinear);
  EXPECT_EQ(d.taxonomy.gate, sb::Gate::kFixedDecay);
  EXPECT_EQ(d.taxonomy.state_expansion, sb::StateExpansion::kVectorPerChannel);
  EXPECT_EQ(d.taxonomy.memory, sb::Memory::kConstant);
  EXPECT_FALSE(d.taxonomy.short_conv);
  const sb::Options o(d.options);
  EXPECT_EQ(o.get_int("d_state"), 64);
  EXPECT_DOUBLE_EQ(o.get_float("dt_min"), 0.001);
  EXPECT_DOUBLE_EQ(o.get_float("dt_max"), 0.1);
  EXPECT_DOUBLE_EQ(o.get_float("dropout"), 0.2);
  EXPECT_EQ(o.get_string("activation"), "gelu");
  EXPECT_EQ(o.get_string("mode"), "fft");
  EXPECT_THROW(make_s4d(32, {{"d_state", std::int64_t{7}}}), std::invalid_argument);
  EXPECT_THROW(make_s4d(32, {{"dt_min", 0.5}, {"dt_max", 0.1}}), std::invalid_argument);
}

// K_h[l] = 2 Re Σ_n C_n (e^{ΔA_n} − 1)/A_n e^{ΔA_n l}, in std::complex<double> for a few (h, l).
TEST(S4D, KernelMatchesComplexArithmetic) {
  torch::NoGradGuard no_grad;
  auto m = std::dynamic_pointer_cast<S4DMixer>(make_s4d(8, {{"d_state", std::int64_t{6}}}));
  ASSERT_TRUE(m);
  m->to(torch::kFloat64);
  auto P = m->named_parameters();
  P["kernel.log_A_real"].add_(0.3 * torch::randn_like(P["kernel.log_A_real"]));
  const std::int64_t T = 50;
  const auto K = m->kernel->kernel(T, torch::kFloat64);  // [D, T]
  for (std::int64_t h : {0, 3, 7}) {
    const double dt = std::exp(P["kernel.log_dt"][h].item<double>());
    for (std::int64_t l : {0, 1, 17, 49}) {
      std::complex<double> sum = 0.0;
      for (std::int64_t n = 0; n < 3; ++n) {
        const std::complex<double> A(-std::exp(P["kernel.log_A_real"][h][n].item<double>()),
                                     P["kernel.A_imag"][h][n].item<double>());
        const std::complex<double> C(P["kernel.C"][h][n][0].item<double>(),
                                     P["kernel.C"][h][n][1].item<double>());
        sum += C * (std::exp(dt * A) - 1.0) / A * std::exp(dt * A * double(l));
      }
      EXPECT_NEAR(K[h][l].item<double>(), 2.0 * sum.real(), 1e-12) << "h=" << h << " l=" << l;
    }
  }
}

// The layer written out: direct causal convolution with the kernel, D skip, GELU, 1×1 conv, GLU.
torch::Tensor naive_s4d(S4DMixer& m, const torch::Tensor& x) {
  auto P = m.named_parameters();
  const auto T = x.size(1);
  const auto K = m.kernel->kernel(T, torch::kFloat64);  // [D, T]
  auto u = x.transpose(1, 2);                           // [B, D, T]
  auto y = torch::zeros_like(u);
  for (std::int64_t t = 0; t < T; ++t) {
    for (std::int64_t l = 0; l <= t; ++l) {
      y.select(2, t).add_(K.select(1, l) * u.select(2, t - l));
    }
  }
  y = torch::gelu(y + u * P["D"].unsqueeze(-1));
  auto W = P["output_linear.0.weight"].squeeze(-1);                        // [2D, D]
  auto h = torch::matmul(W, y) + P["output_linear.0.bias"].unsqueeze(-1);  // [B, 2D, T]
  const auto Dm = x.size(2);
  return (h.narrow(1, 0, Dm) * torch::sigmoid(h.narrow(1, Dm, Dm))).transpose(1, 2);
}

TEST(S4D, ForwardMatchesTheLayerWrittenOut) {
  torch::NoGradGuard no_grad;
  for (const std::string mode : {"fft", "recurrent"}) {
    auto m = std::dynamic_pointer_cast<S4DMixer>(make_s4d(12, {{"mode", mode}}));
    m->to(torch::kFloat64);
    m->eval();
    auto x = torch::randn({2, 33, 12}, torch::kFloat64);
    EXPECT_LT(rel_err(m->forward(x), naive_s4d(*m, x)), 1e-10) << mode;
  }
}

TEST(S4D, FftEqualsRecurrentAndStepEqualsForward) {
  torch::NoGradGuard no_grad;
  auto fft = make_s4d(32, {}, /*seed=*/4);
  auto rec = make_s4d(32, {{"mode", std::string("recurrent")}}, /*seed=*/4);
  for (auto& m : {fft, rec}) {
    m->to(torch::kFloat64);
    m->eval();
  }
  for (std::int64_t T : {1, 8, 301}) {
    auto x = torch::randn({3, T, 32}, torch::kFloat64);
    const auto y = fft->forward(x);
    EXPECT_LT(rel_err(rec->forward(x), y), 1e-10) << "T=" << T;
    EXPECT_LT(rel_err(run_steps(*fft, x), y), 1e-10) << "T=" << T;
  }
  auto m32 = make_s4d(64);
  m32->eval();
  auto x = torch::randn({2, 400, 64});
  EXPECT_LT(rel_err(run_steps(*m32, x), m32->forward(x)), 1e-4);
}

TEST(S4D, ReluActivation) {
  torch::NoGradGuard no_grad;
  auto m = make_s4d(16, {{"activation", std::string("relu")}, {"d_state", std::int64_t{8}}});
  m->to(torch::kFloat64);
  m->eval();
  auto x = torch::randn({2, 20, 16}, torch::kFloat64);
  EXPECT_LT(rel_err(run_steps(*m, x), m->forward(x)), 1e-10);
  auto gelu = make_s4d(16, {{"d_state", std::int64_t{8}}});  // same seed, same parameters
  gelu->to(torch::kFloat64);
  gelu->eval();
  EXPECT_GT(rel_err(gelu->forward(x), m->forward(x)), 1e-3);
}

TEST(S4D, DropoutIsTiedOverTimeAndOnlyInTraining) {
  torch::NoGradGuard no_grad;
  auto m = make_s4d(16, {{"dropout", 0.5}});
  m->to(torch::kFloat64);
  auto x = torch::randn({4, 30, 16}, torch::kFloat64);
  m->eval();
  const auto y_eval = m->forward(x);
  EXPECT_TRUE(torch::allclose(m->forward(x), y_eval));
  m->train();
  torch::manual_seed(11);
  const auto y1 = m->forward(x);
  torch::manual_seed(12);
  const auto y2 = m->forward(x);
  EXPECT_GT(rel_err(y1, y2), 1e-3);  // a new mask per call
  // A dropped (sequence, channel) is dropped at every time step: the GLU input then holds only
  // the kept channels, so y is the output of the same layer with those channels' activations
  // zeroed for all t. Check through a second layer whose 1×1 conv sees one channel only.
  auto P = m->named_parameters();
  P["output_linear.0.weight"].zero_();
  P["output_linear.0.bias"].zero_();
  P["output_linear.0.weight"].select(0, 0).select(0, 3).fill_(1.0);  // a = z_3
  P["output_linear.0.bias"].select(0, 16).fill_(50.0);               // σ(b) = 1
  const auto y = m->forward(x);  // channel 0 of y = z_3 kept or 0, for every t together
  for (std::int64_t b = 0; b < 4; ++b) {
    const auto row = y.select(0, b).select(1, 0);  // [T]
    const bool zero_first = row[0].item<double>() == 0.0;
    EXPECT_EQ(zero_first, row.abs().max().item<double>() == 0.0) << "sequence " << b;
  }
}

TEST(S4D, StateElementsConstant) {
  auto m = make_s4d(32);
  EXPECT_EQ(m->state_elements(1), 32 * 64);
  EXPECT_EQ(m->state_elements(1), m->state_elements(10000));
  sb::test::expect_state_elements_carried(*m, 32);
}

}  // namespace

namespace {

TEST(S4D, RunsOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::NoGradGuard no_grad;
  auto m = make_s4d(64);
  m->eval();
  auto x = torch::randn({2, 150, 64});
  auto cpu = m->forward(x);
  m->to(torch::kCUDA);
  auto xc = x.to(torch::kCUDA);
  EXPECT_LT(rel_err(m->forward(xc).cpu(), cpu), 1e-4);
  EXPECT_LT(rel_err(run_steps(*m, xc).cpu(), cpu), 1e-4);
  m->to(torch::kBFloat16);
  auto half = m->forward(xc.to(torch::kBFloat16));
  EXPECT_EQ(half.scalar_type(), torch::kBFloat16);
  EXPECT_LT(rel_err(half.to(torch::kFloat32).cpu(), cpu), 5e-2);
}

}  // namespace
