#include "core/run/results.hpp"

#include <filesystem>

#include "core/util/atomic_file.hpp"

namespace sb {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

json not_run_row(const RunPlan& plan) {
  // The same columns as a collected row: start from a collected row's shape.
  json row = json::object();
  for (const auto& c : result_columns({})) row[c] = nullptr;
  json axes = json::object();
  for (const auto& [k, v] : plan.task.variant) axes[k] = axis_value(v);
  row["axes"] = axes;
  row["task"] = plan.task.name;
  row["model"] = plan.model;
  row["width"] = plan.width;
  row["layers"] = plan.layers;
  row["seed"] = plan.seed;
  row["lr"] = plan.lr;
  row["warmup"] = plan.warmup;
  row["status"] = "not run";
  row["kind"] = plan.trained_dir.empty() ? "trained" : "evaluated";
  if (!plan.trained_dir.empty()) row["trained_run"] = plan.trained_dir;
  row["dir"] = plan.dir;
  return row;
}

}  // namespace

ResultTable sweep_table(const std::vector<RunPlan>& plans) {
  std::vector<json> rows;
  for (const auto& plan : plans) {
    auto folder_rows = rows_of_run_folder(plan.dir);
    if (folder_rows.empty()) folder_rows.push_back(not_run_row(plan));
    for (auto& r : folder_rows) rows.push_back(std::move(r));
  }
  return make_result_table(std::move(rows));
}

std::string write_result_tables(const std::string& out_dir, const std::vector<RunPlan>& plans) {
  const ResultTable table = sweep_table(plans);
  const std::string md = format_markdown(table);
  write_file_atomically((fs::path(out_dir) / "results.csv").string(),
                        [&](std::ostream& o) { o << format_csv(table); });
  write_file_atomically((fs::path(out_dir) / "results.md").string(),
                        [&](std::ostream& o) { o << md; });
  return md;
}

}  // namespace sb
