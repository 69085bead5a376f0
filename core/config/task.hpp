// Task files: TOML definitions of a benchmark task's data (tasks/*.toml, README "Task files").
//
// A task file is read strictly: an unknown key, a wrong type or an out-of-range value is a
// ConfigError naming the file, line, key and what is allowed ("did you mean ..." for misspellings).
// A numeric key may hold an array of values, which makes it a sweep axis: the file then describes
// one task variant per combination (task 1's `ambiguities = [20, 24, ...]`, task 4's test
// durations). `--set KEY=VALUE` overrides are applied before the file is checked, exactly as if
// they were written in it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/config/strict_toml.hpp"
#include "core/data/dataset.hpp"

namespace sb {

struct TaskSpec {
  std::string name;         // [task] name
  std::string description;  // [task] description
  std::string source;       // the file it was read from
  std::string evaluates;    // [task] evaluates: the task whose trained models this one tests
                            // (task 4 tests task-2 models); empty for a trained task
  bool grammar_scale = false;  // [grammar] scale: vocab = ambiguities + 1, depth = ambiguities
  DataSpec data;
  // The sweep values that made this variant, as (dotted key, value) pairs; empty if none.
  std::vector<std::pair<std::string, std::string>> variant;

  // "task1_complexity[grammar.ambiguities=20]"
  std::string display_name() const;
};

// All variants of a task file, in sweep order (the first axis varies slowest).
std::vector<TaskSpec> load_task_variants(const std::string& path,
                                         const std::vector<Override>& overrides = {});

// The task file's single variant. A file with sweep axes is an error here that lists the axes and
// says how to pick a value with --set.
TaskSpec load_task(const std::string& path, const std::vector<Override>& overrides = {});

// Same, from TOML text (tests); `source` names it in messages.
std::vector<TaskSpec> parse_task_variants(const std::string& toml_text, const std::string& source,
                                          const std::vector<Override>& overrides = {});

}  // namespace sb
