// The selective scan (sdk blocks/selective_scan.hpp): the looped forward and its hand-written
// backward against the plain autograd loop, checkpointing, the initial and final state, steps.
#include <gtest/gtest.h>

#include <selectivbench/blocks/selective_scan.hpp>

namespace {

double rel_err(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).norm().item<double>() / std::max(b.norm().item<double>(), 1e-300);
}

struct Inputs {
  torch::Tensor x, delta, A, B, C, h0;
};

// Inputs as Mamba makes them: Δ = softplus(·) > 0, A = −(1..N) per row, so decays in (0, 1).
Inputs make_inputs(std::int64_t b, std::int64_t T, std::int64_t E, std::int64_t N,
                   torch::ScalarType dtype, std::uint64_t seed = 1) {
  torch::manual_seed(seed);
  const auto opts = torch::TensorOptions().dtype(dtype);
  Inputs in;
  in.x = torch::randn({b, T, E}, opts);
  in.delta = torch::softplus(torch::randn({b, T, E}, opts) - 1.0);
  in.A = -torch::arange(1, N + 1, opts).repeat({E, 1}) * (0.5 + torch::rand({E, 1}, opts));
  in.B = torch::randn({b, T, N}, opts);
  in.C = torch::randn({b, T, N}, opts);
  in.h0 = torch::randn({b, E, N}, opts);
  return in;
}

TEST(SelectiveScan, MatchesTheLoopWrittenOut) {
  const auto in = make_inputs(2, 5, 3, 4, torch::kFloat64);
  const auto got = sb::selective_scan(in.x, in.delta, in.A, in.B, in.C);
  auto h = torch::zeros({2, 3, 4}, torch::kFloat64);
  for (std::int64_t t = 0; t < 5; ++t) {
    for (std::int64_t b = 0; b < 2; ++b) {
      for (std::int64_t c = 0; c < 3; ++c) {
        double y = 0;
        for (std::int64_t n = 0; n < 4; ++n) {
          const double d = in.delta[b][t][c].item<double>();
          const double v = std::exp(d * in.A[c][n].item<double>()) * h[b][c][n].item<double>() +
                           d * in.B[b][t][n].item<double>() * in.x[b][t][c].item<double>();
          h[b][c][n] = v;
          y += v * in.C[b][t][n].item<double>();
        }
        EXPECT_NEAR(got.output[b][t][c].item<double>(), y, 1e-12);
      }
    }
  }
  EXPECT_LT(rel_err(got.state, h), 1e-12);
}

TEST(SelectiveScan, ForwardAndBackwardEqualTheReference) {
  // N = 6 and 37: the CPU kernel's vector loops with a remainder, and with several vectors.
  for (const std::int64_t every : {1, 3, 16}) {
    for (const auto& [T, N] : {std::pair<std::int64_t, std::int64_t>{1, 6}, {7, 6}, {33, 6},
                               {33, 37}}) {
      SCOPED_TRACE("T = " + std::to_string(T) + ", N = " + std::to_string(N) +
                   ", checkpoint every " + std::to_string(every));
      auto in = make_inputs(2, T, 5, N, torch::kFloat64, 10 + T);
      std::vector<torch::Tensor> leaves = {in.x, in.delta, in.A, in.B, in.C, in.h0};
      for (auto& t : leaves) t.requires_grad_(true);
      const auto weights = torch::randn({2, T, 5}, torch::kFloat64);
      const auto state_weights = torch::randn({2, 5, N}, torch::kFloat64);

      const auto fast = sb::selective_scan(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4],
                                           leaves[5], every);
      const auto ref = sb::selective_scan_reference(leaves[0], leaves[1], leaves[2], leaves[3],
                                                    leaves[4], leaves[5]);
      EXPECT_LT(rel_err(fast.output, ref.output), 1e-12);
      EXPECT_LT(rel_err(fast.state, ref.state), 1e-12);
      // A loss through the outputs and the final state.
      const auto loss_of = [&](const sb::ScanResult& r) {
        return (r.output * weights).sum() + (r.state * state_weights).sum();
      };
      const auto g_fast = torch::autograd::grad({loss_of(fast)}, leaves);
      const auto g_ref = torch::autograd::grad({loss_of(ref)}, leaves);
      const char* names[] = {"x", "delta", "A", "B", "C", "h0"};
      for (std::size_t i = 0; i < leaves.size(); ++i) {
        EXPECT_LT(rel_err(g_fast[i], g_ref[i]), 1e-10) << names[i];
      }
    }
  }
}

TEST(SelectiveScan, Float32AndStrongDecaysStayAccurate) {
  auto in = make_inputs(2, 40, 8, 16, torch::kFloat32, 3);
  in.delta = in.delta * 20;  // decays down to e^{−400}: underflow to 0, never inf or NaN
  const auto fast = sb::selective_scan(in.x, in.delta, in.A, in.B, in.C);
  const auto ref = sb::selective_scan_reference(in.x.to(torch::kFloat64), in.delta.to(torch::kFloat64),
                                                in.A.to(torch::kFloat64), in.B.to(torch::kFloat64),
                                                in.C.to(torch::kFloat64));
  EXPECT_TRUE(torch::isfinite(fast.output).all().item<bool>());
  EXPECT_LT(rel_err(fast.output.to(torch::kFloat64), ref.output), 1e-5);
}

TEST(SelectiveScan, StepsContinueAndBFloat16ComputesInFloat32) {
  const auto in = make_inputs(2, 12, 4, 5, torch::kFloat32, 4);
  const auto whole = sb::selective_scan(in.x, in.delta, in.A, in.B, in.C, in.h0);
  // The first 7 steps scanned, the rest stepped from the state they leave.
  const auto first = sb::selective_scan(in.x.narrow(1, 0, 7), in.delta.narrow(1, 0, 7), in.A,
                                        in.B.narrow(1, 0, 7), in.C.narrow(1, 0, 7), in.h0);
  auto state = first.state;
  std::vector<torch::Tensor> ys = {first.output};
  for (std::int64_t t = 7; t < 12; ++t) {
    ys.push_back(sb::selective_scan_step(in.x.select(1, t), in.delta.select(1, t), in.A,
                                         in.B.select(1, t), in.C.select(1, t), state)
                     .unsqueeze(1));
  }
  EXPECT_LT(rel_err(torch::cat(ys, 1), whole.output), 1e-6);
  EXPECT_LT(rel_err(state, whole.state), 1e-6);

  const auto bf = sb::selective_scan(in.x.to(torch::kBFloat16), in.delta.to(torch::kBFloat16),
                                     in.A, in.B.to(torch::kBFloat16), in.C.to(torch::kBFloat16));
  EXPECT_EQ(bf.output.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(bf.state.scalar_type(), torch::kFloat32);
  EXPECT_LT(rel_err(bf.output.to(torch::kFloat32),
                    sb::selective_scan(in.x, in.delta, in.A, in.B, in.C).output),
            3e-2);
}

TEST(SelectiveScan, RejectsMismatchedShapes) {
  const auto in = make_inputs(2, 6, 4, 5, torch::kFloat32);
  EXPECT_THROW(sb::selective_scan(in.x, in.delta, in.A.narrow(0, 0, 3), in.B, in.C), c10::Error);
  EXPECT_THROW(sb::selective_scan(in.x, in.delta, in.A, in.B.narrow(2, 0, 4), in.C), c10::Error);
}

}  // namespace
