// Gated linear attention: chunked form, sequential reference and single step (blocks/gla.hpp).
//
// Writing Σ(a, b] for Σ_{a<u≤b} g_u (per key channel), one chunk of C steps with incoming state S:
//
//   state carried:  S' = diag(e^{Σ(0, C]}) S + Σ_s (k_s ⊙ e^{Σ(s, C]}) v_sᵀ
//   from the state: O_r += (q_r ⊙ e^{Σ(0, r]})ᵀ S
//   intra chunk:    O_r += Σ_{s≤r} A[r, s] v_s,   A[r, s] = Σ_k q_rk k_sk e^{Σ(s, r]_k}
//
// T is padded with zeros (q = k = v = 0 and g = 0: the state passes through unchanged) to N whole
// chunks; the chunk outputs are batched matmuls over [B, H, N, ...] and only the state is passed
// sequentially, one step per chunk.
//
// The scores A are built recursively (causal_scores): the chunk is split into S sub-chunks of L
// steps; the diagonal L×L blocks are the same problem, one level down, and a block of query
// sub-chunk i (first row ρ_i) against an earlier key sub-chunk j factorises through ρ_i:
//   e^{Σ(s, r]} = e^{Σ(ρ_i, r]} · e^{Σ(s, ρ_i]},
// a matmul of (q_r ⊙ e^{Σ(ρ_i, r]}) with (k_s ⊙ e^{Σ(s, ρ_i]}), both factors ≤ 1. Stability and
// accuracy: every exponent is ≤ 0, so nothing overflows however strong the decays, and every sum
// of log decays is accumulated over exactly the steps it covers (never as the difference of two
// cumulative sums, which loses the small differences of large sums in float32). With strong decays
// (−30 per step) float32 results are as accurate as the float32 sequential loop.
#include "selectivbench/blocks/gla.hpp"
#include "selectivbench/blocks/wiring.hpp"

#include <algorithm>
#include <vector>

namespace sb {

namespace {

void check_inputs(const char* what, const torch::Tensor& q, const torch::Tensor& k,
                  const torch::Tensor& v, const torch::Tensor& g,
                  const torch::Tensor& initial_state) {
  TORCH_CHECK(q.dim() == 4 && v.dim() == 4, what, ": expected q [B, T, H, K], v [B, T, H, V]");
  TORCH_CHECK(k.sizes() == q.sizes() && g.sizes() == q.sizes(), what, ": q ", q.sizes(), ", k ",
              k.sizes(), " and g ", g.sizes(), " must have the same shape");
  TORCH_CHECK(v.size(0) == q.size(0) && v.size(1) == q.size(1) && v.size(2) == q.size(2), what,
              ": v ", v.sizes(), " does not match q ", q.sizes());
  if (initial_state.defined()) {
    TORCH_CHECK(initial_state.dim() == 4 && initial_state.size(0) == q.size(0) &&
                    initial_state.size(1) == q.size(2) && initial_state.size(2) == q.size(3) &&
                    initial_state.size(3) == v.size(3),
                what, ": initial_state must be [B, H, K, V], got ", initial_state.sizes());
  }
}

// Shifts x by one along `dim` towards lower indices: y[i] = x[i + 1], y[last] = 0.
torch::Tensor shift_up(const torch::Tensor& x, std::int64_t dim) {
  const auto n = x.size(dim);
  return torch::cat({x.narrow(dim, 1, n - 1), torch::zeros_like(x.narrow(dim, 0, 1))}, dim);
}

// Shifts x by one along `dim` towards higher indices: y[0] = 0, y[i] = x[i - 1].
torch::Tensor shift_down(const torch::Tensor& x, std::int64_t dim) {
  const auto n = x.size(dim);
  return torch::cat({torch::zeros_like(x.narrow(dim, 0, 1)), x.narrow(dim, 0, n - 1)}, dim);
}

// y[i] = Σ_{j ≥ i} x[j] along `dim`.
torch::Tensor reverse_cumsum(const torch::Tensor& x, std::int64_t dim) {
  return x.flip({dim}).cumsum(dim).flip({dim});
}

// [B, T, H, D] in the compute dtype -> [B, H, N, C, D], zero-padded from T to N·C steps.
torch::Tensor to_chunks(const torch::Tensor& x, torch::ScalarType ct, std::int64_t n_chunks,
                        std::int64_t chunk) {
  auto y = x.to(ct).permute({0, 2, 1, 3});
  const auto pad = n_chunks * chunk - y.size(2);
  if (pad > 0) y = torch::constant_pad_nd(y, {0, 0, 0, pad});
  return y.reshape({y.size(0), y.size(1), n_chunks, chunk, y.size(3)});
}

// The causal decayed scores of a batch of blocks: q, k, g [..., C, K] ->
// A [..., C, C], A[r, s] = Σ_k q_rk k_sk e^{Σ(s, r]_k} for s ≤ r and 0 above the diagonal.
torch::Tensor causal_scores(const torch::Tensor& q, const torch::Tensor& k,
                            const torch::Tensor& g) {
  const auto C = q.size(-2);
  const auto K = q.size(-1);
  if (C == 1) return (q * k).sum(-1, /*keepdim=*/true);        // [..., 1, 1]
  const std::int64_t S = C % 4 == 0 ? 4 : C % 2 == 0 ? 2 : C;  // sub-chunks
  const auto L = C / S;                                        // their length
  const auto opts = q.options();
  const auto batch = q.sizes().slice(0, q.dim() - 2);
  const auto shape = [&](std::initializer_list<std::int64_t> tail) {
    std::vector<std::int64_t> s(batch.begin(), batch.end());
    s.insert(s.end(), tail);
    return s;
  };
  const auto qs = q.view(shape({S, L, K}));
  const auto ks = k.view(shape({S, L, K}));
  const auto gs = g.view(shape({S, L, K}));
  const auto eye = torch::eye(S, opts).view({S, 1, S, 1});

  // [..., S(i), L(r), S(j), L(s)]: the diagonal blocks (i = j), one level down.
  auto scores = causal_scores(qs, ks, gs).unsqueeze(-2) * eye;

  // Blocks below the diagonal (j < i). Query factor e^{Σ(ρ_i, r]}: a running sum from the second
  // row of the sub-chunk on.
  const auto row = torch::arange(L, opts.dtype(torch::kLong));
  const auto q_local =
      L == 1 ? qs : qs * (gs * (row > 0).to(q.scalar_type()).view({L, 1})).cumsum(-2).exp();
  // Key factor e^{Σ(s, ρ_i]}, Σ(s, ρ_i] = Σ(s, λ_j] + Σ_{j<m<i} total_m + g_{ρ_i} with λ_j the last
  // row of sub-chunk j: non-positive terms, each summed over its own steps.
  const auto to_last = L == 1 ? torch::zeros_like(gs)  // Σ(s, λ_j]   [..., S, L, K]
                              : reverse_cumsum(shift_up(gs, -2), -2);
  const auto total = gs.sum(-2);        // per sub-chunk  [..., S, K]
  const auto first = gs.select(-2, 0);  // g_{ρ_i}        [..., S, K]
  const auto sub = torch::arange(S, opts.dtype(torch::kLong));
  const auto i_idx = sub.view({S, 1});
  const auto j_idx = sub.view({1, S});
  // between[i, j] = Σ_{j<m<i} total_m: a running sum over i of total_{i-1}·[i-1 > j].
  const auto between = (shift_down(total, -2).unsqueeze(-2) *
                        (i_idx > j_idx + 1).to(q.scalar_type()).view({S, S, 1}))
                           .cumsum(-3);  // [..., S(i), S(j), K]
  // For j ≥ i these exponents mean nothing but are still ≤ 0 (finite); those blocks are masked.
  const auto key_exp = (between + first.unsqueeze(-2)).unsqueeze(-2) +  // [..., S(i), S(j), 1, K]
                       to_last.unsqueeze(-4);                           // [..., 1, S(j), L, K]
  const auto k_local = (ks.unsqueeze(-4) * key_exp.exp()).view(shape({S, C, K}));
  // [..., S(i), L(r), C(s)]; with L = 1 a broadcast product is cheaper than many 1-row matmuls.
  const auto off = L == 1 ? (q_local * k_local).sum(-1, /*keepdim=*/true).transpose(-1, -2)
                          : torch::matmul(q_local, k_local.transpose(-1, -2));
  const auto below = (j_idx < i_idx).to(q.scalar_type()).view({S, 1, S, 1});
  scores = scores + off.reshape(shape({S, L, S, L})) * below;
  return scores.view(shape({C, C}));
}

}  // namespace

GlaResult gla_chunked(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                      const torch::Tensor& g, const torch::Tensor& initial_state,
                      std::int64_t chunk) {
  check_inputs("gla_chunked", q, k, v, g, initial_state);
  TORCH_CHECK(chunk >= 1, "gla_chunked: chunk must be positive, got ", chunk);
  const auto B = q.size(0);
  const auto T = q.size(1);
  const auto H = q.size(2);
  const auto K = q.size(3);
  const auto V = v.size(3);
  const auto ct = compute_dtype(q);
  const auto opts = q.options().dtype(ct);

  auto state = initial_state.defined() ? initial_state.to(ct) : torch::zeros({B, H, K, V}, opts);
  if (T == 0) return {torch::zeros({B, 0, H, V}, q.options()), state};

  // Chunk C: no longer than the sequence, rounded up to a multiple of 16 (or a power of 2 below) so
  // that the recursion in causal_scores splits it into few, equal sub-chunks.
  auto C = std::min(chunk, T);
  if (C > 16) {
    C = (C + 15) / 16 * 16;
  } else {
    std::int64_t p = 1;
    while (p < C) p *= 2;
    C = p;
  }
  const auto N = (T + C - 1) / C;

  const auto qc = to_chunks(q, ct, N, C);  // [B, H, N, C, K]
  const auto kc = to_chunks(k, ct, N, C);
  const auto vc = to_chunks(v, ct, N, C);  // [B, H, N, C, V]
  const auto gc = to_chunks(g, ct, N, C);

  // ---- Chunk level: the state passed between chunks and the output it produces.
  const auto g_next = shift_up(gc, 3);               // g_{s+1} (0 after the last row)
  const auto prefix = gc.cumsum(3);                  // Σ(0, r]
  const auto suffix = reverse_cumsum(g_next, 3);     // Σ(s, C]
  const auto decay = prefix.select(3, C - 1).exp();  // e^{Σ(0, C]}      [B, H, N, K]
  const auto q_state = qc * prefix.exp();            // q_r ⊙ e^{Σ(0, r]}
  const auto k_state = kc * suffix.exp();            // k_s ⊙ e^{Σ(s, C]}
  const auto update = torch::matmul(k_state.transpose(-1, -2), vc);  // [B, H, N, K, V]

  std::vector<torch::Tensor> incoming;  // the state entering each chunk
  incoming.reserve(static_cast<std::size_t>(N));
  for (std::int64_t n = 0; n < N; ++n) {
    incoming.push_back(state);
    state = decay.select(2, n).unsqueeze(-1) * state + update.select(2, n);
  }
  auto out = torch::matmul(q_state, torch::stack(incoming, 2));  // [B, H, N, C, V]

  // ---- Inside each chunk.
  out = out + torch::matmul(causal_scores(qc, kc, gc), vc);

  out = out.view({B, H, N * C, V}).narrow(2, 0, T).permute({0, 2, 1, 3});
  return {out.to(q.scalar_type()).contiguous(), state};
}

GlaResult gla_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& g, const torch::Tensor& initial_state) {
  check_inputs("gla_reference", q, k, v, g, initial_state);
  const auto T = q.size(1);
  const auto ct = compute_dtype(q);
  auto state = initial_state.defined() ? initial_state.to(ct)
                                       : torch::zeros({q.size(0), q.size(2), q.size(3), v.size(3)},
                                                      q.options().dtype(ct));
  std::vector<torch::Tensor> out;
  out.reserve(static_cast<std::size_t>(T));
  for (std::int64_t t = 0; t < T; ++t) {
    out.push_back(gla_step(q.select(1, t), k.select(1, t), v.select(1, t), g.select(1, t), state));
  }
  auto output = T > 0 ? torch::stack(out, 1)
                      : torch::zeros({q.size(0), 0, q.size(2), v.size(3)}, q.options());
  return {output, state};
}

torch::Tensor gla_step(const torch::Tensor& q_t, const torch::Tensor& k_t, const torch::Tensor& v_t,
                       const torch::Tensor& g_t, torch::Tensor& state) {
  TORCH_CHECK(q_t.dim() == 3 && k_t.sizes() == q_t.sizes() && g_t.sizes() == q_t.sizes(),
              "gla_step: q_t, k_t, g_t must be [B, H, K], got ", q_t.sizes(), ", ", k_t.sizes(),
              ", ", g_t.sizes());
  TORCH_CHECK(v_t.dim() == 3 && v_t.size(0) == q_t.size(0) && v_t.size(1) == q_t.size(1),
              "gla_step: v_t must be [B, H, V], got ", v_t.sizes());
  const auto ct = compute_dtype(q_t);
  auto s = state.defined() ? state.to(ct)
                           : torch::zeros({q_t.size(0), q_t.size(1), q_t.size(2), v_t.size(2)},
                                          q_t.options().dtype(ct));
  TORCH_CHECK(s.dim() == 4 && s.size(0) == q_t.size(0) && s.size(1) == q_t.size(1) &&
                  s.size(2) == q_t.size(2) && s.size(3) == v_t.size(2),
              "gla_step: state must be [B, H, K, V], got ", s.sizes());
  // S = diag(e^{g}) S + k vᵀ;  o = Sᵀ q.
  s = g_t.to(ct).exp().unsqueeze(-1) * s + k_t.to(ct).unsqueeze(-1) * v_t.to(ct).unsqueeze(-2);
  state = s;
  return torch::matmul(q_t.to(ct).unsqueeze(-2), s).squeeze(-2).to(q_t.scalar_type());
}

}  // namespace sb
