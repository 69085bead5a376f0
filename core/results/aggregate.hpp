// The collected runs read as a benchmark is read: per task, test condition, model, width and
// depth, the accuracy over seeds, with the learning rate and warmup either chosen per seed (the
// best of the grid, the reference's way of reading a sweep) or averaged over the grid.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/results/collect.hpp"

namespace sb {

// mean ± sample standard deviation over n values (sd is 0 for n = 1; mean is NaN for n = 0).
struct Stat {
  double mean = 0, sd = 0;
  int n = 0;
};
Stat stat_of(const std::vector<double>& values);

// The accuracy that a run contributes: its final test accuracy (the last evaluation's; for an
// evaluated row, the evaluation's). Rows that are not over (or failed) contribute nothing.
bool counts_as_result(const nlohmann::json& row);

// A model's taxonomy and the group that orders and colours it in every figure and table.
struct ModelInfo {
  std::string name;
  std::string recurrence, gate, transition, memory;  // as plugins describe them; "?" if unknown
  std::string group;                                  // "softmax attention", "delta rule", ...
  int group_order = 0;
  std::string color;  // "#rrggbb", the same for the model in every figure
  bool attention() const { return group_order == 0; }
  bool gated() const;       // an input-dependent gate (scalar per head or vector per channel)
  bool ungated() const;     // a recurrent model without one (no gate, or a fixed decay)
  bool delta_rule() const;  // transition diagonal plus low rank
  bool diagonal() const;    // a recurrent model with a diagonal transition
};

// One (task, test condition, model, width, layers): every seed's accuracy under both readings.
struct Cell {
  std::string task;
  nlohmann::json axes;  // the test condition: swept key -> value
  std::string model;
  std::int64_t width = 0, layers = 0;
  bool evaluated = false;  // evaluations of trained models (their curves belong to the training)
  std::map<std::int64_t, double> best_per_seed;  // best final accuracy over lr × warmup
  std::map<std::int64_t, std::string> best_run;  // the run folder that gave it
  std::map<std::int64_t, double> grid_mean_per_seed;
  Stat best, grid;  // over seeds
  int runs = 0;
  double parameters = -1, state_elements = -1;  // per layer; -1 unknown
};

struct TaskResults {
  std::string task;
  std::vector<std::string> axes;  // the swept keys this task's rows have
  bool evaluated = false;         // every row evaluates trained models (task 4): no training
  std::vector<std::int64_t> widths;
  std::vector<Cell> cells;        // ordered by axes, model group, model, width, layers
};

struct Aggregate {
  std::vector<TaskResults> tasks;
  std::map<std::string, ModelInfo> models;
  std::vector<std::string> model_order;  // by group, then name
  std::size_t rows = 0, results = 0, failed = 0, unfinished = 0;
};

Aggregate aggregate_results(const ResultTable& table);

// "grammar.ambiguities=20, test.gap.duration=2.0" (empty for no axes).
std::string axes_label(const nlohmann::json& axes);

}  // namespace sb
