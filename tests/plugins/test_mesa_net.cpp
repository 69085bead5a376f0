// The mesa_net mixer (plugins/mesa_net): parameters, descriptor, λ, the CG solve against an exact
// solve, chunk == reference (values and implicit gradients), the layer written out with exact
// solves, step == forward, causality, gradients, state size.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "plugins/mesa_net/mesa_net.hpp"
#include "tests/plugins/mixer_test_util.hpp"

namespace {

using sb::test::count_parameters;
using sb::test::rel_err;
using sb::test::run_steps;

using sb::plugins::describe_mesa_net;
using sb::plugins::mesa_cg_explicit;
using sb::plugins::mesa_chunked;
using sb::plugins::mesa_reference;
using sb::plugins::MesaNetMixer;

std::shared_ptr<sb::Mixer> make_mesa(std::int64_t d_model, std::int64_t n_heads,
                                     const std::map<std::string, sb::OptionValue>& options = {},
                                     std::uint64_t seed = 1) {
  return sb::test::make_mixer(describe_mesa_net(), d_model, n_heads, options, seed);
}

TEST(MesaNet, ParameterCount) {
  // 4D² + 2DH + 2H + 9D + D/H: q, k, v, o [D, D]; a, b [H, D] + [H]; λ [D]; convs 2·4·D; norm
  // [D/H].
  auto formula = [](std::int64_t D, std::int64_t H) {
    return 4 * D * D + 2 * D * H + 2 * H + 9 * D + D / H;
  };
  EXPECT_EQ(formula(256, 4), 266568);
  EXPECT_EQ(count_parameters(*make_mesa(256, 4)), 266568);
  EXPECT_EQ(count_parameters(*make_mesa(1024, 8)), formula(1024, 8));
  EXPECT_EQ(formula(1024, 8), 4220048);
  // The whole reference network at d = 256 (L = 8, V_in = 41, C = 1601; models.md §5 conventions).
  const std::int64_t d = 256, C = 1601, V_in = 41;
  EXPECT_EQ(8 * (266568 + 2 * d) + (V_in + 1) * d + (d + 1) * C, 2558849);
  // The output gate adds g_proj [D, D]; conv_size c changes 8D to 2cD.
  EXPECT_EQ(count_parameters(*make_mesa(64, 4, {{"use_output_gate", true}})),
            formula(64, 4) + 64 * 64);
  EXPECT_EQ(count_parameters(*make_mesa(64, 4, {{"conv_size", std::int64_t{2}}})),
            formula(64, 4) - 4 * 64);
}

TEST(MesaNet, ParameterNamesAndShapesAsFla) {
  auto m = make_mesa(256, 4);
  const std::map<std::string, std::vector<std::int64_t>> expected = {
      {"q_proj.weight", {256, 256}},
      {"k_proj.weight", {256, 256}},
      {"v_proj.weight", {256, 256}},
      {"a_proj.weight", {4, 256}},
      {"a_proj.bias", {4}},
      {"b_proj.weight", {4, 256}},
      {"b_proj.bias", {4}},
      {"lambda_params", {256}},
      {"q_conv1d.weight", {256, 1, 4}},
      {"k_conv1d.weight", {256, 1, 4}},
      {"o_norm.weight", {64}},
      {"o_proj.weight", {256, 256}},
  };
  auto params = m->named_parameters();
  EXPECT_EQ(params.size(), expected.size());
  for (const auto& [name, shape] : expected) {
    ASSERT_TRUE(params.contains(name)) << name;
    EXPECT_EQ(params[name].sizes().vec(), shape) << name;
  }
}

TEST(MesaNet, Descriptor) {
  const auto d = describe_mesa_net();
  EXPECT_EQ(d.name, "mesa_net");
  EXPECT_EQ(d.taxonomy.recurrence, sb::Recurrence::kLinear);
  EXPECT_EQ(d.taxonomy.gate, sb::Gate::kScalarPerHead);
  EXPECT_EQ(d.taxonomy.state_expansion, sb::StateExpansion::kMatrixPerHead);
  EXPECT_EQ(d.taxonomy.memory, sb::Memory::kConstant);
  EXPECT_TRUE(d.taxonomy.short_conv);
  EXPECT_TRUE(d.capabilities.recurrent_step);
  EXPECT_EQ(d.cuda_dtype, torch::kFloat32);
  const sb::Options o(d.options);
  EXPECT_EQ(o.get_int("conv_size"), 4);
  EXPECT_EQ(o.get_int("chunk_size"), 64);
  EXPECT_EQ(o.get_int("max_cg_step_training"), 30);
  EXPECT_EQ(o.get_int("max_cg_step_decoding"), 30);
  EXPECT_DOUBLE_EQ(o.get_float("lambda_lower_bound"), 0.25);
  EXPECT_DOUBLE_EQ(o.get_float("norm_eps"), 1e-5);
  EXPECT_FALSE(o.get_bool("use_output_gate"));
  EXPECT_EQ(o.get_string("mode"), "chunk");
  EXPECT_THROW(make_mesa(100, 8), std::invalid_argument);
}

TEST(MesaNet, LambdaStartsAtOne) {
  auto m = std::dynamic_pointer_cast<MesaNetMixer>(make_mesa(64, 4));
  ASSERT_TRUE(m);
  EXPECT_NEAR(m->named_parameters()["lambda_params"][0].item<double>(), std::log(std::expm1(0.75)),
              1e-6);
  const auto lam = m->lambda_like(torch::zeros({1}, torch::kFloat64));
  EXPECT_EQ(lam.sizes().vec(), (std::vector<std::int64_t>{4, 16}));
  EXPECT_LT((lam - 1.0).abs().max().item<double>(), 1e-6);
}

// Random inputs of the mesa recurrence: q, k l2-normalised [B, T, H, K], v [B, T, H, V],
// β ∈ (0, 1), g = log σ(·) ≤ 0 [B, T, H], λ ∈ [0.25, 1.25] [H, K].
struct MesaInputs {
  torch::Tensor q, k, v, beta, g, lambda;
};
MesaInputs random_inputs(std::int64_t B, std::int64_t T, std::int64_t H, std::int64_t K,
                         std::int64_t V, bool requires_grad = false) {
  const auto o = torch::dtype(torch::kFloat64);
  MesaInputs in{sb::l2norm(torch::randn({B, T, H, K}, o)),
                sb::l2norm(torch::randn({B, T, H, K}, o)),
                torch::randn({B, T, H, V}, o),
                torch::sigmoid(torch::randn({B, T, H}, o)),
                torch::log_sigmoid(torch::randn({B, T, H}, o) + 2.0),
                0.25 + torch::rand({H, K}, o)};
  if (requires_grad) {
    for (auto* t : {&in.q, &in.k, &in.v, &in.beta, &in.g, &in.lambda}) t->requires_grad_(true);
  }
  return in;
}

TEST(MesaNet, ConjugateGradientReachesTheExactSolve) {
  torch::NoGradGuard no_grad;
  const auto o = torch::dtype(torch::kFloat64);
  auto X = torch::randn({3, 2, 8, 8}, o);
  auto M = torch::matmul(X, X.transpose(-1, -2));  // symmetric positive semi-definite
  auto lam = 0.25 + torch::rand({2, 8}, o);
  auto rhs = torch::randn({3, 2, 8}, o);
  auto exact = torch::linalg_solve(M + torch::diag_embed(lam.expand({3, 2, 8})), rhs.unsqueeze(-1))
                   .squeeze(-1);
  // In exact arithmetic CG solves a K × K system in K steps; 30 steps leave round-off only.
  EXPECT_LT(rel_err(mesa_cg_explicit(M, lam, rhs, 30, 1e-30), exact), 1e-8);
  // With fla's guard of 1e−5 in both denominators it stops short of that, but stays close.
  const double guarded = rel_err(mesa_cg_explicit(M, lam, rhs, 30), exact);
  EXPECT_LT(guarded, 1e-2);
  EXPECT_GT(guarded, 1e-10);
  // Two steps are not enough: the test can tell a solve from a near miss.
  EXPECT_GT(rel_err(mesa_cg_explicit(M, lam, rhs, 2, 1e-30), exact), 1e-3);
}

TEST(MesaNet, ChunkedEqualsReference) {
  torch::NoGradGuard no_grad;
  for (std::int64_t chunk : {1, 5, 16, 64}) {
    torch::manual_seed(3);
    const auto in = random_inputs(2, 37, 3, 8, 6);
    const auto ref = mesa_reference(in.q, in.k, in.v, in.beta, in.g, in.lambda, 30);
    const auto chk = mesa_chunked(in.q, in.k, in.v, in.beta, in.g, in.lambda, 30, chunk);
    EXPECT_LT(rel_err(chk, ref), 1e-9) << "chunk=" << chunk;
  }
  // Few CG steps: the two still agree step for step (same iteration, other summation order).
  torch::manual_seed(4);
  const auto in = random_inputs(2, 50, 2, 16, 16);
  EXPECT_LT(rel_err(mesa_chunked(in.q, in.k, in.v, in.beta, in.g, in.lambda, 3, 16),
                    mesa_reference(in.q, in.k, in.v, in.beta, in.g, in.lambda, 3)),
            1e-9);
}

// With K = 8 and no guard the 30 CG steps are an exact solve, so the implicit gradient of the
// chunked form must equal autograd through the reference's CG steps.
TEST(MesaNet, ImplicitGradientEqualsAutogradThroughTheSolve) {
  torch::manual_seed(5);
  const auto in = random_inputs(2, 29, 2, 8, 5, /*requires_grad=*/true);
  const std::vector<torch::Tensor> inputs = {in.q, in.k, in.v, in.beta, in.g, in.lambda};
  const auto w = torch::randn({2, 29, 2, 5}, torch::kFloat64);
  const auto ref = mesa_reference(in.q, in.k, in.v, in.beta, in.g, in.lambda, 30, 1e-30);
  const auto g_ref = torch::autograd::grad({(ref * w).sum()}, inputs);
  const auto chk = mesa_chunked(in.q, in.k, in.v, in.beta, in.g, in.lambda, 30, 8, 1e-30);
  const auto g_chk = torch::autograd::grad({(chk * w).sum()}, inputs);
  const char* names[] = {"q", "k", "v", "beta", "g", "lambda"};
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    ASSERT_TRUE(g_chk[i].defined()) << names[i];
    EXPECT_LT(rel_err(g_chk[i], g_ref[i]), 1e-7) << names[i];
  }
}

// The layer written out from its parameters, per token with explicit matrices: the solve as fla's
// 30 guarded CG steps, or exact (torch::linalg_solve).
torch::Tensor naive_mesa(sb::Mixer& m, const torch::Tensor& x, std::int64_t H, bool exact) {
  auto P = m.named_parameters();
  const auto B = x.size(0), T = x.size(1), D = x.size(2), K = D / H;
  auto lin = [&](const std::string& name, const torch::Tensor& in) {
    auto y = torch::matmul(in, P[name + ".weight"].t());
    return P.contains(name + ".bias") ? y + P[name + ".bias"] : y;
  };
  auto conv = [&](const std::string& name, const torch::Tensor& in) {
    return sb::short_conv_reference(in, P[name + ".weight"], {}, /*silu=*/true);
  };
  auto l2 = [](const torch::Tensor& t) { return t / torch::sqrt(t.pow(2).sum(-1, true) + 1e-6); };
  auto q = l2(conv("q_conv1d", lin("q_proj", x)).view({B, T, H, K}));
  auto k = l2(conv("k_conv1d", lin("k_proj", x)).view({B, T, H, K}));
  auto v = lin("v_proj", x).view({B, T, H, K});
  auto beta = torch::sigmoid(lin("b_proj", x));   // [B, T, H]
  auto decay = torch::sigmoid(lin("a_proj", x));  // e^{log σ}
  auto lam = torch::softplus(P["lambda_params"]).view({H, K}) + 0.25;
  auto Hkk = torch::zeros({B, H, K, K}, x.options()), Hkv = torch::zeros({B, H, K, K}, x.options());
  std::vector<torch::Tensor> outputs;
  for (std::int64_t t = 0; t < T; ++t) {
    auto kt = k.select(1, t), vt = v.select(1, t);
    auto a = decay.select(1, t).view({B, H, 1, 1}), b = beta.select(1, t).view({B, H, 1, 1});
    Hkk = a * Hkk + b * kt.unsqueeze(-1) * kt.unsqueeze(-2);
    Hkv = a * Hkv + b * kt.unsqueeze(-1) * vt.unsqueeze(-2);
    auto A = Hkk + torch::diag_embed(lam.expand({B, H, K}));  // [B, H, K, K]
    auto rhs = q.select(1, t).unsqueeze(-1);                  // [B, H, K, 1]
    torch::Tensor qs;
    if (exact) {
      qs = torch::linalg_solve(A, rhs);
    } else {
      auto xs = torch::zeros_like(rhs), r = rhs, p = rhs;
      for (int i = 0; i < 30; ++i) {
        auto Ap = torch::matmul(A, p);
        auto rr = (r * r).sum({-2, -1}, true);
        auto alpha = rr / ((p * Ap).sum({-2, -1}, true) + 1e-5);
        xs = xs + alpha * p;
        r = r - alpha * Ap;
        p = r + (r * r).sum({-2, -1}, true) / (rr + 1e-5) * p;
      }
      qs = xs;
    }
    auto o = torch::matmul(Hkv.transpose(-1, -2), qs).squeeze(-1);  // [B, H, V]
    o = o / torch::sqrt(o.pow(2).mean(-1, true) + 1e-5) * P["o_norm.weight"];
    outputs.push_back(lin("o_proj", o.reshape({B, D})));
  }
  return torch::stack(outputs, 1);
}

TEST(MesaNet, ForwardMatchesTheLayerWrittenOut) {
  torch::NoGradGuard no_grad;
  for (const std::string mode : {"chunk", "reference"}) {
    auto m = make_mesa(32, 4, {{"chunk_size", std::int64_t{16}}, {"mode", mode}});
    m->to(torch::kFloat64);
    auto P = m->named_parameters();
    P["o_norm.weight"].add_(0.1 * torch::randn_like(P["o_norm.weight"]));
    P["lambda_params"].add_(0.3 * torch::randn_like(P["lambda_params"]));
    auto x = torch::randn({2, 41, 32}, torch::kFloat64);
    const auto y = m->forward(x);
    EXPECT_LT(rel_err(y, naive_mesa(*m, x, 4, /*exact=*/false)), 1e-9) << m->describe();
    // The guarded CG is close to the exact solve, not equal to it.
    EXPECT_LT(rel_err(y, naive_mesa(*m, x, 4, /*exact=*/true)), 1e-2) << m->describe();
  }
}

TEST(MesaNet, StepEqualsForwardInFloat32) {
  torch::NoGradGuard no_grad;
  auto m = make_mesa(64, 4);
  auto x = torch::randn({2, 150, 64});
  EXPECT_LT(rel_err(run_steps(*m, x), m->forward(x)), 1e-4);
}

TEST(MesaNet, StateElementsConstant) {
  auto big = make_mesa(256, 4);
  EXPECT_EQ(big->state_elements(1), 2 * 4 * 64 * 64 + 2 * 256 * 3);
  EXPECT_EQ(big->state_elements(1), big->state_elements(10000));
  sb::test::expect_state_elements_carried(*make_mesa(32, 4), 32);
}

}  // namespace

namespace {

TEST(MesaNet, RunsOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto m = make_mesa(64, 4);
  auto x = torch::randn({2, 150, 64});
  torch::Tensor cpu;
  {
    torch::NoGradGuard no_grad;
    cpu = m->forward(x);
  }
  m->to(torch::kCUDA);
  auto xc = x.to(torch::kCUDA);
  {
    torch::NoGradGuard no_grad;
    EXPECT_LT(rel_err(m->forward(xc).cpu(), cpu), 1e-4);
    EXPECT_LT(rel_err(run_steps(*m, xc).cpu(), cpu), 1e-4);
  }
  auto y = m->forward(xc);  // the implicit backward on the GPU
  y.square().sum().backward();
  for (const auto& p : m->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
  }
  m->to(torch::kBFloat16);
  torch::NoGradGuard no_grad;
  auto half = m->forward(xc.to(torch::kBFloat16));
  EXPECT_EQ(half.scalar_type(), torch::kBFloat16);
  EXPECT_LT(rel_err(half.to(torch::kFloat32).cpu(), cpu), 5e-2);
}

}  // namespace
