// The gru mixer (models.md §7.4); see gru.hpp for the math and the parameters.
#include "gru.hpp"

#include <memory>
#include <sstream>
#include <stdexcept>

namespace sb::plugins {

GruMixer::GruMixer(const sb::MixerContext& ctx) : d_model_(ctx.d_model) {
  if (d_model_ <= 0) throw std::invalid_argument("gru: d_model must be positive");
  gru = register_module(
      "gru", torch::nn::GRU(
                 torch::nn::GRUOptions(d_model_, d_model_).num_layers(1).batch_first(true)));
}

torch::Tensor GruMixer::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == d_model_, "gru: expected x [B, T, ", d_model_,
              "], got ", x.sizes());
  // h_0 = 0 (the default); the final hidden state is not needed here.
  return std::get<0>(gru->forward(x));  // [B, T, D]
}

sb::MixerState GruMixer::init_state(std::int64_t batch, const torch::Device& device,
                                    torch::ScalarType dtype) {
  sb::MixerState state;
  // h in the activations' dtype: the GRU cell requires input and hidden of one dtype.
  state.tensors.push_back(
      torch::zeros({batch, d_model_}, torch::TensorOptions().device(device).dtype(dtype)));
  state.position = 0;
  return state;
}

torch::Tensor GruMixer::step(const torch::Tensor& x_t, sb::MixerState& state) {
  TORCH_CHECK(x_t.dim() == 2 && x_t.size(1) == d_model_, "gru: expected x_t [B, ", d_model_,
              "], got ", x_t.sizes());
  TORCH_CHECK(state.tensors.size() == 1u, "gru: the state does not come from this mixer's init_state");
  // One step of the same fused GRU that forward runs (a length-1 sequence from the carried hidden
  // state): on CUDA both then go through cuDNN with its TF32 settings, so step and forward agree
  // to float32 precision (a separate gru_cell differs from cuDNN's TF32 GRU by ~5e-4).
  const auto out = gru->forward(x_t.unsqueeze(1), state.tensors[0].unsqueeze(0));
  auto h = std::get<1>(out).squeeze(0);  // [B, D]
  state.tensors[0] = h;
  state.position += 1;
  return h;  // [B, D]: the output is the hidden state
}

std::int64_t GruMixer::state_elements(std::int64_t /*seq_len*/) const { return d_model_; }

std::string GruMixer::describe() const {
  std::ostringstream s;
  s << "gru(d=" << d_model_ << ", layers=1)";
  return s.str();
}

// ---- descriptor ---------------------------------------------------------------------------------

sb::PluginDescriptor describe_gru() {
  sb::PluginDescriptor d;
  d.name = "gru";
  d.version = "1.0.0";
  d.summary = "single-layer GRU: nonlinear recurrence, dense transition, vector state";
  d.source =
      "Cho et al. 2014, Learning Phrase Representations using RNN Encoder-Decoder; "
      "PyTorch nn.GRU (the reference's secondary model gru)";
  d.taxonomy.recurrence = sb::Recurrence::kNonlinear;
  d.taxonomy.gate = sb::Gate::kVectorPerChannel;  // z_t and r_t depend on the input, per channel
  d.taxonomy.transition = sb::Transition::kDense;
  d.taxonomy.state_expansion = sb::StateExpansion::kVectorPerChannel;
  d.taxonomy.memory = sb::Memory::kConstant;
  d.taxonomy.short_conv = false;
  d.capabilities.recurrent_step = true;
  d.capabilities.cuda = true;
  d.capabilities.bf16 = true;
  // forward is LibTorch's fused GRU, not a slow reference path (it is sequential by nature).
  d.capabilities.reference_only = false;
  d.options = {};
  d.cuda_dtype = torch::kFloat32;
  d.factory = [](const sb::MixerContext& ctx) -> std::shared_ptr<sb::Mixer> {
    return std::make_shared<GruMixer>(ctx);
  };
  return d;
}

}  // namespace sb::plugins
