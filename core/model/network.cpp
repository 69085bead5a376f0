#include "core/model/network.hpp"

#include <sstream>

#include "selectivbench/blocks/norms.hpp"

namespace sb {

std::int64_t reference_num_heads(std::int64_t d) {
  if (d / 128.0 <= 4) return 4;
  for (std::int64_t n = 4; n <= d; n *= 2) {
    if (d % n == 0 && d / n <= 128) return n;
  }
  return 4;
}

SwiGLUImpl::SwiGLUImpl(std::int64_t d_model, std::int64_t hidden) {
  gate_up = register_module("gate_up", torch::nn::Linear(d_model, 2 * hidden));
  down = register_module("down", torch::nn::Linear(hidden, d_model));
}

torch::Tensor SwiGLUImpl::forward(const torch::Tensor& x) {
  auto u = gate_up->forward(x).chunk(2, -1);  // 2 × [B, T, hidden]
  return down->forward(torch::silu(u[0]) * u[1]);
}

namespace {

std::shared_ptr<torch::nn::Module> make_norm(NormKind kind, std::int64_t d) {
  if (kind == NormKind::kLayerNorm) {
    return torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(1e-5)).ptr();
  }
  return RMSNorm(d, 1e-5).ptr();
}

torch::Tensor apply_norm(const std::shared_ptr<torch::nn::Module>& m, const torch::Tensor& h) {
  if (auto* ln = m->as<torch::nn::LayerNorm>()) {
    // Norms compute in their weights' dtype. Under bf16-mixed a bf16 activation meets fp32
    // weights: CUDA autocast casts it up itself, LibTorch 1.13's CPU autocast does not.
    const auto dtype = ln->weight.scalar_type();
    return ln->forward(h.scalar_type() == dtype ? h : h.to(dtype));
  }
  return m->as<RMSNorm>()->forward(h);
}

std::string shape_of(const torch::Tensor& t) {
  std::ostringstream out;
  out << t.sizes() << " " << t.dtype();
  return out.str();
}

}  // namespace

NetworkImpl::NetworkImpl(const NetworkSpec& spec) : spec_(spec) {
  if (spec.layers.empty()) throw std::invalid_argument("a network needs at least one layer");
  torch::manual_seed(spec.seed);
  const std::int64_t D = spec.d_model;
  encoder_ = register_module("encoder", torch::nn::Linear(spec.input_size, D));
  layers_ = torch::nn::ModuleList();
  norms_ = torch::nn::ModuleList();
  mlps_ = torch::nn::ModuleList();
  mlp_norms_ = torch::nn::ModuleList();
  for (std::size_t l = 0; l < spec.layers.size(); ++l) {
    MixerContext ctx;
    ctx.d_model = D;
    ctx.n_heads = spec.n_heads;
    ctx.layer_index = static_cast<std::int64_t>(l);
    ctx.n_layers = static_cast<std::int64_t>(spec.layers.size());
    ctx.seed = spec.seed * 1000003ULL + l;
    ctx.options = spec.layers[l].options;
    ctx.log = spec.log ? spec.log : [](LogLevel, const std::string&) {};
    torch::manual_seed(ctx.seed);
    auto mixer = spec.layers[l].plugin->create(ctx);
    mixers_.push_back(mixer);
    layers_->push_back(mixer);
    norms_->push_back(make_norm(spec.block.norm, D));
    if (spec.block.mlp) {
      mlps_->push_back(SwiGLU(D, spec.block.mlp_expansion * D));
      mlp_norms_->push_back(make_norm(spec.block.norm, D));
    }
  }
  register_module("layers", layers_);
  register_module("norms", norms_);
  if (spec.block.mlp) {
    register_module("mlps", mlps_);
    register_module("mlp_norms", mlp_norms_);
  }
  if (spec.block.placement == NormPlacement::kPre) {
    final_norm_ = register_module("final_norm", make_norm(spec.block.norm, D));
  }
  torch::manual_seed(spec.seed + 7);
  decoder_ = register_module("decoder", torch::nn::Linear(D, spec.num_classes));
  dropout_ = register_module("dropout", torch::nn::Dropout(spec.block.dropout));
}

torch::Tensor NetworkImpl::norm(std::size_t index, const torch::Tensor& h) {
  return apply_norm(norms_->ptr(index), h);
}

torch::Tensor NetworkImpl::mix(std::size_t l, const torch::Tensor& h) {
  const auto& plugin = spec_.layers[l].plugin;
  torch::Tensor z;
  try {
    z = mixers_[l]->forward(h);
  } catch (const std::exception& e) {
    throw PluginError("plugin " + plugin->descriptor.name + " failed in forward at layer " +
                      std::to_string(l) + " on input " + shape_of(h) + ": " + e.what());
  }
  if (!z.defined() || z.sizes() != h.sizes()) {
    throw PluginError("plugin " + plugin->descriptor.name + " at layer " + std::to_string(l) +
                      " returned " + (z.defined() ? shape_of(z) : std::string("nothing")) +
                      " for input " + shape_of(h) + "; a mixer must keep the shape [B, T, D]");
  }
  return z;
}

torch::Tensor NetworkImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = encoder_->forward(x);  // [B, T, D]
  const bool post = spec_.block.placement == NormPlacement::kPost;
  for (std::size_t l = 0; l < mixers_.size(); ++l) {
    if (post) {
      h = norm(l, h + dropout_->forward(mix(l, h)));
    } else {
      h = h + dropout_->forward(mix(l, norm(l, h)));
    }
    if (spec_.block.mlp) {
      auto* mlp = mlps_->ptr<SwiGLUImpl>(l).get();
      const auto& mn = mlp_norms_->ptr(l);
      if (post) {
        h = apply_norm(mn, h + dropout_->forward(mlp->forward(h)));
      } else {
        h = h + dropout_->forward(mlp->forward(apply_norm(mn, h)));
      }
    }
  }
  if (final_norm_) h = apply_norm(final_norm_, h);
  return decoder_->forward(h);  // [B, T, C]
}

std::vector<MixerState> NetworkImpl::init_state(std::int64_t batch, const torch::Device& device,
                                                torch::ScalarType dtype) {
  std::vector<MixerState> states;
  for (auto& m : mixers_) states.push_back(m->init_state(batch, device, dtype));
  return states;
}

torch::Tensor NetworkImpl::step(const torch::Tensor& x_t, std::vector<MixerState>& states) {
  torch::Tensor h = encoder_->forward(x_t);  // [B, D]
  const bool post = spec_.block.placement == NormPlacement::kPost;
  for (std::size_t l = 0; l < mixers_.size(); ++l) {
    if (post) {
      h = norm(l, h + dropout_->forward(mixers_[l]->step(h, states[l])));
    } else {
      h = h + dropout_->forward(mixers_[l]->step(norm(l, h), states[l]));
    }
    if (spec_.block.mlp) {
      auto* mlp = mlps_->ptr<SwiGLUImpl>(l).get();
      const auto& mn = mlp_norms_->ptr(l);
      h = post ? apply_norm(mn, h + dropout_->forward(mlp->forward(h)))
               : h + dropout_->forward(mlp->forward(apply_norm(mn, h)));
    }
  }
  if (final_norm_) h = apply_norm(final_norm_, h);
  return decoder_->forward(h);  // [B, C]
}

std::int64_t NetworkImpl::parameter_count() const {
  std::int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

std::vector<std::int64_t> NetworkImpl::state_elements(std::int64_t seq_len) const {
  std::vector<std::int64_t> out;
  for (const auto& m : mixers_) out.push_back(m->state_elements(seq_len));
  return out;
}

std::string NetworkImpl::describe() const {
  std::ostringstream out;
  bool uniform = true;
  for (const auto& l : spec_.layers) uniform &= l.plugin == spec_.layers[0].plugin;
  if (uniform) {
    out << mixers_.size() << " x " << mixers_[0]->describe();
  } else {
    for (std::size_t l = 0; l < mixers_.size(); ++l) {
      out << (l ? ", " : "") << mixers_[l]->describe();
    }
  }
  out << "; " << (spec_.block.placement == NormPlacement::kPost ? "post" : "pre") << "-"
      << (spec_.block.norm == NormKind::kLayerNorm ? "LayerNorm" : "RMSNorm")
      << (spec_.block.mlp ? ", SwiGLU MLP" : "") << ", dropout " << spec_.block.dropout;
  return out.str();
}

}  // namespace sb
