#include "core/train/device_adam.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <type_traits>

#include "core/train/settings.hpp"

namespace sb {

namespace {

// The key of a parameter in torch::optim's state map: its TensorImpl address, as a string in
// LibTorch 1.13 (what c10::guts::to_string writes) and as the pointer itself where the map is
// keyed by pointers.
template <typename Map>
typename Map::key_type state_key(const Map&, const at::Tensor& p) {
  using Key = typename Map::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream s;
    s << p.unsafeGetTensorImpl();
    return s.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

// The moments of every parameter in the optimiser's state of type State (AdamParamState or
// AdamWParamState), created as torch::optim creates them on a first step where missing. Returns
// the largest step count found (a resumed run's).
template <typename State>
std::int64_t adopt_state(torch::optim::Optimizer& optimizer, const std::vector<at::Tensor>& params,
                         std::vector<at::Tensor>& exp_avg, std::vector<at::Tensor>& exp_avg_sq,
                         std::vector<std::function<void(std::int64_t)>>& set_step) {
  auto& state = optimizer.state();
  std::int64_t steps = 0;
  for (const auto& p : params) {
    const auto key = state_key(state, p);
    auto it = state.find(key);
    if (it == state.end()) {
      auto fresh = std::make_unique<State>();
      fresh->step(0);
      fresh->exp_avg(torch::zeros_like(p, at::MemoryFormat::Preserve));
      fresh->exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Preserve));
      it = state.insert({key, std::move(fresh)}).first;
    }
    auto* s = static_cast<State*>(it->second.get());
    steps = std::max(steps, s->step());
    exp_avg.push_back(s->exp_avg());
    exp_avg_sq.push_back(s->exp_avg_sq());
    set_step.push_back([s](std::int64_t t) { s->step(t); });
  }
  return steps;
}

}  // namespace

DeviceAdam::DeviceAdam(torch::optim::Optimizer& optimizer, std::vector<at::Tensor> parameters,
                       const TrainingSpec& spec)
    : params_(std::move(parameters)),
      beta1_(spec.beta1),
      beta2_(spec.beta2),
      eps_(spec.eps),
      weight_decay_(spec.weight_decay),
      decoupled_(spec.optimizer == "adamw") {
  TORCH_CHECK(!params_.empty(), "DeviceAdam: no parameters");
  const std::int64_t steps =
      decoupled_ ? adopt_state<torch::optim::AdamWParamState>(optimizer, params_, exp_avg_,
                                                              exp_avg_sq_, set_state_step_)
                 : adopt_state<torch::optim::AdamParamState>(optimizer, params_, exp_avg_,
                                                             exp_avg_sq_, set_state_step_);
  const auto f64 = params_.front().options().dtype(torch::kFloat64);
  step_ = torch::full({}, static_cast<double>(steps), f64);
  lr_ = torch::full({}, spec.lr, f64);
}

void DeviceAdam::set_learning_rate(double lr) { lr_.fill_(lr); }

void DeviceAdam::step() {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> params, grads, m, v;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].grad().defined()) continue;
    params.push_back(params_[i]);
    grads.push_back(params_[i].grad());
    m.push_back(exp_avg_[i]);
    v.push_back(exp_avg_sq_[i]);
  }
  if (params.empty()) return;
  // Scalars of this step, [] float64 on the device.
  step_.add_(1.0);
  const at::Tensor step_size = lr_ / (1.0 - torch::pow(beta1_, step_));
  const at::Tensor bias2_sqrt = (1.0 - torch::pow(beta2_, step_)).sqrt();
  if (weight_decay_ != 0 && decoupled_) {
    const at::Tensor shrink = 1.0 - lr_ * weight_decay_;
    for (auto& p : params) p.mul_(shrink);
  } else if (weight_decay_ != 0) {
    grads = at::_foreach_add(grads, params, weight_decay_);
  }
  at::_foreach_mul_(m, beta1_);
  at::_foreach_add_(m, grads, 1.0 - beta1_);
  at::_foreach_mul_(v, beta2_);
  at::_foreach_addcmul_(v, grads, grads, 1.0 - beta2_);
  std::vector<at::Tensor> denom = at::_foreach_sqrt(v);  // then √v / √(1 − β2^t) + ε
  for (auto& d : denom) d.div_(bias2_sqrt);
  at::_foreach_add_(denom, eps_);
  for (auto& d : denom) d.div_(step_size);  // p − m / (denom / step size)
  at::_foreach_addcdiv_(params, m, denom, -1.0);
}

void DeviceAdam::sync_step_count(std::int64_t steps) {
  for (auto& set : set_state_step_) set(steps);
}

}  // namespace sb
