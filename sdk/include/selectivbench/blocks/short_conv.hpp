// Causal depthwise short convolution over time, with its step form (models.md §4 "ShortConv").
//
//   y_t[c] = b[c] + Σ_{j=0..K-1} w[c, j] · x_{t-K+1+j}[c],  x_{<0} = 0,  then SiLU if enabled.
// w[c, K-1] multiplies the current input. Weight layout [C, 1, K] as PyTorch's Conv1d (state-dict
// compatible); default init U(±1/√K) for weight and bias as PyTorch's.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace sb {

class ShortConvImpl : public torch::nn::Module {
 public:
  ShortConvImpl(std::int64_t channels, std::int64_t kernel = 4, bool bias = false,
                bool silu = true);

  torch::Tensor forward(const torch::Tensor& x);  // [B, T, C] -> [B, T, C]

  // The cache holds the last K-1 inputs: [B, C, K-1], zeros at the start.
  torch::Tensor init_cache(std::int64_t batch, const torch::Device& device,
                           torch::ScalarType dtype) const;
  // One step: x_t [B, C] -> y_t [B, C]; shifts `cache`.
  torch::Tensor step(const torch::Tensor& x_t, torch::Tensor& cache);

  std::int64_t channels() const { return channels_; }
  std::int64_t kernel() const { return kernel_; }

  torch::Tensor weight;  // [C, 1, K]
  torch::Tensor bias;    // [C], or undefined without bias

 private:
  std::int64_t channels_;
  std::int64_t kernel_;
  bool silu_;
};
TORCH_MODULE(ShortConv);

// Plain per-time-step loop, the reference the tests hold forward() and step() to.
torch::Tensor short_conv_reference(const torch::Tensor& x,       // [B, T, C]
                                   const torch::Tensor& weight,  // [C, 1, K]
                                   const torch::Tensor& bias,    // [C] or undefined
                                   bool silu);

}  // namespace sb
