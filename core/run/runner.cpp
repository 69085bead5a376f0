#include "core/run/runner.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/run/device_info.hpp"
#include "core/util/build_info.hpp"
#include "core/run/run_record.hpp"
#include "core/tensor/batch.hpp"
#include "core/util/atomic_file.hpp"
#include "core/util/host.hpp"
#include "core/util/json_file.hpp"
#include "core/util/parallel.hpp"
#include "selectivbench/torch_compat.hpp"

#ifndef SELECTIVBENCH_VERSION
#define SELECTIVBENCH_VERSION "unknown"
#endif

namespace sb {

namespace fs = std::filesystem;
using json = nlohmann::json;

json evaluate_run_checkpoint(const std::string& run_dir, const TaskSpec& task,
                             const std::vector<SearchFolder>& plugin_folders,
                             const std::string& checkpoint, const std::string& device_name,
                             std::int64_t batch_size, const std::string& dtype) {
  const fs::path config_path = fs::path(run_dir) / "config.json";
  const fs::path ckpt = fs::path(run_dir) / "checkpoints" / (checkpoint + ".pt");
  if (!fs::exists(config_path) || !fs::exists(ckpt)) {
    throw std::runtime_error(run_dir + ": no trained run here (needs config.json and checkpoints/" +
                             checkpoint + ".pt)");
  }
  const json config = read_json_file(config_path.string());
  ModelConfig model = model_from_json(config.at("model"));
  // Runs recorded before the transformer's double residual was its own option had it from
  // [training] reference_quirks.
  if (auto it = model.options.find("transformer");
      it != model.options.end() && !it->second.has("double_residual")) {
    it->second.set("double_residual", config.at("training").at("reference_quirks").get<bool>());
  }
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
  const NetworkSpec spec = network_spec(model, test, plugin_folders, {}, &plugins);
  Network network(spec);
  load_model_checkpoint(network, ckpt.string());
  const torch::Device device = parse_device(device_name);
  TrainingSpec ts;
  ts.device = device_name;
  // The run's own precision unless asked for another one.
  ts.dtype = dtype.empty() ? config.at("training").at("dtype").get<std::string>() : dtype;
  const Precision precision = resolve_precision(ts, spec, device);
  const MatmulPrecisionScope matmul_precision(precision, device);
  network->to(device, precision.parameter_dtype());
  const EvalResult r = evaluate(network, test, 0, batch_size, device, precision);
  json out = {{"run", run_dir},
              {"checkpoint", checkpoint},
              {"task", task.display_name()},
              {"task_name", task.name},
              {"variant", task_json(task).at("variant")},
              {"test_condition", task_json(task).at("test")},
              {"device", device_name},
              {"device_model", device_model(device_name)},
              {"dtype", precision.name()},
              {"plugins", plugins},
              {"test_acc", r.accuracy},
              {"test_loss", r.loss},
              {"samples", r.samples},
              {"seconds", r.seconds},
              {"test_steps_per_sample",
               static_cast<double>(make_batch(test, {0}).lengths[0].item<std::int64_t>())}};
  if (r.kl >= 0) out["test_kl"] = r.kl;
  return out;
}


ModelConfig resolve_model(const RunPlan& plan, const BenchmarkSpec& bench,
                          const std::vector<SearchFolder>& plugin_folders) {
  ModelConfig model;
  model.name = plan.model;
  model.layer_plugins = plan.layer_plugins;
  model.width = plan.width;
  // Heads follow the grid width, as the reference computes them before its transformer remap.
  model.heads = bench.heads > 0
                    ? bench.heads
                    : reference_num_heads(plan.grid_width > 0 ? plan.grid_width : plan.width);
  if (plan.width % model.heads != 0) {
    throw ConfigError(bench.source + ": model " + plan.model + " at width " +
                      std::to_string(plan.width) + ": the width is not divisible by " +
                      std::to_string(model.heads) + " heads (set [model] heads)");
  }
  model.block = bench.block;
  model.seed = static_cast<std::uint64_t>(plan.seed);
  for (const auto& name : plan.layer_plugins) {
    if (model.options.count(name)) continue;
    auto plugin = PluginRegistry::instance().find(name, plugin_folders);
    auto given = bench.plugin_options.find(name);
    auto where = bench.plugin_options_where.find(name);
    model.options[name] = resolve_options(
        plugin->descriptor,
        given != bench.plugin_options.end() ? given->second
                                            : std::vector<std::pair<std::string, OptionValue>>{},
        where != bench.plugin_options_where.end() ? where->second
                                                  : bench.source + ": plugins." + name);
  }
  return model;
}

namespace {

// The run's log: log.txt in its folder, and the console callback.
class RunLog {
 public:
  RunLog(const fs::path& dir, const RunContext& ctx) : path_((dir / "log.txt").string()), ctx_(ctx) {}
  void line(const std::string& message) const {
    file_only(message);
    if (ctx_.log) ctx_.log(message);
  }
  // A log that cannot be written (a full disk) fails the run, named, rather than losing lines.
  void file_only(const std::string& message) const {
    std::ofstream out(path_, std::ios::app);
    out << message << "\n";
    out.flush();
    if (!out) throw std::runtime_error(path_ + ": cannot write the run's log: " + std::strerror(errno));
  }

 private:
  std::string path_;
  const RunContext& ctx_;
};

int run_thread_count(const BenchmarkSpec& bench) {
  return bench.training.threads > 0 ? static_cast<int>(bench.training.threads) : hardware_threads();
}

// What every summary.json holds: the run's place in the grid, the versions and where and when it
// ran.
json summary_head(const RunPlan& plan, const RunContext& ctx, double started) {
  const BenchmarkSpec& bench = *ctx.bench;
  return {{"benchmark", bench.name},
          {"benchmark_file", bench.source},
          {"task", plan.task.display_name()},
          {"task_name", plan.task.name},
          {"variant", task_json(plan.task).at("variant")},
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
            {"git_sha", build_git_sha()}}},
          {"threads", run_thread_count(bench)},
          {"host", host_name()},
          {"worker", ctx.worker},
          {"command_line", ctx.command_line},
          {"started_at", iso_time(started)}};
}

void write_summary(const fs::path& dir, json& summary, double started, double earlier_wall = 0) {
  const double now = unix_seconds();
  summary["finished_at"] = iso_time(now);
  summary["wall_seconds"] = earlier_wall + (now - started);
  if (earlier_wall > 0) summary["wall_seconds_last_start"] = now - started;
  write_file_atomically((dir / "summary.json").string(),
                        [&](std::ostream& o) { o << summary.dump(2) << "\n"; });
}

// A task that tests another task's models (task 4): evaluate the trained run's last checkpoint.
json evaluate_trained_run(const RunPlan& plan, const RunContext& ctx, json summary, double started,
                          const RunLog& log) {
  const BenchmarkSpec& bench = *ctx.bench;
  const json r = evaluate_run_checkpoint(plan.trained_dir, plan.task, ctx.plugin_folders, "last",
                                         bench.training.device, bench.training.eval_batch_size);
  summary.update(r);
  summary["status"] = "evaluated";
  summary["trained_run"] = plan.trained_dir;
  summary["device"] = bench.training.device;
  summary["device_model"] = device_model(bench.training.device);
  write_summary(plan.dir, summary, started);
  log.line("evaluated " + plan.trained_dir + " on " + plan.task.display_name() + ": test_acc " +
           std::to_string(r["test_acc"].get<double>()));
  return summary;
}

struct RunData {
  Dataset train, test;
};

RunData load_run_data(const RunPlan& plan, const BenchmarkSpec& bench, const RunLog& log) {
  DatasetOptions options;
  options.threads = run_thread_count(bench);
  options.cache_dir = bench.training.cache_dir;
  auto grammar = std::make_shared<const Grammar>(
      make_grammar(plan.task.data.grammar, plan.task.data.seed));
  RunData d{Dataset::create(grammar, plan.task.data, Split::kTrain, options),
            Dataset::create(grammar, plan.task.data, Split::kTest, options)};
  log.line("data: train " + d.train.origin() + "; test " + d.test.origin());
  return d;
}

// The training settings of this run: the benchmark's, with the grid's lr, warmup and seed.
TrainingSpec run_training_spec(const RunPlan& plan, const BenchmarkSpec& bench) {
  TrainingSpec ts = bench.training;
  ts.lr = plan.lr;
  ts.warmup_steps = plan.warmup;
  ts.seed = static_cast<std::uint64_t>(plan.seed);
  return ts;
}

// Writes config.json. A run that resumes must continue with the settings it started with: a change
// of the data, the model or the training (the device, dtype, threads and evaluation batch may
// change, and CUDA graphs may be turned on or off) is refused.
void write_run_config(const RunPlan& plan, const json& config) {
  const fs::path dir(plan.dir);
  if (fs::exists(dir / "checkpoints" / "last.pt")) {
    if (!fs::exists(dir / "config.json")) {
      throw std::runtime_error(plan.dir + ": this unfinished run has a checkpoint but no config.json, "
                               "so the settings it started with cannot be checked; restore the "
                               "file, or delete the run folder to start the run again");
    }
    const json before = read_json_file((dir / "config.json").string());
    const auto comparable = [](json c) {
      for (const char* key : {"device", "dtype", "eval_batch_size", "threads", "cache_dir", "cuda_graphs"}) {
        c["training"].erase(key);
      }
      // How the task file's path was spelt is no setting (relative, absolute, another working
      // folder): the task's every effective value is compared instead.
      c["task"].erase("source");
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
}

void add_outcome(json& summary, const RunOutcome& outcome, const Network& network,
                 const NetworkSpec& spec, const Dataset& test_set) {
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
  summary["grad_accumulation"] = outcome.grad_accumulation;
  summary["cuda_graphs"] = outcome.cuda_graphs;
  summary["classes"] = spec.num_classes;
  if (outcome.seconds_to_first_update >= 0) {
    summary["seconds_to_first_update"] = outcome.seconds_to_first_update;
  }
  if (outcome.resumed) summary["resumed_from_update"] = outcome.resumed_from;
}

}  // namespace

json execute_run(const RunPlan& plan, const RunContext& ctx) {
  const fs::path dir(plan.dir);
  if (fs::exists(dir / "summary.json")) {
    json s = read_json_file((dir / "summary.json").string());
    s["skipped"] = true;
    return s;
  }
  fs::create_directories(dir);
  const double started = unix_seconds();
  const BenchmarkSpec& bench = *ctx.bench;
  const RunLog log(dir, ctx);
  // This worker holds the run's claim: what a killed writer left half-written is garbage.
  const int stale = remove_stale_temporaries(dir.string()) +
                    remove_stale_temporaries((dir / "checkpoints").string());
  if (stale > 0) log.file_only("removed " + std::to_string(stale) + " temporary file(s) of a killed worker");
  at::set_num_threads(run_thread_count(bench));
  json summary = summary_head(plan, ctx, started);
  if (!plan.trained_dir.empty()) return evaluate_trained_run(plan, ctx, summary, started, log);

  // 1. Data, model and settings.
  const RunData data = load_run_data(plan, bench, log);
  const ModelConfig model = resolve_model(plan, bench, ctx.plugin_folders);
  const TrainingSpec ts = run_training_spec(plan, bench);

  // 2. The network, and config.json (which a resumed run must match).
  json plugins;
  const LogFn plugin_log = [&](LogLevel level, const std::string& m) {
    log.line(std::string(level == LogLevel::kWarning ? "warning: " : "") + m);
  };
  const NetworkSpec spec =
      network_spec(model, data.test, ctx.plugin_folders, plugin_log, &plugins);
  Network network(spec);
  const torch::Device device = parse_device(ts.device);
  const Precision precision = resolve_precision(ts, spec, device);
  write_run_config(plan, {{"benchmark", {{"name", bench.name}, {"source", bench.source}}},
                          {"run", plan.id},
                          {"task", task_json(plan.task)},
                          {"model", model_json(model)},
                          {"training", training_json(ts)},
                          {"device", ts.device},
                          {"dtype", precision.name()},
                          {"threads", run_thread_count(bench)}});
  log.line("run " + plan.id + " on " + plan.task.display_name() + ": " + network->describe() +
           "; " + std::to_string(network->parameter_count()) + " parameters; " + ts.device + " " +
           precision.name() + (ctx.worker.empty() ? "" : "; worker " + ctx.worker) + " on " +
           host_name());

  // 3. Training, with the evaluations and checkpoints.
  const int cuda_index = device.is_cuda() ? (device.has_index() ? device.index() : 0) : -1;
  if (cuda_index >= 0) compat::reset_peak_device_memory(cuda_index);
  TrainCallbacks callbacks;
  callbacks.progress = ctx.progress;
  callbacks.log = [&](const std::string& m) { log.file_only(m); };
  callbacks.evaluated = ctx.evaluated;
  callbacks.should_stop = ctx.should_stop;
  const RunOutcome outcome = train(network, data.train, data.test, ts, plan.dir, callbacks);

  // 4. The summary: written only when the run is over.
  add_outcome(summary, outcome, network, spec, data.test);
  summary["device"] = ts.device;
  summary["device_model"] = device_model(ts.device);
  if (cuda_index >= 0) summary["peak_device_memory_bytes"] = compat::peak_device_memory(cuda_index);
  summary["dtype"] = precision.name();
  summary["plugins"] = plugins;
  // Wall time over every start of the run: the earlier starts' (stopped by a signal) are kept in
  // wall.json until the run is over. A start killed outright (kill -9, power) is not counted.
  const fs::path wall_file = dir / "wall.json";
  double earlier_wall = 0;
  if (outcome.resumed && fs::exists(wall_file)) {
    std::ifstream in(wall_file);
    const json w = json::parse(in, nullptr, false);
    if (!w.is_discarded()) earlier_wall = w.value("wall_seconds", 0.0);
  }
  if (outcome.status == "abandoned") return summary;
  if (outcome.status == "interrupted") {
    const double total = earlier_wall + (unix_seconds() - started);
    write_file_atomically(wall_file.string(), [&](std::ostream& o) {
      o << json{{"wall_seconds", total}}.dump() << "\n";
    });
    return summary;
  }
  write_summary(dir, summary, started, earlier_wall);
  std::error_code ec;
  fs::remove(wall_file, ec);
  return summary;
}

json record_failed_run(const RunPlan& plan, const RunContext& ctx, const std::string& message) {
  const fs::path dir(plan.dir);
  const double now = unix_seconds();
  json summary = summary_head(plan, ctx, now);
  summary["status"] = "failed";
  summary["message"] = message;
  write_file_atomically((dir / "error.txt").string(),
                        [&](std::ostream& o) { o << message << "\n"; });
  write_summary(dir, summary, now);
  RunLog(dir, ctx).file_only("failed: " + message);
  return summary;
}

}  // namespace sb
