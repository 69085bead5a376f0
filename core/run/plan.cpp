#include "core/run/plan.hpp"

#include <cstdio>
#include <filesystem>
#include <set>

namespace sb {

namespace fs = std::filesystem;

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
                  if (seen.size() > kMaxRuns) {  // task sweeps multiply the grid
                    throw ConfigError(bench.source + ": the grid with the tasks' sweeps makes more than " +
                                      std::to_string(kMaxRuns) +
                                      " runs; split the study into several benchmarks");
                  }
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

}  // namespace sb
