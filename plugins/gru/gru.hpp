// The gru mixer: a single-layer GRU over the sequence, as the reference's secondary model
// `gru` = nn.GRU(d, d, num_layers=1, batch_first=True) (models.md §7.4; Cho et al. 2014).
//
// With D = d_model (n_heads is not used), per time step, σ the logistic sigmoid:
//   r_t = σ(W_ir x_t + b_ir + W_hr h_{t−1} + b_hr)                reset gate      [D]
//   z_t = σ(W_iz x_t + b_iz + W_hz h_{t−1} + b_hz)                update gate     [D]
//   n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t−1} + b_hn))     candidate       [D]
//   h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1},   y_t = h_t,   h_{−1} = 0
// The recurrence is nonlinear (h_{t−1} passes through σ and tanh) with a dense transition W_h·,
// so there is no parallel or chunked form: forward is LibTorch's GRU (cuDNN on CUDA), which is
// sequential over time by nature. It is not a slow fallback; it is the only form there is.
//
// Parameters: the GRU is registered as the submodule `gru`, so the names are LibTorch's / PyTorch's
// with a "gru." prefix (the reference's layer *is* the nn.GRU, so its keys lack the prefix):
//   gru.weight_ih_l0, gru.weight_hh_l0     [3D, D]    rows in the order (r, z, n)
//   gru.bias_ih_l0,   gru.bias_hh_l0       [3D]
//   total = 6D² + 6D;  all U(±1/√D), PyTorch's default.
//
// Recurrent form: MixerState::tensors = {h [B, D]} in the activations' dtype; step is one GRU cell
// step (torch::gru_cell with the same weights), equal to forward.
#pragma once

#include <selectivbench/sdk.hpp>

#include <cstdint>
#include <string>

namespace sb::plugins {

class GruMixer : public sb::Mixer {
 public:
  // D = ctx.d_model; no options.
  explicit GruMixer(const sb::MixerContext& ctx);

  torch::Tensor forward(const torch::Tensor& x) override;  // [B, T, D] -> [B, T, D]

  sb::MixerState init_state(std::int64_t batch, const torch::Device& device,
                            torch::ScalarType dtype) override;
  torch::Tensor step(const torch::Tensor& x_t, sb::MixerState& state) override;  // [B, D] -> [B, D]

  // The hidden state h: D numbers, constant in the sequence length.
  std::int64_t state_elements(std::int64_t seq_len) const override;
  std::string describe() const override;

  torch::nn::GRU gru{nullptr};  // GRU(D, D), 1 layer, batch_first

 private:
  std::int64_t d_model_;
};

// The plugin's descriptor: name "gru", taxonomy, capabilities, factory.
sb::PluginDescriptor describe_gru();

}  // namespace sb::plugins
