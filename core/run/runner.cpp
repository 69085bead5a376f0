#include "core/run/runner.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "core/tensor/batch.hpp"
#include "core/train/trainer.hpp"
#include "core/util/atomic_file.hpp"
#include "core/util/parallel.hpp"
#include "selectivbench/torch_compat.hpp"

#ifndef SELECTIVBENCH_VERSION
#define SELECTIVBENCH_VERSION "unknown"
#endif
#ifndef SELECTIVBENCH_GIT_SHA
#define SELECTIVBENCH_GIT_SHA "unknown"
#endif

namespace sb {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string format_lr(double lr) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", lr);
  return buf;
}

// A task's display name as a folder name: "task1_complexity-grammar.ambiguities=20".
std::string task_folder(const TaskSpec& task) {
  std::string out = task.name;
  for (const auto& [key, value] : task.variant) out += "-" + key + "=" + value;
  for (char& c : out) {
    if (c == '/' || c == ' ' || c == '"' || c == '\'') c = '_';
  }
  return out;
}

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

// The network description stored in config.json; enough to rebuild the network for evaluation.
struct ModelConfig {
  std::string name;
  std::vector<std::string> layer_plugins;
  std::int64_t width = 0;
  std::int64_t heads = 0;
  BlockSpec block;
  std::map<std::string, Options> options;  // per plugin name
  std::uint64_t seed = 1;
};

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
          {"seed", t.seed}};
}

std::string dtype_name(torch::ScalarType t) {
  return t == torch::kBFloat16 ? "bfloat16" : t == torch::kFloat64 ? "float64" : "float32";
}

NetworkSpec network_spec(const ModelConfig& m, const Dataset& data,
                         const std::vector<SearchFolder>& folders, bool reference_quirks,
                         const LogFn& log, json* plugins_out) {
  NetworkSpec spec;
  spec.input_size = data.grammar().vocab();
  spec.num_classes = num_classes(data);
  spec.d_model = m.width;
  spec.n_heads = m.heads;
  spec.block = m.block;
  spec.reference_quirks = reference_quirks;
  spec.seed = m.seed;
  spec.log = log;
  json plugins = json::array();
  for (const auto& name : m.layer_plugins) {
    auto plugin = PluginRegistry::instance().find(name, folders);
    auto it = m.options.find(name);
    spec.layers.push_back({plugin, it != m.options.end() ? it->second
                                                         : Options(plugin->descriptor.options)});
    bool listed = false;
    for (const auto& p : plugins) listed |= p["name"] == name;
    if (!listed) {
      plugins.push_back({{"name", name},
                         {"version", plugin->descriptor.version},
                         {"file", plugin->path},
                         {"fingerprint", describe_fingerprint(plugin->fingerprint)}});
      if (plugin->descriptor.capabilities.reference_only && log) {
        log(LogLevel::kWarning, "plugin " + name + " has only a slow reference path");
      }
    }
  }
  if (plugins_out) *plugins_out = plugins;
  return spec;
}

}  // namespace

std::vector<RunPlan> plan_benchmark(const BenchmarkSpec& bench, const std::string& out_dir) {
  std::vector<RunPlan> trained, evaluated;
  std::set<std::string> seen;
  for (const auto& file : bench.task_files) {
    for (const TaskSpec& variant : load_task_variants(file, bench.task_overrides)) {
      for (const auto& model : bench.models) {
        for (auto width : bench.widths) {
          for (auto layers : bench.layers) {
            for (auto seed : bench.seeds) {
              for (double lr : bench.learning_rates) {
                for (auto warmup : bench.warmups) {
                  const std::int64_t runs_at = bench.effective_width(model, width);
                  if (runs_at == 0) continue;  // the reference skips this width for this model
                  RunPlan p;
                  p.task = variant;
                  p.task.data.seed = static_cast<std::uint64_t>(seed);
                  p.model = model;
                  p.layer_plugins = bench.layer_plugins(model, layers);
                  p.width = runs_at;
                  p.grid_width = width;
                  p.layers = layers;
                  p.seed = seed;
                  p.lr = lr;
                  p.warmup = warmup;
                  p.id = model + "_d" + std::to_string(runs_at) + "_L" + std::to_string(layers) +
                         "_s" + std::to_string(seed) + "_lr" + format_lr(lr) + "_w" +
                         std::to_string(warmup);
                  p.dir = (fs::path(out_dir) / task_folder(variant) / p.id).string();
                  if (seen.count(p.dir) != 0) continue;  // a remap made it a duplicate
                  seen.insert(p.dir);
                  if (!variant.evaluates.empty()) {
                    p.trained_dir = (fs::path(out_dir) / variant.evaluates / p.id).string();
                    evaluated.push_back(std::move(p));
                  } else {
                    trained.push_back(std::move(p));
                  }
                }
              }
            }
          }
        }
      }
    }
  }
  trained.insert(trained.end(), evaluated.begin(), evaluated.end());
  return trained;
}

json evaluate_run_checkpoint(const std::string& run_dir, const TaskSpec& task,
                             const std::vector<SearchFolder>& plugin_folders,
                             const std::string& checkpoint, const std::string& device_name,
                             std::int64_t batch_size) {
  const fs::path config_path = fs::path(run_dir) / "config.json";
  const fs::path ckpt = fs::path(run_dir) / "checkpoints" / (checkpoint + ".pt");
  if (!fs::exists(config_path) || !fs::exists(ckpt)) {
    throw std::runtime_error(run_dir + ": no trained run here (needs config.json and checkpoints/" +
                             checkpoint + ".pt)");
  }
  std::ifstream in(config_path);
  const json config = json::parse(in);
  const ModelConfig model = model_from_json(config.at("model"));
  const bool quirks = config.at("training").at("reference_quirks").get<bool>();
  auto grammar = std::make_shared<const Grammar>(make_grammar(task.data.grammar, task.data.seed));
  const Dataset test = Dataset::create(grammar, task.data, Split::kTest);
  // The trained run's classes must be this task's classes: same grammar.
  const json& trained_task = config.at("task");
  if (trained_task.at("grammar").at("vocab") != task.data.grammar.vocab ||
      trained_task.at("grammar").at("ambiguities") != task.data.grammar.ambiguities ||
      trained_task.at("grammar").at("ambiguity_depth") != task.data.grammar.ambiguity_depth ||
      trained_task.at("seed") != task.data.seed) {
    throw std::runtime_error(run_dir + ": trained on another grammar (" +
                             trained_task.at("display_name").get<std::string>() + ", seed " +
                             trained_task.at("seed").dump() + ") than " + task.display_name() +
                             " (seed " + std::to_string(task.data.seed) + ")");
  }
  json plugins;
  const NetworkSpec spec = network_spec(model, test, plugin_folders, quirks, {}, &plugins);
  Network network(spec);
  load_model_checkpoint(network, ckpt.string());
  const torch::Device device = parse_device(device_name);
  TrainingSpec ts;
  ts.device = device_name;
  ts.dtype = config.at("training").at("dtype").get<std::string>();
  const torch::ScalarType dtype = resolve_dtype(ts, spec, device);
  network->to(device, dtype);
  const EvalResult r = evaluate(network, test, 0, batch_size, device, dtype);
  json out = {{"run", run_dir},
              {"checkpoint", checkpoint},
              {"task", task.display_name()},
              {"test_acc", r.accuracy},
              {"test_loss", r.loss},
              {"samples", r.samples},
              {"seconds", r.seconds},
              {"test_steps_per_sample",
               static_cast<double>(make_batch(test, {0}).lengths[0].item<std::int64_t>())}};
  if (r.kl >= 0) out["test_kl"] = r.kl;
  return out;
}

json execute_run(const RunPlan& plan, const RunContext& ctx) {
  const fs::path dir(plan.dir);
  const fs::path summary_path = dir / "summary.json";
  if (fs::exists(summary_path)) {
    std::ifstream in(summary_path);
    json s = json::parse(in);
    s["skipped"] = true;
    return s;
  }
  fs::create_directories(dir);
  const BenchmarkSpec& bench = *ctx.bench;
  const std::string log_path = (dir / "log.txt").string();
  auto log_line = [&](const std::string& message) {
    std::ofstream(log_path, std::ios::app) << message << "\n";
    if (ctx.log) ctx.log(message);
  };
  const auto wall0 = std::chrono::steady_clock::now();
  const int threads = bench.training.threads > 0 ? static_cast<int>(bench.training.threads)
                                                 : hardware_threads();
  at::set_num_threads(threads);

  json summary = {{"benchmark", bench.name},
                  {"task", plan.task.display_name()},
                  {"model", plan.model},
                  {"width", plan.width},
                  {"grid_width", plan.grid_width},
                  {"layers", plan.layers},
                  {"seed", plan.seed},
                  {"lr", plan.lr},
                  {"warmup", plan.warmup},
                  {"run", plan.id},
                  {"versions",
                   {{"selectivbench", SELECTIVBENCH_VERSION},
                    {"libtorch", compat::torch_version()},
                    {"git_sha", SELECTIVBENCH_GIT_SHA}}},
                  {"threads", threads}};

  if (!plan.trained_dir.empty()) {
    // A task that tests another task's models (task 4): evaluate the trained run's checkpoint.
    const json r = evaluate_run_checkpoint(plan.trained_dir, plan.task, ctx.plugin_folders, "last",
                                           bench.training.device, bench.training.eval_batch_size);
    summary.update(r);
    summary["status"] = "evaluated";
    summary["trained_run"] = plan.trained_dir;
    summary["wall_seconds"] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    write_file_atomically(summary_path.string(), [&](std::ostream& o) { o << summary.dump(2); });
    log_line("evaluated " + plan.trained_dir + " on " + plan.task.display_name() + ": test_acc " +
             std::to_string(r["test_acc"].get<double>()));
    return summary;
  }

  DatasetOptions data_options;
  data_options.threads = threads;
  data_options.cache_dir = bench.training.cache_dir;
  auto grammar = std::make_shared<const Grammar>(
      make_grammar(plan.task.data.grammar, plan.task.data.seed));
  const Dataset train_set = Dataset::create(grammar, plan.task.data, Split::kTrain, data_options);
  const Dataset test_set = Dataset::create(grammar, plan.task.data, Split::kTest, data_options);
  log_line("data: train " + train_set.origin() + "; test " + test_set.origin());

  ModelConfig model;
  model.name = plan.model;
  model.layer_plugins = plan.layer_plugins;
  model.width = plan.width;
  // Heads follow the grid width, as the reference computes them before its transformer remap.
  model.heads = bench.model.heads > 0
                    ? bench.model.heads
                    : reference_num_heads(plan.grid_width > 0 ? plan.grid_width : plan.width);
  if (plan.width % model.heads != 0) {
    throw std::runtime_error(bench.source + ": width " + std::to_string(plan.width) +
                             " is not divisible by " + std::to_string(model.heads) + " heads");
  }
  model.block.placement = bench.model.norm_placement == "post" ? NormPlacement::kPost
                                                               : NormPlacement::kPre;
  model.block.norm = bench.model.norm == "layernorm" ? NormKind::kLayerNorm : NormKind::kRMSNorm;
  model.block.mlp = bench.model.mlp;
  model.block.mlp_expansion = bench.model.mlp_expansion;
  model.block.dropout = bench.model.dropout;
  model.seed = static_cast<std::uint64_t>(plan.seed);
  for (const auto& name : plan.layer_plugins) {
    if (model.options.count(name)) continue;
    auto plugin = PluginRegistry::instance().find(name, ctx.plugin_folders);
    auto given = bench.plugin_options.find(name);
    auto where = bench.plugin_options_where.find(name);
    model.options[name] = resolve_options(
        plugin->descriptor,
        given != bench.plugin_options.end() ? given->second
                                            : std::vector<std::pair<std::string, OptionValue>>{},
        where != bench.plugin_options_where.end() ? where->second
                                                  : bench.source + ": plugins." + name);
  }

  TrainingSpec ts;
  const TrainingDefaults& td = bench.training;
  ts.batch_size = td.batch_size;
  ts.optimizer = td.optimizer;
  ts.lr = plan.lr;
  ts.weight_decay = td.weight_decay;
  ts.beta1 = td.beta1;
  ts.beta2 = td.beta2;
  ts.eps = td.eps;
  ts.schedule = td.schedule;
  ts.warmup_steps = plan.warmup;
  ts.max_updates = td.max_updates;
  ts.clip_norm = td.clip_norm;
  ts.grad_accumulation = td.grad_accumulation;
  ts.eval_every = td.eval_every;
  ts.eval_batch_size = td.eval_batch_size;
  ts.reference_quirks = td.reference_quirks;
  ts.device = td.device;
  ts.dtype = td.dtype;
  ts.seed = static_cast<std::uint64_t>(plan.seed);

  json plugins;
  const LogFn plugin_log = [&](LogLevel level, const std::string& m) {
    log_line(std::string(level == LogLevel::kWarning ? "warning: " : "") + m);
  };
  const NetworkSpec spec =
      network_spec(model, test_set, ctx.plugin_folders, ts.reference_quirks, plugin_log, &plugins);
  Network network(spec);
  const torch::Device device = parse_device(ts.device);
  const torch::ScalarType dtype = resolve_dtype(ts, spec, device);

  const json config = {{"benchmark", {{"name", bench.name}, {"source", bench.source}}},
                       {"run", plan.id},
                       {"task", task_json(plan.task)},
                       {"model", model_json(model)},
                       {"training", training_json(ts)},
                       {"device", ts.device},
                       {"dtype", dtype_name(dtype)},
                       {"threads", threads}};
  // A run that resumes must continue with the settings it started with: anything that changes the
  // data, the model or the training (the device, dtype and evaluation batch may change) is refused.
  if (fs::exists(dir / "config.json") && fs::exists(dir / "checkpoints" / "last.pt")) {
    std::ifstream in(dir / "config.json");
    const json before = json::parse(in);
    const auto comparable = [](json c) {
      for (const char* key : {"device", "dtype", "eval_batch_size"}) c["training"].erase(key);
      return json{{"task", c["task"]}, {"model", c["model"]}, {"training", c["training"]}};
    };
    const json diff = json::diff(comparable(before), comparable(config));
    if (!diff.empty()) {
      throw std::runtime_error(
          plan.dir + ": this unfinished run was started with other settings (" +
          diff[0].value("path", std::string("?")) + " differs); it cannot resume with the new "
          "ones. Use another --out folder, or delete the run folder to start it again");
    }
  }
  write_file_atomically((dir / "config.json").string(),
                        [&](std::ostream& o) { o << config.dump(2) << "\n"; });
  log_line("run " + plan.id + " on " + plan.task.display_name() + ": " + network->describe() +
           "; " + std::to_string(network->parameter_count()) + " parameters; " + ts.device + " " +
           dtype_name(dtype));

  TrainCallbacks callbacks;
  callbacks.progress = ctx.progress;
  callbacks.log = [&](const std::string& m) {
    std::ofstream(log_path, std::ios::app) << m << "\n";
  };
  const RunOutcome outcome = train(network, train_set, test_set, ts, plan.dir, callbacks);

  const std::int64_t test_steps = make_batch(test_set, {0}).lengths[0].item<std::int64_t>();
  summary["status"] = outcome.status;
  if (!outcome.message.empty()) summary["message"] = outcome.message;
  summary["test_acc"] = outcome.final_eval.accuracy;
  summary["test_loss"] = outcome.final_eval.loss;
  if (outcome.final_eval.kl >= 0) summary["test_kl"] = outcome.final_eval.kl;
  summary["best_acc"] = outcome.best_accuracy;
  summary["best_update"] = outcome.best_update;
  summary["updates"] = outcome.updates;
  summary["parameters"] = network->parameter_count();
  summary["state_elements_per_layer"] = network->state_elements(test_steps);
  summary["state_elements_at_steps"] = test_steps;
  summary["tokens_per_s"] = outcome.tokens_per_second;
  summary["train_seconds"] = outcome.train_seconds;
  summary["eval_seconds"] = outcome.eval_seconds;
  summary["wall_seconds"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  summary["grad_accumulation"] = outcome.grad_accumulation;
  summary["device"] = ts.device;
  summary["dtype"] = dtype_name(dtype);
  summary["plugins"] = plugins;
  summary["classes"] = spec.num_classes;
  if (outcome.resumed) summary["resumed_from_update"] = outcome.resumed_from;
  write_file_atomically(summary_path.string(), [&](std::ostream& o) { o << summary.dump(2) << "\n"; });
  return summary;
}

std::string write_result_tables(const std::string& out_dir, const std::vector<json>& runs) {
  const std::vector<std::string> columns = {"task",  "model",    "width",      "layers",
                                            "seed",  "lr",       "warmup",     "status",
                                            "parameters", "test_acc", "best_acc", "test_loss",
                                            "tokens_per_s", "wall_seconds"};
  auto cell = [](const json& run, const std::string& c) -> std::string {
    if (!run.contains(c) || run[c].is_null()) return "";
    const json& v = run[c];
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_float()) {
      std::ostringstream out;
      if (c == "test_acc" || c == "best_acc" || c == "test_loss") {
        out << std::fixed << std::setprecision(4) << v.get<double>();
      } else if (c == "lr") {
        out << v.get<double>();
      } else {
        out << std::fixed << std::setprecision(1) << v.get<double>();
      }
      return out.str();
    }
    return v.dump();
  };
  std::ostringstream csv, md;
  for (std::size_t i = 0; i < columns.size(); ++i) csv << (i ? "," : "") << columns[i];
  csv << "\n";
  md << "|";
  for (const auto& c : columns) md << " " << c << " |";
  md << "\n|";
  for (std::size_t i = 0; i < columns.size(); ++i) md << "---|";
  md << "\n";
  for (const auto& run : runs) {
    md << "|";
    for (std::size_t i = 0; i < columns.size(); ++i) {
      std::string v = cell(run, columns[i]);
      csv << (i ? "," : "") << (v.find(',') != std::string::npos ? "\"" + v + "\"" : v);
      md << " " << v << " |";
    }
    csv << "\n";
    md << "\n";
  }
  write_file_atomically((fs::path(out_dir) / "results.csv").string(),
                        [&](std::ostream& o) { o << csv.str(); });
  write_file_atomically((fs::path(out_dir) / "results.md").string(),
                        [&](std::ostream& o) { o << md.str(); });
  return md.str();
}

}  // namespace sb
