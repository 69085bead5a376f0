// The mamba mixer (models.md §4.2); see mamba.hpp for the math and the parameters.
#include "mamba.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

// Defined to 1 by the build where the fused CUDA kernels are compiled (plugins/CMakeLists.txt).
#ifndef SELECTIVBENCH_MAMBA_CUDA
#define SELECTIVBENCH_MAMBA_CUDA 0
#endif

#if SELECTIVBENCH_MAMBA_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/csrc/autograd/custom_function.h>

#include "selective_scan_cuda.hpp"
#endif

namespace sb::plugins {

#if SELECTIVBENCH_MAMBA_CUDA
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void check_launch(const char* what) {
  const std::string error = cuda_scan::last_error();
  TORCH_CHECK(error.empty(), "mamba: the fused CUDA scan's ", what, " kernel failed: ", error);
}

class FusedScanFunction : public torch::autograd::Function<FusedScanFunction> {
 public:
  // Float32, contiguous, CUDA. Returns {y [B, T, E]}.
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& delta, const torch::Tensor& A,
                               const torch::Tensor& B, const torch::Tensor& C) {
    const c10::cuda::CUDAGuard guard(x.device());
    const auto N = A.size(1);
    const cuda_scan::Shape shape{x.size(0), x.size(1), x.size(2), N,
                                 cuda_scan::checkpoint_interval(N)};
    auto y = torch::empty_like(x);  // [B, T, E]
    auto checkpoints = torch::empty(
        {(shape.steps + shape.every - 1) / shape.every, shape.batch, shape.channels, N},
        x.options());  // [K, B, E, N]
    cuda_scan::forward(x.data_ptr<float>(), delta.data_ptr<float>(), A.data_ptr<float>(),
                       B.data_ptr<float>(), C.data_ptr<float>(), y.data_ptr<float>(),
                       checkpoints.data_ptr<float>(), shape,
                       c10::cuda::getCurrentCUDAStream(x.device().index()).stream());
    check_launch("forward");
    ctx->save_for_backward({x, delta, A, B, C, checkpoints});
    return {y};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &delta = saved[1], &A = saved[2], &B = saved[3], &C = saved[4];
    const auto& checkpoints = saved[5];
    const c10::cuda::CUDAGuard guard(x.device());
    const auto dy =
        grads[0].defined() ? grads[0].to(torch::kFloat32).contiguous() : torch::zeros_like(x);
    const auto N = A.size(1);
    const cuda_scan::Shape shape{x.size(0), x.size(1), x.size(2), N,
                                 cuda_scan::checkpoint_interval(N)};
    auto dx = torch::empty_like(x), ddelta = torch::empty_like(delta);
    auto dA = torch::zeros_like(A), dB = torch::zeros_like(B), dC = torch::zeros_like(C);
    cuda_scan::backward(x.data_ptr<float>(), delta.data_ptr<float>(), A.data_ptr<float>(),
                        B.data_ptr<float>(), C.data_ptr<float>(), checkpoints.data_ptr<float>(),
                        dy.data_ptr<float>(), dx.data_ptr<float>(), ddelta.data_ptr<float>(),
                        dA.data_ptr<float>(), dB.data_ptr<float>(), dC.data_ptr<float>(), shape,
                        c10::cuda::getCurrentCUDAStream(x.device().index()).stream());
    check_launch("backward");
    return {dx, ddelta, dA, dB, dC};
  }
};

}  // namespace
#endif

bool fused_cuda_scan_built() {
  return SELECTIVBENCH_MAMBA_CUDA != 0;
}

torch::Tensor selective_scan_fused_cuda(const torch::Tensor& x, const torch::Tensor& delta,
                                        const torch::Tensor& A, const torch::Tensor& B,
                                        const torch::Tensor& C) {
#if SELECTIVBENCH_MAMBA_CUDA
  TORCH_CHECK(x.is_cuda() && x.dim() == 3 && delta.sizes() == x.sizes() && A.dim() == 2 &&
                  A.size(0) == x.size(2) && B.dim() == 3 && C.sizes() == B.sizes() &&
                  B.size(0) == x.size(0) && B.size(1) == x.size(1) && B.size(2) == A.size(1),
              "selective_scan_fused_cuda: expected CUDA x, delta [B, T, E], A [E, N], B, C "
              "[B, T, N]; got ",
              x.sizes(), ", ", delta.sizes(), ", ", A.sizes(), ", ", B.sizes(), ", ", C.sizes());
  TORCH_CHECK(A.size(1) <= cuda_scan::kMaxStates, "selective_scan_fused_cuda: N = ", A.size(1),
              " exceeds ", cuda_scan::kMaxStates);
  if (x.size(1) == 0) return torch::zeros(x.sizes(), x.options().dtype(torch::kFloat32));
  auto f = [](const torch::Tensor& t) { return t.to(torch::kFloat32).contiguous(); };
  return FusedScanFunction::apply(f(x), f(delta), f(A), f(B), f(C))[0];
#else
  (void)x, (void)delta, (void)A, (void)B, (void)C;
  TORCH_CHECK(false,
              "selective_scan_fused_cuda: this build has no fused CUDA kernels (it needs "
              "LibTorch with CUDA and nvcc; SELECTIVBENCH_CUDA_KERNELS)");
#endif
}

MambaMixer::MambaMixer(const sb::MixerContext& ctx)
    : d_model_(ctx.d_model),
      inner_(ctx.d_model * ctx.options.get_int("expand")),
      d_state_(ctx.options.get_int("d_state")),
      dt_rank_(ctx.options.get_int("dt_rank") > 0 ? ctx.options.get_int("dt_rank")
                                                  : (ctx.d_model + 15) / 16),
      conv_size_(ctx.options.get_int("conv_size")),
      checkpoint_every_(ctx.options.get_int("checkpoint_every")),
      reference_mode_(ctx.options.get_string("mode") == "reference"),
      fused_cuda_(ctx.options.get_bool("fused_cuda")) {
  if (d_model_ <= 0) throw std::invalid_argument("mamba: d_model must be positive");
  const auto E = inner_, N = d_state_, R = dt_rank_;
  in_proj = register_module("in_proj", sb::linear_no_bias(d_model_, 2 * E));
  conv1d = register_module("conv1d", sb::ShortConv(E, conv_size_, /*bias=*/true, /*silu=*/true));
  x_proj = register_module("x_proj", sb::linear_no_bias(E, R + 2 * N));
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
  out_proj = register_module("out_proj", sb::linear_no_bias(E, d_model_));
  if (reference_mode_) {
    ctx.warn("mamba: mode = \"reference\" runs forward as an autograd loop over time (slow)");
  }
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> MambaMixer::selection(
    const torch::Tensor& xc) {
  const auto dbc = x_proj(xc);                                   // [..., R + 2N]
  const auto delta_in = dbc.narrow(-1, 0, dt_rank_);             // [..., R]
  const auto B = dbc.narrow(-1, dt_rank_, d_state_);             // [..., N]
  const auto C = dbc.narrow(-1, dt_rank_ + d_state_, d_state_);  // [..., N]
  const auto ct = sb::compute_dtype(xc);
  const auto delta = torch::softplus(dt_proj(delta_in).to(ct));  // [..., E] > 0
  return {delta, B, C};
}

torch::Tensor MambaMixer::forward(const torch::Tensor& u) {
  TORCH_CHECK(u.dim() == 3 && u.size(2) == d_model_, "mamba: expected x [B, T, ", d_model_,
              "], got ", u.sizes());
  const auto E = inner_;
  const auto xz = in_proj(u);                   // [B, T, 2E]
  const auto xc = conv1d(xz.narrow(-1, 0, E));  // [B, T, E]
  const auto z = xz.narrow(-1, E, E);           // [B, T, E]
  const auto [delta, B, C] = selection(xc);     // [B, T, E], [B, T, N], [B, T, N]
  const auto ct = delta.scalar_type();
  const auto A = -torch::exp(A_log.to(ct));  // [E, N]
  const bool fused = !reference_mode_ && fused_cuda_ && fused_cuda_scan_built() && u.is_cuda() &&
                     ct == torch::kFloat32 && d_state_ <= 256;
  auto y = reference_mode_ ? sb::selective_scan_reference(xc.to(ct), delta, A, B, C).output
           : fused         ? selective_scan_fused_cuda(xc, delta, A, B, C)
                           : sb::selective_scan(xc.to(ct), delta, A, B, C, {}, checkpoint_every_)
                         .output;                                    // [B, T, E]
  y = y + D.to(ct) * xc.to(ct);                                      // D skip
  return out_proj((y * torch::silu(z.to(ct))).to(u.scalar_type()));  // [B, T, D]
}

sb::MixerState MambaMixer::init_state(std::int64_t batch, const torch::Device& device,
                                      torch::ScalarType dtype) {
  const auto state_dtype = sb::state_dtype(dtype);
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
  auto& h = state.tensors[0];  // [B, E, N]
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
      sb::OptionSpec::integer(
          "checkpoint_every", 16, 1, 1 << 20,
          "scan states kept for backward every this many steps (memory vs time)"),
      sb::OptionSpec::choice("mode", "scan", {"scan", "reference"},
                             "forward with the selective scan, or the slow autograd loop"),
      sb::OptionSpec::boolean("fused_cuda", true,
                              "on CUDA, the scan as one fused kernel where the build has it "
                              "(false: the SDK's scan of whole-tensor steps)"),
  };
  d.factory = [](const sb::MixerContext& ctx) { return std::make_shared<MambaMixer>(ctx); };
  return d;
}

}  // namespace sb::plugins
