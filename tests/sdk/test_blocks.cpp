// The SDK's building blocks against their references and the properties their math promises.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "selectivbench/blocks/gla.hpp"
#include "selectivbench/blocks/norms.hpp"
#include "selectivbench/blocks/rotary.hpp"
#include "selectivbench/blocks/short_conv.hpp"

namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kDouble);
const auto kF32 = torch::TensorOptions().dtype(torch::kFloat);

// ‖a − b‖ / ‖b‖ (Frobenius), in float64.
double rel_err(const torch::Tensor& a, const torch::Tensor& b) {
  const auto ad = a.detach().to(torch::kDouble).cpu();
  const auto bd = b.detach().to(torch::kDouble).cpu();
  const double den = bd.norm().item<double>();
  return (ad - bd).norm().item<double>() / (den > 0 ? den : 1.0);
}

double max_abs(const torch::Tensor& a) {
  return a.detach().abs().max().item<double>();
}

bool all_finite(const torch::Tensor& a) {
  return torch::isfinite(a).all().item<bool>();
}

// ---------------------------------------------------------------------------------------------
// ShortConv

TEST(ShortConv, ParametersShapesAndInit) {
  torch::manual_seed(1);
  sb::ShortConv no_bias(/*channels=*/96, /*kernel=*/4, /*bias=*/false, /*silu=*/true);
  const auto params = no_bias->named_parameters();
  ASSERT_EQ(params.size(), 1u);
  ASSERT_TRUE(params.contains("weight"));
  EXPECT_EQ(params["weight"].sizes(), (std::vector<std::int64_t>{96, 1, 4}));
  EXPECT_FALSE(no_bias->bias.defined());
  // U(±1/√K) with K = 4: inside ±0.5 and spread over most of it.
  EXPECT_LE(max_abs(no_bias->weight), 0.5);
  EXPECT_GT(max_abs(no_bias->weight), 0.4);
  EXPECT_NEAR(no_bias->weight.mean().item<double>(), 0.0, 0.1);

  sb::ShortConv with_bias(/*channels=*/10, /*kernel=*/3, /*bias=*/true, /*silu=*/false);
  const auto p2 = with_bias->named_parameters();
  ASSERT_EQ(p2.size(), 2u);
  ASSERT_TRUE(p2.contains("weight"));
  ASSERT_TRUE(p2.contains("bias"));
  EXPECT_EQ(p2["weight"].sizes(), (std::vector<std::int64_t>{10, 1, 3}));
  EXPECT_EQ(p2["bias"].sizes(), (std::vector<std::int64_t>{10}));
  EXPECT_LE(max_abs(with_bias->bias), 1.0 / std::sqrt(3.0));
  EXPECT_EQ(with_bias->channels(), 10);
  EXPECT_EQ(with_bias->kernel(), 3);
  std::int64_t count = 0;
  for (const auto& p : with_bias->parameters()) count += p.numel();
  EXPECT_EQ(count, 10 * 3 + 10);
}

TEST(ShortConv, ForwardEqualsReferenceAndSteps) {
  torch::manual_seed(2);
  const std::int64_t B = 3, C = 5, K = 4;
  for (const bool bias : {false, true}) {
    for (const bool silu : {false, true}) {
      sb::ShortConv conv(C, K, bias, silu);
      conv->to(torch::kDouble);
      for (const std::int64_t T : {1, 2, 7, 70}) {
        SCOPED_TRACE("bias=" + std::to_string(bias) + " silu=" + std::to_string(silu) +
                     " T=" + std::to_string(T));
        const auto x = torch::randn({B, T, C}, kF64);
        const auto y = conv->forward(x);
        ASSERT_EQ(y.sizes(), x.sizes());
        const auto ref = sb::short_conv_reference(x, conv->weight, conv->bias, silu);
        EXPECT_LT(rel_err(y, ref), 1e-13);

        auto cache = conv->init_cache(B, x.device(), torch::kDouble);
        ASSERT_EQ(cache.sizes(), (std::vector<std::int64_t>{B, C, K - 1}));
        std::vector<torch::Tensor> steps;
        for (std::int64_t t = 0; t < T; ++t) steps.push_back(conv->step(x.select(1, t), cache));
        EXPECT_LT(rel_err(torch::stack(steps, 1), ref), 1e-13);
        // The cache holds the last K-1 inputs, oldest first (zeros before the sequence).
        const auto padded = torch::cat({torch::zeros({B, K - 1, C}, kF64), x}, 1);
        EXPECT_TRUE(torch::equal(cache, padded.narrow(1, T, K - 1).transpose(1, 2)));
      }
    }
  }
}

TEST(ShortConv, ReferenceMatchesHandFormula) {
  // y_t = b + Σ_j w[j] x_{t-K+1+j}: w[K-1] multiplies the current input.
  auto x = torch::tensor({1.0, 10.0, 100.0}, kF64).view({1, 3, 1});
  auto w = torch::tensor({2.0, 3.0}, kF64).view({1, 1, 2});
  auto b = torch::tensor({0.5}, kF64);
  const auto y = sb::short_conv_reference(x, w, b, /*silu=*/false).flatten();
  EXPECT_DOUBLE_EQ(y[0].item<double>(), 0.5 + 3.0 * 1.0);
  EXPECT_DOUBLE_EQ(y[1].item<double>(), 0.5 + 2.0 * 1.0 + 3.0 * 10.0);
  EXPECT_DOUBLE_EQ(y[2].item<double>(), 0.5 + 2.0 * 10.0 + 3.0 * 100.0);
  sb::ShortConv conv(1, 2, true, false);
  conv->to(torch::kDouble);
  {
    torch::NoGradGuard no_grad;
    conv->weight.copy_(w);
    conv->bias.copy_(b);
  }
  EXPECT_LT(rel_err(conv->forward(x).flatten(), y), 1e-15);
}

TEST(ShortConv, Causal) {
  torch::manual_seed(3);
  sb::ShortConv conv(6, 4, true, true);
  conv->to(torch::kDouble);
  const auto x = torch::randn({2, 20, 6}, kF64);
  auto x2 = x.clone();
  x2.select(1, 11).add_(1.0);
  const auto y = conv->forward(x);
  const auto y2 = conv->forward(x2);
  EXPECT_TRUE(torch::equal(y.narrow(1, 0, 11), y2.narrow(1, 0, 11)));
  // Outputs 11 .. 14 see the change, 15 on do not.
  EXPECT_GT(max_abs(y.narrow(1, 11, 4) - y2.narrow(1, 11, 4)), 1e-6);
  EXPECT_TRUE(torch::equal(y.narrow(1, 15, 5), y2.narrow(1, 15, 5)));
}

TEST(ShortConv, RunsInFloat32AndBFloat16) {
  torch::manual_seed(4);
  sb::ShortConv conv(8, 4, true, true);
  const auto x = torch::randn({2, 9, 8}, kF32);
  const auto y32 = conv->forward(x);
  EXPECT_EQ(y32.scalar_type(), torch::kFloat);
  EXPECT_LT(rel_err(y32, sb::short_conv_reference(x, conv->weight, conv->bias, true)), 1e-6);

  conv->to(torch::kBFloat16);
  const auto xb = x.to(torch::kBFloat16);
  const auto yb = conv->forward(xb);
  EXPECT_EQ(yb.scalar_type(), torch::kBFloat16);
  EXPECT_LT(rel_err(yb, y32), 3e-2);
  auto cache = conv->init_cache(2, xb.device(), torch::kBFloat16);
  std::vector<torch::Tensor> steps;
  for (std::int64_t t = 0; t < 9; ++t) steps.push_back(conv->step(xb.select(1, t), cache));
  const auto ys = torch::stack(steps, 1);
  EXPECT_EQ(ys.scalar_type(), torch::kBFloat16);
  EXPECT_LT(rel_err(ys, y32), 3e-2);
  // Backward through the bf16 path.
  conv->zero_grad();
  conv->forward(xb.requires_grad_(true)).to(torch::kFloat).sum().backward();
  EXPECT_TRUE(conv->weight.grad().defined());
  EXPECT_TRUE(all_finite(conv->weight.grad()));
}

TEST(ShortConv, Cuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(5);
  sb::ShortConv conv(16, 4, true, true);
  const auto x = torch::randn({2, 33, 16}, kF32);
  const auto ref = sb::short_conv_reference(x, conv->weight, conv->bias, true);
  conv->to(torch::kCUDA);
  EXPECT_LT(rel_err(conv->forward(x.to(torch::kCUDA)), ref), 1e-5);
  auto cache = conv->init_cache(2, torch::kCUDA, torch::kFloat);
  std::vector<torch::Tensor> steps;
  for (std::int64_t t = 0; t < 33; ++t) steps.push_back(conv->step(x.select(1, t).cuda(), cache));
  EXPECT_LT(rel_err(torch::stack(steps, 1), ref), 1e-5);
  conv->to(torch::kBFloat16);
  EXPECT_LT(rel_err(conv->forward(x.to(torch::kCUDA, torch::kBFloat16)), ref), 3e-2);
}

// ---------------------------------------------------------------------------------------------
// Norms

TEST(Norms, RMSNormHandFormula) {
  torch::manual_seed(6);
  sb::RMSNorm norm(12, 1e-5);
  ASSERT_EQ(norm->named_parameters().size(), 1u);
  EXPECT_TRUE(torch::equal(norm->named_parameters()["weight"], torch::ones({12})));
  norm->to(torch::kDouble);
  {
    torch::NoGradGuard no_grad;
    norm->weight.uniform_(0.5, 1.5);
  }
  const auto x = torch::randn({3, 4, 12}, kF64) * 3.0;
  const auto y = norm->forward(x);
  const auto w = norm->weight;
  for (std::int64_t i = 0; i < 3; ++i) {
    for (std::int64_t j = 0; j < 4; ++j) {
      double ms = 0;
      for (std::int64_t c = 0; c < 12; ++c) ms += std::pow(x[i][j][c].item<double>(), 2) / 12.0;
      for (std::int64_t c = 0; c < 12; ++c) {
        const double want = x[i][j][c].item<double>() / std::sqrt(ms + 1e-5) * w[c].item<double>();
        EXPECT_NEAR(y[i][j][c].item<double>(), want, 1e-12);
      }
    }
  }
  // eps matters for small inputs: mean(x²) = 1e-6 against eps = 1e-5.
  const auto small = torch::full({1, 12}, 1e-3, kF64);
  EXPECT_NEAR(norm->forward(small)[0][0].item<double>(),
              1e-3 / std::sqrt(1e-6 + 1e-5) * w[0].item<double>(), 1e-12);
}

TEST(Norms, DtypesAreKept) {
  torch::manual_seed(7);
  sb::RMSNorm norm(16);
  sb::GatedRMSNorm gated(16);
  const auto x = torch::randn({5, 16}, kF32);
  const auto gate = torch::randn({5, 16}, kF32);
  const auto xb = x.to(torch::kBFloat16);
  const auto yb = norm->forward(xb);
  EXPECT_EQ(yb.scalar_type(), torch::kBFloat16);
  EXPECT_LT(rel_err(yb, norm->forward(x)), 1e-2);
  const auto gb = gated->forward(xb, gate.to(torch::kBFloat16));
  EXPECT_EQ(gb.scalar_type(), torch::kBFloat16);
  EXPECT_LT(rel_err(gb, gated->forward(x, gate)), 2e-2);
  // Unit RMS with the initial weight.
  const auto y = norm->forward(x * 7.0);
  EXPECT_NEAR(y.pow(2).mean(-1).max().item<double>(), 1.0, 1e-4);
}

TEST(Norms, GatedRMSNorm) {
  torch::manual_seed(8);
  sb::GatedRMSNorm gated(10, 1e-5);
  ASSERT_EQ(gated->named_parameters().size(), 1u);
  EXPECT_TRUE(torch::equal(gated->weight, torch::ones({10})));
  gated->to(torch::kDouble);
  {
    torch::NoGradGuard no_grad;
    gated->weight.uniform_(-1.0, 1.0);
  }
  const auto x = torch::randn({2, 3, 10}, kF64);
  const auto gate = torch::randn({2, 3, 10}, kF64) * 2.0;
  const auto y = gated->forward(x, gate);
  const auto normed = x / torch::sqrt(x.pow(2).mean(-1, true) + 1e-5) * gated->weight;
  const auto want = normed * gate / (1.0 + torch::exp(-gate));  // · silu(gate), after the norm
  EXPECT_LT(max_abs(y - want), 1e-13);
  // The gate is applied after the norm: scaling the gate's input does not renormalise.
  EXPECT_GT(max_abs(gated->forward(x, gate * 2.0) - y), 1e-3);
}

// ---------------------------------------------------------------------------------------------
// Rotary

TEST(Rotary, HandValues) {
  // K = 4: θ = (1, base^(-1/2)); position t = 3 after an offset of 2 (row 1).
  const double base = 100.0;
  const auto x = torch::tensor({0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0}, kF64).view({1, 2, 1, 4});
  const auto ys = sb::apply_rotary(x, 2, base, sb::RotaryConvention::kStandard).flatten();
  const auto yn = sb::apply_rotary(x, 2, base, sb::RotaryConvention::kNegated).flatten();
  const double a0 = 3.0 * 1.0, a1 = 3.0 / std::sqrt(base);
  // Pairs (x1[i], x2[i]) = (1, 3) with angle a0 and (2, 4) with a1.
  EXPECT_NEAR(ys[4].item<double>(), 1 * std::cos(a0) - 3 * std::sin(a0), 1e-12);
  EXPECT_NEAR(ys[6].item<double>(), 1 * std::sin(a0) + 3 * std::cos(a0), 1e-12);
  EXPECT_NEAR(ys[5].item<double>(), 2 * std::cos(a1) - 4 * std::sin(a1), 1e-12);
  EXPECT_NEAR(ys[7].item<double>(), 2 * std::sin(a1) + 4 * std::cos(a1), 1e-12);
  EXPECT_NEAR(yn[4].item<double>(), 1 * std::cos(a0) + 3 * std::sin(a0), 1e-12);
  EXPECT_NEAR(yn[6].item<double>(), -1 * std::sin(a0) + 3 * std::cos(a0), 1e-12);
  EXPECT_NEAR(yn[5].item<double>(), 2 * std::cos(a1) + 4 * std::sin(a1), 1e-12);
  EXPECT_NEAR(yn[7].item<double>(), -2 * std::sin(a1) + 4 * std::cos(a1), 1e-12);
  // Position 0 is the identity.
  EXPECT_TRUE(
      torch::equal(sb::apply_rotary(x, 0, base, sb::RotaryConvention::kStandard).narrow(1, 0, 1),
                   x.narrow(1, 0, 1)));
}

TEST(Rotary, NormPreservingAndInverse) {
  torch::manual_seed(9);
  const auto x = torch::randn({2, 13, 3, 8}, kF64);
  for (const auto conv : {sb::RotaryConvention::kStandard, sb::RotaryConvention::kNegated}) {
    const auto y = sb::apply_rotary(x, 5, 1000.0, conv);
    EXPECT_GT(max_abs(y - x), 1e-2);
    // Each (x1[i], x2[i]) pair keeps its length.
    const auto pair_norm = [](const torch::Tensor& t) {
      return t.narrow(3, 0, 4).pow(2) + t.narrow(3, 4, 4).pow(2);
    };
    EXPECT_LT(max_abs(pair_norm(y) - pair_norm(x)), 1e-12);
  }
  const auto there = sb::apply_rotary(x, 7, 1000.0, sb::RotaryConvention::kStandard);
  const auto back = sb::apply_rotary(there, 7, 1000.0, sb::RotaryConvention::kNegated);
  EXPECT_LT(max_abs(back - x), 1e-12);
}

TEST(Rotary, RelativePosition) {
  torch::manual_seed(10);
  const auto q = torch::randn({1, 1, 2, 16}, kF64);
  const auto k = torch::randn({1, 1, 2, 16}, kF64);
  for (const auto conv : {sb::RotaryConvention::kStandard, sb::RotaryConvention::kNegated}) {
    const auto score = [&](std::int64_t t1, std::int64_t t2) {
      return (sb::apply_rotary(q, t1, 1000.0, conv) * sb::apply_rotary(k, t2, 1000.0, conv))
          .sum(-1);
    };
    const auto s_a = score(3, 1);
    EXPECT_LT(max_abs(score(10, 8) - s_a), 1e-12);
    EXPECT_LT(max_abs(score(102, 100) - s_a), 1e-10);
    EXPECT_GT(max_abs(score(4, 1) - s_a), 1e-4);  // a different distance, a different score
  }
}

TEST(Rotary, OffsetMatchesSlicingAndDtype) {
  torch::manual_seed(11);
  const auto x = torch::randn({2, 20, 3, 6}, kF32);
  for (const auto conv : {sb::RotaryConvention::kStandard, sb::RotaryConvention::kNegated}) {
    const auto full = sb::apply_rotary(x, 0, 1000.0, conv);
    const auto tail = sb::apply_rotary(x.narrow(1, 5, 15), 5, 1000.0, conv);
    EXPECT_LT(max_abs(full.narrow(1, 5, 15) - tail), 1e-6);
    const auto one = sb::apply_rotary(x.narrow(1, 19, 1), 19, 1000.0, conv);
    EXPECT_LT(max_abs(full.narrow(1, 19, 1) - one), 1e-6);
  }
  const auto yb =
      sb::apply_rotary(x.to(torch::kBFloat16), 3, 1000.0, sb::RotaryConvention::kNegated);
  EXPECT_EQ(yb.scalar_type(), torch::kBFloat16);
  EXPECT_LT(rel_err(yb, sb::apply_rotary(x, 3, 1000.0, sb::RotaryConvention::kNegated)), 1e-2);
}

// ---------------------------------------------------------------------------------------------
// Gated linear attention

struct GlaInputs {
  torch::Tensor q, k, v, g, s0;
};

// Log decays spread log-uniformly over [−30, −1e-3] (per step), a few exactly 0 and a few at −30.
GlaInputs make_gla(std::int64_t B, std::int64_t T, std::int64_t H, std::int64_t K, std::int64_t V,
                   torch::TensorOptions opts, bool strong = true) {
  GlaInputs in;
  in.q = torch::randn({B, T, H, K}, kF64) / std::sqrt(static_cast<double>(K));
  in.k = torch::randn({B, T, H, K}, kF64);
  in.v = torch::randn({B, T, H, V}, kF64);
  if (strong) {
    const auto u = torch::rand({B, T, H, K}, kF64);
    auto g = -torch::exp(std::log(1e-3) + u * (std::log(30.0) - std::log(1e-3)));
    const auto pick = torch::rand({B, T, H, K}, kF64);
    g = torch::where(pick < 0.05, torch::zeros_like(g), g);
    g = torch::where(pick > 0.97, torch::full_like(g, -30.0), g);
    in.g = g;
  } else {
    in.g = torch::log_sigmoid(torch::randn({B, T, H, K}, kF64) * 2.0 + 3.0) / 16.0;
  }
  in.s0 = torch::randn({B, H, K, V}, kF64);
  in.q = in.q.to(opts);
  in.k = in.k.to(opts);
  in.v = in.v.to(opts);
  in.g = in.g.to(opts);
  in.s0 = in.s0.to(opts);
  return in;
}

TEST(Gla, StepEqualsHandRecurrence) {
  torch::manual_seed(12);
  const auto in = make_gla(2, 3, 2, 4, 5, kF64);
  auto state = in.s0.clone();
  for (std::int64_t t = 0; t < 3; ++t) {
    const auto want_s = in.g.select(1, t).exp().unsqueeze(-1) * state +
                        torch::einsum("bhk,bhv->bhkv", {in.k.select(1, t), in.v.select(1, t)});
    const auto want_o = torch::einsum("bhkv,bhk->bhv", {want_s, in.q.select(1, t)});
    auto s = state;
    const auto o =
        sb::gla_step(in.q.select(1, t), in.k.select(1, t), in.v.select(1, t), in.g.select(1, t), s);
    EXPECT_LT(max_abs(s - want_s), 1e-12);
    EXPECT_LT(max_abs(o - want_o), 1e-12);
    EXPECT_FALSE(s.is_same(state));  // a new tensor on the handle
    state = s;
  }
}

TEST(Gla, ChunkedEqualsReference) {
  torch::manual_seed(13);
  const std::int64_t B = 2, H = 2, K = 8, V = 6;
  for (const std::int64_t T : {1, 5, 63, 64, 65, 200}) {
    for (const std::int64_t chunk : {16, 64}) {
      for (const bool with_state : {false, true}) {
        SCOPED_TRACE("T=" + std::to_string(T) + " chunk=" + std::to_string(chunk) +
                     " state=" + std::to_string(with_state));
        const auto in = make_gla(B, T, H, K, V, kF64);
        const auto s0 = with_state ? in.s0 : torch::Tensor();
        const auto ref = sb::gla_reference(in.q, in.k, in.v, in.g, s0);
        const auto got = sb::gla_chunked(in.q, in.k, in.v, in.g, s0, chunk);
        ASSERT_EQ(got.output.sizes(), (std::vector<std::int64_t>{B, T, H, V}));
        ASSERT_EQ(got.state.sizes(), (std::vector<std::int64_t>{B, H, K, V}));
        EXPECT_EQ(got.output.scalar_type(), torch::kDouble);
        EXPECT_LT(rel_err(got.output, ref.output), 1e-10);
        EXPECT_LT(rel_err(got.state, ref.state), 1e-10);

        // float32: against the float64 reference of the same (rounded) inputs.
        const auto q32 = in.q.to(torch::kFloat), k32 = in.k.to(torch::kFloat),
                   v32 = in.v.to(torch::kFloat), g32 = in.g.to(torch::kFloat);
        const auto s32 = with_state ? in.s0.to(torch::kFloat) : torch::Tensor();
        const auto ref64 = sb::gla_reference(q32.to(torch::kDouble), k32.to(torch::kDouble),
                                             v32.to(torch::kDouble), g32.to(torch::kDouble),
                                             with_state ? s32.to(torch::kDouble) : s32);
        const auto got32 = sb::gla_chunked(q32, k32, v32, g32, s32, chunk);
        EXPECT_EQ(got32.output.scalar_type(), torch::kFloat);
        EXPECT_TRUE(all_finite(got32.output));
        EXPECT_TRUE(all_finite(got32.state));
        EXPECT_LT(rel_err(got32.output, ref64.output), 1e-4);
        EXPECT_LT(rel_err(got32.state, ref64.state), 1e-4);
      }
    }
  }
}

TEST(Gla, OddChunkSizesAndMildDecays) {
  torch::manual_seed(14);
  const auto in = make_gla(1, 77, 3, 5, 4, kF64, /*strong=*/false);
  const auto ref = sb::gla_reference(in.q, in.k, in.v, in.g, in.s0);
  for (const std::int64_t chunk : {1, 3, 20, 32, 128, 1000}) {
    SCOPED_TRACE("chunk=" + std::to_string(chunk));
    const auto got = sb::gla_chunked(in.q, in.k, in.v, in.g, in.s0, chunk);
    EXPECT_LT(rel_err(got.output, ref.output), 1e-10);
    EXPECT_LT(rel_err(got.state, ref.state), 1e-10);
  }
  // A scalar decay per head (g constant over K) is the special case RetNet and Mamba2 use.
  const auto g_scalar = in.g.narrow(3, 0, 1).expand_as(in.g).contiguous();
  const auto ref_s = sb::gla_reference(in.q, in.k, in.v, g_scalar);
  EXPECT_LT(rel_err(sb::gla_chunked(in.q, in.k, in.v, g_scalar).output, ref_s.output), 1e-10);
}

TEST(Gla, ExtremeDecaysStayFinite) {
  torch::manual_seed(15);
  for (const auto opts : {kF32, kF64}) {
    auto in = make_gla(2, 150, 2, 8, 8, opts);
    in.g = torch::full_like(in.g, -30.0);
    // Every step forgets everything: o_t = k_t·q_t v_t up to e^{-30}.
    const auto got = sb::gla_chunked(in.q, in.k, in.v, in.g, in.s0, 64);
    EXPECT_TRUE(all_finite(got.output));
    const auto want = (in.q * in.k).sum(-1, true) * in.v;
    EXPECT_LT(rel_err(got.output, want), 1e-6);
    // Strong decays everywhere but in one channel, which never decays.
    in.g.select(3, 0).fill_(0.0);
    const auto ref =
        sb::gla_reference(in.q.to(torch::kDouble), in.k.to(torch::kDouble), in.v.to(torch::kDouble),
                          in.g.to(torch::kDouble), in.s0.to(torch::kDouble));
    const auto got2 = sb::gla_chunked(in.q, in.k, in.v, in.g, in.s0, 64);
    EXPECT_TRUE(all_finite(got2.output));
    EXPECT_LT(rel_err(got2.output, ref.output),
              in.q.scalar_type() == torch::kDouble ? 1e-10 : 1e-4);
  }
}

TEST(Gla, SteppingEqualsReference) {
  torch::manual_seed(16);
  const auto in = make_gla(2, 40, 3, 6, 5, kF64);
  const auto ref = sb::gla_reference(in.q, in.k, in.v, in.g, in.s0);
  // Half chunked, then step by step from its final state.
  const auto first = sb::gla_chunked(in.q.narrow(1, 0, 23), in.k.narrow(1, 0, 23),
                                     in.v.narrow(1, 0, 23), in.g.narrow(1, 0, 23), in.s0, 16);
  auto state = first.state;
  std::vector<torch::Tensor> outs{first.output};
  for (std::int64_t t = 23; t < 40; ++t) {
    outs.push_back(sb::gla_step(in.q.select(1, t), in.k.select(1, t), in.v.select(1, t),
                                in.g.select(1, t), state)
                       .unsqueeze(1));
  }
  EXPECT_LT(rel_err(torch::cat(outs, 1), ref.output), 1e-10);
  EXPECT_LT(rel_err(state, ref.state), 1e-10);
}

TEST(Gla, GradientsEqualReference) {
  torch::manual_seed(17);
  for (const std::int64_t T : {5, 70}) {
    SCOPED_TRACE("T=" + std::to_string(T));
    const auto in = make_gla(2, T, 2, 6, 4, kF64);
    const auto w_out = torch::randn({2, T, 2, 4}, kF64);
    const auto w_state = torch::randn({2, 2, 6, 4}, kF64);
    const auto grads = [&](bool chunked) {
      std::vector<torch::Tensor> leaves;
      for (const auto& t : {in.q, in.k, in.v, in.g, in.s0}) {
        leaves.push_back(t.detach().clone().requires_grad_(true));
      }
      const auto r =
          chunked ? sb::gla_chunked(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], 16)
                  : sb::gla_reference(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4]);
      const auto loss = (r.output * w_out).sum() + (r.state * w_state).sum();
      loss.backward();
      std::vector<torch::Tensor> g;
      for (const auto& l : leaves) g.push_back(l.grad());
      return g;
    };
    const auto want = grads(false);
    const auto got = grads(true);
    const char* names[] = {"q", "k", "v", "g", "s0"};
    for (std::size_t i = 0; i < want.size(); ++i) {
      SCOPED_TRACE(names[i]);
      ASSERT_TRUE(got[i].defined());
      EXPECT_TRUE(all_finite(got[i]));
      EXPECT_LT(rel_err(got[i], want[i]), 1e-10);
    }
  }
}

TEST(Gla, Float32GradientsAreFinite) {
  torch::manual_seed(18);
  const auto in = make_gla(2, 130, 2, 8, 8, kF32);
  auto g = in.g.clone().requires_grad_(true);
  auto q = in.q.clone().requires_grad_(true);
  const auto r = sb::gla_chunked(q, in.k, in.v, g, {}, 64);
  r.output.pow(2).sum().backward();
  EXPECT_TRUE(all_finite(g.grad()));
  EXPECT_TRUE(all_finite(q.grad()));
}

TEST(Gla, BFloat16InputsComputeInFloat32) {
  torch::manual_seed(19);
  const auto in = make_gla(1, 50, 2, 8, 8, kF32, /*strong=*/false);
  const auto bf = [](const torch::Tensor& t) { return t.to(torch::kBFloat16); };
  const auto r = sb::gla_chunked(bf(in.q), bf(in.k), bf(in.v), bf(in.g));
  EXPECT_EQ(r.output.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(r.state.scalar_type(), torch::kFloat);
  const auto ref = sb::gla_reference(bf(in.q).to(torch::kFloat), bf(in.k).to(torch::kFloat),
                                     bf(in.v).to(torch::kFloat), bf(in.g).to(torch::kFloat));
  EXPECT_LT(rel_err(r.output, ref.output), 1e-2);
  EXPECT_LT(rel_err(r.state, ref.state), 1e-5);
}

TEST(Gla, Cuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(20);
  const auto in = make_gla(2, 150, 2, 16, 8, kF32);
  const auto ref =
      sb::gla_reference(in.q.to(torch::kDouble), in.k.to(torch::kDouble), in.v.to(torch::kDouble),
                        in.g.to(torch::kDouble), in.s0.to(torch::kDouble));
  const auto c = [](const torch::Tensor& t) { return t.to(torch::kCUDA); };
  const auto got = sb::gla_chunked(c(in.q), c(in.k), c(in.v), c(in.g), c(in.s0), 64);
  EXPECT_LT(rel_err(got.output, ref.output), 1e-4);
  EXPECT_LT(rel_err(got.state, ref.state), 1e-4);
}

}  // namespace
