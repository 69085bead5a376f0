// The mamba mixer (plugins/mamba): parameters and initialisation, step == forward, scan ==
// reference mode (outputs and gradients), state size.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "plugins/mamba/mamba.hpp"
#include "tests/plugins/mixer_test_util.hpp"

namespace {

using sb::test::count_parameters;
using sb::test::rel_err;

using sb::plugins::describe_mamba;
using sb::plugins::MambaMixer;

std::shared_ptr<MambaMixer> make_mamba(std::int64_t d_model,
                                       const std::map<std::string, sb::OptionValue>& options = {},
                                       std::uint64_t seed = 1) {
  const auto descriptor = describe_mamba();
  sb::MixerContext ctx;
  ctx.d_model = d_model;
  ctx.n_heads = 4;
  ctx.options = sb::Options(descriptor.options);
  for (const auto& [name, value] : options) ctx.options.set(name, value);
  torch::manual_seed(seed);
  return std::dynamic_pointer_cast<MambaMixer>(descriptor.factory(ctx));
}

// 6d² + 4dR + 6dN + 14d, R = ceil(d/16) (models.md §5).
std::int64_t formula(std::int64_t d, std::int64_t N) {
  const std::int64_t R = (d + 15) / 16;
  return 6 * d * d + 4 * d * R + 6 * d * N + 14 * d;
}

TEST(Mamba, ParameterCountMatchesTheReference) {
  EXPECT_EQ(count_parameters(*make_mamba(256)), formula(256, 128));
  EXPECT_EQ(count_parameters(*make_mamba(1024)), formula(1024, 128));
  EXPECT_EQ(count_parameters(*make_mamba(648, {{"d_state", std::int64_t{64}}})), formula(648, 64));
  const std::int64_t d = 256;
  EXPECT_EQ(8 * (formula(d, 128) + 2 * d) + 42 * d + (d + 1) * 1601, 5304641);
}

TEST(Mamba, ParameterNamesShapesAndInit) {
  auto m = make_mamba(256);  // E = 512, N = 128, R = 16
  const std::map<std::string, std::vector<std::int64_t>> expected = {
      {"in_proj.weight", {1024, 256}}, {"conv1d.weight", {512, 1, 4}},
      {"conv1d.bias", {512}},          {"x_proj.weight", {16 + 256, 512}},
      {"dt_proj.weight", {512, 16}},   {"dt_proj.bias", {512}},
      {"A_log", {512, 128}},           {"D", {512}},
      {"out_proj.weight", {256, 512}},
  };
  auto params = m->named_parameters();
  EXPECT_EQ(params.size(), expected.size());
  for (const auto& [name, shape] : expected) {
    ASSERT_TRUE(params.contains(name)) << name;
    EXPECT_EQ(params[name].sizes().vec(), shape) << name;
  }
  EXPECT_NEAR(m->A_log[7][0].item<double>(), 0.0, 1e-7);  // log 1
  EXPECT_NEAR(m->A_log[7][127].item<double>(), std::log(128.0), 1e-6);
  const auto dt = torch::softplus(m->dt_proj->bias);
  EXPECT_GE(dt.min().item<double>(), 1e-3 * (1 - 1e-5));
  EXPECT_LE(dt.max().item<double>(), 0.1 * (1 + 1e-5));
  EXPECT_LE(m->dt_proj->weight.abs().max().item<double>(), 0.25);  // U(±16^−½)
  EXPECT_TRUE(torch::equal(m->D, torch::ones({512})));
}

TEST(Mamba, StepEqualsForward) {
  auto m = make_mamba(32, {{"d_state", std::int64_t{8}}});
  torch::manual_seed(2);
  const auto x = torch::randn({2, 37, 32});
  torch::NoGradGuard no_grad;
  EXPECT_LT(rel_err(sb::test::run_steps(*m, x), m->forward(x)), 1e-5);  // also checks position
}

TEST(Mamba, ScanEqualsReferenceModeWithGradients) {
  auto fast =
      make_mamba(16, {{"d_state", std::int64_t{4}}, {"checkpoint_every", std::int64_t{5}}}, 3);
  auto slow = make_mamba(16, {{"d_state", std::int64_t{4}}, {"mode", std::string("reference")}}, 3);
  fast->to(torch::kFloat64);
  slow->to(torch::kFloat64);
  torch::manual_seed(4);
  const auto x = torch::randn({2, 23, 16}, torch::kFloat64);
  const auto w = torch::randn({2, 23, 16}, torch::kFloat64);
  (fast->forward(x) * w).sum().backward();
  (slow->forward(x) * w).sum().backward();
  const auto pf = fast->named_parameters(), ps = slow->named_parameters();
  for (const auto& p : pf) {
    EXPECT_LT(rel_err(p.value().grad(), ps[p.key()].grad()), 1e-10) << p.key();
  }
}

TEST(Mamba, StateElementsAsModelsSection4_8) {
  auto m = make_mamba(256);
  EXPECT_EQ(m->state_elements(1), 2 * 256 * 128 + 2 * 256 * 3);
  auto state = m->init_state(2, torch::kCPU, torch::kFloat32);
  EXPECT_EQ(state.tensors[0].numel() + state.tensors[1].numel(), 2 * m->state_elements(1));
}

TEST(Mamba, Descriptor) {
  const auto d = describe_mamba();
  EXPECT_EQ(d.name, "mamba");
  EXPECT_EQ(d.taxonomy.gate, sb::Gate::kVectorPerChannel);
  EXPECT_EQ(d.cuda_dtype, torch::kFloat32);  // the reference trains mamba in float32
}

}  // namespace

namespace {

// The fused CUDA kernel against the SDK's scan on the same GPU: outputs and every gradient.
TEST(Mamba, FusedCudaScanEqualsTheSdkScan) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!sb::plugins::fused_cuda_scan_built()) GTEST_SKIP() << "built without CUDA kernels";
  for (std::int64_t N : {16, 64, 128, 200}) {
    torch::manual_seed(N);
    const std::int64_t B = 3, T = 77, E = 40;
    const auto o = torch::TensorOptions().device(torch::kCUDA);
    auto x = torch::randn({B, T, E}, o).requires_grad_(true);
    auto delta = torch::softplus(torch::randn({B, T, E}, o) - 1.0).detach().requires_grad_(true);
    auto A = (-torch::rand({E, N}, o) * 4.0 - 0.1).requires_grad_(true);
    auto Bm = torch::randn({B, T, N}, o).requires_grad_(true);
    auto Cm = torch::randn({B, T, N}, o).requires_grad_(true);
    const std::vector<torch::Tensor> inputs = {x, delta, A, Bm, Cm};
    const auto w = torch::randn({B, T, E}, o);
    const auto y_sdk = sb::selective_scan(x, delta, A, Bm, Cm).output;
    const auto g_sdk = torch::autograd::grad({(y_sdk * w).sum()}, inputs);
    const auto y_fused = sb::plugins::selective_scan_fused_cuda(x, delta, A, Bm, Cm);
    const auto g_fused = torch::autograd::grad({(y_fused * w).sum()}, inputs);
    EXPECT_LT(sb::test::rel_err(y_fused, y_sdk), 1e-5) << "N=" << N;
    const char* names[] = {"x", "delta", "A", "B", "C"};
    for (int i = 0; i < 5; ++i) {
      EXPECT_LT(sb::test::rel_err(g_fused[i], g_sdk[i]), 1e-4) << names[i] << " N=" << N;
    }
  }
  // The mixer uses it on CUDA, and it agrees with the mixer's SDK path.
  auto fused = sb::test::make_mixer(sb::plugins::describe_mamba(), 64, 4, {}, 3);
  auto sdk = sb::test::make_mixer(sb::plugins::describe_mamba(), 64, 4, {{"fused_cuda", false}}, 3);
  fused->to(torch::kCUDA);
  sdk->to(torch::kCUDA);
  torch::NoGradGuard no_grad;
  const auto u = torch::randn({2, 100, 64}, torch::TensorOptions().device(torch::kCUDA));
  EXPECT_LT(sb::test::rel_err(fused->forward(u), sdk->forward(u)), 1e-5);
}

}  // namespace
