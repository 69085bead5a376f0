// The mamba2 mixer (models.md §4.3); see mamba2.hpp for the math and the parameters.
#include "mamba2.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace sb::plugins {

Mamba2Mixer::Mamba2Mixer(const sb::MixerContext& ctx)
    : d_model_(ctx.d_model),
      inner_(ctx.d_model * ctx.options.get_int("expand")),
      head_dim_(ctx.options.get_int("headdim") > 0 ? ctx.options.get_int("headdim")
                                                   : ctx.d_model / std::max<std::int64_t>(1, ctx.n_heads)),
      n_heads_(0),
      d_state_(ctx.options.get_int("d_state")),
      conv_size_(ctx.options.get_int("conv_size")),
      chunk_size_(ctx.options.get_int("chunk_size")),
      recurrent_mode_(ctx.options.get_string("mode") == "recurrent") {
  if (d_model_ <= 0 || ctx.n_heads <= 0) {
    throw std::invalid_argument("mamba2: d_model and n_heads must be positive");
  }
  if (head_dim_ <= 0 || inner_ % head_dim_ != 0) {
    throw std::invalid_argument("mamba2: the inner width expand·d_model = " +
                                std::to_string(inner_) + " is not a multiple of the head width " +
                                std::to_string(head_dim_));
  }
  n_heads_ = inner_ / head_dim_;
  const auto E = inner_, N = d_state_, h = n_heads_;

  in_proj = register_module(
      "in_proj", sb::linear_no_bias(d_model_, 2 * E + 2 * N + h));
  conv1d = register_module("conv1d", sb::ShortConv(E + 2 * N, conv_size_, /*bias=*/true,
                                                   /*silu=*/true));
  {
    torch::NoGradGuard no_grad;
    // Δ at init log-uniform in [dt_min, dt_max], floored; dt_bias is its softplus inverse.
    dt_bias = register_parameter(
        "dt_bias", sb::step_size_bias(h, ctx.options.get_float("dt_min"),
                                      ctx.options.get_float("dt_max"),
                                      ctx.options.get_float("dt_init_floor")));  // [h]
    const double a_lo = ctx.options.get_float("A_init_min");
    const double a_hi = ctx.options.get_float("A_init_max");
    A_log = register_parameter("A_log", torch::log(torch::rand({h}) * (a_hi - a_lo) + a_lo));
    D = register_parameter("D", torch::ones({h}));
  }
  norm = register_module("norm", sb::RMSNorm(E, ctx.options.get_float("norm_eps")));
  out_proj = register_module("out_proj",
                             sb::linear_no_bias(E, d_model_));
  if (recurrent_mode_) {
    ctx.warn("mamba2: mode = \"recurrent\" runs forward as a sequential loop over time (slow)");
  }
}

Mamba2Mixer::ScanInputs Mamba2Mixer::scan_inputs(const torch::Tensor& xbc,
                                                 const torch::Tensor& dt) const {
  // xbc [..., E + 2N] after conv + SiLU; dt [..., h] raw.
  const auto E = inner_, N = d_state_, h = n_heads_, P = head_dim_;
  std::vector<std::int64_t> lead(xbc.sizes().begin(), xbc.sizes().end() - 1);
  const auto shaped = [&](std::initializer_list<std::int64_t> tail) {
    auto s = lead;
    s.insert(s.end(), tail);
    return s;
  };
  const auto x = xbc.narrow(-1, 0, E).reshape(shaped({h, P}));                   // [..., h, P]
  const auto b = xbc.narrow(-1, E, N).unsqueeze(-2).expand(shaped({h, N}));       // [..., h, N]
  const auto c = xbc.narrow(-1, E + N, N).unsqueeze(-2).expand(shaped({h, N}));   // [..., h, N]
  // The scan runs in float32 (float64 for float64 inputs), whatever the activations' dtype.
  const auto ct = xbc.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  const auto delta = torch::softplus(dt.to(ct) + dt_bias.to(ct));                 // [..., h]
  const auto a = -torch::exp(A_log.to(ct));                                        // [h]
  const auto g = (delta * a).unsqueeze(-1).expand(shaped({h, N}));                // [..., h, N] ≤ 0
  const auto v = x.to(ct) * delta.unsqueeze(-1);                                  // [..., h, P]
  return {c, b, v, g, x};
}

torch::Tensor Mamba2Mixer::output(const torch::Tensor& y, const torch::Tensor& z) {
  const auto gated = y * torch::silu(z.to(y.scalar_type()));  // [..., E], the gate before the norm
  return out_proj(norm(gated).to(z.scalar_type()));           // [..., D]
}

torch::Tensor Mamba2Mixer::forward(const torch::Tensor& u) {
  TORCH_CHECK(u.dim() == 3 && u.size(2) == d_model_, "mamba2: expected x [B, T, ", d_model_,
              "], got ", u.sizes());
  const auto Bsz = u.size(0), T = u.size(1), E = inner_, N = d_state_, h = n_heads_;
  const auto zxbcdt = in_proj(u);                          // [B, T, 2E + 2N + h]
  const auto z = zxbcdt.narrow(-1, 0, E);                  // [B, T, E]
  const auto xbc = conv1d(zxbcdt.narrow(-1, E, E + 2 * N));  // [B, T, E + 2N]
  const auto dt = zxbcdt.narrow(-1, 2 * E + 2 * N, h);     // [B, T, h]
  const auto in = scan_inputs(xbc, dt);
  const auto ct = in.v.scalar_type();
  const auto q = in.q.to(ct), k = in.k.to(ct);
  auto y = recurrent_mode_ ? sb::gla_reference(q, k, in.v, in.g).output
                           : sb::gla_scalar_chunked(q, k, in.v, in.g.select(-1, 0), {},
                                                    chunk_size_)
                                 .output;  // [B, T, h, P]
  y = y + D.to(ct).view({h, 1}) * in.x.to(ct);  // the D skip
  return output(y.reshape({Bsz, T, E}), z);
}

sb::MixerState Mamba2Mixer::init_state(std::int64_t batch, const torch::Device& device,
                                       torch::ScalarType dtype) {
  const auto state_dtype = sb::state_dtype(dtype);
  sb::MixerState state;
  state.tensors.push_back(torch::zeros({batch, n_heads_, d_state_, head_dim_},
                                       torch::TensorOptions().device(device).dtype(state_dtype)));
  state.tensors.push_back(conv1d->init_cache(batch, device, dtype));  // [B, E + 2N, conv − 1]
  return state;
}

torch::Tensor Mamba2Mixer::step(const torch::Tensor& u_t, sb::MixerState& state) {
  TORCH_CHECK(u_t.dim() == 2 && u_t.size(1) == d_model_, "mamba2: expected x_t [B, ", d_model_,
              "], got ", u_t.sizes());
  TORCH_CHECK(state.tensors.size() == 2, "mamba2: the state does not come from init_state");
  const auto E = inner_, N = d_state_, h = n_heads_;
  const auto zxbcdt = in_proj(u_t);                                         // [B, 2E + 2N + h]
  const auto z = zxbcdt.narrow(-1, 0, E);                                   // [B, E]
  const auto xbc = conv1d->step(zxbcdt.narrow(-1, E, E + 2 * N), state.tensors[1]);  // [B, E + 2N]
  const auto in = scan_inputs(xbc, zxbcdt.narrow(-1, 2 * E + 2 * N, h));
  auto& S = state.tensors[0];  // [B, h, N, P]
  const auto st = S.scalar_type();
  auto y = sb::gla_step(in.q.to(st), in.k.to(st), in.v.to(st), in.g.to(st), S);  // [B, h, P]
  y = y + D.to(st).view({h, 1}) * in.x.to(st);
  state.position += 1;
  return output(y.reshape({u_t.size(0), E}), z);
}

std::int64_t Mamba2Mixer::state_elements(std::int64_t) const {
  return n_heads_ * d_state_ * head_dim_ + (inner_ + 2 * d_state_) * (conv_size_ - 1);
}

std::string Mamba2Mixer::describe() const {
  std::ostringstream s;
  s << "mamba2(d=" << d_model_ << ", E=" << inner_ << ", heads=" << n_heads_ << ", P=" << head_dim_
    << ", N=" << d_state_ << ", mode=" << (recurrent_mode_ ? "recurrent" : "chunk")
    << ", chunk=" << chunk_size_ << ")";
  return s.str();
}

sb::PluginDescriptor describe_mamba2() {
  sb::PluginDescriptor d;
  d.name = "mamba2";
  d.version = "1.0.0";
  d.summary = "Mamba-2: selective state space with a scalar decay per head (state-space dual form)";
  d.source = "Dao & Gu 2024, Transformers are SSMs; mamba_ssm's Mamba2 layer (v2.2.4)";
  d.taxonomy.recurrence = sb::Recurrence::kLinear;
  d.taxonomy.gate = sb::Gate::kScalarPerHead;
  d.taxonomy.transition = sb::Transition::kDiagonal;
  d.taxonomy.state_expansion = sb::StateExpansion::kMatrixPerHead;
  d.taxonomy.memory = sb::Memory::kConstant;
  d.taxonomy.short_conv = true;
  d.options = {
      sb::OptionSpec::integer("d_state", 128, 1, 4096, "N, state width per head (task 3: 64)"),
      sb::OptionSpec::integer("expand", 2, 1, 16, "inner width E = expand · d_model"),
      sb::OptionSpec::integer("headdim", 0, 0, 65536,
                              "head width P; 0: d_model / n_heads, as the reference passes it"),
      sb::OptionSpec::integer("conv_size", 4, 2, 64, "kernel of the short convolution"),
      sb::OptionSpec::real("dt_min", 1e-3, 1e-8, 10.0, "lower end of Δ at initialisation"),
      sb::OptionSpec::real("dt_max", 0.1, 1e-8, 10.0, "upper end of Δ at initialisation"),
      sb::OptionSpec::real("dt_init_floor", 1e-4, 0.0, 1.0, "floor of Δ at initialisation"),
      sb::OptionSpec::real("A_init_min", 1.0, 1e-6, 1e6, "A = −U(A_init_min, A_init_max)"),
      sb::OptionSpec::real("A_init_max", 16.0, 1e-6, 1e6, "A = −U(A_init_min, A_init_max)"),
      sb::OptionSpec::real("norm_eps", 1e-5, 0.0, 1.0, "epsilon of the gated RMSNorm"),
      sb::OptionSpec::integer("chunk_size", 64, 1, 4096, "time steps per chunk in mode \"chunk\""),
      sb::OptionSpec::choice("mode", "chunk", {"chunk", "recurrent"},
                             "forward as the chunked form, or as the slow sequential loop"),
  };
  d.factory = [](const sb::MixerContext& ctx) { return std::make_shared<Mamba2Mixer>(ctx); };
  return d;
}

}  // namespace sb::plugins
