// The gla mixer (models.md §4.4); see gla.hpp for the math and the parameters.
#include "gla.hpp"

#include <cmath>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace sb::plugins {

GlaMixer::GlaMixer(const sb::MixerContext& ctx)
    : d_model_(ctx.d_model),
      n_heads_(ctx.n_heads),
      key_dim_(static_cast<std::int64_t>(double(ctx.d_model) * ctx.options.get_float("expand_k"))),
      value_dim_(
          static_cast<std::int64_t>(double(ctx.d_model) * ctx.options.get_float("expand_v"))),
      head_k_(0),
      head_v_(0),
      conv_size_(ctx.options.get_int("conv_size")),
      chunk_size_(ctx.options.get_int("chunk_size")),
      gate_logit_normalizer_(double(ctx.options.get_int("gate_logit_normalizer"))),
      use_short_conv_(ctx.options.get_bool("use_short_conv")),
      recurrent_mode_(ctx.options.get_string("mode") == "recurrent") {
  const auto D = d_model_;
  const auto H = n_heads_;
  const auto r = ctx.options.get_int("gate_low_rank_dim");
  if (D <= 0 || H <= 0) throw std::invalid_argument("gla: d_model and n_heads must be positive");
  if (key_dim_ <= 0 || key_dim_ % H != 0) {
    throw std::invalid_argument(
        "gla: the key width d_model·expand_k = " + std::to_string(key_dim_) +
        " is not a positive multiple of " + "n_heads " + std::to_string(H));
  }
  if (value_dim_ <= 0 || value_dim_ % H != 0) {
    throw std::invalid_argument(
        "gla: the value width d_model·expand_v = " + std::to_string(value_dim_) +
        " is not a positive multiple of " + "n_heads " + std::to_string(H));
  }
  if (chunk_size_ < 1) throw std::invalid_argument("gla: chunk_size must be positive");
  if (gate_logit_normalizer_ <= 0) {
    throw std::invalid_argument("gla: gate_logit_normalizer must be positive");
  }
  const auto& mode = ctx.options.get_string("mode");
  if (mode != "chunk" && mode != "recurrent") {
    throw std::invalid_argument("gla: mode must be \"chunk\" or \"recurrent\", not \"" + mode +
                                "\"");
  }
  head_k_ = key_dim_ / H;
  head_v_ = value_dim_ / H;

  q_proj = register_module("q_proj", sb::linear_no_bias(D, key_dim_));
  k_proj = register_module("k_proj", sb::linear_no_bias(D, key_dim_));
  v_proj = register_module("v_proj", sb::linear_no_bias(D, value_dim_));
  g_proj = register_module("g_proj", sb::linear_no_bias(D, value_dim_));
  gk_proj0 = sb::linear_no_bias(D, r);
  gk_proj1 = torch::nn::Linear(torch::nn::LinearOptions(r, key_dim_).bias(true));
  register_module("gk_proj", torch::nn::Sequential(gk_proj0, gk_proj1));  // gk_proj.{0,1}
  if (use_short_conv_) {
    q_conv1d = register_module("q_conv1d", sb::ShortConv(key_dim_, conv_size_, false, true));
    k_conv1d = register_module("k_conv1d", sb::ShortConv(key_dim_, conv_size_, false, true));
    v_conv1d = register_module("v_conv1d", sb::ShortConv(value_dim_, conv_size_, false, true));
  }
  g_norm_swish_gate = register_module("g_norm_swish_gate",
                                      sb::GatedRMSNorm(head_v_, ctx.options.get_float("norm_eps")));
  o_proj = register_module("o_proj", sb::linear_no_bias(value_dim_, D));

  if (recurrent_mode_) {
    ctx.warn("gla: mode = \"recurrent\" runs forward as a sequential loop over time (slow)");
  }
}

torch::Tensor GlaMixer::log_decay(const torch::Tensor& x) {
  return torch::log_sigmoid(gk_proj1(gk_proj0(x))) / gate_logit_normalizer_;  // [..., H·K]
}

torch::Tensor GlaMixer::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == d_model_, "gla: expected x [B, T, ", d_model_, "], got ",
              x.sizes());
  const auto B = x.size(0), T = x.size(1), H = n_heads_, K = head_k_, V = head_v_;
  auto q = q_proj(x);  // [B, T, H·K]
  auto k = k_proj(x);  // [B, T, H·K]
  auto v = v_proj(x);  // [B, T, H·V]
  if (use_short_conv_) {
    q = q_conv1d(q);  // [B, T, H·K]
    k = k_conv1d(k);  // [B, T, H·K]
    v = v_conv1d(v);  // [B, T, H·V]
  }
  auto g = log_decay(x).view({B, T, H, K});                       // [B, T, H, K]
  auto qh = q.view({B, T, H, K}) * (1.0 / std::sqrt(double(K)));  // [B, T, H, K]
  auto kh = k.view({B, T, H, K});                                 // [B, T, H, K]
  auto vh = v.view({B, T, H, V});                                 // [B, T, H, V]
  auto o = recurrent_mode_
               ? sb::gla_reference(qh, kh, vh, g).output
               : sb::gla_chunked(qh, kh, vh, g, {}, chunk_size_).output;  // [B, T, H, V]
  auto gate = g_proj(x).view({B, T, H, V});                               // [B, T, H, V]
  o = g_norm_swish_gate(o, gate);                                         // [B, T, H, V]
  return o_proj(o.reshape({B, T, H * V}));                                // [B, T, D]
}

sb::MixerState GlaMixer::init_state(std::int64_t batch, const torch::Device& device,
                                    torch::ScalarType dtype) {
  const auto state_dtype = sb::state_dtype(dtype);
  sb::MixerState state;
  state.tensors.push_back(torch::zeros({batch, n_heads_, head_k_, head_v_},
                                       torch::TensorOptions().device(device).dtype(state_dtype)));
  if (use_short_conv_) {
    state.tensors.push_back(q_conv1d->init_cache(batch, device, dtype));  // [B, H·K, conv−1]
    state.tensors.push_back(k_conv1d->init_cache(batch, device, dtype));  // [B, H·K, conv−1]
    state.tensors.push_back(v_conv1d->init_cache(batch, device, dtype));  // [B, H·V, conv−1]
  }
  state.position = 0;
  return state;
}

torch::Tensor GlaMixer::step(const torch::Tensor& x_t, sb::MixerState& state) {
  TORCH_CHECK(x_t.dim() == 2 && x_t.size(1) == d_model_, "gla: expected x_t [B, ", d_model_,
              "], got ", x_t.sizes());
  TORCH_CHECK(state.tensors.size() == (use_short_conv_ ? 4u : 1u),
              "gla: the state does not come from this mixer's init_state");
  const auto B = x_t.size(0), H = n_heads_, K = head_k_, V = head_v_;
  auto q = q_proj(x_t);  // [B, H·K]
  auto k = k_proj(x_t);  // [B, H·K]
  auto v = v_proj(x_t);  // [B, H·V]
  if (use_short_conv_) {
    q = q_conv1d->step(q, state.tensors[1]);  // [B, H·K]
    k = k_conv1d->step(k, state.tensors[2]);  // [B, H·K]
    v = v_conv1d->step(v, state.tensors[3]);  // [B, H·V]
  }
  auto& S = state.tensors[0];  // [B, H, K, V]
  const auto dt = S.scalar_type();
  auto g = log_decay(x_t).view({B, H, K}).to(dt);                       // [B, H, K]
  auto qh = (q.view({B, H, K}) * (1.0 / std::sqrt(double(K)))).to(dt);  // [B, H, K]
  auto kh = k.view({B, H, K}).to(dt);                                   // [B, H, K]
  auto vh = v.view({B, H, V}).to(dt);                                   // [B, H, V]
  auto o = sb::gla_step(qh, kh, vh, g, S).to(x_t.scalar_type());        // [B, H, V]
  auto gate = g_proj(x_t).view({B, H, V});                              // [B, H, V]
  o = g_norm_swish_gate(o, gate);                                       // [B, H, V]
  state.position += 1;
  return o_proj(o.reshape({B, H * V}));  // [B, D]
}

std::int64_t GlaMixer::state_elements(std::int64_t /*seq_len*/) const {
  const auto recurrent = n_heads_ * head_k_ * head_v_;
  const auto caches = use_short_conv_ ? (conv_size_ - 1) * (2 * key_dim_ + value_dim_) : 0;
  return recurrent + caches;
}

std::string GlaMixer::describe() const {
  std::ostringstream s;
  s << "gla(d=" << d_model_ << ", H=" << n_heads_ << ", K=" << head_k_ << ", V=" << head_v_
    << ", conv=" << (use_short_conv_ ? std::to_string(conv_size_) : std::string("off"))
    << ", mode=" << (recurrent_mode_ ? "recurrent" : "chunk");
  if (!recurrent_mode_) s << ", chunk=" << chunk_size_;
  s << ")";
  return s.str();
}

// ---- descriptor ---------------------------------------------------------------------------------

sb::PluginDescriptor describe_gla() {
  sb::PluginDescriptor d;
  d.name = "gla";
  d.version = "1.0.0";
  d.summary =
      "gated linear attention: matrix state per head, input-dependent decay per key channel";
  d.source =
      "Yang et al. 2024, Gated Linear Attention Transformers with Hardware-Efficient Training; "
      "fla's GatedLinearAttention layer";
  d.taxonomy.recurrence = sb::Recurrence::kLinear;
  d.taxonomy.gate = sb::Gate::kVectorPerChannel;
  d.taxonomy.transition = sb::Transition::kDiagonal;
  d.taxonomy.state_expansion = sb::StateExpansion::kMatrixPerHead;
  d.taxonomy.memory = sb::Memory::kConstant;
  d.taxonomy.short_conv = true;
  d.capabilities.recurrent_step = true;
  d.capabilities.cuda = true;
  d.capabilities.bf16 = true;
  d.capabilities.reference_only = false;
  d.options = {
      sb::OptionSpec::real("expand_k", 1.0, 0.0625, 16.0,
                           "key width = d_model · expand_k, split over the heads"),
      sb::OptionSpec::real("expand_v", 2.0, 0.0625, 16.0,
                           "value width = d_model · expand_v, split over the heads"),
      sb::OptionSpec::integer("gate_logit_normalizer", 16, 1, 1 << 20,
                              "the log decay logsigmoid(·) is divided by this"),
      sb::OptionSpec::integer("gate_low_rank_dim", 16, 1, 1 << 16,
                              "rank of the decay projection gk_proj (D -> r -> key width)"),
      sb::OptionSpec::integer("conv_size", 4, 2, 64, "kernel of the short convolutions"),
      sb::OptionSpec::boolean("use_short_conv", true,
                              "short convolutions + SiLU on q, k, v (without: bare projections)"),
      sb::OptionSpec::integer("chunk_size", 64, 1, 4096, "time steps per chunk in mode \"chunk\""),
      sb::OptionSpec::real("norm_eps", 1e-5, 0.0, 1.0, "epsilon of the gated output RMSNorm"),
      sb::OptionSpec::choice(
          "mode", "chunk", {"chunk", "recurrent"},
          "forward as the chunked form, or as the slow sequential reference loop"),
  };
  d.cuda_dtype = torch::kFloat32;
  d.factory = [](const sb::MixerContext& ctx) -> std::shared_ptr<sb::Mixer> {
    return std::make_shared<GlaMixer>(ctx);
  };
  return d;
}

}  // namespace sb::plugins
