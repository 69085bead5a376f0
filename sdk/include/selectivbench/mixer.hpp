// The sequence mixer: the one layer a plugin provides (spec sdk.md §1).
//
// The core owns everything around it — encoder, the stack of blocks (mixer → dropout → residual →
// norm), decoder, training and evaluation — so a new gating variant is only its mixer.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "selectivbench/options.hpp"
#include "selectivbench/shapes.hpp"

namespace sb {

// What a layer carries from one step to the next. Its tensors are the plugin's own (a recurrent
// state, a convolution cache, a KV cache); `position` counts the steps consumed.
struct MixerState {
  std::vector<torch::Tensor> tensors;
  std::int64_t position = 0;
};

class Mixer : public torch::nn::Module {
 public:
  // Parallel (training) form, causal: [B, T, D] -> [B, T, D].
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;

  // The state before the first step, for `batch` sequences.
  virtual MixerState init_state(std::int64_t batch, const torch::Device& device,
                                torch::ScalarType dtype) = 0;
  // Recurrent form, one step: x_t [B, D] -> y_t [B, D]; advances `state`. Must equal forward.
  virtual torch::Tensor step(const torch::Tensor& x_t, MixerState& state) = 0;

  // Numbers this layer carries per sequence after `seq_len` steps (recurrent state, caches):
  // constant for linear recurrences, growing for attention.
  virtual std::int64_t state_elements(std::int64_t seq_len) const = 0;

  // One line for logs, e.g. "gla(d=256, H=4, K=64, V=128, chunk=64)".
  virtual std::string describe() const = 0;
};

enum class LogLevel { kDebug, kInfo, kWarning };
using LogFn = std::function<void(LogLevel, const std::string&)>;

// What the host tells a factory (spec sdk.md §1).
struct MixerContext {
  std::int64_t d_model = 256;  // D
  std::int64_t n_heads = 4;    // H, from the reference's rule (models.md §2)
  std::int64_t layer_index = 0;
  std::int64_t n_layers = 1;
  std::uint64_t seed = 0;  // the global generator is seeded from it before the factory runs
  Options options;         // validated against the plugin's schema
  LogFn log;               // owned by the host; never null

  void info(const std::string& message) const {
    if (log) log(LogLevel::kInfo, message);
  }
  void warn(const std::string& message) const {
    if (log) log(LogLevel::kWarning, message);
  }
};

}  // namespace sb
