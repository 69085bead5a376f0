// my_gate: linear attention with one input-dependent decay per head — the smallest complete
// selectivbench plugin, written against the installed SDK only. Copy this folder to start a new one.
//
// Per head h, with K = V = D/H:
//   q, k, v = W_q u, W_k u, W_v u                    split into H heads     [B, T, H, K]
//   g_t     = logsigmoid(w_h · u_t + b_h) / τ         one log decay per head, ≤ 0
//   S_t     = e^{g_t} S_{t−1} + k_t v_tᵀ               S ∈ R^{K×V}
//   o_t     = S_tᵀ q_t · K^−½
//   y       = W_o concat_heads(o)
// Training uses the SDK's chunked form for one decay per head (sb::gla_scalar_chunked); `step` uses
// the gated-linear-attention step with that decay broadcast over the K key channels.
#include <selectivbench/sdk.hpp>

#include <cmath>
#include <sstream>

namespace {

class MyGate : public sb::Mixer {
 public:
  explicit MyGate(const sb::MixerContext& ctx)
      : D_(ctx.d_model),
        H_(ctx.n_heads),
        K_(ctx.d_model / ctx.n_heads),
        tau_(ctx.options.get_float("gate_normalizer")),
        chunk_(ctx.options.get_int("chunk_size")) {
    if (D_ % H_ != 0) throw std::invalid_argument("my_gate: d_model must be divisible by n_heads");
    q_proj = register_module("q_proj", sb::linear_no_bias(D_, D_));
    k_proj = register_module("k_proj", sb::linear_no_bias(D_, D_));
    v_proj = register_module("v_proj", sb::linear_no_bias(D_, D_));
    gate_proj = register_module("gate_proj", torch::nn::Linear(D_, H_));
    o_proj = register_module("o_proj", sb::linear_no_bias(D_, D_));
  }

  torch::Tensor forward(const torch::Tensor& x) override {  // [B, T, D] -> [B, T, D]
    const auto B = x.size(0), T = x.size(1);
    const auto q = q_proj(x).view({B, T, H_, K_}) / std::sqrt(double(K_));  // [B, T, H, K]
    const auto k = k_proj(x).view({B, T, H_, K_});                           // [B, T, H, K]
    const auto v = v_proj(x).view({B, T, H_, K_});                           // [B, T, H, V]
    const auto g = log_decay(x);                                             // [B, T, H]
    const auto o = sb::gla_scalar_chunked(q, k, v, g, {}, chunk_).output;   // [B, T, H, V]
    return o_proj(o.reshape({B, T, D_}));
  }

  sb::MixerState init_state(std::int64_t batch, const torch::Device& device,
                            torch::ScalarType dtype) override {
    // float32 (float64 for float64 activations) whatever the activations' dtype, as the chunked
    // form keeps it.
    return {{torch::zeros({batch, H_, K_, K_}, torch::TensorOptions(device).dtype(sb::state_dtype(dtype)))},
            0};
  }

  torch::Tensor step(const torch::Tensor& x_t, sb::MixerState& state) override {  // [B, D]
    const auto B = x_t.size(0);
    const auto q = q_proj(x_t).view({B, H_, K_}) / std::sqrt(double(K_));  // [B, H, K]
    const auto k = k_proj(x_t).view({B, H_, K_});
    const auto v = v_proj(x_t).view({B, H_, K_});
    const auto g = log_decay(x_t).unsqueeze(-1).expand({B, H_, K_});  // [B, H, K]
    const auto o = sb::gla_step(q, k, v, g, state.tensors[0]);  // [B, H, V]
    ++state.position;
    return o_proj(o.reshape({B, D_}));
  }

  std::int64_t state_elements(std::int64_t) const override { return H_ * K_ * K_; }

  std::string describe() const override {
    std::ostringstream s;
    s << "my_gate(d=" << D_ << ", H=" << H_ << ", tau=" << tau_ << ", chunk=" << chunk_ << ")";
    return s.str();
  }

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr};  // [D, D]
  torch::nn::Linear gate_proj{nullptr};                                 // [H, D] + bias
  torch::nn::Linear o_proj{nullptr};                                    // [D, D]

 private:
  // [..., D] -> [..., H], each ≤ 0.
  torch::Tensor log_decay(const torch::Tensor& x) {
    return torch::log_sigmoid(gate_proj(x)) / tau_;
  }

  std::int64_t D_, H_, K_;
  double tau_;
  std::int64_t chunk_;
};

sb::PluginDescriptor describe_my_gate() {
  sb::PluginDescriptor d;
  d.name = "my_gate";  // the library must be libsb_my_gate.so
  d.version = "0.1.0";
  d.summary = "linear attention with one input-dependent decay per head (SDK example)";
  d.source = "examples/my_gate in selectivbench";
  d.taxonomy.recurrence = sb::Recurrence::kLinear;
  d.taxonomy.gate = sb::Gate::kScalarPerHead;
  d.taxonomy.transition = sb::Transition::kDiagonal;
  d.taxonomy.state_expansion = sb::StateExpansion::kMatrixPerHead;
  d.taxonomy.memory = sb::Memory::kConstant;
  d.options = {
      sb::OptionSpec::real("gate_normalizer", 16.0, 1.0, 1e6, "τ: log decays are divided by it"),
      sb::OptionSpec::integer("chunk_size", 64, 1, 4096, "time steps per chunk in forward"),
  };
  d.factory = [](const sb::MixerContext& ctx) { return std::make_shared<MyGate>(ctx); };
  return d;
}

}  // namespace

SELECTIVBENCH_PLUGIN(my_gate, describe_my_gate)
