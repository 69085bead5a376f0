// The mesa_net mixer (models.md §7.2); see mesa_net.hpp for the math and the parameters.
#include "mesa_net.hpp"

#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <functional>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace sb::plugins {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// `steps` CG steps on A x = rhs from x = 0, A given as its product; dot products over the last dim;
// `eps` guards both denominators.
torch::Tensor conjugate_gradient(const std::function<torch::Tensor(const torch::Tensor&)>& A,
                                 const torch::Tensor& rhs, std::int64_t steps, double eps) {
  auto x = torch::zeros_like(rhs);
  auto r = rhs;
  auto p = rhs;
  auto delta = (r * r).sum(-1, /*keepdim=*/true);  // [.., 1]
  for (std::int64_t i = 0; i < steps; ++i) {
    const auto Ap = A(p);
    const auto alpha = delta / ((p * Ap).sum(-1, true) + eps);
    x = x + alpha * p;
    r = r - alpha * Ap;
    const auto delta_new = (r * r).sum(-1, true);
    p = r + (delta_new / (delta + eps)) * p;
    delta = delta_new;
  }
  return x;
}

// [B, T, H, X] -> [B, H, N, C, X], zero-padded to N·C time steps.
torch::Tensor to_chunks(const torch::Tensor& x, std::int64_t C) {
  const auto B = x.size(0), T = x.size(1), H = x.size(2), X = x.size(3);
  const auto N = (T + C - 1) / C;
  auto y = x.permute({0, 2, 1, 3});                                         // [B, H, T, X]
  if (N * C > T) y = torch::constant_pad_nd(y, {0, 0, 0, N * C - T}, 0.0);  // [B, H, N·C, X]
  return y.reshape({B, H, N, C, X});
}

// [B, H, N, C, X] -> [B, T, H, X].
torch::Tensor from_chunks(const torch::Tensor& y, std::int64_t T) {
  const auto B = y.size(0), H = y.size(1), N = y.size(2), C = y.size(3), X = y.size(4);
  return y.reshape({B, H, N * C, X}).narrow(2, 0, T).permute({0, 2, 1, 3});
}

// What the keys of every chunk contribute to H_kk.
struct Chunks {
  torch::Tensor k;         // [B, H, N, C, K]
  torch::Tensor decay_in;  // e^{G_t}: the chunk-start state's weight at token t   [B, H, N, C, 1]
  torch::Tensor mixing;  // e^{G_t − G_s} β_s for s ≤ t, 0 above the diagonal    [B, H, N, C, C]
  torch::Tensor
      to_end;  // e^{G_last − G_s} β_s: token s's weight in the next start state [B, H, N, C]
  torch::Tensor
      chunk_decay;  // e^{G_last}                                                  [B, H, N]
};

// k [B, H, N, C, K]; beta, g [B, H, N, C]. Differentiable.
Chunks make_chunks(const torch::Tensor& k, const torch::Tensor& beta, const torch::Tensor& g) {
  const auto C = k.size(3);
  const auto G = g.cumsum(-1);                 // [B, H, N, C]
  const auto G_last = G.narrow(-1, C - 1, 1);  // [B, H, N, 1]
  const auto causal = torch::ones({C, C}, torch::dtype(torch::kBool).device(k.device())).tril();
  // Masked before the exponential: above the diagonal G_t − G_s > 0 and could overflow.
  const auto pair = (G.unsqueeze(-1) - G.unsqueeze(-2))
                        .masked_fill(causal.logical_not(),
                                     -INFINITY);  // [B, H, N, C, C]
  Chunks c;
  c.k = k;
  c.decay_in = torch::exp(G).unsqueeze(-1);
  c.mixing = torch::exp(pair) * beta.unsqueeze(-2);
  c.to_end = torch::exp(G_last - G) * beta;
  c.chunk_decay = torch::exp(G_last.squeeze(-1));
  return c;
}

// H_kk at the start of every chunk, Σ_{s before chunk n} (decay) β_s k_s k_sᵀ: [B, H, N, K, K].
torch::Tensor start_states(const Chunks& c) {
  const auto local =
      torch::matmul((c.k * c.to_end.unsqueeze(-1)).transpose(-1, -2), c.k);  // [B, H, N, K, K]
  const auto N = local.size(2);
  std::vector<torch::Tensor> states;
  states.reserve(N);
  auto S = torch::zeros_like(local.select(2, 0));  // [B, H, K, K]
  for (std::int64_t n = 0; n < N; ++n) {           // over chunks, not time steps
    states.push_back(S);
    S = c.chunk_decay.select(2, n).unsqueeze(-1).unsqueeze(-1) * S + local.select(2, n);
  }
  return torch::stack(states, 2);
}

// H_kk,t p_t = e^{G_t} H_kk[n] p_t + Σ_{s ≤ t in chunk} e^{G_t − G_s} β_s (k_s·p_t) k_s for every
// token t (H_kk symmetric). p [B, H, N, C, K] -> [B, H, N, C, K].
torch::Tensor hkk_product(const Chunks& c, const torch::Tensor& Hkk, const torch::Tensor& p) {
  const auto scores = torch::matmul(p, c.k.transpose(-1, -2)) * c.mixing;  // [B, H, N, C, C]
  return c.decay_in * torch::matmul(p, Hkk) + torch::matmul(scores, c.k);
}

// q* = (H_kk + diag λ)⁻¹ q by CG, with the implicit gradient: backward solves the adjoint system
// A y = ∂L/∂q* with the same CG and differentiates −yᵀ A(θ) q* in θ = (k, β, g, λ) once.
class MesaSolveFunction : public torch::autograd::Function<MesaSolveFunction> {
 public:
  // q, k [B, H, N, C, K]; beta, g [B, H, N, C]; lambda [H, K]. Returns {q* [B, H, N, C, K]}.
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& beta, const torch::Tensor& g,
                               const torch::Tensor& lambda, std::int64_t steps, double eps) {
    const auto c = make_chunks(k, beta, g);
    const auto Hkk = start_states(c);  // [B, H, N, K, K]
    const auto lam = lambda.view({1, lambda.size(0), 1, 1, lambda.size(1)});
    auto x = conjugate_gradient(
        [&](const torch::Tensor& p) { return hkk_product(c, Hkk, p) + lam * p; }, q, steps, eps);
    ctx->save_for_backward({k, beta, g, lambda, x});
    ctx->saved_data["steps"] = steps;
    ctx->saved_data["eps"] = eps;
    return {x};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto steps = ctx->saved_data["steps"].toInt();
    const auto eps = ctx->saved_data["eps"].toDouble();
    const auto& x = saved[4];
    const auto dx = grads[0].defined() ? grads[0] : torch::zeros_like(x);
    torch::AutoGradMode enable_grad(true);
    auto k = saved[0].detach().requires_grad_(true);
    auto beta = saved[1].detach().requires_grad_(true);
    auto g = saved[2].detach().requires_grad_(true);
    auto lambda = saved[3].detach().requires_grad_(true);
    const auto c = make_chunks(k, beta, g);
    const auto Hkk = start_states(c);
    const auto lam = lambda.view({1, lambda.size(0), 1, 1, lambda.size(1)});
    const auto A = [&](const torch::Tensor& p) { return hkk_product(c, Hkk, p) + lam * p; };
    torch::Tensor y;  // [B, H, N, C, K] = A⁻¹ dx (A is symmetric)
    {
      torch::NoGradGuard no_grad;
      y = conjugate_gradient(A, dx, steps, eps);
    }
    const auto surrogate = -(y * A(x)).sum();
    const auto d = torch::autograd::grad({surrogate}, {k, beta, g, lambda}, {},
                                         /*retain_graph=*/false, /*create_graph=*/false,
                                         /*allow_unused=*/true);
    return {y, d[0], d[1], d[2], d[3], torch::Tensor(), torch::Tensor()};
  }
};

void check_shapes(const char* what, const torch::Tensor& q, const torch::Tensor& k,
                  const torch::Tensor& v, const torch::Tensor& beta, const torch::Tensor& g,
                  const torch::Tensor& lambda) {
  TORCH_CHECK(q.dim() == 4 && k.sizes() == q.sizes(), what, ": q and k must be [B, T, H, K], got ",
              q.sizes(), " and ", k.sizes());
  TORCH_CHECK(
      v.dim() == 4 && v.size(0) == q.size(0) && v.size(1) == q.size(1) && v.size(2) == q.size(2),
      what, ": v must be [B, T, H, V], got ", v.sizes());
  TORCH_CHECK(beta.sizes() == q.sizes().slice(0, 3) && g.sizes() == beta.sizes(), what,
              ": beta and g must be [B, T, H], got ", beta.sizes(), " and ", g.sizes());
  TORCH_CHECK(lambda.dim() == 2 && lambda.size(0) == q.size(2) && lambda.size(1) == q.size(3), what,
              ": lambda must be [H, K], got ", lambda.sizes());
}

}  // namespace

torch::Tensor mesa_cg_explicit(const torch::Tensor& M, const torch::Tensor& lambda,
                               const torch::Tensor& rhs, std::int64_t steps, double eps) {
  return conjugate_gradient(
      [&](const torch::Tensor& p) {
        return torch::matmul(M, p.unsqueeze(-1)).squeeze(-1) + lambda * p;  // [.., K]
      },
      rhs, steps, eps);
}

torch::Tensor mesa_chunked(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                           const torch::Tensor& beta, const torch::Tensor& g,
                           const torch::Tensor& lambda, std::int64_t cg_steps, std::int64_t chunk,
                           double cg_eps) {
  check_shapes("mesa_chunked", q, k, v, beta, g, lambda);
  TORCH_CHECK(chunk >= 1 && cg_steps >= 0, "mesa_chunked: chunk must be ≥ 1 and cg_steps ≥ 0");
  const auto ct = sb::compute_dtype(q);
  const auto T = q.size(1);
  if (T == 0) return torch::zeros(v.sizes(), v.options().dtype(ct));
  const auto qc = to_chunks(q.to(ct), chunk);                               // [B, H, N, C, K]
  const auto kc = to_chunks(k.to(ct), chunk);                               // [B, H, N, C, K]
  const auto bc = to_chunks(beta.to(ct).unsqueeze(-1), chunk).squeeze(-1);  // [B, H, N, C]
  const auto gc = to_chunks(g.to(ct).unsqueeze(-1), chunk).squeeze(-1);     // [B, H, N, C]
  const auto lam = lambda.to(ct);                                           // [H, K]
  const auto x =
      MesaSolveFunction::apply(qc, kc, bc, gc, lam, cg_steps, cg_eps)[0];  // [B, H, N, C, K]
  // o_t = H_kv,tᵀ q*_t is linear attention with query q*, key k, value β v and the same decays.
  const auto bv = v.to(ct) * beta.to(ct).unsqueeze(-1);  // [B, T, H, V]
  return sb::gla_scalar_chunked(from_chunks(x, T), k.to(ct), bv, g.to(ct), {}, chunk).output;
}

torch::Tensor mesa_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& beta, const torch::Tensor& g,
                             const torch::Tensor& lambda, std::int64_t cg_steps, double cg_eps) {
  check_shapes("mesa_reference", q, k, v, beta, g, lambda);
  const auto ct = sb::compute_dtype(q);
  const auto B = q.size(0), T = q.size(1), H = q.size(2), K = q.size(3), V = v.size(3);
  const auto opts = q.options().dtype(ct);
  auto Hkk = torch::zeros({B, H, K, K}, opts);
  auto Hkv = torch::zeros({B, H, K, V}, opts);
  const auto lam = lambda.to(ct);
  std::vector<torch::Tensor> outputs;
  for (std::int64_t t = 0; t < T; ++t) {
    const auto q_t = q.select(1, t).to(ct), k_t = k.select(1, t).to(ct);  // [B, H, K]
    const auto v_t = v.select(1, t).to(ct);                               // [B, H, V]
    const auto decay = torch::exp(g.select(1, t).to(ct)).view({B, H, 1, 1});
    const auto b = beta.select(1, t).to(ct).view({B, H, 1, 1});
    Hkk = decay * Hkk + b * k_t.unsqueeze(-1) * k_t.unsqueeze(-2);       // [B, H, K, K]
    Hkv = decay * Hkv + b * k_t.unsqueeze(-1) * v_t.unsqueeze(-2);       // [B, H, K, V]
    const auto x = mesa_cg_explicit(Hkk, lam, q_t, cg_steps, cg_eps);    // [B, H, K]
    outputs.push_back(torch::matmul(x.unsqueeze(-2), Hkv).squeeze(-2));  // [B, H, V]
  }
  if (outputs.empty()) return torch::zeros({B, 0, H, V}, opts);
  return torch::stack(outputs, 1);  // [B, T, H, V]
}

// ---- the mixer ----------------------------------------------------------------------------------

MesaNetMixer::MesaNetMixer(const sb::MixerContext& ctx)
    : d_model_(ctx.d_model),
      n_heads_(ctx.n_heads),
      head_dim_(0),
      conv_size_(ctx.options.get_int("conv_size")),
      chunk_size_(ctx.options.get_int("chunk_size")),
      cg_steps_training_(ctx.options.get_int("max_cg_step_training")),
      cg_steps_decoding_(ctx.options.get_int("max_cg_step_decoding")),
      lambda_lower_bound_(ctx.options.get_float("lambda_lower_bound")),
      use_output_gate_(ctx.options.get_bool("use_output_gate")),
      reference_mode_(ctx.options.get_string("mode") == "reference") {
  const auto D = d_model_, H = n_heads_;
  if (D <= 0 || H <= 0 || D % H != 0) {
    throw std::invalid_argument("mesa_net: d_model " + std::to_string(D) +
                                " is not a positive multiple of n_heads " + std::to_string(H));
  }
  const auto& mode = ctx.options.get_string("mode");
  if (mode != "chunk" && mode != "reference") {
    throw std::invalid_argument("mesa_net: mode must be \"chunk\" or \"reference\", not \"" + mode +
                                "\"");
  }
  head_dim_ = D / H;
  auto linear = [](std::int64_t in, std::int64_t out, bool bias) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
  };
  q_proj = register_module("q_proj", linear(D, D, false));
  k_proj = register_module("k_proj", linear(D, D, false));
  v_proj = register_module("v_proj", linear(D, D, false));
  a_proj = register_module("a_proj", linear(D, H, true));
  b_proj = register_module("b_proj", linear(D, H, true));
  {
    // softplus(λ_param) + λ_min = 1 at the start, as fla.
    const auto start = torch::full({D}, 1.0 - lambda_lower_bound_, torch::kFloat64);
    lambda_params =
        register_parameter("lambda_params", sb::inverse_softplus(start).to(torch::kFloat32));
  }
  q_conv1d = register_module("q_conv1d", sb::ShortConv(D, conv_size_, false, true));
  k_conv1d = register_module("k_conv1d", sb::ShortConv(D, conv_size_, false, true));
  const double eps = ctx.options.get_float("norm_eps");
  if (use_output_gate_) {
    g_proj = register_module("g_proj", linear(D, D, false));
    o_norm_gated = register_module("o_norm", sb::GatedRMSNorm(head_dim_, eps));
  } else {
    o_norm = register_module("o_norm", sb::RMSNorm(head_dim_, eps));
  }
  o_proj = register_module("o_proj", linear(D, D, false));
  if (reference_mode_) {
    ctx.warn("mesa_net: mode = \"reference\" runs forward as a sequential loop over time (slow)");
  }
}

torch::Tensor MesaNetMixer::lambda_like(const torch::Tensor& like) const {
  const auto ct = sb::compute_dtype(like);
  return (torch::softplus(lambda_params.to(ct)) + lambda_lower_bound_)
      .view({n_heads_, head_dim_});  // [H, K]
}

torch::Tensor MesaNetMixer::finish(const torch::Tensor& o, const torch::Tensor& x) {
  auto heads = x.sizes().vec();  // [.., D] -> [.., H, V]
  heads.back() = n_heads_;
  heads.push_back(head_dim_);
  auto normed = use_output_gate_ ? o_norm_gated(o, g_proj(x).view(heads))  // [.., H, V]
                                 : o_norm(o);
  auto flat = x.sizes().vec();
  return o_proj(normed.reshape(flat).to(x.scalar_type()));  // [.., D]
}

namespace {

// [.., D] -> [.., H, K].
torch::Tensor split_heads(const torch::Tensor& t, std::int64_t H) {
  auto shape = t.sizes().vec();
  const auto D = shape.back();
  shape.back() = H;
  shape.push_back(D / H);
  return t.view(shape);
}

}  // namespace

torch::Tensor MesaNetMixer::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == d_model_, "mesa_net: expected x [B, T, ", d_model_,
              "], got ", x.sizes());
  const auto H = n_heads_;
  const auto ct = sb::compute_dtype(x);
  const auto q = sb::l2norm(split_heads(q_conv1d(q_proj(x)), H).to(ct));  // [B, T, H, K]
  const auto k = sb::l2norm(split_heads(k_conv1d(k_proj(x)), H).to(ct));  // [B, T, H, K]
  const auto v = split_heads(v_proj(x), H).to(ct);                        // [B, T, H, V]
  const auto beta = torch::sigmoid(b_proj(x).to(ct));                     // [B, T, H]
  const auto g = torch::log_sigmoid(a_proj(x).to(ct));                    // [B, T, H] ≤ 0
  const auto lam = lambda_like(x);                                        // [H, K]
  const auto o = reference_mode_
                     ? mesa_reference(q, k, v, beta, g, lam, cg_steps_training_)
                     : mesa_chunked(q, k, v, beta, g, lam, cg_steps_training_, chunk_size_);
  return finish(o, x);  // [B, T, D]
}

sb::MixerState MesaNetMixer::init_state(std::int64_t batch, const torch::Device& device,
                                        torch::ScalarType dtype) {
  const auto state_dtype = sb::state_dtype(dtype);
  const auto opts = torch::TensorOptions().device(device).dtype(state_dtype);
  sb::MixerState state;
  state.tensors.push_back(torch::zeros({batch, n_heads_, head_dim_, head_dim_}, opts));  // H_kk
  state.tensors.push_back(torch::zeros({batch, n_heads_, head_dim_, head_dim_}, opts));  // H_kv
  state.tensors.push_back(q_conv1d->init_cache(batch, device, dtype));  // [B, D, c−1]
  state.tensors.push_back(k_conv1d->init_cache(batch, device, dtype));  // [B, D, c−1]
  state.position = 0;
  return state;
}

torch::Tensor MesaNetMixer::step(const torch::Tensor& x_t, sb::MixerState& state) {
  TORCH_CHECK(x_t.dim() == 2 && x_t.size(1) == d_model_, "mesa_net: expected x_t [B, ", d_model_,
              "], got ", x_t.sizes());
  TORCH_CHECK(state.tensors.size() == 4u,
              "mesa_net: the state does not come from this mixer's init_state");
  const auto B = x_t.size(0), H = n_heads_;
  auto& Hkk = state.tensors[0];  // [B, H, K, K]
  auto& Hkv = state.tensors[1];  // [B, H, K, V]
  const auto dt = Hkk.scalar_type();
  const auto q = sb::l2norm(split_heads(q_conv1d->step(q_proj(x_t), state.tensors[2]), H).to(dt));
  const auto k = sb::l2norm(split_heads(k_conv1d->step(k_proj(x_t), state.tensors[3]), H).to(dt));
  const auto v = split_heads(v_proj(x_t), H).to(dt);  // [B, H, V]
  const auto beta = torch::sigmoid(b_proj(x_t).to(dt)).view({B, H, 1, 1});
  const auto decay = torch::exp(torch::log_sigmoid(a_proj(x_t).to(dt))).view({B, H, 1, 1});
  Hkk = decay * Hkk + beta * k.unsqueeze(-1) * k.unsqueeze(-2);
  Hkv = decay * Hkv + beta * k.unsqueeze(-1) * v.unsqueeze(-2);
  const auto qs = mesa_cg_explicit(Hkk, lambda_like(Hkk), q, cg_steps_decoding_);  // [B, H, K]
  const auto o = torch::matmul(qs.unsqueeze(-2), Hkv).squeeze(-2);                 // [B, H, V]
  state.position += 1;
  return finish(o, x_t);  // [B, D]
}

std::int64_t MesaNetMixer::state_elements(std::int64_t /*seq_len*/) const {
  return 2 * n_heads_ * head_dim_ * head_dim_ + 2 * d_model_ * (conv_size_ - 1);
}

std::string MesaNetMixer::describe() const {
  std::ostringstream s;
  s << "mesa_net(d=" << d_model_ << ", H=" << n_heads_ << ", K=" << head_dim_
    << ", conv=" << conv_size_ << ", cg=" << cg_steps_training_ << "/" << cg_steps_decoding_
    << ", mode=" << (reference_mode_ ? "reference" : "chunk");
  if (!reference_mode_) s << ", chunk=" << chunk_size_;
  if (use_output_gate_) s << ", output gate";
  s << ")";
  return s.str();
}

// ---- descriptor ---------------------------------------------------------------------------------

sb::PluginDescriptor describe_mesa_net() {
  sb::PluginDescriptor d;
  d.name = "mesa_net";
  d.version = "1.0.0";
  d.summary =
      "MesaNet: per-token ridge regression of v on k, (H_kk + λ)⁻¹ solved by conjugate gradient; "
      "scalar forget gate per head";
  d.source =
      "von Oswald et al. 2025, MesaNet: Sequence Modeling by Locally Optimal Test-Time Training; "
      "fla's MesaNet layer";
  d.taxonomy.recurrence = sb::Recurrence::kLinear;
  d.taxonomy.gate = sb::Gate::kScalarPerHead;
  d.taxonomy.transition = sb::Transition::kDiagonal;
  d.taxonomy.state_expansion = sb::StateExpansion::kMatrixPerHead;
  d.taxonomy.memory = sb::Memory::kConstant;
  d.taxonomy.short_conv = true;
  d.capabilities.recurrent_step = true;
  d.capabilities.cuda = true;
  d.capabilities.bf16 = true;
  d.capabilities.reference_only = false;
  d.options = {
      sb::OptionSpec::integer("conv_size", 4, 2, 64, "kernel of the short convolutions on q and k"),
      sb::OptionSpec::integer("chunk_size", 64, 1, 4096, "time steps per chunk in mode \"chunk\""),
      sb::OptionSpec::integer("max_cg_step_training", 30, 0, 1000,
                              "conjugate-gradient steps per token in forward (and its backward)"),
      sb::OptionSpec::integer("max_cg_step_decoding", 30, 0, 1000,
                              "conjugate-gradient steps per token in step"),
      sb::OptionSpec::real("lambda_lower_bound", 0.25, 0.0, 100.0,
                           "λ = softplus(lambda_params) + this bound (λ starts at 1)"),
      sb::OptionSpec::real("norm_eps", 1e-5, 0.0, 1.0, "epsilon of the output RMSNorm"),
      sb::OptionSpec::boolean("use_output_gate", false,
                              "gate the normed output with silu(g_proj u) (fla's option)"),
      sb::OptionSpec::choice(
          "mode", "chunk", {"chunk", "reference"},
          "forward as the chunked form, or as the slow per-token reference loop"),
  };
  d.cuda_dtype = torch::kFloat32;
  d.factory = [](const sb::MixerContext& ctx) -> std::shared_ptr<sb::Mixer> {
    return std::make_shared<MesaNetMixer>(ctx);
  };
  return d;
}

}  // namespace sb::plugins
