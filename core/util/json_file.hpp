// Reading the JSON files of a run folder (config.json, summary.json, ...) with errors that name
// the file: a damaged one must say which file to restore or delete, not only "parse error".
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace sb {

inline nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": damaged JSON (" + std::string(e.what()) +
                             "); restore it, or delete the run folder to start the run again");
  }
}

}  // namespace sb
