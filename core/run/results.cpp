#include "core/run/results.hpp"

#include <filesystem>
#include <iomanip>
#include <sstream>

#include "core/util/atomic_file.hpp"

namespace sb {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string write_result_tables(const std::string& out_dir, const std::vector<json>& runs) {
  const std::vector<std::string> columns = {"task",  "model",    "width",      "layers",
                                            "seed",  "lr",       "warmup",     "status",
                                            "parameters", "test_acc", "best_acc", "test_loss",
                                            "tokens_per_s", "wall_seconds"};
  auto cell = [](const json& run, const std::string& c) -> std::string {
    if (!run.contains(c) || run[c].is_null()) return "";
    const json& v = run[c];
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_float()) {
      std::ostringstream out;
      if (c == "test_acc" || c == "best_acc" || c == "test_loss") {
        out << std::fixed << std::setprecision(4) << v.get<double>();
      } else if (c == "lr") {
        out << v.get<double>();
      } else {
        out << std::fixed << std::setprecision(1) << v.get<double>();
      }
      return out.str();
    }
    return v.dump();
  };
  std::ostringstream csv, md;
  for (std::size_t i = 0; i < columns.size(); ++i) csv << (i ? "," : "") << columns[i];
  csv << "\n";
  md << "|";
  for (const auto& c : columns) md << " " << c << " |";
  md << "\n|";
  for (std::size_t i = 0; i < columns.size(); ++i) md << "---|";
  md << "\n";
  for (const auto& run : runs) {
    md << "|";
    for (std::size_t i = 0; i < columns.size(); ++i) {
      std::string v = cell(run, columns[i]);
      csv << (i ? "," : "") << (v.find(',') != std::string::npos ? "\"" + v + "\"" : v);
      md << " " << v << " |";
    }
    csv << "\n";
    md << "\n";
  }
  write_file_atomically((fs::path(out_dir) / "results.csv").string(),
                        [&](std::ostream& o) { o << csv.str(); });
  write_file_atomically((fs::path(out_dir) / "results.md").string(),
                        [&](std::ostream& o) { o << md.str(); });
  return md.str();
}

}  // namespace sb
