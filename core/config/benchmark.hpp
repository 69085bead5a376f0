// Benchmark files: which tasks, models, sizes, seeds and learning rates to run (configs/*.toml,
// docs/benchmark-files.md). Read as strictly as task files; `--set KEY=VALUE` overrides apply.
//
// A benchmark expands to the grid tasks × models × widths × layers × seeds × learning rates ×
// warmups. A model is a plugin name, or the name of a hybrid defined under [hybrids] as a list of
// plugins repeated over the layers (["gated_delta_net", "gated_delta_net", "gated_delta_net",
// "transformer"] with 8 layers gives two such groups).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/config/task.hpp"
#include "core/train/settings.hpp"
#include "selectivbench/options.hpp"

namespace sb {

// The most runs one benchmark may plan (the paper's whole study is about 15 800).
inline constexpr std::size_t kMaxRuns = 100000;

struct BenchmarkSpec {
  std::string name;
  std::string description;
  std::string source;
  std::vector<std::string> task_files;      // resolved against the benchmark file's folder
  std::vector<Override> task_overrides;     // [benchmark] task_set = ["train.size=4000"]
  std::vector<std::string> models;
  std::map<std::string, std::vector<std::string>> hybrids;
  // [width_remap.<model>]: a grid width -> the width the model runs at (0: the run is skipped). The
  // head count stays that of the grid width, as in the reference (models.md §2).
  std::map<std::string, std::map<std::int64_t, std::int64_t>> width_remap;

  // The width `model` runs at for grid width `width` (0: skipped).
  std::int64_t effective_width(const std::string& model, std::int64_t width) const;
  std::vector<std::int64_t> widths;
  std::vector<std::int64_t> layers;
  std::vector<std::int64_t> seeds;
  std::vector<double> learning_rates;
  std::vector<std::int64_t> warmups;
  BlockSpec block;        // [model]
  std::int64_t heads = 0;  // [model] heads; 0: the reference's rule (models.md §2)
  TrainingSpec training;   // [training]; lr, warmup_steps and seed come from the grid per run
  std::vector<std::string> plugin_paths;  // [plugins] paths, resolved against the file's folder
  // [plugins.<name>] option values, validated against each plugin's schema when it is loaded.
  std::map<std::string, std::vector<std::pair<std::string, OptionValue>>> plugin_options;
  std::map<std::string, std::string> plugin_options_where;  // "file:line: plugins.<name>"

  // The plugins of a model, one per layer.
  std::vector<std::string> layer_plugins(const std::string& model, std::int64_t n_layers) const;
};

BenchmarkSpec load_benchmark(const std::string& path, const std::vector<Override>& overrides = {});

}  // namespace sb
