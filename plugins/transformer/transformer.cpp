// The transformer mixer (models.md §4.1); see transformer.hpp for the math and the parameters.
#include "transformer.hpp"

#include <cmath>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace sb::plugins {

namespace {

constexpr double kRepoNormEps = 1e-8;

}  // namespace

// ---- RepoRMSNorm --------------------------------------------------------------------------------

RepoRMSNormImpl::RepoRMSNormImpl(std::int64_t dim) : dim_(dim) {
  weight = register_parameter("weight", torch::ones({dim}));  // [n]
}

torch::Tensor RepoRMSNormImpl::forward(const torch::Tensor& x) {
  const auto dtype = sb::compute_dtype(x);
  auto xc = x.to(dtype);                                                    // [..., n]
  auto rms = xc.norm(2, {-1}, /*keepdim=*/true) / std::sqrt(double(dim_));  // [..., 1]
  auto y = xc / (rms + kRepoNormEps) * weight.to(dtype);                    // [..., n]
  return y.to(x.scalar_type());
}

// ---- TransformerMixer ---------------------------------------------------------------------------

TransformerMixer::TransformerMixer(const sb::MixerContext& ctx)
    : d_model_(ctx.d_model),
      n_heads_(ctx.n_heads),
      head_dim_(0),
      rope_base_(ctx.options.get_float("rope_base")),
      dropout_p_(ctx.options.get_float("dropout")),
      double_residual_(ctx.options.get_bool("double_residual")) {
  const auto D = d_model_;
  const auto H = n_heads_;
  if (D <= 0 || H <= 0 || D % H != 0) {
    throw std::invalid_argument("transformer: d_model " + std::to_string(D) +
                                " is not a multiple of n_heads " + std::to_string(H));
  }
  head_dim_ = D / H;
  if (head_dim_ % 2 != 0) {
    throw std::invalid_argument(
        "transformer: the head dim d_model/n_heads = " + std::to_string(head_dim_) +
        " is odd; rotary embedding needs an even head dim (the reference "
        "remaps d_model 648 -> 768 and 1296 -> 1280)");
  }
  if (!(dropout_p_ >= 0.0 && dropout_p_ < 1.0)) {
    throw std::invalid_argument("transformer: dropout must be in [0, 1)");
  }
  if (!(rope_base_ > 0.0)) throw std::invalid_argument("transformer: rope_base must be positive");

  q = register_module("q", torch::nn::Linear(D, D));
  k = register_module("k", torch::nn::Linear(D, D));
  v = register_module("v", torch::nn::Linear(D, D));
  out = register_module("out", torch::nn::Linear(D, D));
  q_norm = register_module("q_norm", RepoRMSNorm(head_dim_));
  k_norm = register_module("k_norm", RepoRMSNorm(head_dim_));
  out_norm = register_module("out_norm", RepoRMSNorm(D));
  linear1 = register_module("linear1", torch::nn::Linear(D, 8 * D));
  linear2 = register_module("linear2", torch::nn::Linear(4 * D, D));
  beta = register_parameter("beta", torch::ones({}));  // []
  dropout = register_module("dropout", torch::nn::Dropout(dropout_p_));
}

torch::Tensor TransformerMixer::finish(const torch::Tensor& x, const torch::Tensor& a) {
  auto attn = out_norm(out(a));                            // [..., D]
  auto x1 = x + attn;                                      // [..., D]
  auto u = linear1(x1).chunk(2, -1);                       // 2 × [..., 4D]
  auto gated = u[0] * torch::sigmoid(beta * u[0]) * u[1];  // [..., 4D]
  auto f = dropout(linear2(gated));                        // [..., D]
  // The reference layer's output includes its input x; by default return only the update.
  return double_residual_ ? x1 + f : attn + f;  // [..., D]
}

torch::Tensor TransformerMixer::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == d_model_, "transformer: expected x [B, T, ", d_model_,
              "], got ", x.sizes());
  const auto B = x.size(0), T = x.size(1), H = n_heads_, K = head_dim_;
  auto qh = q_norm(q(x).view({B, T, H, K}));  // [B, T, H, K]
  auto kh = k_norm(k(x).view({B, T, H, K}));  // [B, T, H, K]
  auto vh = v(x).view({B, T, H, K});          // [B, T, H, K]
  qh = sb::apply_rotary(qh, 0, rope_base_, sb::RotaryConvention::kNegated);
  kh = sb::apply_rotary(kh, 0, rope_base_, sb::RotaryConvention::kNegated);
  auto a = sb::compat::causal_attention(qh.transpose(1, 2), kh.transpose(1, 2), vh.transpose(1, 2),
                                        1.0 / std::sqrt(double(K)));  // [B, H, T, K]
  a = a.transpose(1, 2).reshape({B, T, d_model_});                    // [B, T, D]
  return finish(x, a);
}

sb::MixerState TransformerMixer::init_state(std::int64_t batch, const torch::Device& device,
                                            torch::ScalarType dtype) {
  auto opts = torch::TensorOptions().device(device).dtype(dtype);
  sb::MixerState state;
  state.tensors = {torch::zeros({batch, n_heads_, 0, head_dim_}, opts),   // [B, H, 0, K] keys
                   torch::zeros({batch, n_heads_, 0, head_dim_}, opts)};  // [B, H, 0, K] values
  state.position = 0;
  return state;
}

torch::Tensor TransformerMixer::step(const torch::Tensor& x_t, sb::MixerState& state) {
  TORCH_CHECK(x_t.dim() == 2 && x_t.size(1) == d_model_, "transformer: expected x_t [B, ", d_model_,
              "], got ", x_t.sizes());
  TORCH_CHECK(state.tensors.size() == 2, "transformer: the state is not a KV cache");
  const auto B = x_t.size(0), H = n_heads_, K = head_dim_;
  auto qh = q_norm(q(x_t).view({B, 1, H, K}));  // [B, 1, H, K]
  auto kh = k_norm(k(x_t).view({B, 1, H, K}));  // [B, 1, H, K]
  auto vh = v(x_t).view({B, 1, H, K});          // [B, 1, H, K]
  qh = sb::apply_rotary(qh, state.position, rope_base_, sb::RotaryConvention::kNegated);
  kh = sb::apply_rotary(kh, state.position, rope_base_, sb::RotaryConvention::kNegated);
  auto keys = torch::cat({state.tensors[0], kh.transpose(1, 2)}, 2);    // [B, H, S+1, K]
  auto values = torch::cat({state.tensors[1], vh.transpose(1, 2)}, 2);  // [B, H, S+1, K]
  // One query sees every cached key: no mask.
  auto scores = torch::matmul(qh.transpose(1, 2), keys.transpose(-2, -1)) /
                std::sqrt(double(K));                          // [B, H, 1, S+1]
  auto a = torch::matmul(torch::softmax(scores, -1), values);  // [B, H, 1, K]
  state.tensors[0] = keys;
  state.tensors[1] = values;
  state.position += 1;
  return finish(x_t, a.reshape({B, d_model_}));  // [B, D]
}

std::int64_t TransformerMixer::state_elements(std::int64_t seq_len) const {
  return 2 * seq_len * d_model_;
}

std::string TransformerMixer::describe() const {
  std::ostringstream s;
  s << "transformer(d=" << d_model_ << ", H=" << n_heads_ << ", K=" << head_dim_
    << ", rope_base=" << rope_base_ << ", dropout=" << dropout_p_
    << ", double_residual=" << (double_residual_ ? "on" : "off") << ")";
  return s.str();
}

// ---- descriptor ---------------------------------------------------------------------------------

sb::PluginDescriptor describe_transformer() {
  sb::PluginDescriptor d;
  d.name = "transformer";
  d.version = "1.0.0";
  d.summary = "causal softmax attention with QK-norm and RoPE, plus a SwiGLU feed-forward block";
  d.source = "Vaswani et al. 2017; the reference's TransformerDecoderLayer (SwiGLU, QK-norm, RoPE)";
  d.taxonomy.recurrence = sb::Recurrence::kNone;
  d.taxonomy.gate = sb::Gate::kNone;
  d.taxonomy.transition = sb::Transition::kNotApplicable;
  d.taxonomy.state_expansion = sb::StateExpansion::kNotApplicable;
  d.taxonomy.memory = sb::Memory::kGrowsWithLength;
  d.taxonomy.short_conv = false;
  d.capabilities.recurrent_step = true;
  d.capabilities.cuda = true;
  d.capabilities.bf16 = true;
  d.capabilities.reference_only = false;
  d.options = {
      sb::OptionSpec::real("rope_base", 1000.0, 1.0, 1e9,
                           "rotary embedding base (the reference passes 1000, not 10000)"),
      sb::OptionSpec::real(
          "dropout", 0.2, 0.0, 1.0,
          "dropout on the feed-forward output, in [0, 1); active in training only"),
      sb::OptionSpec::boolean(
          "double_residual", false,
          "return x + update as the reference's layer does, so the network adds x twice "
          "(models.md §3.3 item 1; configs/paper/ turn it on)"),
  };
  d.cuda_dtype = torch::kFloat32;
  d.factory = [](const sb::MixerContext& ctx) -> std::shared_ptr<sb::Mixer> {
    return std::make_shared<TransformerMixer>(ctx);
  };
  return d;
}

}  // namespace sb::plugins
