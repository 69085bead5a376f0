// The s4d mixer (models.md §7.3); see s4d.hpp for the math and the parameters.
#include "s4d.hpp"

#include <torch/fft.h>

#include <cmath>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace sb::plugins {

S4DKernelImpl::S4DKernelImpl(std::int64_t channels, std::int64_t d_state, double dt_min,
                             double dt_max) {
  const auto modes = d_state / 2;  // N' complex modes; their conjugates are implied
  const double lo = std::log(dt_min), hi = std::log(dt_max);
  auto dt = torch::rand({channels}) * (hi - lo) + lo;            // [D]
  auto c = torch::randn({channels, modes, 2}) * std::sqrt(0.5);  // complex N(0, 1)
  C = register_parameter("C", c);
  log_dt = register_parameter("log_dt", dt);
  log_A_real = register_parameter("log_A_real", torch::full({channels, modes}, std::log(0.5)));
  A_imag = register_parameter(
      "A_imag", (M_PI * torch::arange(modes, torch::kFloat)).repeat({channels, 1}));  // [D, N']
}

namespace {
torch::Dtype system_dtype(torch::Dtype requested) {
  return requested == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}
}  // namespace

void S4DKernelImpl::to(torch::Device device, torch::Dtype dtype, bool non_blocking) {
  torch::nn::Module::to(device, system_dtype(dtype), non_blocking);
}

void S4DKernelImpl::to(torch::Dtype dtype, bool non_blocking) {
  torch::nn::Module::to(system_dtype(dtype), non_blocking);
}

S4DSystem S4DKernelImpl::system(torch::ScalarType dtype) const {
  const auto dt = torch::exp(log_dt.to(dtype)).unsqueeze(-1);  // Δ [D, 1]
  const auto a_re = -torch::exp(log_A_real.to(dtype));         // Re A [D, N']
  const auto a_im = A_imag.to(dtype);                          // Im A [D, N']
  S4DSystem s;
  s.log_re = a_re * dt;
  s.log_im = a_im * dt;
  const auto mag = torch::exp(s.log_re);
  s.decay_re = mag * torch::cos(s.log_im);
  s.decay_im = mag * torch::sin(s.log_im);
  // (e^{ΔA} − 1) / A = ((e^{ΔA} − 1) · conj A) / |A|²
  const auto num_re = s.decay_re - 1.0, num_im = s.decay_im;
  const auto abs2 = a_re * a_re + a_im * a_im;
  s.input_re = (num_re * a_re + num_im * a_im) / abs2;
  s.input_im = (num_im * a_re - num_re * a_im) / abs2;
  const auto c = C.to(dtype);
  s.c_re = c.select(-1, 0);
  s.c_im = c.select(-1, 1);
  return s;
}

torch::Tensor S4DKernelImpl::kernel(std::int64_t length, torch::ScalarType dtype) const {
  const auto s = system(dtype);
  // C' = C · (e^{ΔA} − 1)/A, then K[l] = 2·Re Σ_n C'_n e^{ΔA_n l}. The powers are taken directly
  // (exp of ΔA·l), not by repeated multiplication, so they do not accumulate rounding over l.
  const auto cp_re = s.c_re * s.input_re - s.c_im * s.input_im;  // [D, N']
  const auto cp_im = s.c_re * s.input_im + s.c_im * s.input_re;  // [D, N']
  const auto l = torch::arange(length, torch::TensorOptions().dtype(dtype).device(C.device()));
  const auto mag = torch::exp(s.log_re.unsqueeze(-1) * l);  // [D, N', T]
  const auto phase = s.log_im.unsqueeze(-1) * l;            // [D, N', T]
  const auto z_re = mag * torch::cos(phase), z_im = mag * torch::sin(phase);
  return 2.0 * (cp_re.unsqueeze(-1) * z_re - cp_im.unsqueeze(-1) * z_im).sum(1);  // [D, T]
}

S4DMixer::S4DMixer(const sb::MixerContext& ctx)
    : d_model_(ctx.d_model),
      d_state_(ctx.options.get_int("d_state")),
      dropout_(ctx.options.get_float("dropout")),
      relu_(ctx.options.get_string("activation") == "relu"),
      recurrent_mode_(ctx.options.get_string("mode") == "recurrent") {
  if (d_model_ <= 0) throw std::invalid_argument("s4d: d_model must be positive");
  if (d_state_ % 2 != 0) {
    throw std::invalid_argument(
        "s4d: d_state must be even (N/2 complex modes and their "
        "conjugates), got " +
        std::to_string(d_state_));
  }
  if (ctx.options.get_float("dt_min") > ctx.options.get_float("dt_max")) {
    throw std::invalid_argument("s4d: dt_min must not exceed dt_max");
  }
  const auto& mode = ctx.options.get_string("mode");
  if (mode != "fft" && mode != "recurrent") {
    throw std::invalid_argument("s4d: mode must be \"fft\" or \"recurrent\", not \"" + mode + "\"");
  }
  D = register_parameter("D", torch::randn({d_model_}));
  kernel = register_module("kernel", S4DKernel(d_model_, d_state_, ctx.options.get_float("dt_min"),
                                               ctx.options.get_float("dt_max")));
  output_linear = register_module(
      "output_linear", torch::nn::Sequential(
                           torch::nn::Conv1d(torch::nn::Conv1dOptions(d_model_, 2 * d_model_, 1))));
  if (recurrent_mode_) {
    ctx.warn("s4d: mode = \"recurrent\" runs forward as a sequential loop over time (slow)");
  }
}

torch::Tensor S4DMixer::output(const torch::Tensor& y, torch::ScalarType out_dtype) {
  auto z = relu_ ? torch::relu(y) : torch::gelu(y);  // [B, T, D]
  if (is_training() && dropout_ > 0.0) {
    // One mask per (sequence, channel), shared by all time steps (the reference's DropoutNd).
    const auto keep = torch::rand({z.size(0), 1, z.size(2)}, z.options()) < (1.0 - dropout_);
    z = z * keep.to(z.scalar_type()) / (1.0 - dropout_);
  }
  // The 1×1 convolution as a matmul: cuDNN would run a float32 convolution in TF32 by default.
  auto conv = output_linear->ptr<torch::nn::Conv1dImpl>(0);
  const auto w = conv->weight;                                                     // [2D, D, 1]
  const auto h = torch::linear(z.to(w.scalar_type()), w.squeeze(-1), conv->bias);  // [B, T, 2D]
  return torch::glu(h, -1).to(out_dtype);                                          // [B, T, D]
}

torch::Tensor S4DMixer::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == d_model_, "s4d: expected x [B, T, ", d_model_, "], got ",
              x.sizes());
  const auto T = x.size(1);
  const auto ct = sb::compute_dtype(x);
  if (T == 0) return torch::zeros_like(x);
  const auto u = x.transpose(1, 2).to(ct);  // [B, D, T]
  torch::Tensor y;
  if (recurrent_mode_) {
    auto state = init_state(x.size(0), x.device(), ct);
    const auto s = kernel->system(ct);
    std::vector<torch::Tensor> ys;
    auto x_re = state.tensors[0], x_im = state.tensors[1];  // [B, D, N']
    for (std::int64_t t = 0; t < T; ++t) {
      const auto u_t = u.select(2, t).unsqueeze(-1);  // [B, D, 1]
      auto re = s.decay_re * x_re - s.decay_im * x_im + s.input_re * u_t;
      auto im = s.decay_re * x_im + s.decay_im * x_re + s.input_im * u_t;
      x_re = re;
      x_im = im;
      ys.push_back(2.0 * (s.c_re * x_re - s.c_im * x_im).sum(-1));  // [B, D]
    }
    y = torch::stack(ys, 2);  // [B, D, T]
  } else {
    const auto K = kernel->kernel(T, ct);                      // [D, T]
    const auto u_f = torch::fft::rfft(u, 2 * T);               // [B, D, T + 1]
    const auto k_f = torch::fft::rfft(K, 2 * T);               // [D, T + 1]
    y = torch::fft::irfft(u_f * k_f, 2 * T).narrow(-1, 0, T);  // [B, D, T], causal part
  }
  y = y + u * D.to(ct).unsqueeze(-1);                 // D skip, [B, D, T]
  return output(y.transpose(1, 2), x.scalar_type());  // [B, T, D]
}

sb::MixerState S4DMixer::init_state(std::int64_t batch, const torch::Device& device,
                                    torch::ScalarType dtype) {
  const auto state_dtype = sb::state_dtype(dtype);
  const auto opts = torch::TensorOptions().device(device).dtype(state_dtype);
  sb::MixerState state;
  state.tensors.push_back(torch::zeros({batch, d_model_, d_state_ / 2}, opts));  // Re x
  state.tensors.push_back(torch::zeros({batch, d_model_, d_state_ / 2}, opts));  // Im x
  state.position = 0;
  return state;
}

torch::Tensor S4DMixer::step(const torch::Tensor& x_t, sb::MixerState& state) {
  TORCH_CHECK(x_t.dim() == 2 && x_t.size(1) == d_model_, "s4d: expected x_t [B, ", d_model_,
              "], got ", x_t.sizes());
  TORCH_CHECK(state.tensors.size() == 2u,
              "s4d: the state does not come from this mixer's init_state");
  auto& x_re = state.tensors[0];  // [B, D, N']
  auto& x_im = state.tensors[1];  // [B, D, N']
  const auto dt = x_re.scalar_type();
  const auto s = kernel->system(dt);
  const auto u = x_t.to(dt);         // [B, D]
  const auto u_n = u.unsqueeze(-1);  // [B, D, 1]
  auto re = s.decay_re * x_re - s.decay_im * x_im + s.input_re * u_n;
  auto im = s.decay_re * x_im + s.decay_im * x_re + s.input_im * u_n;
  x_re = re;
  x_im = im;
  const auto y = 2.0 * (s.c_re * x_re - s.c_im * x_im).sum(-1) + D.to(dt) * u;  // [B, D]
  state.position += 1;
  return output(y.unsqueeze(1), x_t.scalar_type()).squeeze(1);  // [B, D]
}

std::int64_t S4DMixer::state_elements(std::int64_t /*seq_len*/) const {
  return d_model_ * d_state_;
}

std::string S4DMixer::describe() const {
  std::ostringstream s;
  s << "s4d(d=" << d_model_ << ", N=" << d_state_ << ", act=" << (relu_ ? "relu" : "gelu")
    << ", dropout=" << dropout_ << ", mode=" << (recurrent_mode_ ? "recurrent" : "fft") << ")";
  return s.str();
}

// ---- descriptor ---------------------------------------------------------------------------------

sb::PluginDescriptor describe_s4d() {
  sb::PluginDescriptor d;
  d.name = "s4d";
  d.version = "1.0.0";
  d.summary = "S4D: diagonal complex state space per channel, time-invariant, FFT convolution";
  d.source =
      "Gu et al. 2022, On the Parameterization and Initialization of Diagonal State Space Models; "
      "the reference's in-repo S4D (model `s4`)";
  d.taxonomy.recurrence = sb::Recurrence::kLinear;
  d.taxonomy.gate = sb::Gate::kFixedDecay;
  d.taxonomy.transition = sb::Transition::kDiagonal;
  d.taxonomy.state_expansion = sb::StateExpansion::kVectorPerChannel;
  d.taxonomy.memory = sb::Memory::kConstant;
  d.taxonomy.short_conv = false;
  d.capabilities.recurrent_step = true;
  d.capabilities.cuda = true;
  d.capabilities.bf16 = true;
  d.capabilities.reference_only = false;
  d.options = {
      sb::OptionSpec::integer("d_state", 64, 2, 4096,
                              "N: state size per channel, N/2 complex modes (even)"),
      sb::OptionSpec::real("dt_min", 0.001, 1e-6, 1.0, "smallest initial step size Δ"),
      sb::OptionSpec::real("dt_max", 0.1, 1e-6, 10.0, "largest initial step size Δ"),
      sb::OptionSpec::real("dropout", 0.2, 0.0, 0.99,
                           "dropout inside the layer, one mask per sequence and channel (the "
                           "reference passes the network's dropout, 0.2)"),
      sb::OptionSpec::choice("activation", "gelu", {"gelu", "relu"},
                             "after the convolution: GELU (the reference's act_function 'none') "
                             "or ReLU"),
      sb::OptionSpec::choice("mode", "fft", {"fft", "recurrent"},
                             "forward as the FFT convolution, or as the slow sequential loop"),
  };
  d.cuda_dtype = torch::kFloat32;
  d.factory = [](const sb::MixerContext& ctx) -> std::shared_ptr<sb::Mixer> {
    return std::make_shared<S4DMixer>(ctx);
  };
  return d;
}

}  // namespace sb::plugins
