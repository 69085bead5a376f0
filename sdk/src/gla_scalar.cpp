// Chunked linear attention with a scalar decay per head (blocks/gla_scalar.hpp).
#include "selectivbench/blocks/gla_scalar.hpp"

#include <vector>

namespace sb {

namespace {

// [B, T, H, X] -> [B, H, N, C, X], zero-padded to N·C steps (padded steps add nothing: k = v = 0).
torch::Tensor to_chunks(const torch::Tensor& x, std::int64_t C) {
  const auto B = x.size(0), T = x.size(1), H = x.size(2), X = x.size(3);
  const auto N = (T + C - 1) / C;
  auto y = x.permute({0, 2, 1, 3});                                         // [B, H, T, X]
  if (N * C > T) y = torch::constant_pad_nd(y, {0, 0, 0, N * C - T}, 0.0);  // [B, H, N·C, X]
  return y.reshape({B, H, N, C, X});
}

}  // namespace

GlaResult gla_scalar_chunked(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& g, const torch::Tensor& initial_state,
                             std::int64_t chunk) {
  TORCH_CHECK(q.dim() == 4 && k.sizes() == q.sizes(),
              "gla_scalar_chunked: q and k must be "
              "[B, T, H, K], got ",
              q.sizes(), " and ", k.sizes());
  TORCH_CHECK(
      v.dim() == 4 && v.size(0) == q.size(0) && v.size(1) == q.size(1) && v.size(2) == q.size(2),
      "gla_scalar_chunked: v must be [B, T, H, V], got ", v.sizes());
  TORCH_CHECK(g.dim() == 3 && g.sizes() == q.sizes().slice(0, 3),
              "gla_scalar_chunked: g must be [B, T, H], got ", g.sizes());
  TORCH_CHECK(chunk >= 1, "gla_scalar_chunked: chunk must be positive");
  const auto ct = q.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  const auto B = q.size(0), T = q.size(1), H = q.size(2), K = q.size(3), V = v.size(3);
  auto S = initial_state.defined()
               ? initial_state.to(ct)
               : torch::zeros({B, H, K, V}, q.options().dtype(ct));  // [B, H, K, V]
  TORCH_CHECK(S.sizes() == torch::IntArrayRef({B, H, K, V}),
              "gla_scalar_chunked: initial_state must be [B, H, K, V], got ", S.sizes());
  if (T == 0) return {torch::zeros({B, 0, H, V}, q.options()), S};
  const auto C = chunk;
  const auto qc = to_chunks(q.to(ct), C);                                      // [B, H, N, C, K]
  const auto kc = to_chunks(k.to(ct), C);                                      // [B, H, N, C, K]
  const auto vc = to_chunks(v.to(ct), C);                                      // [B, H, N, C, V]
  const auto G = to_chunks(g.to(ct).unsqueeze(-1), C).squeeze(-1).cumsum(-1);  // [B, H, N, C]
  const auto G_last = G.narrow(-1, C - 1, 1);                                  // [B, H, N, 1]
  // exp(G_t − G_s) for s ≤ t, masked before the exponential (above the diagonal it is > 0).
  const auto causal = torch::ones({C, C}, torch::dtype(torch::kBool).device(q.device())).tril();
  const auto decays =
      torch::exp((G.unsqueeze(-1) - G.unsqueeze(-2))
                     .masked_fill(causal.logical_not(), -INFINITY));     // [B, H, N, C, C]
  const auto scores = torch::matmul(qc, kc.transpose(-1, -2)) * decays;  // [B, H, N, C, C]
  auto out = torch::matmul(scores, vc);                                  // [B, H, N, C, V]
  // What chunk n adds to the state passed on: Σ_s e^{G_last − G_s} k_s v_sᵀ.
  const auto to_end = torch::exp(G_last - G).unsqueeze(-1);               // [B, H, N, C, 1]
  const auto local = torch::matmul((kc * to_end).transpose(-1, -2), vc);  // [B, H, N, K, V]
  const auto chunk_decay = torch::exp(G_last.squeeze(-1));                // [B, H, N]
  const auto Nc = qc.size(2);
  std::vector<torch::Tensor> starts;  // the state at the start of every chunk
  starts.reserve(Nc);
  for (std::int64_t n = 0; n < Nc; ++n) {  // over chunks, not time steps
    starts.push_back(S);
    S = chunk_decay.select(2, n).unsqueeze(-1).unsqueeze(-1) * S + local.select(2, n);
  }
  const auto states = torch::stack(starts, 2);                          // [B, H, N, K, V]
  out = out + torch::exp(G).unsqueeze(-1) * torch::matmul(qc, states);  // [B, H, N, C, V]
  const auto o = out.reshape({B, H, Nc * C, V}).narrow(2, 0, T).permute({0, 2, 1, 3});
  return {o.to(q.scalar_type()), S};  // [B, T, H, V], [B, H, K, V]
}

}  // namespace sb
