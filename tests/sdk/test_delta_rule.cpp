// The delta-rule primitive (blocks/delta_rule.hpp): step against the hand recurrence, chunked
// against the sequential reference (outputs, states, gradients), stepping, dtypes.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "selectivbench/blocks/delta_rule.hpp"

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

struct DeltaInputs {
  torch::Tensor q, k, v, beta, g, s0;
};

enum class Gate { kNone, kMild, kStrong };

// Inputs as the mixers produce them: q = l2norm(·)·K^−½, k = l2norm(·), β ∈ (0, 1). Strong log
// decays are spread log-uniformly over [−30, −1e-3] per step, with a few exactly 0 and a few −30.
DeltaInputs make_inputs(std::int64_t B, std::int64_t T, std::int64_t H, std::int64_t K,
                        std::int64_t V, torch::TensorOptions opts, Gate gate) {
  const auto l2 = [](const torch::Tensor& x) {
    return x / torch::sqrt(x.pow(2).sum(-1, true) + 1e-6);
  };
  DeltaInputs in;
  in.q = l2(torch::randn({B, T, H, K}, kF64)) / std::sqrt(static_cast<double>(K));
  in.k = l2(torch::randn({B, T, H, K}, kF64));
  in.v = torch::randn({B, T, H, V}, kF64);
  in.beta = torch::sigmoid(torch::randn({B, T, H}, kF64) * 2.0);
  if (gate == Gate::kStrong) {
    const auto u = torch::rand({B, T, H}, kF64);
    auto g = -torch::exp(std::log(1e-3) + u * (std::log(30.0) - std::log(1e-3)));
    const auto pick = torch::rand({B, T, H}, kF64);
    g = torch::where(pick < 0.05, torch::zeros_like(g), g);
    g = torch::where(pick > 0.97, torch::full_like(g, -30.0), g);
    in.g = g.to(opts);
  } else if (gate == Gate::kMild) {
    in.g = (-torch::rand({B, T, H}, kF64) * 0.1).to(opts);  // decays 0.9 .. 1 per step
  }
  in.s0 = torch::randn({B, H, K, V}, kF64).to(opts);
  in.q = in.q.to(opts);
  in.k = in.k.to(opts);
  in.v = in.v.to(opts);
  in.beta = in.beta.to(opts);
  return in;
}

torch::Tensor f64(const torch::Tensor& t) {
  return t.defined() ? t.to(torch::kDouble) : torch::Tensor();
}

const char* gate_name(Gate g) {
  return g == Gate::kNone ? "none" : g == Gate::kMild ? "mild" : "strong";
}

TEST(DeltaRule, StepEqualsHandRecurrence) {
  torch::manual_seed(30);
  for (const auto gate : {Gate::kNone, Gate::kStrong}) {
    const auto in = make_inputs(2, 3, 2, 4, 5, kF64, gate);
    auto state = in.s0.clone();
    for (std::int64_t t = 0; t < 3; ++t) {
      const auto k = in.k.select(1, t), v = in.v.select(1, t), q = in.q.select(1, t);
      const auto b = in.beta.select(1, t).unsqueeze(-1).unsqueeze(-1);  // [B, H, 1, 1]
      auto decayed = state;
      if (in.g.defined()) decayed = in.g.select(1, t).exp().unsqueeze(-1).unsqueeze(-1) * state;
      // (I − β k kᵀ) S' + β k vᵀ
      const auto eye = torch::eye(4, kF64);
      const auto kkt = torch::einsum("bhi,bhj->bhij", {k, k});
      const auto want_s =
          torch::matmul(eye - b * kkt, decayed) + b * torch::einsum("bhk,bhv->bhkv", {k, v});
      const auto want_o = torch::einsum("bhkv,bhk->bhv", {want_s, q});
      auto s = state;
      const auto g_t = in.g.defined() ? in.g.select(1, t) : torch::Tensor();
      const auto o = sb::delta_rule_step(q, k, v, in.beta.select(1, t), g_t, s);
      EXPECT_LT(max_abs(s - want_s), 1e-12) << gate_name(gate);
      EXPECT_LT(max_abs(o - want_o), 1e-12) << gate_name(gate);
      EXPECT_FALSE(s.is_same(state));  // a new tensor on the handle
      state = s;
    }
  }
}

TEST(DeltaRule, ChunkedEqualsReference) {
  torch::manual_seed(31);
  const std::int64_t B = 2, H = 2, K = 8, V = 6;
  for (const auto gate : {Gate::kNone, Gate::kMild, Gate::kStrong}) {
    for (const std::int64_t T : {1, 5, 63, 64, 65, 200}) {
      for (const std::int64_t chunk : {16, 64}) {
        for (const bool with_state : {false, true}) {
          SCOPED_TRACE(std::string("gate=") + gate_name(gate) + " T=" + std::to_string(T) +
                       " chunk=" + std::to_string(chunk) + " state=" + std::to_string(with_state));
          const auto in = make_inputs(B, T, H, K, V, kF64, gate);
          const auto s0 = with_state ? in.s0 : torch::Tensor();
          const auto ref = sb::delta_rule_reference(in.q, in.k, in.v, in.beta, in.g, s0);
          const auto got = sb::delta_rule_chunked(in.q, in.k, in.v, in.beta, in.g, s0, chunk);
          ASSERT_EQ(got.output.sizes(), (std::vector<std::int64_t>{B, T, H, V}));
          ASSERT_EQ(got.state.sizes(), (std::vector<std::int64_t>{B, H, K, V}));
          EXPECT_EQ(got.output.scalar_type(), torch::kDouble);
          EXPECT_LT(rel_err(got.output, ref.output), 1e-5);
          EXPECT_LT(rel_err(got.state, ref.state), 1e-5);
          // Far tighter in practice: the two forms differ only by rounding.
          EXPECT_LT(rel_err(got.output, ref.output), 1e-10);

          // float32: against the float64 reference of the same (rounded) inputs.
          const auto c32 = [](const torch::Tensor& t) {
            return t.defined() ? t.to(torch::kFloat) : torch::Tensor();
          };
          const auto q32 = c32(in.q), k32 = c32(in.k), v32 = c32(in.v), b32 = c32(in.beta),
                     g32 = c32(in.g), s32 = c32(s0);
          const auto ref64 =
              sb::delta_rule_reference(f64(q32), f64(k32), f64(v32), f64(b32), f64(g32), f64(s32));
          const auto got32 = sb::delta_rule_chunked(q32, k32, v32, b32, g32, s32, chunk);
          EXPECT_EQ(got32.output.scalar_type(), torch::kFloat);
          EXPECT_TRUE(all_finite(got32.output));
          EXPECT_TRUE(all_finite(got32.state));
          EXPECT_LT(rel_err(got32.output, ref64.output), 1e-4);
          EXPECT_LT(rel_err(got32.state, ref64.state), 1e-4);
        }
      }
    }
  }
}

TEST(DeltaRule, OddChunkSizes) {
  torch::manual_seed(32);
  for (const auto gate : {Gate::kNone, Gate::kMild}) {
    const auto in = make_inputs(1, 77, 3, 5, 4, kF64, gate);
    const auto ref = sb::delta_rule_reference(in.q, in.k, in.v, in.beta, in.g, in.s0);
    for (const std::int64_t chunk : {1, 3, 20, 32, 128, 1000}) {
      SCOPED_TRACE(std::string("gate=") + gate_name(gate) + " chunk=" + std::to_string(chunk));
      const auto got = sb::delta_rule_chunked(in.q, in.k, in.v, in.beta, in.g, in.s0, chunk);
      EXPECT_LT(rel_err(got.output, ref.output), 1e-10);
      EXPECT_LT(rel_err(got.state, ref.state), 1e-10);
    }
  }
}

TEST(DeltaRule, ZeroGateEqualsNoGate) {
  torch::manual_seed(33);
  const auto in = make_inputs(2, 70, 2, 8, 4, kF64, Gate::kNone);
  const auto plain = sb::delta_rule_chunked(in.q, in.k, in.v, in.beta, {}, in.s0);
  const auto zero =
      sb::delta_rule_chunked(in.q, in.k, in.v, in.beta, torch::zeros_like(in.beta), in.s0);
  EXPECT_LT(rel_err(zero.output, plain.output), 1e-12);
  EXPECT_LT(rel_err(zero.state, plain.state), 1e-12);
}

TEST(DeltaRule, ExtremeDecaysStayFinite) {
  torch::manual_seed(34);
  for (const auto opts : {kF32, kF64}) {
    auto in = make_inputs(2, 150, 2, 8, 8, opts, Gate::kStrong);
    in.g = torch::full_like(in.beta, -30.0);
    // Every step forgets the past: S_t = β k vᵀ, o_t = β (q·k) v up to e^{-30}.
    const auto got = sb::delta_rule_chunked(in.q, in.k, in.v, in.beta, in.g, in.s0, 64);
    EXPECT_TRUE(all_finite(got.output));
    const auto want = in.beta.unsqueeze(-1) * (in.q * in.k).sum(-1, true) * in.v;
    EXPECT_LT(rel_err(got.output, want), 1e-5);
    // Strong decays except in one head, which never decays.
    in.g.select(2, 0).fill_(0.0);
    const auto ref = sb::delta_rule_reference(f64(in.q), f64(in.k), f64(in.v), f64(in.beta),
                                              f64(in.g), f64(in.s0));
    const auto got2 = sb::delta_rule_chunked(in.q, in.k, in.v, in.beta, in.g, in.s0, 64);
    EXPECT_TRUE(all_finite(got2.output));
    EXPECT_LT(rel_err(got2.output, ref.output),
              in.q.scalar_type() == torch::kDouble ? 1e-10 : 1e-4);
    EXPECT_LT(rel_err(got2.state, ref.state), in.q.scalar_type() == torch::kDouble ? 1e-10 : 1e-4);
  }
}

TEST(DeltaRule, SteppingEqualsReference) {
  torch::manual_seed(35);
  for (const auto gate : {Gate::kNone, Gate::kStrong}) {
    SCOPED_TRACE(gate_name(gate));
    const auto in = make_inputs(2, 40, 3, 6, 5, kF64, gate);
    const auto ref = sb::delta_rule_reference(in.q, in.k, in.v, in.beta, in.g, in.s0);
    // Half chunked (the initial state carried), then step by step from its final state.
    const auto head = [](const torch::Tensor& t) {
      return t.defined() ? t.narrow(1, 0, 23) : torch::Tensor();
    };
    const auto first = sb::delta_rule_chunked(head(in.q), head(in.k), head(in.v), head(in.beta),
                                              head(in.g), in.s0, 16);
    auto state = first.state;
    std::vector<torch::Tensor> outs{first.output};
    for (std::int64_t t = 23; t < 40; ++t) {
      outs.push_back(sb::delta_rule_step(in.q.select(1, t), in.k.select(1, t), in.v.select(1, t),
                                         in.beta.select(1, t),
                                         in.g.defined() ? in.g.select(1, t) : torch::Tensor(),
                                         state)
                         .unsqueeze(1));
    }
    EXPECT_LT(rel_err(torch::cat(outs, 1), ref.output), 1e-10);
    EXPECT_LT(rel_err(state, ref.state), 1e-10);
    // Chunked in two calls, the state of the first passed to the second, equals one call.
    const auto tail = [](const torch::Tensor& t) {
      return t.defined() ? t.narrow(1, 23, 17) : torch::Tensor();
    };
    const auto second = sb::delta_rule_chunked(tail(in.q), tail(in.k), tail(in.v), tail(in.beta),
                                               tail(in.g), first.state, 16);
    EXPECT_LT(rel_err(torch::cat({first.output, second.output}, 1), ref.output), 1e-10);
    EXPECT_LT(rel_err(second.state, ref.state), 1e-10);
  }
}

TEST(DeltaRule, GradientsEqualReference) {
  torch::manual_seed(36);
  for (const auto gate : {Gate::kNone, Gate::kStrong}) {
    for (const std::int64_t T : {5, 70}) {
      SCOPED_TRACE(std::string("gate=") + gate_name(gate) + " T=" + std::to_string(T));
      const auto in = make_inputs(2, T, 2, 6, 4, kF64, gate);
      const auto w_out = torch::randn({2, T, 2, 4}, kF64);
      const auto w_state = torch::randn({2, 2, 6, 4}, kF64);
      const auto grads = [&](bool chunked) {
        std::vector<torch::Tensor> leaves;
        for (const auto& t : {in.q, in.k, in.v, in.beta, in.g, in.s0}) {
          leaves.push_back(t.defined() ? t.detach().clone().requires_grad_(true) : torch::Tensor());
        }
        const auto r = chunked ? sb::delta_rule_chunked(leaves[0], leaves[1], leaves[2], leaves[3],
                                                        leaves[4], leaves[5], 16)
                               : sb::delta_rule_reference(leaves[0], leaves[1], leaves[2],
                                                          leaves[3], leaves[4], leaves[5]);
        const auto loss = (r.output * w_out).sum() + (r.state * w_state).sum();
        loss.backward();
        std::vector<torch::Tensor> g;
        for (const auto& l : leaves) g.push_back(l.defined() ? l.grad() : torch::Tensor());
        return g;
      };
      const auto want = grads(false);
      const auto got = grads(true);
      const char* names[] = {"q", "k", "v", "beta", "g", "s0"};
      for (std::size_t i = 0; i < want.size(); ++i) {
        if (!want[i].defined() && !in.g.defined() && i == 4) continue;  // no gate
        SCOPED_TRACE(names[i]);
        ASSERT_TRUE(got[i].defined());
        EXPECT_TRUE(all_finite(got[i]));
        EXPECT_LT(rel_err(got[i], want[i]), 1e-10);
      }
    }
  }
}

TEST(DeltaRule, Float32GradientsAreFinite) {
  torch::manual_seed(37);
  const auto in = make_inputs(2, 130, 2, 8, 8, kF32, Gate::kStrong);
  auto g = in.g.clone().requires_grad_(true);
  auto k = in.k.clone().requires_grad_(true);
  const auto r = sb::delta_rule_chunked(in.q, k, in.v, in.beta, g, {}, 64);
  r.output.pow(2).sum().backward();
  EXPECT_TRUE(all_finite(g.grad()));
  EXPECT_TRUE(all_finite(k.grad()));
}

TEST(DeltaRule, BFloat16InputsComputeInFloat32) {
  torch::manual_seed(38);
  const auto in = make_inputs(1, 90, 2, 8, 8, kF32, Gate::kMild);
  const auto bf = [](const torch::Tensor& t) { return t.to(torch::kBFloat16); };
  const auto r = sb::delta_rule_chunked(bf(in.q), bf(in.k), bf(in.v), bf(in.beta), bf(in.g));
  EXPECT_EQ(r.output.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(r.state.scalar_type(), torch::kFloat);
  const auto f = [](const torch::Tensor& t) { return t.to(torch::kBFloat16).to(torch::kFloat); };
  const auto ref =
      sb::delta_rule_reference(f(in.q), f(in.k), f(in.v), f(in.beta), f(in.g));  // float32
  EXPECT_LT(rel_err(r.output, ref.output), 1e-2);  // the output's rounding to bf16
  EXPECT_LT(rel_err(r.state, ref.state), 1e-5);    // the state never left float32
  // The step too keeps its state in float32.
  torch::Tensor s;
  const auto o =
      sb::delta_rule_step(bf(in.q).select(1, 0), bf(in.k).select(1, 0), bf(in.v).select(1, 0),
                          bf(in.beta).select(1, 0), bf(in.g).select(1, 0), s);
  EXPECT_EQ(o.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(s.scalar_type(), torch::kFloat);
}

TEST(DeltaRule, RejectsBadShapes) {
  const auto in = make_inputs(1, 4, 2, 3, 5, kF64, Gate::kNone);
  EXPECT_THROW(sb::delta_rule_chunked(in.q, in.k, in.v, in.beta.unsqueeze(-1)), c10::Error);
  EXPECT_THROW(sb::delta_rule_chunked(in.q, in.k, in.v, in.beta, in.q), c10::Error);
  EXPECT_THROW(sb::delta_rule_chunked(in.q, in.k, in.v, in.beta, {}, in.s0.transpose(-1, -2)),
               c10::Error);
}

TEST(DeltaRule, Cuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(39);
  const auto in = make_inputs(2, 150, 2, 16, 8, kF32, Gate::kStrong);
  const auto ref = sb::delta_rule_reference(f64(in.q), f64(in.k), f64(in.v), f64(in.beta),
                                            f64(in.g), f64(in.s0));
  const auto c = [](const torch::Tensor& t) { return t.to(torch::kCUDA); };
  const auto got =
      sb::delta_rule_chunked(c(in.q), c(in.k), c(in.v), c(in.beta), c(in.g), c(in.s0), 64);
  EXPECT_LT(rel_err(got.output, ref.output), 1e-4);
  EXPECT_LT(rel_err(got.state, ref.state), 1e-4);
}

}  // namespace
