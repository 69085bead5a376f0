// The table of a sweep's runs: results.csv and results.md in the output folder, made by the same
// code as `selectivbench collect` (core/results/collect.hpp), over the runs of this sweep only.
#pragma once

#include <string>
#include <vector>

#include "core/results/collect.hpp"
#include "core/run/plan.hpp"

namespace sb {

// The rows of the planned runs: each run folder's rows (the run and its evaluations), or a
// "not run" row for a run that has no folder yet.
ResultTable sweep_table(const std::vector<RunPlan>& plans);

// Writes results.csv (RFC 4180, full precision) and results.md in out_dir and returns the
// Markdown table.
std::string write_result_tables(const std::string& out_dir, const std::vector<RunPlan>& plans);

}  // namespace sb
