// Adam and AdamW whose step never reads a value on the host, so that a CUDA graph can capture it.
//
// torch::optim::Adam computes the bias corrections 1 − β^t on the host from its step count and
// takes the learning rate from its options: both become constants baked into a captured graph.
// DeviceAdam keeps t and the learning rate in device tensors instead and does the same arithmetic
// there (in float64, cast to the parameter's dtype exactly where the host Scalars are), on the very
// state tensors of the torch::optim optimiser it wraps. So a checkpoint written by that optimiser
// is read by it and vice versa: a run may switch between graphs and no graphs at a resume.
//
//   g ← g + λ·p                       (Adam: weight decay added to the gradient)
//   p ← p·(1 − lr·λ)                  (AdamW: decoupled weight decay)
//   m ← β1·m + (1 − β1)·g
//   v ← β2·v + (1 − β2)·g²
//   p ← p − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + ε)
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace torch::optim {
class Optimizer;
}

namespace sb {

struct TrainingSpec;

class DeviceAdam {
 public:
  // `optimizer` is the torch::optim::Adam (or AdamW, by spec.optimizer) built over `parameters`;
  // its state is created here where it is missing (zero moments, step 0).
  DeviceAdam(torch::optim::Optimizer& optimizer, std::vector<at::Tensor> parameters,
             const TrainingSpec& spec);

  // The learning rate of the next step, written to the device (outside a graph: a tiny copy).
  void set_learning_rate(double lr);

  // One step over the parameters that have a gradient. Only device work: capturable.
  void step();

  // Writes the step count into the wrapped optimiser's state (before it is saved). `steps` is the
  // number of steps taken, which the host knows without asking the device.
  void sync_step_count(std::int64_t steps);

 private:
  std::vector<at::Tensor> params_, exp_avg_, exp_avg_sq_;
  std::vector<std::function<void(std::int64_t)>> set_state_step_;  // per parameter
  at::Tensor step_;            // [] float64 on the device: t
  at::Tensor lr_;              // [] float64 on the device
  double beta1_, beta2_, eps_, weight_decay_;
  bool decoupled_;
};

}  // namespace sb
