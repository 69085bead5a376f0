// The delta rule with an optional scalar gate: chunked form, sequential reference and single step
// (blocks/delta_rule.hpp).
//
// One chunk of C rows with incoming state S. Writing γ_r = Σ_{u≤r} g_u and Γ[r, s] = e^{γ_r−γ_s}
// (s ≤ r), unrolling the recurrence gives
//   S_r = e^{γ_r} S + Σ_{s≤r} Γ[r, s] k_s u_sᵀ
//   u_r = β_r (v_r − S'_rᵀ k_r),   S'_r = e^{g_r} S_{r−1}
// so the corrections u obey the unit lower triangular system
//   (I − M) U_new = diag(β) V − diag(β e^{γ}) K S,    M = strictly_lower(−diag(β) (K Kᵀ ⊙ Γ)),
// i.e. U_new = U − W S with (I − M) [U | W] = [diag(β) V | diag(β e^{γ}) K] (one solve per chunk,
// all chunks batched). Then, with A = (Q Kᵀ) ⊙ Γ on and below the diagonal,
//   O   = (Q ⊙ e^{γ}) S + A U_new       = (Q ⊙ e^{γ} − A W) S + A U
//   S'' = e^{γ_C} S + (K ⊙ e^{γ_C−γ})ᵀ U_new = (e^{γ_C} I − K_dᵀ W) S + K_dᵀ U.
// Everything not involving S is computed for all chunks at once; the loop over chunks carries only
// S (one K×K by K×V product per chunk), and the outputs come from the stacked incoming states.
//
// Gate factors: γ_r − γ_s is never formed as a difference of cumulative sums (which in float32
// loses the small differences of large sums and, for s > r, is a large positive exponent). The
// pairwise sums Σ_{s<u≤r} g_u are accumulated over exactly the steps they cover, from a masked
// copy of g, and are 0 (not positive) above the diagonal, where they are masked after the exp.
//
// T is padded with zeros to N whole chunks: a padded row has β = 0 and k = 0, so it neither
// corrects nor writes the state, and g = 0 does not decay it.
#include "selectivbench/blocks/delta_rule.hpp"
#include "selectivbench/blocks/wiring.hpp"

#include <algorithm>
#include <vector>

namespace sb {

namespace {

void check_inputs(const char* what, const torch::Tensor& q, const torch::Tensor& k,
                  const torch::Tensor& v, const torch::Tensor& beta, const torch::Tensor& g,
                  const torch::Tensor& initial_state) {
  TORCH_CHECK(q.dim() == 4 && v.dim() == 4, what, ": expected q [B, T, H, K], v [B, T, H, V]");
  TORCH_CHECK(k.sizes() == q.sizes(), what, ": q ", q.sizes(), " and k ", k.sizes(),
              " must have the same shape");
  TORCH_CHECK(v.size(0) == q.size(0) && v.size(1) == q.size(1) && v.size(2) == q.size(2), what,
              ": v ", v.sizes(), " does not match q ", q.sizes());
  const auto bth = q.sizes().slice(0, 3);
  TORCH_CHECK(beta.dim() == 3 && beta.sizes() == bth, what, ": beta must be [B, T, H], got ",
              beta.sizes());
  if (g.defined()) {
    TORCH_CHECK(g.dim() == 3 && g.sizes() == bth, what, ": g must be [B, T, H], got ", g.sizes());
  }
  if (initial_state.defined()) {
    TORCH_CHECK(initial_state.dim() == 4 && initial_state.size(0) == q.size(0) &&
                    initial_state.size(1) == q.size(2) && initial_state.size(2) == q.size(3) &&
                    initial_state.size(3) == v.size(3),
                what, ": initial_state must be [B, H, K, V], got ", initial_state.sizes());
  }
}

// [B, T, H, D] in the compute dtype -> [B, H, N, C, D], zero-padded from T to N·C steps.
torch::Tensor to_chunks(const torch::Tensor& x, torch::ScalarType ct, std::int64_t n_chunks,
                        std::int64_t chunk) {
  auto y = x.to(ct).permute({0, 2, 1, 3});
  const auto pad = n_chunks * chunk - y.size(2);
  if (pad > 0) y = torch::constant_pad_nd(y, {0, 0, 0, pad});
  return y.reshape({y.size(0), y.size(1), n_chunks, chunk, y.size(3)});
}

// [B, T, H] in the compute dtype -> [B, H, N, C], zero-padded.
torch::Tensor to_chunks3(const torch::Tensor& x, torch::ScalarType ct, std::int64_t n_chunks,
                         std::int64_t chunk) {
  auto y = x.to(ct).permute({0, 2, 1});
  const auto pad = n_chunks * chunk - y.size(2);
  if (pad > 0) y = torch::constant_pad_nd(y, {0, pad});
  return y.reshape({y.size(0), y.size(1), n_chunks, chunk});
}

}  // namespace

DeltaRuleResult delta_rule_chunked(const torch::Tensor& q, const torch::Tensor& k,
                                   const torch::Tensor& v, const torch::Tensor& beta,
                                   const torch::Tensor& g, const torch::Tensor& initial_state,
                                   std::int64_t chunk) {
  check_inputs("delta_rule_chunked", q, k, v, beta, g, initial_state);
  TORCH_CHECK(chunk >= 1, "delta_rule_chunked: chunk must be positive, got ", chunk);
  const auto B = q.size(0);
  const auto T = q.size(1);
  const auto H = q.size(2);
  const auto K = q.size(3);
  const auto V = v.size(3);
  const auto ct = compute_dtype(q);
  const auto opts = q.options().dtype(ct);

  auto state = initial_state.defined() ? initial_state.to(ct) : torch::zeros({B, H, K, V}, opts);
  if (T == 0) return {torch::zeros({B, 0, H, V}, q.options()), state};

  const auto C = std::min(chunk, T);
  const auto N = (T + C - 1) / C;

  const auto qc = to_chunks(q, ct, N, C);      // [B, H, N, C, K]
  const auto kc = to_chunks(k, ct, N, C);      // [B, H, N, C, K]
  const auto vc = to_chunks(v, ct, N, C);      // [B, H, N, C, V]
  const auto bc = to_chunks3(beta, ct, N, C);  // [B, H, N, C]

  const auto strict_lower = torch::ones({C, C}, opts).tril(-1);  // [r, s]: s < r
  const auto lower = torch::ones({C, C}, opts).tril();           // [r, s]: s ≤ r

  // Gate factors: Γ [B, H, N, C, C], e^{γ_r} [B, H, N, C], e^{γ_C−γ_s} [B, H, N, C], e^{γ_C}
  // [B, H, N]. Without a gate they are all ones (kept as plain masks / scalars).
  torch::Tensor gamma = lower;
  torch::Tensor from_start, to_end, decay;
  if (g.defined()) {
    const auto gc = to_chunks3(g, ct, N, C);  // [B, H, N, C]
    // pair[r, s] = Σ_{u≤r} g_u·[u > s] = Σ_{s<u≤r} g_u for s ≤ r, and 0 for s > r.
    const auto pair = (gc.unsqueeze(-1) * strict_lower).cumsum(-2);  // [B, H, N, C, C]
    gamma = pair.exp() * lower;
    to_end = pair.select(-2, C - 1).exp();  // e^{Σ(s, C]}, row C−1 of the pairs
    const auto prefix = gc.cumsum(-1);      // γ_r = Σ(0, r]
    from_start = prefix.exp();
    decay = prefix.select(-1, C - 1).exp();  // [B, H, N]
  }

  // The triangular systems of all chunks: (I − M) [U | W] = [diag(β) V | diag(β e^{γ}) K].
  const auto kk = torch::matmul(kc, kc.transpose(-1, -2));  // [B, H, N, C, C]
  const auto beta_col = bc.unsqueeze(-1);                   // [B, H, N, C, 1]
  const auto system = torch::eye(C, opts) + beta_col * kk * gamma * strict_lower;
  const auto bk = from_start.defined() ? beta_col * from_start.unsqueeze(-1) * kc : beta_col * kc;
  const auto rhs = torch::cat({beta_col * vc, bk}, -1);  // [B, H, N, C, V + K]
  // The ATen op (not torch::linalg::, whose header LibTorch 2.x no longer pulls in with torch.h).
  const auto uw = at::linalg_solve_triangular(system, rhs, /*upper=*/false, /*left=*/true,
                                              /*unitriangular=*/true);
  const auto u = uw.narrow(-1, 0, V);  // [B, H, N, C, V]
  const auto w = uw.narrow(-1, V, K);  // [B, H, N, C, K]

  // ---- The state passed between chunks.
  const auto kd = to_end.defined() ? kc * to_end.unsqueeze(-1) : kc;  // K ⊙ e^{γ_C−γ}
  const auto kd_t = kd.transpose(-1, -2);                             // [B, H, N, K, C]
  const auto write = torch::matmul(kd_t, u);                          // K_dᵀ U   [B, H, N, K, V]
  const auto erase = torch::matmul(kd_t, w);                          // K_dᵀ W   [B, H, N, K, K]
  std::vector<torch::Tensor> incoming;  // the state entering each chunk
  incoming.reserve(static_cast<std::size_t>(N));
  for (std::int64_t n = 0; n < N; ++n) {
    incoming.push_back(state);
    const auto kept =
        decay.defined() ? decay.select(2, n).unsqueeze(-1).unsqueeze(-1) * state : state;
    state = kept - torch::matmul(erase.select(2, n), state) + write.select(2, n);
  }
  const auto s_in = torch::stack(incoming, 2);  // [B, H, N, K, V]

  // ---- Outputs: O = (Q ⊙ e^{γ} − A W) S + A U.
  const auto a = torch::matmul(qc, kc.transpose(-1, -2)) * gamma;  // [B, H, N, C, C]
  const auto q_state = from_start.defined() ? qc * from_start.unsqueeze(-1) : qc;
  auto out = torch::matmul(q_state - torch::matmul(a, w), s_in) + torch::matmul(a, u);

  out = out.reshape({B, H, N * C, V}).narrow(2, 0, T).permute({0, 2, 1, 3});
  return {out.to(q.scalar_type()).contiguous(), state};
}

DeltaRuleResult delta_rule_reference(const torch::Tensor& q, const torch::Tensor& k,
                                     const torch::Tensor& v, const torch::Tensor& beta,
                                     const torch::Tensor& g, const torch::Tensor& initial_state) {
  check_inputs("delta_rule_reference", q, k, v, beta, g, initial_state);
  const auto T = q.size(1);
  const auto ct = compute_dtype(q);
  auto state = initial_state.defined() ? initial_state.to(ct)
                                       : torch::zeros({q.size(0), q.size(2), q.size(3), v.size(3)},
                                                      q.options().dtype(ct));
  std::vector<torch::Tensor> out;
  out.reserve(static_cast<std::size_t>(T));
  for (std::int64_t t = 0; t < T; ++t) {
    out.push_back(delta_rule_step(q.select(1, t), k.select(1, t), v.select(1, t), beta.select(1, t),
                                  g.defined() ? g.select(1, t) : torch::Tensor(), state));
  }
  auto output = T > 0 ? torch::stack(out, 1)
                      : torch::zeros({q.size(0), 0, q.size(2), v.size(3)}, q.options());
  return {output, state};
}

torch::Tensor delta_rule_step(const torch::Tensor& q_t, const torch::Tensor& k_t,
                              const torch::Tensor& v_t, const torch::Tensor& beta_t,
                              const torch::Tensor& g_t, torch::Tensor& state) {
  TORCH_CHECK(q_t.dim() == 3 && k_t.sizes() == q_t.sizes(),
              "delta_rule_step: q_t, k_t must be [B, H, K], got ", q_t.sizes(), ", ", k_t.sizes());
  TORCH_CHECK(v_t.dim() == 3 && v_t.size(0) == q_t.size(0) && v_t.size(1) == q_t.size(1),
              "delta_rule_step: v_t must be [B, H, V], got ", v_t.sizes());
  const auto bh = q_t.sizes().slice(0, 2);
  TORCH_CHECK(beta_t.sizes() == bh, "delta_rule_step: beta_t must be [B, H], got ", beta_t.sizes());
  TORCH_CHECK(!g_t.defined() || g_t.sizes() == bh, "delta_rule_step: g_t must be [B, H], got ",
              g_t.sizes());
  const auto ct = compute_dtype(q_t);
  auto s = state.defined() ? state.to(ct)
                           : torch::zeros({q_t.size(0), q_t.size(1), q_t.size(2), v_t.size(2)},
                                          q_t.options().dtype(ct));
  TORCH_CHECK(s.dim() == 4 && s.size(0) == q_t.size(0) && s.size(1) == q_t.size(1) &&
                  s.size(2) == q_t.size(2) && s.size(3) == v_t.size(2),
              "delta_rule_step: state must be [B, H, K, V], got ", s.sizes());
  const auto k = k_t.to(ct).unsqueeze(-2);  // [B, H, 1, K]
  // S' = e^{g} S;  u = β (v − S'ᵀ k);  S = S' + k uᵀ;  o = Sᵀ q.
  if (g_t.defined()) s = g_t.to(ct).exp().unsqueeze(-1).unsqueeze(-1) * s;
  const auto predicted = torch::matmul(k, s);                 // [B, H, 1, V]
  const auto u = beta_t.to(ct).unsqueeze(-1).unsqueeze(-1) *  // [B, H, 1, V]
                 (v_t.to(ct).unsqueeze(-2) - predicted);
  s = s + k.transpose(-1, -2) * u;  // [B, H, K, V]
  state = s;
  return torch::matmul(q_t.to(ct).unsqueeze(-2), s).squeeze(-2).to(q_t.scalar_type());
}

}  // namespace sb
