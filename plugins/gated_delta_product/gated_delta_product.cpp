// The gated_delta_product mixer (models.md §4.7); see gated_delta_product.hpp for the math and the
// parameters.
#include "gated_delta_product.hpp"

#include <cmath>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace sb::plugins {

GatedDeltaProductMixer::GatedDeltaProductMixer(const sb::MixerContext& ctx)
    : d_model_(ctx.d_model),
      n_heads_(ctx.n_heads),
      num_householder_(ctx.options.get_int("num_householder")),
      key_dim_(ctx.d_model),
      value_dim_(
          static_cast<std::int64_t>(double(ctx.d_model) * ctx.options.get_float("expand_v"))),
      head_k_(0),
      head_v_(0),
      conv_size_(ctx.options.get_int("conv_size")),
      chunk_size_(ctx.options.get_int("chunk_size")),
      use_short_conv_(ctx.options.get_bool("use_short_conv")),
      use_forget_gate_(ctx.options.get_bool("use_forget_gate")),
      use_output_gate_(ctx.options.get_bool("use_output_gate")),
      allow_neg_eigval_(ctx.options.get_bool("allow_neg_eigval")),
      recurrent_mode_(ctx.options.get_string("mode") == "recurrent") {
  const auto D = d_model_;
  const auto H = n_heads_;
  const auto NH = num_householder_;
  if (D <= 0 || H <= 0) {
    throw std::invalid_argument("gated_delta_product: d_model and n_heads must be positive");
  }
  if (D % H != 0) {
    throw std::invalid_argument("gated_delta_product: d_model " + std::to_string(D) +
                                " is not a multiple of n_heads " + std::to_string(H));
  }
  if (value_dim_ <= 0 || value_dim_ % H != 0) {
    throw std::invalid_argument(
        "gated_delta_product: the value width d_model·expand_v = " + std::to_string(value_dim_) +
        " is not a positive multiple of " + "n_heads " + std::to_string(H));
  }
  if (NH < 1) throw std::invalid_argument("gated_delta_product: num_householder must be positive");
  if (chunk_size_ < 1) {
    throw std::invalid_argument("gated_delta_product: chunk_size must be positive");
  }
  const auto& mode = ctx.options.get_string("mode");
  if (mode != "chunk" && mode != "recurrent") {
    throw std::invalid_argument(
        "gated_delta_product: mode must be \"chunk\" or \"recurrent\", not \"" + mode + "\"");
  }
  head_k_ = key_dim_ / H;
  head_v_ = value_dim_ / H;

  q_proj = register_module("q_proj", sb::linear_no_bias(D, key_dim_));
  k_proj = register_module("k_proj", sb::linear_no_bias(D, NH * key_dim_));
  v_proj = register_module("v_proj", sb::linear_no_bias(D, NH * value_dim_));
  b_proj = register_module("b_proj", sb::linear_no_bias(D, NH * H));
  if (use_forget_gate_) {
    a_proj = register_module("a_proj", sb::linear_no_bias(D, H));
    torch::NoGradGuard no_grad;
    // A ~ U(0, 16) (lower bound 0, as Gated DeltaNet), stored as its log.
    A_log = register_parameter("A_log", torch::log(torch::rand({H}) * 16.0));
    // Δ at init log-uniform in [1e-3, 0.1], floored at 1e-4; dt_bias is its softplus inverse.
    dt_bias = register_parameter("dt_bias", sb::step_size_bias(H, 1e-3, 0.1, 1e-4));
  }
  if (use_short_conv_) {
    q_conv1d = register_module("q_conv1d", sb::ShortConv(key_dim_, conv_size_, false, true));
    k_conv1d = register_module("k_conv1d", sb::ShortConv(NH * key_dim_, conv_size_, false, true));
    v_conv1d =
        register_module("v_conv1d", sb::ShortConv(NH * value_dim_, conv_size_, false, true));
  }
  const auto eps = ctx.options.get_float("norm_eps");
  if (use_output_gate_) {
    g_proj = register_module("g_proj", sb::linear_no_bias(D, value_dim_));
    o_norm_gated = register_module("o_norm", sb::GatedRMSNorm(head_v_, eps));
  } else {
    o_norm = register_module("o_norm", sb::RMSNorm(head_v_, eps));
  }
  o_proj = register_module("o_proj", sb::linear_no_bias(value_dim_, D));

  if (recurrent_mode_) {
    ctx.warn(
        "gated_delta_product: mode = \"recurrent\" runs forward as a sequential loop over time "
        "(slow)");
  }
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> GatedDeltaProductMixer::qkv(
    const torch::Tensor& x, sb::MixerState* state) {
  auto q = q_proj(x);  // [..., H·K]
  auto k = k_proj(x);  // [..., n_h·H·K]
  auto v = v_proj(x);  // [..., n_h·H·V]
  if (!use_short_conv_) return {torch::silu(q), torch::silu(k), torch::silu(v)};
  if (state == nullptr) return {q_conv1d(q), k_conv1d(k), v_conv1d(v)};
  return {q_conv1d->step(q, state->tensors[1]), k_conv1d->step(k, state->tensors[2]),
          v_conv1d->step(v, state->tensors[3])};
}

torch::Tensor GatedDeltaProductMixer::betas(const torch::Tensor& x) {
  auto beta = torch::sigmoid(b_proj(x));  // [..., n_h·H]
  return allow_neg_eigval_ ? beta * 2.0 : beta;
}

torch::Tensor GatedDeltaProductMixer::log_decay(const torch::Tensor& x, torch::ScalarType ct) {
  // In float32 even for bf16 parameters, as the reference (a_proj's output cast up first).
  return -torch::exp(A_log.to(ct)) * torch::softplus(a_proj(x).to(ct) + dt_bias.to(ct));
}

torch::Tensor GatedDeltaProductMixer::output_norm(const torch::Tensor& o, const torch::Tensor& x) {
  if (!use_output_gate_) return o_norm(o);
  auto shape = o.sizes().vec();
  return o_norm_gated(o, g_proj(x).view(shape));  // gate [..., H, V]
}

torch::Tensor GatedDeltaProductMixer::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == d_model_, "gated_delta_product: expected x [B, T, ",
              d_model_, "], got ", x.sizes());
  const auto B = x.size(0), T = x.size(1), H = n_heads_, K = head_k_, V = head_v_;
  const auto NH = num_householder_;
  const auto ct = sb::compute_dtype(x.scalar_type());
  auto [q, k, v] = qkv(x, nullptr);  // [B, T, H·K], [B, T, n_h·H·K], [B, T, n_h·H·V]
  // The interleaved sequence of length n_h·T: sub-step (t, j) is row t·n_h + j, which is exactly
  // the channel layout [n_h][H][·] of the projections flattened together with time.
  const auto kh = sb::l2norm(k.reshape({B, T * NH, H, K}).to(ct));  // [B, T·n_h, H, K]
  const auto vh = v.reshape({B, T * NH, H, V});              // [B, T·n_h, H, V]
  const auto beta = betas(x).reshape({B, T * NH, H});        // [B, T·n_h, H]
  // The query only at the last sub-step of each token, zero at the others.
  const auto q_last =
      sb::l2norm(q.view({B, T, 1, H, K}).to(ct)) * (1.0 / std::sqrt(double(K)));  // [B, T, 1, H, K]
  const auto qh =
      torch::cat({torch::zeros({B, T, NH - 1, H, K}, q_last.options()), q_last}, 2)
          .view({B, T * NH, H, K});  // [B, T·n_h, H, K]
  // The token's log decay at its first sub-step, 0 at the others (undefined: no gate at all).
  torch::Tensor g;
  if (use_forget_gate_) {
    const auto g_first = log_decay(x, ct).unsqueeze(2);  // [B, T, 1, H]
    g = torch::cat({g_first, torch::zeros({B, T, NH - 1, H}, g_first.options())}, 2)
            .view({B, T * NH, H});  // [B, T·n_h, H]
  }
  auto o = recurrent_mode_ ? sb::delta_rule_reference(qh, kh, vh, beta, g).output
                           : sb::delta_rule_chunked(qh, kh, vh, beta, g, {}, chunk_size_).output;
  o = o.view({B, T, NH, H, V}).select(2, NH - 1);  // [B, T, H, V], the outputs at the last sub-step
  o = output_norm(o.to(x.scalar_type()), x);        // [B, T, H, V]
  return o_proj(o.reshape({B, T, H * V}));          // [B, T, D]
}

sb::MixerState GatedDeltaProductMixer::init_state(std::int64_t batch, const torch::Device& device,
                                                  torch::ScalarType dtype) {
  sb::MixerState state;
  state.tensors.push_back(
      torch::zeros({batch, n_heads_, head_k_, head_v_},
                   torch::TensorOptions().device(device).dtype(sb::compute_dtype(dtype))));
  if (use_short_conv_) {
    state.tensors.push_back(q_conv1d->init_cache(batch, device, dtype));  // [B, H·K, conv−1]
    state.tensors.push_back(k_conv1d->init_cache(batch, device, dtype));  // [B, n_h·H·K, conv−1]
    state.tensors.push_back(v_conv1d->init_cache(batch, device, dtype));  // [B, n_h·H·V, conv−1]
  }
  state.position = 0;
  return state;
}

torch::Tensor GatedDeltaProductMixer::step(const torch::Tensor& x_t, sb::MixerState& state) {
  TORCH_CHECK(x_t.dim() == 2 && x_t.size(1) == d_model_, "gated_delta_product: expected x_t [B, ",
              d_model_, "], got ", x_t.sizes());
  TORCH_CHECK(state.tensors.size() == (use_short_conv_ ? 4u : 1u),
              "gated_delta_product: the state does not come from this mixer's init_state");
  const auto B = x_t.size(0), H = n_heads_, K = head_k_, V = head_v_;
  const auto NH = num_householder_;
  auto [q, k, v] = qkv(x_t, &state);  // [B, H·K], [B, n_h·H·K], [B, n_h·H·V]
  auto& S = state.tensors[0];         // [B, H, K, V]
  const auto ct = S.scalar_type();
  const auto qh = sb::l2norm(q.view({B, H, K}).to(ct)) * (1.0 / std::sqrt(double(K)));  // [B, H, K]
  const auto kh = sb::l2norm(k.view({B, NH, H, K}).to(ct));                             // [B,n_h,H,K]
  const auto vh = v.view({B, NH, H, V}).to(ct);                                     // [B,n_h,H,V]
  const auto beta = betas(x_t).view({B, NH, H}).to(ct);                             // [B, n_h, H]
  const auto g = use_forget_gate_ ? log_decay(x_t, ct) : torch::Tensor();           // [B, H]
  // n_h delta-rule steps, the decay at the first only; the output after the last is kept (the
  // query at the earlier sub-steps only produces outputs that are discarded).
  torch::Tensor o;
  for (std::int64_t j = 0; j < NH; ++j) {
    o = sb::delta_rule_step(qh, kh.select(1, j), vh.select(1, j), beta.select(1, j),
                            j == 0 ? g : torch::Tensor(), S);  // [B, H, V]
  }
  o = output_norm(o.to(x_t.scalar_type()), x_t);  // [B, H, V]
  state.position += 1;
  return o_proj(o.reshape({B, H * V}));  // [B, D]
}

std::int64_t GatedDeltaProductMixer::state_elements(std::int64_t /*seq_len*/) const {
  const auto recurrent = n_heads_ * head_k_ * head_v_;
  const auto caches =
      use_short_conv_
          ? (conv_size_ - 1) * (key_dim_ + num_householder_ * (key_dim_ + value_dim_))
          : 0;
  return recurrent + caches;
}

std::string GatedDeltaProductMixer::describe() const {
  std::ostringstream s;
  s << "gated_delta_product(d=" << d_model_ << ", H=" << n_heads_ << ", K=" << head_k_
    << ", V=" << head_v_ << ", householder=" << num_householder_
    << ", beta=" << (allow_neg_eigval_ ? "(0,2)" : "(0,1)")
    << ", conv=" << (use_short_conv_ ? std::to_string(conv_size_) : std::string("off"))
    << ", forget=" << (use_forget_gate_ ? "on" : "off")
    << ", gate=" << (use_output_gate_ ? "on" : "off")
    << ", mode=" << (recurrent_mode_ ? "recurrent" : "chunk");
  if (!recurrent_mode_) s << ", chunk=" << chunk_size_;
  s << ")";
  return s.str();
}

// ---- descriptor ---------------------------------------------------------------------------------

sb::PluginDescriptor describe_gated_delta_product() {
  sb::PluginDescriptor d;
  d.name = "gated_delta_product";
  d.version = "1.0.0";
  d.summary =
      "Gated DeltaProduct: matrix state per head, n_h delta-rule (generalized Householder) updates "
      "per token with an input-dependent decay per head";
  d.source =
      "Siems et al. 2025, DeltaProduct: Improving State-Tracking in Linear RNNs via Householder "
      "Products; fla's GatedDeltaProduct layer";
  d.taxonomy.recurrence = sb::Recurrence::kLinear;
  d.taxonomy.gate = sb::Gate::kScalarPerHead;
  // exp(g)·Π_j (I − β_j k_j k_jᵀ) = scalar·(identity + a rank-n_h term): diagonal plus low rank for
  // n_h < K (the defaults: n_h = 4, K = d/H ≥ 64 at the reference's widths).
  d.taxonomy.transition = sb::Transition::kDiagonalPlusLowRank;
  d.taxonomy.state_expansion = sb::StateExpansion::kMatrixPerHead;
  d.taxonomy.memory = sb::Memory::kConstant;
  d.taxonomy.short_conv = true;
  d.capabilities.recurrent_step = true;
  d.capabilities.cuda = true;
  d.capabilities.bf16 = true;
  d.capabilities.reference_only = false;
  d.options = {
      sb::OptionSpec::integer("num_householder", 4, 1, 64,
                              "n_h: delta-rule (generalized Householder) updates per token"),
      sb::OptionSpec::boolean("allow_neg_eigval", true,
                              "β = 2σ(·) ∈ (0, 2), so the Householder factors may have the "
                              "eigenvalue −1 side (without: β = σ(·) ∈ (0, 1))"),
      sb::OptionSpec::boolean("use_forget_gate", true,
                              "per-token decay exp(g) with g = −exp(A_log)·softplus(a_proj u + "
                              "dt_bias) (without: no decay, no a_proj, A_log, dt_bias)"),
      sb::OptionSpec::boolean(
          "use_output_gate", true,
          "output gate: rmsnorm(o) ⊙ silu(g_proj u) (without: rmsnorm(o), no g_proj)"),
      sb::OptionSpec::real("expand_v", 2.0, 0.0625, 16.0,
                           "value width = d_model · expand_v, split over the heads"),
      sb::OptionSpec::integer("conv_size", 4, 2, 64, "kernel of the short convolutions"),
      sb::OptionSpec::boolean("use_short_conv", true,
                              "short convolutions before the SiLU on q, k, v (without: SiLU of "
                              "the bare projections)"),
      sb::OptionSpec::integer(
          "chunk_size", 64, 1, 4096,
          "interleaved sub-steps per chunk in mode \"chunk\" (64 = 16 tokens at n_h = 4)"),
      sb::OptionSpec::real("norm_eps", 1e-5, 0.0, 1.0, "epsilon of the output RMSNorm"),
      sb::OptionSpec::choice(
          "mode", "chunk", {"chunk", "recurrent"},
          "forward as the chunked form, or as the slow sequential reference loop"),
  };
  // The reference trains the delta-rule family in pure bf16 (models.md §2, item 6).
  d.cuda_dtype = torch::kBFloat16;
  d.factory = [](const sb::MixerContext& ctx) -> std::shared_ptr<sb::Mixer> {
    return std::make_shared<GatedDeltaProductMixer>(ctx);
  };
  return d;
}

}  // namespace sb::plugins
