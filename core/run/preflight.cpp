#include "core/run/preflight.hpp"

#include <torch/torch.h>

#include <filesystem>
#include <set>

#include "core/model/network.hpp"
#include "core/run/device_info.hpp"
#include "core/run/run_record.hpp"
#include "core/run/runner.hpp"

namespace sb {

namespace fs = std::filesystem;

std::string device_spelling_problem(const std::string& device) {
  const bool indexed = device.size() > 5 && device.rfind("cuda:", 0) == 0 &&
                       device.find_first_not_of("0123456789", 5) == std::string::npos;
  if (device == "cpu" || device == "cuda" || indexed) return "";
  return "'" + device + "' is not a device (allowed: cpu, cuda, cuda:N)";
}

std::string device_problem(const std::string& device) {
  if (std::string problem = device_spelling_problem(device); !problem.empty()) return problem;
  if (device == "cpu") return "";
  const int count = cuda_device_count();
  if (count == 0) {
    return "'" + device + "': CUDA is not available (" + cuda_unavailable_reason() + "); use cpu";
  }
  if (device.size() > 5) {
    const long index = std::strtol(device.c_str() + 5, nullptr, 10);  // digits: spelling checked
    if (index >= count) {
      return "'" + device + "': this machine has " + std::to_string(count) + " GPU" +
             (count == 1 ? "" : "s") + " (cuda:0 to cuda:" + std::to_string(count - 1) + ")";
    }
  }
  return "";
}

namespace {

std::string joined(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

void check_plugins_resolve(const BenchmarkSpec& bench, const std::set<std::string>& used,
                           const std::vector<SearchFolder>& folders) {
  for (const auto& name : used) {
    try {
      PluginRegistry::instance().find(name, folders);
    } catch (const PluginError& e) {
      throw ConfigError(bench.source + ": benchmark.models: model plugin '" + name +
                        "' cannot be used: " + e.what());
    }
  }
}

void check_option_tables(const BenchmarkSpec& bench, const std::set<std::string>& used) {
  for (const auto& [name, options] : bench.plugin_options) {
    if (used.count(name) == 0) {
      const auto where = bench.plugin_options_where.find(name);
      throw ConfigError((where != bench.plugin_options_where.end() ? where->second
                                                                   : bench.source + ": plugins." + name) +
                        ": no model of the grid uses plugin '" + name +
                        "' (the grid's plugins: " + joined(used) +
                        "); remove the table or fix its name");
    }
  }
}

// Options, heads and one mixer per (plugin, width, heads): what each run would do first.
void check_models_build(const BenchmarkSpec& bench, const std::vector<RunPlan>& plans,
                        const std::vector<SearchFolder>& folders) {
  std::set<std::string> built;
  torch::NoGradGuard no_grad;
  for (const auto& plan : plans) {
    if (!plan.trained_dir.empty()) continue;
    ModelConfig model;
    try {
      model = resolve_model(plan, bench, folders);
    } catch (const PluginError& e) {
      throw ConfigError(e.what());
    }
    for (const auto& name : plan.layer_plugins) {
      const std::string key = name + "/" + std::to_string(model.width) + "/" + std::to_string(model.heads);
      if (!built.insert(key).second) continue;
      MixerContext ctx;
      ctx.d_model = model.width;
      ctx.n_heads = model.heads;
      ctx.n_layers = plan.layers;
      ctx.seed = model.seed;
      ctx.options = model.options.at(name);
      ctx.log = [](LogLevel, const std::string&) {};
      try {
        PluginRegistry::instance().find(name, folders)->create(ctx);
      } catch (const std::exception& e) {
        throw ConfigError(bench.source + ": model " + plan.model + " at width " +
                          std::to_string(model.width) + ": " + e.what());
      }
    }
  }
}

void check_evaluated_runs(const BenchmarkSpec& bench, const std::vector<RunPlan>& plans) {
  std::set<std::string> trained;
  for (const auto& p : plans) {
    if (p.trained_dir.empty()) trained.insert(p.dir);
  }
  for (const auto& p : plans) {
    if (p.trained_dir.empty() || trained.count(p.trained_dir) || fs::exists(p.trained_dir)) continue;
    throw ConfigError(bench.source + ": task " + p.task.name + " evaluates the runs of task " +
                      p.task.evaluates + ", but " + p.trained_dir +
                      " is neither in this grid nor in the output folder; add the task it "
                      "evaluates to benchmark.tasks, or use the --out folder of that sweep");
  }
}

}  // namespace

void preflight_sweep(const BenchmarkSpec& bench, const std::vector<RunPlan>& plans,
                     const std::vector<SearchFolder>& plugin_folders) {
  if (const std::string why = device_problem(bench.training.device); !why.empty()) {
    throw ConfigError(bench.source + ": training.device: " + why);
  }
  std::set<std::string> used;
  for (const auto& p : plans) used.insert(p.layer_plugins.begin(), p.layer_plugins.end());
  check_plugins_resolve(bench, used, plugin_folders);
  check_option_tables(bench, used);
  check_models_build(bench, plans, plugin_folders);
  check_evaluated_runs(bench, plans);
}

}  // namespace sb
