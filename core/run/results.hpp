// The table of a sweep's runs: results.csv and results.md in the output folder.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace sb {

// Writes results.csv and results.md in out_dir and returns the Markdown table.
std::string write_result_tables(const std::string& out_dir, const std::vector<nlohmann::json>& runs);

}  // namespace sb
