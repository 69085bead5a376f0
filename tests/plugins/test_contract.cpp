// The plugin contract as one table: every built-in plugin, in each variant worth checking, through
// the conformance kit (core/plugins/conformance.hpp) in float64 on the CPU, where a chunked form
// and its sequential reference must agree to 1e-9 and outputs that must not move (causality,
// other batch rows) move by at most 1e-12. The kit checks shapes and dtype, causality, step =
// forward, batch independence, finite non-zero gradients, determinism, the state-dict round trip,
// the moves to bfloat16 (and CUDA where present) and state_elements.
//
// Adding a plugin, or a variant of one, is one row of kContract. The per-plugin test files keep
// what is specific to a plugin: parameter counts and names, the layer written out as a loop,
// special cases.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/plugins/conformance.hpp"
#include "tests/plugins/mixer_test_util.hpp"
#include "plugins/delta_net/delta_net.hpp"
#include "plugins/gated_delta_net/gated_delta_net.hpp"
#include "plugins/gated_delta_product/gated_delta_product.hpp"
#include "plugins/gla/gla.hpp"
#include "plugins/gru/gru.hpp"
#include "plugins/linear_attention/linear_attention.hpp"
#include "plugins/mamba/mamba.hpp"
#include "plugins/mamba2/mamba2.hpp"
#include "plugins/mesa_net/mesa_net.hpp"
#include "plugins/retnet/retnet.hpp"
#include "plugins/s4d/s4d.hpp"
#include "plugins/transformer/transformer.hpp"

namespace {

using Options = std::vector<std::pair<std::string, sb::OptionValue>>;

// A row's test name is its `name` column.
template <typename Row>
std::string row_name(const ::testing::TestParamInfo<Row>& info) {
  return info.param.name;
}

struct ContractCase {
  const char* name;  // the test's name: plugin_variant
  sb::PluginDescriptor (*describe)();
  std::int64_t d_model;
  std::int64_t n_heads;
  Options options;
};

// clang-format off
const ContractCase kContract[] = {
  // name                          plugin                                   D   H  options
  {"transformer",                  sb::plugins::describe_transformer,       32, 4, {}},
  {"transformer_double_residual",  sb::plugins::describe_transformer,       32, 4, {{"double_residual", true}}},
  {"gla",                          sb::plugins::describe_gla,               32, 4, {}},
  {"gla_odd_heads",                sb::plugins::describe_gla,               18, 2, {}},  // K = 9, V = 18
  {"gla_no_conv",                  sb::plugins::describe_gla,               32, 4, {{"use_short_conv", false}}},
  {"gla_chunk16",                  sb::plugins::describe_gla,               32, 2, {{"chunk_size", std::int64_t{16}}, {"expand_k", 0.5}}},
  {"gla_recurrent",                sb::plugins::describe_gla,               32, 4, {{"mode", std::string("recurrent")}}},
  {"linear_attention",             sb::plugins::describe_linear_attention,  32, 4, {}},
  {"linear_attention_odd_heads",   sb::plugins::describe_linear_attention,  18, 2, {}},  // K = 9, V = 18
  {"linear_attention_no_conv",     sb::plugins::describe_linear_attention,  32, 4, {{"use_short_conv", false}}},
  {"linear_attention_chunk16",     sb::plugins::describe_linear_attention,  32, 2, {{"chunk_size", std::int64_t{16}}, {"expand_k", 0.5}}},
  {"linear_attention_recurrent",   sb::plugins::describe_linear_attention,  32, 4, {{"mode", std::string("recurrent")}}},
  {"mamba",                        sb::plugins::describe_mamba,             32, 4, {}},
  {"mamba_reference",              sb::plugins::describe_mamba,             32, 4, {{"mode", std::string("reference")}}},
  {"mamba2",                       sb::plugins::describe_mamba2,            32, 4, {}},
  {"mamba2_recurrent",             sb::plugins::describe_mamba2,            32, 4, {{"mode", std::string("recurrent")}}},
  {"delta_net",                    sb::plugins::describe_delta_net,         32, 4, {}},
  {"delta_net_odd_heads",          sb::plugins::describe_delta_net,         18, 2, {}},
  {"delta_net_no_conv",            sb::plugins::describe_delta_net,         32, 4, {{"use_short_conv", false}}},
  {"delta_net_chunk16",            sb::plugins::describe_delta_net,         32, 2, {{"chunk_size", std::int64_t{16}}, {"expand_k", 0.5}}},
  {"delta_net_recurrent",          sb::plugins::describe_delta_net,         32, 4, {{"mode", std::string("recurrent")}}},
  {"gated_delta_net",              sb::plugins::describe_gated_delta_net,   32, 4, {}},
  {"gated_delta_net_odd_heads",    sb::plugins::describe_gated_delta_net,   18, 2, {}},
  {"gated_delta_net_no_conv",      sb::plugins::describe_gated_delta_net,   32, 4, {{"use_short_conv", false}}},
  {"gated_delta_net_chunk16",      sb::plugins::describe_gated_delta_net,   32, 2, {{"chunk_size", std::int64_t{16}}, {"expand_v", 1.0}}},
  {"gated_delta_net_no_gate",      sb::plugins::describe_gated_delta_net,   32, 4, {{"use_gate", false}}},
  {"gated_delta_net_recurrent",    sb::plugins::describe_gated_delta_net,   32, 4, {{"mode", std::string("recurrent")}}},
  {"gated_delta_product",          sb::plugins::describe_gated_delta_product, 32, 4, {}},
  {"gated_delta_product_3",        sb::plugins::describe_gated_delta_product, 18, 2, {{"num_householder", std::int64_t{3}}}},
  {"gated_delta_product_no_conv",  sb::plugins::describe_gated_delta_product, 32, 4, {{"use_short_conv", false}}},
  {"gated_delta_product_chunk16",  sb::plugins::describe_gated_delta_product, 32, 2, {{"chunk_size", std::int64_t{16}}, {"expand_v", 1.0}}},
  {"gated_delta_product_ungated",  sb::plugins::describe_gated_delta_product, 32, 4, {{"use_output_gate", false}, {"use_forget_gate", false}}},
  {"gated_delta_product_positive", sb::plugins::describe_gated_delta_product, 32, 4, {{"allow_neg_eigval", false}, {"num_householder", std::int64_t{1}}}},
  {"gated_delta_product_recurrent", sb::plugins::describe_gated_delta_product, 32, 4, {{"mode", std::string("recurrent")}}},
  {"retnet",                       sb::plugins::describe_retnet,            32, 4, {}},
  {"retnet_odd_heads",             sb::plugins::describe_retnet,            20, 2, {}},  // K = 10, V = 20
  {"retnet_no_conv",               sb::plugins::describe_retnet,            32, 4, {{"use_short_conv", false}}},
  {"retnet_chunk16",               sb::plugins::describe_retnet,            32, 2, {{"chunk_size", std::int64_t{16}}, {"expand_k", 0.5}}},
  {"retnet_recurrent",             sb::plugins::describe_retnet,            32, 4, {{"mode", std::string("recurrent")}}},
  {"mesa_net",                     sb::plugins::describe_mesa_net,          32, 4, {}},
  {"mesa_net_chunk8",              sb::plugins::describe_mesa_net,          32, 4, {{"chunk_size", std::int64_t{8}}}},
  {"mesa_net_gated_chunk8",        sb::plugins::describe_mesa_net,          32, 2, {{"use_output_gate", true}, {"chunk_size", std::int64_t{8}}}},
  {"mesa_net_reference",           sb::plugins::describe_mesa_net,          32, 4, {{"mode", std::string("reference")}}},
  {"s4d",                          sb::plugins::describe_s4d,               32, 4, {}},
  {"s4d_recurrent",                sb::plugins::describe_s4d,               32, 4, {{"mode", std::string("recurrent")}}},
  {"gru",                          sb::plugins::describe_gru,               32, 4, {}},
};
// clang-format on

class Contract : public ::testing::TestWithParam<ContractCase> {};

TEST_P(Contract, PassesTheConformanceKitInFloat64) {
  const ContractCase& c = GetParam();
  sb::LoadedPlugin plugin;  // compiled into this test: no library
  plugin.descriptor = c.describe();
  plugin.path = "(compiled in)";
  sb::ConformanceOptions options;
  options.dtype = "float64";
  options.d_model = c.d_model;
  options.n_heads = c.n_heads;
  options.throughput = false;
  options.plugin_options = c.options;
  const sb::ConformanceReport report = sb::run_conformance(plugin, options);
  for (const auto& check : report.checks) {
    EXPECT_NE(check.status, "FAIL") << c.name << ": " << check.name << ": " << check.detail;
  }
  EXPECT_TRUE(report.passed()) << sb::format_report(report);
}

INSTANTIATE_TEST_SUITE_P(Plugins, Contract, ::testing::ValuesIn(kContract), row_name<ContractCase>);

// A plugin's fast forward (chunked, scan, FFT) against its reference form, on the same parameters:
// one row per (plugin, fast options), the reference named by its `mode` option.
struct ModesCase {
  const char* name;
  sb::PluginDescriptor (*describe)();
  std::int64_t d_model, n_heads, batch, T;
  std::map<std::string, sb::OptionValue> fast;  // options of the fast form
  const char* reference_mode;                   // `mode` of the reference form
  torch::ScalarType dtype;
  double tolerance;  // relative error allowed
  std::uint64_t seed;
};

// clang-format off
const ModesCase kModes[] = {
  // name                      plugin                                      D   H  B  T    fast options                             reference    dtype           tol   seed
  {"gla_chunk16",              sb::plugins::describe_gla,                  32, 4, 2, 70,  {{"chunk_size", std::int64_t{16}}},     "recurrent", torch::kFloat64, 1e-9, 5},
  {"gla_chunk64",              sb::plugins::describe_gla,                  32, 4, 2, 70,  {{"chunk_size", std::int64_t{64}}},     "recurrent", torch::kFloat64, 1e-9, 5},
  {"delta_net_chunk16",        sb::plugins::describe_delta_net,            32, 4, 2, 70,  {{"chunk_size", std::int64_t{16}}},     "recurrent", torch::kFloat64, 1e-9, 5},
  {"delta_net_chunk64",        sb::plugins::describe_delta_net,            32, 4, 2, 70,  {{"chunk_size", std::int64_t{64}}},     "recurrent", torch::kFloat64, 1e-9, 5},
  {"gated_delta_net_chunk16",  sb::plugins::describe_gated_delta_net,      32, 4, 2, 70,  {{"chunk_size", std::int64_t{16}}},     "recurrent", torch::kFloat64, 1e-9, 5},
  {"gated_delta_net_chunk64",  sb::plugins::describe_gated_delta_net,      32, 4, 2, 70,  {{"chunk_size", std::int64_t{64}}},     "recurrent", torch::kFloat64, 1e-9, 5},
  {"gated_delta_product_chunk16", sb::plugins::describe_gated_delta_product, 32, 4, 2, 45, {{"chunk_size", std::int64_t{16}}},   "recurrent", torch::kFloat64, 1e-9, 5},
  {"gated_delta_product_chunk64", sb::plugins::describe_gated_delta_product, 32, 4, 2, 45, {{"chunk_size", std::int64_t{64}}},   "recurrent", torch::kFloat64, 1e-9, 5},
  {"linear_attention_chunk16", sb::plugins::describe_linear_attention,     32, 4, 2, 70,  {{"chunk_size", std::int64_t{16}}},     "recurrent", torch::kFloat64, 1e-9, 5},
  {"linear_attention_chunk64", sb::plugins::describe_linear_attention,     32, 4, 2, 70,  {{"chunk_size", std::int64_t{64}}},     "recurrent", torch::kFloat64, 1e-9, 5},
  // float32 too: without a decay the state only grows, which the chunked sums must not lose.
  {"linear_attention_float32", sb::plugins::describe_linear_attention,     64, 4, 2, 300, {},                                     "recurrent", torch::kFloat32, 1e-4, 6},
  {"mamba2_chunk16_float32",   sb::plugins::describe_mamba2,               32, 4, 3, 50,  {{"chunk_size", std::int64_t{16}}},     "recurrent", torch::kFloat32, 1e-5, 5},
  {"mamba2_chunk16",           sb::plugins::describe_mamba2,               32, 4, 2, 70,  {{"chunk_size", std::int64_t{16}}},     "recurrent", torch::kFloat64, 1e-9, 5},
  {"retnet_chunk16",           sb::plugins::describe_retnet,               32, 4, 2, 70,  {{"chunk_size", std::int64_t{16}}},     "recurrent", torch::kFloat64, 1e-9, 5},
  {"retnet_chunk64",           sb::plugins::describe_retnet,               32, 4, 2, 70,  {{"chunk_size", std::int64_t{64}}},     "recurrent", torch::kFloat64, 1e-9, 5},
  {"mamba_scan",               sb::plugins::describe_mamba,                32, 4, 2, 70,  {},                                     "reference", torch::kFloat64, 1e-9, 5},
  {"mesa_net_chunk8",          sb::plugins::describe_mesa_net,             32, 4, 2, 70,  {{"chunk_size", std::int64_t{8}}},      "reference", torch::kFloat64, 1e-9, 5},
  {"s4d_fft",                  sb::plugins::describe_s4d,                  32, 4, 2, 70,  {},                                     "recurrent", torch::kFloat64, 1e-9, 5},
};
// clang-format on

class Modes : public ::testing::TestWithParam<ModesCase> {};

TEST_P(Modes, FastFormEqualsTheReferenceForm) {
  const ModesCase& c = GetParam();
  const auto descriptor = c.describe();
  auto reference_options = c.fast;
  reference_options.erase("chunk_size");
  reference_options["mode"] = std::string(c.reference_mode);
  auto fast = sb::test::make_mixer(descriptor, c.d_model, c.n_heads, c.fast, c.seed);
  auto reference = sb::test::make_mixer(descriptor, c.d_model, c.n_heads, reference_options, c.seed);
  fast->to(c.dtype);
  reference->to(c.dtype);
  fast->eval();
  reference->eval();
  torch::NoGradGuard no_grad;
  torch::manual_seed(c.seed + 1);
  const auto x = torch::randn({c.batch, c.T, c.d_model}, c.dtype);  // [B, T, D]
  EXPECT_LT(sb::test::rel_err(fast->forward(x), reference->forward(x)), c.tolerance)
      << fast->describe() << " vs " << reference->describe();
}

INSTANTIATE_TEST_SUITE_P(Plugins, Modes, ::testing::ValuesIn(kModes), row_name<ModesCase>);

}  // namespace
