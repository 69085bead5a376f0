// The mamba mixer (models.md §4.2); see mamba.hpp for the math and the parameters.
#include "mamba.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace sb::plugins {

namespace {

torch::ScalarType compute_dtype(const torch::Tensor& x) {
  return x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

}  // namespace

MambaMixer::MambaMixer(const sb::MixerContext& ctx)
    : d_model_(ctx.d_model),
      inner_(ctx.d_model * ctx.options.get_int("expand")),
      d_state_(ctx.options.get_int("d_state")),
      dt_rank_(ctx.options.get_int("dt_rank") > 0 ? ctx.options.get_int("dt_rank")
                                                  : (ctx.d_model + 15) / 16),
      conv_size_(ctx.options.get_int("conv_size")),
      checkpoint_every_(ctx.options.get_int("checkpoint_every")),
      reference_mode_(ctx.options.get_string("mode") == "reference") {
  if (d_model_ <= 0) throw std::invalid_argument("mamba: d_model must be positive");
  const auto E = inner_, N = d_state_, R = dt_rank_;
  auto no_bias = [](std::int64_t in, std::int64_t out) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
  };
  in_proj = register_module("in_proj", no_bias(d_model_, 2 * E));
  conv1d = register_module("conv1d", sb::ShortConv(E, conv_size_, /*bias=*/true, /*silu=*/true));
  x_proj = register_module("x_proj", no_bias(E, R + 2 * N));
  dt_proj = register_module("dt_proj", torch::nn::Linear(R, E));
  {
    torch::NoGradGuard no_grad;
    const double bound = 1.0 / std::sqrt(double(R));  // dt_init = "random", dt_scale = 1
    dt_proj->weight.uniform_(-bound, bound);
    dt_proj->bias.copy_(sb::step_size_bias(E, ctx.options.get_float("dt_min"),
                                           ctx.options.get_float("dt_max"),
                                           ctx.options.get_float("dt_init_floor")));  // [E]
    A_log = register_parameter("A_log",
                               torch::log(torch::arange(1, N + 1, torch::kFloat)).repeat({E, 1}));
    D = register_parameter("D", torch::ones({E}));
  }
  out_proj = register_module("out_proj", no_bias(E, d_model_));
  if (reference_mode_) {
    ctx.warn("mamba: mode = \"reference\" runs forward as an autograd loop over time (slow)");
  }
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> MambaMixer::selection(
    const torch::Tensor& xc) {
  const auto dbc = x_proj(xc);                                        // [..., R + 2N]
  const auto delta_in = dbc.narrow(-1, 0, dt_rank_);                  // [..., R]
  const auto B = dbc.narrow(-1, dt_rank_, d_state_);                  // [..., N]
  const auto C = dbc.narrow(-1, dt_rank_ + d_state_, d_state_);       // [..., N]
  const auto ct = compute_dtype(xc);
  const auto delta = torch::softplus(dt_proj(delta_in).to(ct));       // [..., E] > 0
  return {delta, B, C};
}

torch::Tensor MambaMixer::forward(const torch::Tensor& u) {
  TORCH_CHECK(u.dim() == 3 && u.size(2) == d_model_, "mamba: expected x [B, T, ", d_model_,
              "], got ", u.sizes());
  const auto E = inner_;
  const auto xz = in_proj(u);                      // [B, T, 2E]
  const auto xc = conv1d(xz.narrow(-1, 0, E));     // [B, T, E]
  const auto z = xz.narrow(-1, E, E);              // [B, T, E]
  const auto [delta, B, C] = selection(xc);        // [B, T, E], [B, T, N], [B, T, N]
  const auto ct = delta.scalar_type();
  const auto A = -torch::exp(A_log.to(ct));        // [E, N]
  auto y = reference_mode_
               ? sb::selective_scan_reference(xc.to(ct), delta, A, B, C).output
               : sb::selective_scan(xc.to(ct), delta, A, B, C, {}, checkpoint_every_).output;  // [B, T, E]
  y = y + D.to(ct) * xc.to(ct);                                                            // D skip
  return out_proj((y * torch::silu(z.to(ct))).to(u.scalar_type()));                       // [B, T, D]
}

sb::MixerState MambaMixer::init_state(std::int64_t batch, const torch::Device& device,
                                      torch::ScalarType dtype) {
  const auto state_dtype = dtype == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  sb::MixerState state;
  state.tensors.push_back(torch::zeros({batch, inner_, d_state_},
                                       torch::TensorOptions().device(device).dtype(state_dtype)));
  state.tensors.push_back(conv1d->init_cache(batch, device, dtype));  // [B, E, conv − 1]
  return state;
}

torch::Tensor MambaMixer::step(const torch::Tensor& u_t, sb::MixerState& state) {
  TORCH_CHECK(u_t.dim() == 2 && u_t.size(1) == d_model_, "mamba: expected x_t [B, ", d_model_,
              "], got ", u_t.sizes());
  TORCH_CHECK(state.tensors.size() == 2, "mamba: the state does not come from init_state");
  const auto E = inner_;
  const auto xz = in_proj(u_t);                                         // [B, 2E]
  const auto xc = conv1d->step(xz.narrow(-1, 0, E), state.tensors[1]);  // [B, E]
  const auto z = xz.narrow(-1, E, E);                                   // [B, E]
  const auto [delta, B, C] = selection(xc);
  auto& h = state.tensors[0];                                           // [B, E, N]
  const auto st = h.scalar_type();
  const auto A = -torch::exp(A_log.to(st));
  auto y = sb::selective_scan_step(xc.to(st), delta.to(st), A, B, C, h);  // [B, E]
  y = y + D.to(st) * xc.to(st);
  state.position += 1;
  return out_proj((y * torch::silu(z.to(st))).to(u_t.scalar_type()));
}

std::int64_t MambaMixer::state_elements(std::int64_t) const {
  return inner_ * d_state_ + inner_ * (conv_size_ - 1);
}

std::string MambaMixer::describe() const {
  std::ostringstream s;
  s << "mamba(d=" << d_model_ << ", E=" << inner_ << ", N=" << d_state_ << ", R=" << dt_rank_
    << ", mode=" << (reference_mode_ ? "reference" : "scan") << ")";
  return s.str();
}

sb::PluginDescriptor describe_mamba() {
  sb::PluginDescriptor d;
  d.name = "mamba";
  d.version = "1.0.0";
  d.summary = "Mamba: selective state space, input-dependent decay per channel and state";
  d.source = "Gu & Dao 2023, Mamba; mamba_ssm's Mamba layer (v2.2.4, mamba_simple)";
  d.taxonomy.recurrence = sb::Recurrence::kLinear;
  d.taxonomy.gate = sb::Gate::kVectorPerChannel;
  d.taxonomy.transition = sb::Transition::kDiagonal;
  d.taxonomy.state_expansion = sb::StateExpansion::kVectorPerChannel;
  d.taxonomy.memory = sb::Memory::kConstant;
  d.taxonomy.short_conv = true;
  d.options = {
      sb::OptionSpec::integer("d_state", 128, 1, 4096, "N, states per channel (task 3: 64)"),
      sb::OptionSpec::integer("expand", 2, 1, 16, "inner width E = expand · d_model"),
      sb::OptionSpec::integer("dt_rank", 0, 0, 65536, "R; 0: ceil(d_model / 16) as the reference"),
      sb::OptionSpec::integer("conv_size", 4, 2, 64, "kernel of the short convolution"),
      sb::OptionSpec::real("dt_min", 1e-3, 1e-8, 10.0, "lower end of Δ at initialisation"),
      sb::OptionSpec::real("dt_max", 0.1, 1e-8, 10.0, "upper end of Δ at initialisation"),
      sb::OptionSpec::real("dt_init_floor", 1e-4, 0.0, 1.0, "floor of Δ at initialisation"),
      sb::OptionSpec::integer("checkpoint_every", 16, 1, 1 << 20,
                              "scan states kept for backward every this many steps (memory vs time)"),
      sb::OptionSpec::choice("mode", "scan", {"scan", "reference"},
                             "forward with the selective scan, or the slow autograd loop"),
  };
  d.factory = [](const sb::MixerContext& ctx) { return std::make_shared<MambaMixer>(ctx); };
  return d;
}

}  // namespace sb::plugins
