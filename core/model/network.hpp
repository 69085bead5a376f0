// The network around the mixers (models.md §3.1; the reference's RecNet):
//
//   h = encoder(x)                                  Linear(V_in, D)
//   for each layer l (post-norm, the reference):    h = Norm_l(h + Drop(mixer_l(h)))
//                    (pre-norm):                    h = h + Drop(mixer_l(Norm_l(h)))
//     with an MLP block (optional, SwiGLU):         h = Norm'_l(h + Drop(MLP_l(h)))   (post)
//                                                   h = h + Drop(MLP_l(Norm'_l(h)))   (pre)
//   [pre-norm: h = final_norm(h)]
//   logits = decoder(h)                             Linear(D, C)
//
// Each layer's mixer comes from a plugin; a per-layer plugin list makes hybrids. State-dict keys
// follow the reference: encoder.*, layers.<l>.*, norms.<l>.*, decoder.*.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/plugins/registry.hpp"
#include "core/train/settings.hpp"

namespace sb {


struct LayerSpec {
  std::shared_ptr<const LoadedPlugin> plugin;
  Options options;
};

struct NetworkSpec {
  std::int64_t input_size = 41;  // V_in
  std::int64_t num_classes = 1601;  // C
  std::int64_t d_model = 256;    // D
  std::int64_t n_heads = 4;      // H
  std::vector<LayerSpec> layers;
  BlockSpec block;
  std::uint64_t seed = 1;  // parameter initialisation
  LogFn log;
};

// The reference's head count (models.md §2): 4 if D/128 ≤ 4, else the first n in 4, 8, 16, …
// with D % n == 0 and D/n ≤ 128.
std::int64_t reference_num_heads(std::int64_t d_model);

class SwiGLUImpl : public torch::nn::Module {
 public:
  SwiGLUImpl(std::int64_t d_model, std::int64_t hidden);
  torch::Tensor forward(const torch::Tensor& x);  // [B, T, D] -> [B, T, D]
  torch::nn::Linear gate_up{nullptr}, down{nullptr};
};
TORCH_MODULE(SwiGLU);

class NetworkImpl : public torch::nn::Module {
 public:
  explicit NetworkImpl(const NetworkSpec& spec);

  // x [B, T, V_in] -> logits [B, T, C]. A failing mixer is reported with its plugin, layer and
  // the input shape; a mixer returning another shape is an error.
  torch::Tensor forward(const torch::Tensor& x);

  // Recurrent inference: one step x_t [B, V_in] -> logits [B, C].
  std::vector<MixerState> init_state(std::int64_t batch, const torch::Device& device,
                                     torch::ScalarType dtype);
  torch::Tensor step(const torch::Tensor& x_t, std::vector<MixerState>& states);

  std::int64_t parameter_count() const;
  // State elements per layer at sequence length T.
  std::vector<std::int64_t> state_elements(std::int64_t seq_len) const;
  const NetworkSpec& spec() const { return spec_; }
  // "8 × gla(...)" or the per-layer list for hybrids.
  std::string describe() const;

 private:
  torch::Tensor norm(std::size_t index, const torch::Tensor& h);
  torch::Tensor mix(std::size_t layer, const torch::Tensor& h);

  NetworkSpec spec_;
  torch::nn::Linear encoder_{nullptr}, decoder_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  torch::nn::ModuleList norms_{nullptr};
  torch::nn::ModuleList mlps_{nullptr};
  torch::nn::ModuleList mlp_norms_{nullptr};
  std::shared_ptr<torch::nn::Module> final_norm_;
  torch::nn::Dropout dropout_{nullptr};
  std::vector<std::shared_ptr<Mixer>> mixers_;
};
TORCH_MODULE(Network);

}  // namespace sb
