// sb::gla_scalar_chunked (blocks/gla_scalar.hpp) against the sequential reference sb::gla_reference
// with the decay broadcast over K: outputs, final state, initial state, chunk sizes, strong decays,
// gradients, dtypes, CUDA.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "selectivbench/blocks/gla.hpp"
#include "selectivbench/blocks/gla_scalar.hpp"

namespace {

double rel_err(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).norm().item<double>() / std::max(b.norm().item<double>(), 1e-300);
}

struct Inputs {
  torch::Tensor q, k, v, g, h0;
};

// g = log σ(·) scaled by `strength`: ≤ 0, from mild to very strong forgetting.
Inputs make_inputs(std::int64_t B, std::int64_t T, std::int64_t H, std::int64_t K, std::int64_t V,
                   double strength, torch::ScalarType dtype = torch::kFloat64) {
  const auto o = torch::dtype(dtype);
  return {torch::randn({B, T, H, K}, o), torch::randn({B, T, H, K}, o) / std::sqrt(double(K)),
          torch::randn({B, T, H, V}, o),
          strength * torch::log_sigmoid(torch::randn({B, T, H}, o) + 2.0),
          torch::randn({B, H, K, V}, o)};
}

torch::Tensor broadcast(const torch::Tensor& g, std::int64_t K) {
  return g.unsqueeze(-1).expand({g.size(0), g.size(1), g.size(2), K}).contiguous();
}

TEST(GlaScalar, ChunkedEqualsReference) {
  torch::NoGradGuard no_grad;
  for (std::int64_t chunk : {1, 5, 16, 64}) {
    for (std::int64_t T : {1, 37, 130}) {
      torch::manual_seed(T + chunk);
      const auto in = make_inputs(2, T, 3, 8, 6, 1.0);
      for (bool with_state : {false, true}) {
        const auto h0 = with_state ? in.h0 : torch::Tensor();
        const auto ref = sb::gla_reference(in.q, in.k, in.v, broadcast(in.g, 8), h0);
        const auto got = sb::gla_scalar_chunked(in.q, in.k, in.v, in.g, h0, chunk);
        EXPECT_LT(rel_err(got.output, ref.output), 1e-10) << "chunk " << chunk << " T " << T;
        EXPECT_LT(rel_err(got.state, ref.state), 1e-10) << "chunk " << chunk << " T " << T;
      }
    }
  }
}

TEST(GlaScalar, EqualsTheVectorFormAndSurvivesStrongDecays) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(2);
  const auto in = make_inputs(2, 90, 2, 16, 16, 1.0);
  EXPECT_LT(rel_err(sb::gla_scalar_chunked(in.q, in.k, in.v, in.g, {}, 32).output,
                    sb::gla_chunked(in.q, in.k, in.v, broadcast(in.g, 16), {}, 32).output),
            1e-10);
  // Log decays down to about −300 per step: every exponent formed is ≤ 0, nothing overflows.
  const auto strong = make_inputs(2, 80, 2, 8, 8, 100.0, torch::kFloat32);
  const auto got = sb::gla_scalar_chunked(strong.q, strong.k, strong.v, strong.g, {}, 64);
  EXPECT_TRUE(torch::isfinite(got.output).all().item<bool>());
  const auto ref =
      sb::gla_reference(strong.q.to(torch::kFloat64), strong.k.to(torch::kFloat64),
                        strong.v.to(torch::kFloat64), broadcast(strong.g.to(torch::kFloat64), 8));
  EXPECT_LT(rel_err(got.output.to(torch::kFloat64), ref.output), 1e-5);
  // No decay at all (plain linear attention).
  const auto flat = sb::gla_scalar_chunked(in.q, in.k, in.v, torch::zeros_like(in.g), {}, 16);
  EXPECT_LT(rel_err(flat.output, sb::gla_reference(in.q, in.k, in.v,
                                                   torch::zeros({2, 90, 2, 16}, torch::kFloat64))
                                     .output),
            1e-10);
}

TEST(GlaScalar, GradientsEqualReference) {
  torch::manual_seed(3);
  auto in = make_inputs(2, 45, 2, 8, 5, 1.0);
  std::vector<torch::Tensor> leaves = {in.q, in.k, in.v, in.g, in.h0};
  for (auto& t : leaves) t.requires_grad_(true);
  const auto w = torch::randn({2, 45, 2, 5}, torch::kFloat64);
  const auto ws = torch::randn({2, 2, 8, 5}, torch::kFloat64);
  const auto ref =
      sb::gla_reference(leaves[0], leaves[1], leaves[2], broadcast(leaves[3], 8), leaves[4]);
  const auto g_ref =
      torch::autograd::grad({(ref.output * w).sum() + (ref.state * ws).sum()}, leaves);
  const auto got =
      sb::gla_scalar_chunked(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], 16);
  const auto g_got =
      torch::autograd::grad({(got.output * w).sum() + (got.state * ws).sum()}, leaves);
  const char* names[] = {"q", "k", "v", "g", "h0"};
  for (int i = 0; i < 5; ++i) EXPECT_LT(rel_err(g_got[i], g_ref[i]), 1e-9) << names[i];
}

TEST(GlaScalar, BFloat16InputsComputeInFloat32) {
  torch::NoGradGuard no_grad;
  const auto in = make_inputs(2, 40, 2, 8, 8, 1.0, torch::kFloat32);
  const auto f32 = sb::gla_scalar_chunked(in.q, in.k, in.v, in.g);
  const auto bf = sb::gla_scalar_chunked(in.q.to(torch::kBFloat16), in.k.to(torch::kBFloat16),
                                         in.v.to(torch::kBFloat16), in.g);
  EXPECT_EQ(bf.output.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(bf.state.scalar_type(), torch::kFloat32);
  EXPECT_LT(rel_err(bf.output.to(torch::kFloat32), f32.output), 3e-2);
}

TEST(GlaScalar, Cuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::NoGradGuard no_grad;
  const auto in = make_inputs(2, 100, 2, 16, 8, 1.0, torch::kFloat32);
  const auto cpu = sb::gla_scalar_chunked(in.q, in.k, in.v, in.g, in.h0);
  const auto gpu =
      sb::gla_scalar_chunked(in.q.cuda(), in.k.cuda(), in.v.cuda(), in.g.cuda(), in.h0.cuda());
  EXPECT_LT(rel_err(gpu.output.cpu(), cpu.output), 1e-4);
  EXPECT_LT(rel_err(gpu.state.cpu(), cpu.state), 1e-4);
}

}  // namespace
