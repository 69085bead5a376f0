// Every run folder under some folders as one table: a row per run, and one per evaluation of a run
// (task 4's test conditions, `evaluate`'s records), across invocations and benchmark files.
//
// A row is a flat JSON object with the columns of result_columns(): the fixed ones below, and each
// swept key of a task (`grammar.ambiguities`, `test.gap.duration`) as its own column. Numbers keep
// full precision. The same rows make `run`'s results.csv, `collect` and `report`.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace sb {

// The columns before and after a table's axis columns.
//   benchmark, benchmark_file, task, <axes...>, model, recurrence, gate, transition, memory,
//   width, layers, seed, lr, warmup, dtype, status, error, parameters, state_elements_per_layer,
//   test_acc, best_acc, best_update, test_loss, updates, tokens_per_s, wall_seconds, device, gpu,
//   kind (trained | evaluated), trained_run, checkpoint, dir
std::vector<std::string> result_columns(const std::vector<std::string>& axes);

struct ResultTable {
  std::vector<std::string> axes;     // swept task keys, in the order first seen
  std::vector<nlohmann::json> rows;  // keys: result_columns(axes); null where a value is unknown
};

// A model's place in the paper's taxonomy (recurrence, gate, transition, memory), by plugin name,
// for run folders whose summary does not record it. Returns nullopt when unknown.
using TaxonomyLookup = std::function<std::optional<nlohmann::json>(const std::string& plugin)>;

// The rows of one run folder: the run (from summary.json; from config.json and metrics.jsonl while
// it is unfinished), then one per evaluations/*.json. Empty if the folder holds no run.
std::vector<nlohmann::json> rows_of_run_folder(const std::string& dir,
                                               const TaxonomyLookup& taxonomy = {});

// Every run folder under `roots` (searched recursively; a root may itself be a run folder), sorted
// by benchmark, task, axes, model, width, layers, seed, lr and warmup. Throws std::runtime_error
// naming a root that is not a folder.
ResultTable collect_results(const std::vector<std::string>& roots,
                            const TaxonomyLookup& taxonomy = {});

// A table of given rows (fills the axis columns from each row's "axes").
ResultTable make_result_table(std::vector<nlohmann::json> rows);

// The table as RFC 4180 CSV (CRLF line ends, fields with , " CR or LF quoted, quotes doubled),
// as JSON Lines (one object per row, every column present), or as a Markdown table of the columns
// a reader scans (values rounded for reading; CSV and JSONL keep full precision).
std::string format_csv(const ResultTable& table);
std::string format_jsonl(const ResultTable& table);
std::string format_markdown(const ResultTable& table);

// One CSV field (quoted only when it must be).
std::string csv_field(const std::string& value);

// The (key, value) pairs of a variant in a task's display name, "task4[test.gap.duration=2.0]",
// split at the commas between pairs (not those inside a `{ ... }` or quoted value).
std::vector<std::pair<std::string, std::string>> variant_of_display_name(const std::string& name);

// A variant value as JSON: a number when the text is one ("2.0" -> 2.0), else the text.
nlohmann::json axis_value(const std::string& text);

}  // namespace sb
