// Causal depthwise short convolution (see blocks/short_conv.hpp for the math).
#include "selectivbench/blocks/short_conv.hpp"

#include <cmath>
#include <vector>

namespace sb {

namespace {

// The parameter in the dtype of the activations it is applied to (no copy when they agree).
torch::Tensor as_dtype_of(const torch::Tensor& p, const torch::Tensor& x) {
  return p.defined() && p.scalar_type() != x.scalar_type() ? p.to(x.scalar_type()) : p;
}

}  // namespace

ShortConvImpl::ShortConvImpl(std::int64_t channels, std::int64_t kernel, bool bias, bool silu)
    : channels_(channels), kernel_(kernel), silu_(silu) {
  TORCH_CHECK(channels > 0, "ShortConv: channels must be positive, got ", channels);
  TORCH_CHECK(kernel > 0, "ShortConv: kernel must be positive, got ", kernel);
  // PyTorch's Conv1d default: kaiming_uniform(a = √5) on the weight, i.e. U(±1/√fan_in), and
  // U(±1/√fan_in) on the bias; a depthwise kernel has fan_in = (in_channels / groups) · K = K.
  const double bound = 1.0 / std::sqrt(static_cast<double>(kernel));
  torch::NoGradGuard no_grad;
  weight =
      register_parameter("weight", torch::empty({channels, 1, kernel}).uniform_(-bound, bound));
  if (bias) {
    this->bias = register_parameter("bias", torch::empty({channels}).uniform_(-bound, bound));
  }
}

torch::Tensor ShortConvImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == channels_, "ShortConv: expected x [B, T, ", channels_,
              "], got ", x.sizes());
  const auto T = x.size(1);
  // [B, C, T]; padding K-1 on both sides and keeping the first T outputs is the causal (left
  // padded) convolution: output t sees inputs t-K+1 .. t.
  auto y = torch::conv1d(x.transpose(1, 2), as_dtype_of(weight, x), as_dtype_of(bias, x),
                         /*stride=*/1, /*padding=*/kernel_ - 1, /*dilation=*/1,
                         /*groups=*/channels_);
  y = y.narrow(2, 0, T).transpose(1, 2);
  return silu_ ? torch::silu(y) : y;
}

torch::Tensor ShortConvImpl::init_cache(std::int64_t batch, const torch::Device& device,
                                        torch::ScalarType dtype) const {
  return torch::zeros({batch, channels_, kernel_ - 1},
                      torch::TensorOptions().device(device).dtype(dtype));
}

torch::Tensor ShortConvImpl::step(const torch::Tensor& x_t, torch::Tensor& cache) {
  TORCH_CHECK(x_t.dim() == 2 && x_t.size(1) == channels_, "ShortConv::step: expected x_t [B, ",
              channels_, "], got ", x_t.sizes());
  TORCH_CHECK(cache.dim() == 3 && cache.size(0) == x_t.size(0) && cache.size(1) == channels_ &&
                  cache.size(2) == kernel_ - 1,
              "ShortConv::step: expected cache [", x_t.size(0), ", ", channels_, ", ", kernel_ - 1,
              "], got ", cache.sizes());
  // window[:, :, j] = x_{t-K+1+j}: the cached inputs (oldest first), then the current one.
  auto window = torch::cat({cache.to(x_t.scalar_type()), x_t.unsqueeze(-1)}, -1);  // [B, C, K]
  auto y = (window * as_dtype_of(weight, x_t).squeeze(1)).sum(-1);                 // [B, C]
  if (bias.defined()) y = y + as_dtype_of(bias, x_t);
  cache = window.narrow(-1, 1, kernel_ - 1);  // a new tensor on the handle: autograd-safe
  return silu_ ? torch::silu(y) : y;
}

torch::Tensor short_conv_reference(const torch::Tensor& x, const torch::Tensor& weight,
                                   const torch::Tensor& bias, bool silu) {
  TORCH_CHECK(
      x.dim() == 3 && weight.dim() == 3 && weight.size(1) == 1 && weight.size(0) == x.size(2),
      "short_conv_reference: expected x [B, T, C] and weight [C, 1, K], got ", x.sizes(), " and ",
      weight.sizes());
  const auto T = x.size(1);
  const auto K = weight.size(2);
  const auto w = weight.squeeze(1).to(x.scalar_type());  // [C, K]
  std::vector<torch::Tensor> out;
  out.reserve(static_cast<std::size_t>(T));
  for (std::int64_t t = 0; t < T; ++t) {
    auto y = torch::zeros({x.size(0), x.size(2)}, x.options());
    if (bias.defined()) y = y + bias.to(x.scalar_type());
    for (std::int64_t j = 0; j < K; ++j) {
      const auto src = t - K + 1 + j;
      if (src >= 0) y = y + w.select(1, j) * x.select(1, src);
    }
    out.push_back(silu ? torch::silu(y) : y);
  }
  return torch::stack(out, 1);
}

}  // namespace sb
