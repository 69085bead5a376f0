// Running a benchmark: the grid of runs, one run directory each, and the result tables.
//
// A run directory holds:
//   config.json      the resolved configuration (task with every effective value, model, training)
//   metrics.jsonl    one line per evaluation
//   summary.json     written last, atomically: the run is finished when it exists
//   checkpoints/     last.pt (model + optimizer + progress), best.pt (model)
//   log.txt          the run's log
// A directory with a summary is skipped; one with a last checkpoint and no summary resumes.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config/benchmark.hpp"
#include "core/plugins/registry.hpp"

namespace sb {

struct RunPlan {
  TaskSpec task;
  std::string model;
  std::vector<std::string> layer_plugins;
  std::int64_t width = 0;       // the width the model runs at
  std::int64_t grid_width = 0;  // the grid's width (differs under [width_remap]); sets the heads
  std::int64_t layers = 0;
  std::int64_t seed = 0;
  double lr = 0;
  std::int64_t warmup = 0;
  std::string id;   // model_d256_L8_s1_lr0.001_w476
  std::string dir;  // <out>/<task>/<id>
  // Tasks that evaluate another task's models (task 4): the run whose checkpoint is evaluated.
  std::string trained_dir;
};

// Expands the grid in a fixed order (tasks, models, widths, layers, seeds, lrs, warmups). Runs of
// an `evaluates` task come after the runs they evaluate. [width_remap] applies: a width remapped to
// 0 is dropped, and a run that a remap makes identical to an earlier one is planned once.
std::vector<RunPlan> plan_benchmark(const BenchmarkSpec& bench, const std::string& out_dir);

struct RunContext {
  const BenchmarkSpec* bench = nullptr;
  std::vector<SearchFolder> plugin_folders;
  std::function<void(const std::string&)> log;                    // console lines
  std::function<void(std::int64_t, std::int64_t)> progress;       // updates of the current run
};

// Executes one run (train + evaluate, or evaluate a trained run's checkpoint); returns its summary
// (also written to summary.json). A finished run is not repeated: its summary is returned.
nlohmann::json execute_run(const RunPlan& plan, const RunContext& context);

// Evaluates the checkpoint of the run in `run_dir` on `task`'s test set (e.g. a task-2 model under a
// task-4 test condition); returns {test_acc, test_loss, ...}.
nlohmann::json evaluate_run_checkpoint(const std::string& run_dir, const TaskSpec& task,
                                       const std::vector<SearchFolder>& plugin_folders,
                                       const std::string& checkpoint, const std::string& device,
                                       std::int64_t batch_size);

// Writes results.csv and results.md in out_dir and returns the Markdown table.
std::string write_result_tables(const std::string& out_dir, const std::vector<nlohmann::json>& runs);

}  // namespace sb
