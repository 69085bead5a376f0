// The grid of a benchmark as a list of runs, each with its folder (<out>/<task>/<run id>).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config/benchmark.hpp"

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

}  // namespace sb
