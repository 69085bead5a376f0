// The graph-safe optimiser against torch::optim, and a captured update against the same update
// run eagerly (CUDA only; skipped elsewhere).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/train/cuda_graph.hpp"
#include "core/train/device_adam.hpp"
#include "core/train/settings.hpp"

namespace {

std::vector<torch::Tensor> random_parameters(std::uint64_t seed, const torch::Device& device) {
  torch::manual_seed(seed);
  std::vector<torch::Tensor> out;
  for (auto shape : {std::vector<std::int64_t>{7, 5}, {5}, {3, 2, 4}}) {
    out.push_back(torch::randn(shape).to(device).requires_grad_(true));
  }
  return out;
}

std::vector<torch::Tensor> copies(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  for (const auto& p : params) out.push_back(p.detach().clone().requires_grad_(true));
  return out;
}

void set_gradients(const std::vector<torch::Tensor>& params, std::uint64_t seed) {
  torch::manual_seed(seed);
  for (const auto& p : params) p.mutable_grad() = torch::randn_like(p);
}

std::unique_ptr<torch::optim::Optimizer> torch_optimizer(const std::vector<torch::Tensor>& params,
                                                         const sb::TrainingSpec& s) {
  if (s.optimizer == "adamw") {
    return std::make_unique<torch::optim::AdamW>(
        params, torch::optim::AdamWOptions(s.lr).betas({s.beta1, s.beta2}).eps(s.eps).weight_decay(
                    s.weight_decay));
  }
  return std::make_unique<torch::optim::Adam>(
      params, torch::optim::AdamOptions(s.lr).betas({s.beta1, s.beta2}).eps(s.eps).weight_decay(
                  s.weight_decay));
}

void set_lr(torch::optim::Optimizer& o, const sb::TrainingSpec& s, double lr) {
  for (auto& g : o.param_groups()) {
    if (s.optimizer == "adamw") {
      static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
    } else {
      static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
    }
  }
}

void expect_close(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-5, 1e-7))
        << i << ": max difference " << (a[i] - b[i]).abs().max().item<double>();
  }
}

// Three torch::optim steps, then three DeviceAdam steps on the same optimiser's state, then one
// torch::optim step again (after sync_step_count) equal seven torch::optim steps: the same
// arithmetic, and the state (moments and step count) is shared both ways.
void check_against_torch(const std::string& optimizer) {
  sb::TrainingSpec s;
  s.optimizer = optimizer;
  s.lr = 3e-2;
  s.weight_decay = 0.05;
  const auto reference = random_parameters(1, torch::kCPU);
  const auto mixed = copies(reference);
  auto ref_opt = torch_optimizer(reference, s);
  auto mixed_opt = torch_optimizer(mixed, s);
  const auto lr_at = [](int step) { return 3e-2 * (1.0 - 0.1 * step); };
  for (int step = 0; step < 7; ++step) {
    set_gradients(reference, 100 + step);
    set_gradients(mixed, 100 + step);
    set_lr(*ref_opt, s, lr_at(step));
    ref_opt->step();
    if (step < 3 || step == 6) {
      set_lr(*mixed_opt, s, lr_at(step));
      mixed_opt->step();
    } else {
      sb::DeviceAdam adam(*mixed_opt, mixed, s);  // adopts the state at each step on purpose
      adam.set_learning_rate(lr_at(step));
      adam.step();
      adam.sync_step_count(step + 1);
    }
  }
  expect_close(mixed, reference);
  const auto moved = (reference[0] - random_parameters(1, torch::kCPU)[0]).abs().max();
  EXPECT_GT(moved.item<double>(), 1e-3);  // the steps did move the parameters
}

TEST(DeviceAdam, StepsLikeTorchAdamOnItsState) { check_against_torch("adam"); }
TEST(DeviceAdam, StepsLikeTorchAdamWOnItsState) { check_against_torch("adamw"); }

TEST(DeviceAdam, CreatesMissingStateAndSkipsParametersWithoutGradient) {
  sb::TrainingSpec s;
  const auto params = random_parameters(2, torch::kCPU);
  const auto before = copies(params);
  auto opt = torch_optimizer(params, s);
  sb::DeviceAdam adam(*opt, params, s);
  EXPECT_EQ(opt->state().size(), params.size());
  params[0].mutable_grad() = torch::ones_like(params[0]);
  adam.step();
  EXPECT_FALSE(torch::equal(params[0], before[0]));
  EXPECT_TRUE(torch::equal(params[1], before[1]));
}

// A small network with dropout: the update captured once and replayed gives the very parameters
// that the same update run eagerly gives, bit for bit, dropout masks included.
TEST(CudaGraph, ReplayedUpdateGivesTheParametersOfTheEagerUpdate) {
  if (!torch::cuda::is_available() || !sb::cuda_graphs_available()) {
    GTEST_SKIP() << "needs CUDA and a LibTorch that captures graphs";
  }
  const torch::Device cuda(torch::kCUDA, 0);
  sb::TrainingSpec s;
  s.lr = 1e-2;
  const auto make_model = [&] {
    torch::manual_seed(7);
    torch::nn::Sequential m(torch::nn::Linear(16, 32), torch::nn::GELU(),
                            torch::nn::Dropout(0.3), torch::nn::Linear(32, 4));
    m->to(cuda);
    return m;
  };
  auto eager = make_model();
  auto graphed = make_model();
  auto eager_opt = torch_optimizer(eager->parameters(), s);
  auto graphed_opt = torch_optimizer(graphed->parameters(), s);
  sb::DeviceAdam eager_adam(*eager_opt, eager->parameters(), s);
  sb::DeviceAdam graphed_adam(*graphed_opt, graphed->parameters(), s);
  const auto input = [&](int k) {
    torch::manual_seed(1000 + k);
    return torch::randn({8, 16}).to(cuda);
  };
  torch::Tensor x = input(0).clone();  // the graph's input
  const auto work = [](torch::nn::Sequential& m, sb::DeviceAdam& adam, const torch::Tensor& in) {
    for (auto& p : m->parameters()) {
      if (p.grad().defined()) p.mutable_grad().zero_();
    }
    m->forward(in).pow(2).mean().backward();
    adam.step();
  };
  sb::CudaGraph eager_stream(0), graph(0);
  for (int k = 0; k < 6; ++k) {
    const torch::Tensor batch = input(k);
    torch::manual_seed(50 + k);  // dropout draws of update k
    eager_stream.run_on_capture_stream([&] { work(eager, eager_adam, batch); });
    torch::manual_seed(50 + k);
    x.copy_(batch);
    if (k < 2) {
      graph.run_on_capture_stream([&] { work(graphed, graphed_adam, x); });
    } else {
      if (k == 2) graph.capture([&] { work(graphed, graphed_adam, x); });
      graph.replay();
    }
  }
  torch::cuda::synchronize();
  const auto a = eager->parameters(), b = graphed->parameters();
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::equal(a[i], b[i]))
        << i << ": max difference " << (a[i] - b[i]).abs().max().item<double>();
  }
}

TEST(CudaGraph, RefusedWhereTheBuildHasNoGraphs) {
  if (sb::cuda_graphs_available()) GTEST_SKIP() << "this build captures graphs";
  EXPECT_THROW(sb::CudaGraph(0), std::logic_error);
}

}  // namespace
