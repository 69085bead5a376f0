// One run of a benchmark grid in its folder. A run folder holds:
//   config.json      the resolved configuration (task with every effective value, model, training)
//   metrics.jsonl    one line per evaluation
//   summary.json     written last, atomically: the run is over when it exists (status finished,
//                    evaluated, diverged or failed)
//   error.txt        why a failed run failed (with summary.json status "failed" and its message)
//   checkpoints/     last.pt (model + optimizer + progress), best.pt (model)
//   claims/          which worker trains it (core/run/claim.hpp)
//   log.txt          the run's log
// A folder with a last checkpoint and no summary resumes from it.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config/benchmark.hpp"
#include "core/plugins/registry.hpp"
#include "core/run/plan.hpp"
#include "core/train/trainer.hpp"

namespace sb {

struct RunContext {
  const BenchmarkSpec* bench = nullptr;
  std::vector<SearchFolder> plugin_folders;
  std::function<void(const std::string&)> log;               // console lines
  std::function<void(std::int64_t, std::int64_t)> progress;  // updates of the current run
  // After each evaluation of the current run: its metrics line.
  std::function<void(std::int64_t, std::int64_t, const nlohmann::json&)> evaluated;
  std::function<StopRequest()> should_stop;  // asked after every update
  std::string command_line;                  // recorded in summary.json
  std::string worker;                        // recorded in summary.json
};

// Executes one run (train + evaluate, or evaluate a trained run's checkpoint); returns its summary,
// also written to summary.json unless the run stopped early (status "interrupted": checkpointed
// and resumable; "abandoned": another worker owns it now). A run that has a summary is not
// repeated: its summary is returned with "skipped": true. The caller holds the run's claim.
nlohmann::json execute_run(const RunPlan& plan, const RunContext& context);

// Records a run that failed with `message`: error.txt and summary.json with status "failed".
nlohmann::json record_failed_run(const RunPlan& plan, const RunContext& context,
                                 const std::string& message);

// Evaluates the checkpoint of the run in `run_dir` on `task`'s test set (e.g. a task-2 model under a
// task-4 test condition); returns {test_acc, test_loss, ...}. `dtype`: a precision mode
// (core/train/precision.hpp), or empty for the one the run trained in.
nlohmann::json evaluate_run_checkpoint(const std::string& run_dir, const TaskSpec& task,
                                       const std::vector<SearchFolder>& plugin_folders,
                                       const std::string& checkpoint, const std::string& device,
                                       std::int64_t batch_size, const std::string& dtype = "");

// The model of a planned run: its plugins, width, heads, block and resolved plugin options.
// Throws ConfigError for an option a plugin does not accept, or a width the heads do not divide.
struct ModelConfig;
ModelConfig resolve_model(const RunPlan& plan, const BenchmarkSpec& bench,
                          const std::vector<SearchFolder>& plugin_folders);

}  // namespace sb
