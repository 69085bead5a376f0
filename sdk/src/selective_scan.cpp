// The selective scan (blocks/selective_scan.hpp): forward loop, reverse-time backward, reference.
#include "selectivbench/blocks/selective_scan.hpp"
#include "selectivbench/blocks/wiring.hpp"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <vector>

#include "selective_scan_cpu.hpp"

namespace sb {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void check_inputs(const char* what, const torch::Tensor& x, const torch::Tensor& delta,
                  const torch::Tensor& A, const torch::Tensor& B, const torch::Tensor& C,
                  const torch::Tensor& h0) {
  TORCH_CHECK(x.dim() == 3 && delta.sizes() == x.sizes(), what,
              ": x and delta must be [B, T, E], got ", x.sizes(), " and ", delta.sizes());
  TORCH_CHECK(A.dim() == 2 && A.size(0) == x.size(2), what,
              ": A must be [E, N] with E = ", x.size(2), ", got ", A.sizes());
  const std::vector<std::int64_t> bn = {x.size(0), x.size(1), A.size(1)};
  TORCH_CHECK(B.sizes() == torch::IntArrayRef(bn) && C.sizes() == torch::IntArrayRef(bn), what,
              ": B and C must be [B, T, N] = ", torch::IntArrayRef(bn), ", got ", B.sizes(),
              " and ", C.sizes());
  if (h0.defined()) {
    TORCH_CHECK(h0.dim() == 3 && h0.size(0) == x.size(0) && h0.size(1) == x.size(2) &&
                    h0.size(2) == A.size(1),
                what, ": initial_state must be [B, E, N], got ", h0.sizes());
  }
}

// One recurrence step on float tensors: h ← exp(Δ A) h + (Δ x) B; returns (h, exp(Δ A)).
inline torch::Tensor advance(const torch::Tensor& h, const torch::Tensor& x_t,
                             const torch::Tensor& delta_t, const torch::Tensor& A,
                             const torch::Tensor& B_t) {
  const auto decay = torch::exp(delta_t.unsqueeze(-1) * A);             // [B, E, N]
  return decay * h + (delta_t * x_t).unsqueeze(-1) * B_t.unsqueeze(1);  // [B, E, N]
}

// ---- CPU: the fused per-channel kernels of selective_scan_cpu.hpp, parallel over (b, e) --------

template <typename S>
void cpu_forward(const torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& A,
                 const torch::Tensor& B, const torch::Tensor& C, torch::Tensor& h, torch::Tensor& y,
                 torch::Tensor& checkpoints, std::int64_t every) {
  const auto Bsz = x.size(0), T = x.size(1), E = x.size(2), N = A.size(1);
  const detail::scan_cpu::Layout l{T, E, N, every, Bsz * E * N};
  const S *xp = x.data_ptr<S>(), *dp = delta.data_ptr<S>(), *ap = A.data_ptr<S>();
  const S *bp = B.data_ptr<S>(), *cp = C.data_ptr<S>();
  S *hp = h.data_ptr<S>(), *yp = y.data_ptr<S>(), *kp = checkpoints.data_ptr<S>();
  at::parallel_for(0, Bsz * E, 16, [&](std::int64_t begin, std::int64_t end) {
    for (auto i = begin; i < end; ++i) {
      const auto b = i / E, e = i % E;
      const auto xt = b * T * E + e;  // [b, 0, e]
      detail::scan_cpu::channel_forward(xp + xt, dp + xt, ap + e * N, bp + b * T * N,
                                        cp + b * T * N, hp + i * N, yp + xt, kp + i * N, l);
    }
  });
}

template <typename S>
void cpu_backward(const torch::Tensor& x, const torch::Tensor& delta, const torch::Tensor& A,
                  const torch::Tensor& B, const torch::Tensor& C, const torch::Tensor& checkpoints,
                  const torch::Tensor& dy, torch::Tensor& g, torch::Tensor& dx,
                  torch::Tensor& ddelta, torch::Tensor& dA_per_row, torch::Tensor& dB,
                  torch::Tensor& dC, std::int64_t every) {
  const auto Bsz = x.size(0), T = x.size(1), E = x.size(2), N = A.size(1);
  const detail::scan_cpu::Layout l{T, E, N, every, Bsz * E * N};
  const S *xp = x.data_ptr<S>(), *dp = delta.data_ptr<S>(), *ap = A.data_ptr<S>();
  const S *bp = B.data_ptr<S>(), *cp = C.data_ptr<S>(), *kp = checkpoints.data_ptr<S>();
  const S* dyp = dy.data_ptr<S>();
  S *gp = g.data_ptr<S>(), *dxp = dx.data_ptr<S>(), *ddp = ddelta.data_ptr<S>();
  S *dap = dA_per_row.data_ptr<S>(), *dbp = dB.data_ptr<S>(), *dcp = dC.data_ptr<S>();
  // Parallel over sequences only: the channels of one sequence all add into its dB and dC rows.
  at::parallel_for(0, Bsz, 1, [&](std::int64_t begin, std::int64_t end) {
    std::vector<S> buffer(static_cast<std::size_t>(every * N));
    for (auto b = begin; b < end; ++b) {
      for (std::int64_t e = 0; e < E; ++e) {
        const auto i = b * E + e, xt = b * T * E + e;
        detail::scan_cpu::channel_backward(xp + xt, dp + xt, ap + e * N, bp + b * T * N,
                                           cp + b * T * N, kp + i * N, dyp + xt, gp + i * N,
                                           dxp + xt, ddp + xt, dap + i * N, dbp + b * T * N,
                                           dcp + b * T * N, buffer.data(), l);
      }
    }
  });
}

class SelectiveScanFunction : public torch::autograd::Function<SelectiveScanFunction> {
 public:
  // All tensors already in the compute dtype; h0 defined. Returns {y [B, T, E], h_T [B, E, N]}.
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& delta, const torch::Tensor& A,
                               const torch::Tensor& B, const torch::Tensor& C,
                               const torch::Tensor& h0, std::int64_t every) {
    if (x.device().is_cpu()) {
      const auto xc = x.contiguous(), dc = delta.contiguous(), Ac = A.contiguous();
      const auto Bc = B.contiguous(), Cc = C.contiguous();
      auto h = h0.clone().contiguous();  // h_0, left at h_T
      auto y = torch::empty_like(xc);    // [B, T, E]
      const auto K = (x.size(1) + every - 1) / every;
      auto checkpoints = torch::empty({K, x.size(0), x.size(2), A.size(1)}, x.options());
      if (x.scalar_type() == torch::kDouble) {
        cpu_forward<double>(xc, dc, Ac, Bc, Cc, h, y, checkpoints, every);
      } else {
        cpu_forward<float>(xc, dc, Ac, Bc, Cc, h, y, checkpoints, every);
      }
      ctx->save_for_backward({xc, dc, Ac, Bc, Cc});
      ctx->saved_data["every"] = every;
      ctx->saved_data["checkpoints"] = checkpoints;
      return {y, h};
    }
    const auto T = x.size(1);
    auto y = torch::empty_like(x);           // [B, T, E]
    std::vector<torch::Tensor> checkpoints;  // h before steps 0, every, 2·every, ...
    auto h = h0;
    for (std::int64_t t = 0; t < T; ++t) {
      if (t % every == 0) checkpoints.push_back(h);
      h = advance(h, x.select(1, t), delta.select(1, t), A, B.select(1, t));
      y.select(1, t).copy_(torch::bmm(h, C.select(1, t).unsqueeze(-1)).squeeze(-1));  // [B, E]
    }
    ctx->save_for_backward({x, delta, A, B, C});
    ctx->saved_data["every"] = every;
    ctx->saved_data["checkpoints"] =
        checkpoints.empty() ? torch::Tensor() : torch::stack(checkpoints);  // [K, B, E, N]
    return {y, h};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &delta = saved[1], &A = saved[2], &B = saved[3], &C = saved[4];
    const auto every = ctx->saved_data["every"].toInt();
    const auto checkpoints = ctx->saved_data["checkpoints"].toTensor();
    const auto T = x.size(1);
    if (x.device().is_cpu()) {
      const auto dy =
          grads[0].defined() ? grads[0].to(x.scalar_type()).contiguous() : torch::zeros_like(x);
      auto g = grads[1].defined()
                   ? grads[1].to(x.scalar_type()).contiguous().clone()
                   : torch::zeros({x.size(0), x.size(2), A.size(1)}, x.options());  // ∂L/∂h_T
      auto dx = torch::empty_like(x), ddelta = torch::empty_like(delta);
      auto dA_per_row = torch::zeros({x.size(0), x.size(2), A.size(1)}, x.options());
      auto dB = torch::zeros_like(B), dC = torch::zeros_like(C);
      if (x.scalar_type() == torch::kDouble) {
        cpu_backward<double>(x, delta, A, B, C, checkpoints, dy, g, dx, ddelta, dA_per_row, dB, dC,
                             every);
      } else {
        cpu_backward<float>(x, delta, A, B, C, checkpoints, dy, g, dx, ddelta, dA_per_row, dB, dC,
                            every);
      }
      return {dx, ddelta, dA_per_row.sum(0), dB, dC, g, torch::Tensor()};
    }
    const auto dy = grads[0].defined() ? grads[0].to(x.scalar_type()) : torch::zeros_like(x);
    // g = ∂L/∂h_t coming from later steps (and from the final state's own gradient).
    auto g = grads[1].defined() ? grads[1].to(x.scalar_type())
                                : torch::zeros({x.size(0), x.size(2), A.size(1)}, x.options());
    auto dx = torch::zeros_like(x), ddelta = torch::zeros_like(delta);
    auto dB = torch::zeros_like(B), dC = torch::zeros_like(C);
    auto dA = torch::zeros_like(A);
    for (std::int64_t start = ((T - 1) / every) * every; start >= 0; start -= every) {
      const auto stop = std::min(T, start + every);
      // Recompute h_{start−1} .. h_{stop−1} of this block from its checkpoint.
      std::vector<torch::Tensor> hs = {
          checkpoints[start / every]};  // hs[i] = h before step start+i
      for (auto t = start; t < stop; ++t) {
        hs.push_back(advance(hs.back(), x.select(1, t), delta.select(1, t), A, B.select(1, t)));
      }
      for (auto t = stop - 1; t >= start; --t) {
        const auto& h_t = hs[t - start + 1];                            // [B, E, N]
        const auto& h_prev = hs[t - start];                             // [B, E, N]
        const auto x_t = x.select(1, t), delta_t = delta.select(1, t);  // [B, E]
        const auto B_t = B.select(1, t), C_t = C.select(1, t);          // [B, N]
        const auto dy_t = dy.select(1, t);                              // [B, E]
        // y_t = h_t C_t
        const auto dh = g + dy_t.unsqueeze(-1) * C_t.unsqueeze(1);             // [B, E, N]
        dC.select(1, t).copy_(torch::bmm(dy_t.unsqueeze(1), h_t).squeeze(1));  // [B, N]
        // h_t = a h_prev + u B,  a = exp(Δ A),  u = Δ x
        const auto decay = torch::exp(delta_t.unsqueeze(-1) * A);       // [B, E, N]
        const auto d_log_decay = dh * h_prev * decay;                   // [B, E, N]
        const auto du = torch::bmm(dh, B_t.unsqueeze(-1)).squeeze(-1);  // [B, E]
        ddelta.select(1, t).copy_((d_log_decay * A).sum(-1) + du * x_t);
        dx.select(1, t).copy_(du * delta_t);
        dA += (d_log_decay * delta_t.unsqueeze(-1)).sum(0);
        dB.select(1, t).copy_(torch::bmm((delta_t * x_t).unsqueeze(1), dh).squeeze(1));  // [B, N]
        g = dh * decay;
      }
    }
    return {dx, ddelta, dA, dB, dC, g, torch::Tensor()};
  }
};

}  // namespace

ScanResult selective_scan(const torch::Tensor& x, const torch::Tensor& delta,
                          const torch::Tensor& A, const torch::Tensor& B, const torch::Tensor& C,
                          const torch::Tensor& initial_state, std::int64_t checkpoint_every) {
  check_inputs("selective_scan", x, delta, A, B, C, initial_state);
  TORCH_CHECK(checkpoint_every >= 1, "selective_scan: checkpoint_every must be positive");
  const auto ct = compute_dtype(x);
  const auto h0 = initial_state.defined()
                      ? initial_state.to(ct)
                      : torch::zeros({x.size(0), x.size(2), A.size(1)}, x.options().dtype(ct));
  if (x.size(1) == 0) return {torch::zeros_like(x), h0};
  const auto out = SelectiveScanFunction::apply(x.to(ct), delta.to(ct), A.to(ct), B.to(ct),
                                                C.to(ct), h0, checkpoint_every);
  return {out[0].to(x.scalar_type()), out[1]};
}

ScanResult selective_scan_reference(const torch::Tensor& x, const torch::Tensor& delta,
                                    const torch::Tensor& A, const torch::Tensor& B,
                                    const torch::Tensor& C, const torch::Tensor& initial_state) {
  check_inputs("selective_scan_reference", x, delta, A, B, C, initial_state);
  const auto ct = compute_dtype(x);
  auto h = initial_state.defined()
               ? initial_state.to(ct)
               : torch::zeros({x.size(0), x.size(2), A.size(1)}, x.options().dtype(ct));
  std::vector<torch::Tensor> ys;
  for (std::int64_t t = 0; t < x.size(1); ++t) {
    ys.push_back(selective_scan_step(x.select(1, t), delta.select(1, t), A, B.select(1, t),
                                     C.select(1, t), h));
  }
  auto y = ys.empty() ? torch::zeros_like(x) : torch::stack(ys, 1);
  return {y.to(x.scalar_type()), h};
}

torch::Tensor selective_scan_step(const torch::Tensor& x_t, const torch::Tensor& delta_t,
                                  const torch::Tensor& A, const torch::Tensor& B_t,
                                  const torch::Tensor& C_t, torch::Tensor& state) {
  TORCH_CHECK(
      x_t.dim() == 2 && delta_t.sizes() == x_t.sizes() && B_t.dim() == 2 &&
          C_t.sizes() == B_t.sizes() && state.dim() == 3,
      "selective_scan_step: expected x_t, delta_t [B, E], B_t, C_t [B, N], state [B, E, N]");
  const auto ct = state.scalar_type();
  state = advance(state, x_t.to(ct), delta_t.to(ct), A.to(ct), B_t.to(ct));  // [B, E, N]
  return torch::bmm(state, C_t.to(ct).unsqueeze(-1)).squeeze(-1).to(x_t.scalar_type());  // [B, E]
}

}  // namespace sb
