#include "core/run/run_record.hpp"

#include "core/train/trainer.hpp"

namespace sb {

using json = nlohmann::json;

namespace {

json duration_json(const Duration& d) {
  if (d.kind == Duration::Kind::kConstant) return d.value;
  return {{"dist", "uniform"}, {"low", d.low}, {"high", d.high}};
}

json split_json(const SplitSpec& s) {
  return {{"size", s.size},
          {"noise", s.noise},
          {"gap",
           {{"fill", s.gap.fill == GapFill::kBlank ? "blank" : "grammar"},
            {"start", s.gap.start},
            {"prob", s.gap.prob},
            {"duration", duration_json(s.gap.duration)}}}};
}

json option_json(const OptionValue& v) {
  if (auto i = std::get_if<std::int64_t>(&v)) return *i;
  if (auto f = std::get_if<double>(&v)) return *f;
  if (auto b = std::get_if<bool>(&v)) return *b;
  return std::get<std::string>(v);
}

OptionValue option_from_json(const json& j) {
  if (j.is_boolean()) return j.get<bool>();
  if (j.is_number_integer()) return j.get<std::int64_t>();
  if (j.is_number()) return j.get<double>();
  return j.get<std::string>();
}


}  // namespace

json task_json(const TaskSpec& t) {
  const DataSpec& d = t.data;
  json variant = json::object();
  for (const auto& [k, v] : t.variant) variant[k] = v;
  return {{"name", t.name},
          {"display_name", t.display_name()},
          {"source", t.source},
          {"variant", variant},
          {"evaluates", t.evaluates},
          {"protocol", protocol_name(d.protocol)},
          {"seed", d.seed},
          {"labels", label_mode_name(d.labels)},
          {"grammar",
           {{"vocab", d.grammar.vocab},
            {"ambiguities", d.grammar.ambiguities},
            {"ambiguity_depth", d.grammar.ambiguity_depth},
            {"transition_density", d.grammar.transition_density},
            {"initial_states", d.grammar.initial_states},
            {"max_attempts", d.grammar.max_attempts}}},
          {"sequence",
           {{"length", d.sequence.length},
            {"min_string_length", d.sequence.min_string_length},
            {"max_string_length", d.sequence.max_string_length},
            {"max_string_tries", d.sequence.max_string_tries}}},
          {"train", split_json(d.train)},
          {"test", split_json(d.test)}};
}

json model_json(const ModelConfig& m) {
  json options = json::object();
  for (const auto& [plugin, opts] : m.options) {
    json o = json::object();
    for (const auto& [k, v] : opts.values()) o[k] = option_json(v);
    options[plugin] = o;
  }
  return {{"name", m.name},
          {"layer_plugins", m.layer_plugins},
          {"layers", m.layer_plugins.size()},
          {"width", m.width},
          {"heads", m.heads},
          {"seed", m.seed},
          {"block",
           {{"norm_placement", m.block.placement == NormPlacement::kPost ? "post" : "pre"},
            {"norm", m.block.norm == NormKind::kLayerNorm ? "layernorm" : "rmsnorm"},
            {"mlp", m.block.mlp},
            {"mlp_expansion", m.block.mlp_expansion},
            {"dropout", m.block.dropout}}},
          {"plugin_options", options}};
}

ModelConfig model_from_json(const json& j) {
  ModelConfig m;
  m.name = j.at("name").get<std::string>();
  m.layer_plugins = j.at("layer_plugins").get<std::vector<std::string>>();
  m.width = j.at("width").get<std::int64_t>();
  m.heads = j.at("heads").get<std::int64_t>();
  m.seed = j.at("seed").get<std::uint64_t>();
  const json& b = j.at("block");
  m.block.placement = b.at("norm_placement") == "post" ? NormPlacement::kPost : NormPlacement::kPre;
  m.block.norm = b.at("norm") == "layernorm" ? NormKind::kLayerNorm : NormKind::kRMSNorm;
  m.block.mlp = b.at("mlp").get<bool>();
  m.block.mlp_expansion = b.at("mlp_expansion").get<std::int64_t>();
  m.block.dropout = b.at("dropout").get<double>();
  for (const auto& [plugin, opts] : j.at("plugin_options").items()) {
    Options o;
    for (const auto& [k, v] : opts.items()) o.set(k, option_from_json(v));
    m.options[plugin] = o;
  }
  return m;
}

json training_json(const TrainingSpec& t) {
  return {{"batch_size", t.batch_size},     {"optimizer", t.optimizer},
          {"lr", t.lr},                     {"weight_decay", t.weight_decay},
          {"beta1", t.beta1},               {"beta2", t.beta2},
          {"eps", t.eps},                   {"schedule", t.schedule},
          {"warmup_steps", t.warmup_steps}, {"max_updates", t.max_updates},
          {"clip_norm", t.clip_norm},       {"grad_accumulation", t.grad_accumulation},
          {"eval_every", t.eval_every},     {"eval_batch_size", t.eval_batch_size},
          {"reference_quirks", t.reference_quirks},
          {"device", t.device},             {"dtype", t.dtype},
          {"cuda_graphs", t.cuda_graphs},   {"seed", t.seed}};
}

std::string dtype_name(torch::ScalarType t) {
  return t == torch::kBFloat16 ? "bfloat16" : t == torch::kFloat64 ? "float64" : "float32";
}

NetworkSpec network_spec(const ModelConfig& m, const Dataset& data,
                         const std::vector<SearchFolder>& folders, const LogFn& log,
                         json* plugins_out) {
  NetworkSpec spec;
  spec.input_size = data.grammar().vocab();
  spec.num_classes = num_classes(data);
  spec.d_model = m.width;
  spec.n_heads = m.heads;
  spec.block = m.block;
  spec.seed = m.seed;
  spec.log = log;
  json plugins = json::array();
  for (const auto& name : m.layer_plugins) {
    auto plugin = PluginRegistry::instance().find(name, folders);
    // The recorded values, checked against the plugin's schema as a benchmark file's are: an
    // option the plugin gained since the run was recorded takes its default, and a whole number
    // recorded for a float option (JSON keeps no 1000.0) reads back as a float.
    std::vector<std::pair<std::string, OptionValue>> recorded;
    if (auto it = m.options.find(name); it != m.options.end()) {
      recorded.assign(it->second.values().begin(), it->second.values().end());
    }
    const Options options =
        resolve_options(plugin->descriptor, recorded, "model.plugin_options." + name);
    spec.layers.push_back({plugin, options});
    bool listed = false;
    for (const auto& p : plugins) listed |= p["name"] == name;
    if (!listed) {
      plugins.push_back({{"name", name},
                         {"version", plugin->descriptor.version},
                         {"file", plugin->path},
                         {"fingerprint", describe_fingerprint(plugin->fingerprint)},
                         {"taxonomy", taxonomy_json(plugin->descriptor.taxonomy)}});
      if (plugin->descriptor.capabilities.reference_only && log) {
        log(LogLevel::kWarning, "plugin " + name + " has only a slow reference path");
      }
    }
  }
  if (plugins_out) *plugins_out = plugins;
  return spec;
}


}  // namespace sb
