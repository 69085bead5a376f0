// The delta_net mixer (models.md §4.5); see delta_net.hpp for the math and the parameters.
#include "delta_net.hpp"

#include <cmath>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace sb::plugins {

DeltaNetMixer::DeltaNetMixer(const sb::MixerContext& ctx)
    : d_model_(ctx.d_model),
      n_heads_(ctx.n_heads),
      key_dim_(static_cast<std::int64_t>(double(ctx.d_model) * ctx.options.get_float("expand_k"))),
      value_dim_(
          static_cast<std::int64_t>(double(ctx.d_model) * ctx.options.get_float("expand_v"))),
      head_k_(0),
      head_v_(0),
      conv_size_(ctx.options.get_int("conv_size")),
      chunk_size_(ctx.options.get_int("chunk_size")),
      use_short_conv_(ctx.options.get_bool("use_short_conv")),
      recurrent_mode_(ctx.options.get_string("mode") == "recurrent") {
  const auto D = d_model_;
  const auto H = n_heads_;
  if (D <= 0 || H <= 0) {
    throw std::invalid_argument("delta_net: d_model and n_heads must be positive");
  }
  if (key_dim_ <= 0 || key_dim_ % H != 0) {
    throw std::invalid_argument(
        "delta_net: the key width d_model·expand_k = " + std::to_string(key_dim_) +
        " is not a positive multiple of " + "n_heads " + std::to_string(H));
  }
  if (value_dim_ <= 0 || value_dim_ % H != 0) {
    throw std::invalid_argument(
        "delta_net: the value width d_model·expand_v = " + std::to_string(value_dim_) +
        " is not a positive multiple of " + "n_heads " + std::to_string(H));
  }
  if (chunk_size_ < 1) throw std::invalid_argument("delta_net: chunk_size must be positive");
  const auto& mode = ctx.options.get_string("mode");
  if (mode != "chunk" && mode != "recurrent") {
    throw std::invalid_argument("delta_net: mode must be \"chunk\" or \"recurrent\", not \"" +
                                mode + "\"");
  }
  head_k_ = key_dim_ / H;
  head_v_ = value_dim_ / H;

  q_proj = register_module("q_proj", sb::linear_no_bias(D, key_dim_));
  k_proj = register_module("k_proj", sb::linear_no_bias(D, key_dim_));
  v_proj = register_module("v_proj", sb::linear_no_bias(D, value_dim_));
  b_proj = register_module("b_proj", sb::linear_no_bias(D, H));
  if (use_short_conv_) {
    q_conv1d = register_module("q_conv1d", sb::ShortConv(key_dim_, conv_size_, false, true));
    k_conv1d = register_module("k_conv1d", sb::ShortConv(key_dim_, conv_size_, false, true));
    v_conv1d = register_module("v_conv1d", sb::ShortConv(value_dim_, conv_size_, false, true));
  }
  o_norm = register_module("o_norm", sb::RMSNorm(head_v_, ctx.options.get_float("norm_eps")));
  o_proj = register_module("o_proj", sb::linear_no_bias(value_dim_, D));

  if (recurrent_mode_) {
    ctx.warn("delta_net: mode = \"recurrent\" runs forward as a sequential loop over time (slow)");
  }
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> DeltaNetMixer::qkv(const torch::Tensor& x,
                                                                           sb::MixerState* state) {
  auto q = q_proj(x);  // [..., H·K]
  auto k = k_proj(x);  // [..., H·K]
  auto v = v_proj(x);  // [..., H·V]
  if (!use_short_conv_) return {torch::silu(q), torch::silu(k), torch::silu(v)};
  if (state == nullptr) return {q_conv1d(q), k_conv1d(k), v_conv1d(v)};
  return {q_conv1d->step(q, state->tensors[1]), k_conv1d->step(k, state->tensors[2]),
          v_conv1d->step(v, state->tensors[3])};
}

torch::Tensor DeltaNetMixer::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == d_model_, "delta_net: expected x [B, T, ", d_model_,
              "], got ", x.sizes());
  const auto B = x.size(0), T = x.size(1), H = n_heads_, K = head_k_, V = head_v_;
  const auto ct = sb::compute_dtype(x.scalar_type());
  auto [q, k, v] = qkv(x, nullptr);  // [B, T, H·K], [B, T, H·K], [B, T, H·V]
  const auto qh = sb::l2norm(q.view({B, T, H, K}).to(ct)) * (1.0 / std::sqrt(double(K)));  // [B,T,H,K]
  const auto kh = sb::l2norm(k.view({B, T, H, K}).to(ct));                                 // [B,T,H,K]
  const auto vh = v.view({B, T, H, V});                                                // [B,T,H,V]
  const auto beta = torch::sigmoid(b_proj(x));                                         // [B, T, H]
  auto o = recurrent_mode_ ? sb::delta_rule_reference(qh, kh, vh, beta).output
                           : sb::delta_rule_chunked(qh, kh, vh, beta, {}, {}, chunk_size_).output;
  o = o_norm(o.to(x.scalar_type()));        // [B, T, H, V]
  return o_proj(o.reshape({B, T, H * V}));  // [B, T, D]
}

sb::MixerState DeltaNetMixer::init_state(std::int64_t batch, const torch::Device& device,
                                         torch::ScalarType dtype) {
  sb::MixerState state;
  state.tensors.push_back(
      torch::zeros({batch, n_heads_, head_k_, head_v_},
                   torch::TensorOptions().device(device).dtype(sb::compute_dtype(dtype))));
  if (use_short_conv_) {
    state.tensors.push_back(q_conv1d->init_cache(batch, device, dtype));  // [B, H·K, conv−1]
    state.tensors.push_back(k_conv1d->init_cache(batch, device, dtype));  // [B, H·K, conv−1]
    state.tensors.push_back(v_conv1d->init_cache(batch, device, dtype));  // [B, H·V, conv−1]
  }
  state.position = 0;
  return state;
}

torch::Tensor DeltaNetMixer::step(const torch::Tensor& x_t, sb::MixerState& state) {
  TORCH_CHECK(x_t.dim() == 2 && x_t.size(1) == d_model_, "delta_net: expected x_t [B, ", d_model_,
              "], got ", x_t.sizes());
  TORCH_CHECK(state.tensors.size() == (use_short_conv_ ? 4u : 1u),
              "delta_net: the state does not come from this mixer's init_state");
  const auto B = x_t.size(0), H = n_heads_, K = head_k_, V = head_v_;
  auto [q, k, v] = qkv(x_t, &state);  // [B, H·K], [B, H·K], [B, H·V]
  auto& S = state.tensors[0];         // [B, H, K, V]
  const auto ct = S.scalar_type();
  const auto qh = sb::l2norm(q.view({B, H, K}).to(ct)) * (1.0 / std::sqrt(double(K)));  // [B, H, K]
  const auto kh = sb::l2norm(k.view({B, H, K}).to(ct));                                 // [B, H, K]
  const auto vh = v.view({B, H, V}).to(ct);                                         // [B, H, V]
  const auto beta = torch::sigmoid(b_proj(x_t)).to(ct);                             // [B, H]
  auto o = sb::delta_rule_step(qh, kh, vh, beta, {}, S);                            // [B, H, V]
  o = o_norm(o.to(x_t.scalar_type()));                                              // [B, H, V]
  state.position += 1;
  return o_proj(o.reshape({B, H * V}));  // [B, D]
}

std::int64_t DeltaNetMixer::state_elements(std::int64_t /*seq_len*/) const {
  const auto recurrent = n_heads_ * head_k_ * head_v_;
  const auto caches = use_short_conv_ ? (conv_size_ - 1) * (2 * key_dim_ + value_dim_) : 0;
  return recurrent + caches;
}

std::string DeltaNetMixer::describe() const {
  std::ostringstream s;
  s << "delta_net(d=" << d_model_ << ", H=" << n_heads_ << ", K=" << head_k_ << ", V=" << head_v_
    << ", conv=" << (use_short_conv_ ? std::to_string(conv_size_) : std::string("off"))
    << ", mode=" << (recurrent_mode_ ? "recurrent" : "chunk");
  if (!recurrent_mode_) s << ", chunk=" << chunk_size_;
  s << ")";
  return s.str();
}

// ---- descriptor ---------------------------------------------------------------------------------

sb::PluginDescriptor describe_delta_net() {
  sb::PluginDescriptor d;
  d.name = "delta_net";
  d.version = "1.0.0";
  d.summary = "DeltaNet: matrix state per head, delta-rule update (I − β k kᵀ), no decay gate";
  d.source =
      "Schlag et al. 2021, Linear Transformers Are Secretly Fast Weight Programmers; Yang et al. "
      "2024, Parallelizing Linear Transformers with the Delta Rule over Sequence Length; fla's "
      "DeltaNet layer";
  d.taxonomy.recurrence = sb::Recurrence::kLinear;
  d.taxonomy.gate = sb::Gate::kNone;
  d.taxonomy.transition = sb::Transition::kDiagonalPlusLowRank;
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
      sb::OptionSpec::integer("conv_size", 4, 2, 64, "kernel of the short convolutions"),
      sb::OptionSpec::boolean("use_short_conv", true,
                              "short convolutions before the SiLU on q, k, v (without: SiLU of "
                              "the bare projections)"),
      sb::OptionSpec::integer("chunk_size", 64, 1, 4096, "time steps per chunk in mode \"chunk\""),
      sb::OptionSpec::real("norm_eps", 1e-5, 0.0, 1.0, "epsilon of the output RMSNorm"),
      sb::OptionSpec::choice(
          "mode", "chunk", {"chunk", "recurrent"},
          "forward as the chunked form, or as the slow sequential reference loop"),
  };
  // The reference trains the delta-rule family in pure bf16 (models.md §2, item 6).
  d.cuda_dtype = torch::kBFloat16;
  d.factory = [](const sb::MixerContext& ctx) -> std::shared_ptr<sb::Mixer> {
    return std::make_shared<DeltaNetMixer>(ctx);
  };
  return d;
}

}  // namespace sb::plugins
