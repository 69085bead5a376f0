#include "core/results/collect.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

namespace sb {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const std::vector<std::string> kHeadColumns = {"benchmark", "benchmark_file", "task"};
const std::vector<std::string> kTailColumns = {
    "model",      "recurrence",   "gate",         "transition",
    "memory",     "width",        "layers",       "seed",
    "lr",         "warmup",       "dtype",        "status",
    "error",      "parameters",   "state_elements_per_layer",
    "test_acc",   "best_acc",     "best_update",  "test_loss",
    "updates",    "tokens_per_s", "wall_seconds", "device",
    "gpu",        "kind",         "trained_run",  "checkpoint",
    "dir"};
const std::vector<std::string> kTaxonomyKeys = {"recurrence", "gate", "transition", "memory"};

std::optional<json> read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

// The first line of error.txt, the reason a failed run left.
std::string first_line(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

json get(const json& j, const char* key) {
  return j.is_object() && j.contains(key) ? j.at(key) : json();
}

std::string task_name_of(const std::string& display) { return display.substr(0, display.find('[')); }

json axes_of(const json& variant) {
  json axes = json::object();
  if (variant.is_object()) {
    for (const auto& [k, v] : variant.items()) {
      axes[k] = v.is_string() ? axis_value(v.get<std::string>()) : v;
    }
  }
  return axes;
}

json axes_from_display_name(const std::string& display) {
  json axes = json::object();
  for (const auto& [k, v] : variant_of_display_name(display)) axes[k] = axis_value(v);
  return axes;
}

// The model's taxonomy: its plugins' (as summary.json records them, else from `lookup`); a model
// of layers from different plugins is "hybrid" on each axis where they differ.
void add_taxonomy(json& row, const json& plugins, const std::vector<std::string>& plugin_names,
                  const TaxonomyLookup& lookup) {
  std::vector<json> found;
  for (const auto& name : plugin_names) {
    json t;
    if (plugins.is_array()) {
      for (const auto& p : plugins) {
        if (p.value("name", std::string()) == name && p.contains("taxonomy")) t = p["taxonomy"];
      }
    }
    if (t.is_null() && lookup) {
      if (auto l = lookup(name)) t = *l;
    }
    if (t.is_null()) return;
    found.push_back(t);
  }
  if (found.empty()) return;
  for (const auto& key : kTaxonomyKeys) {
    json value = get(found.front(), key.c_str());
    for (const auto& t : found) {
      if (get(t, key.c_str()) != value) value = "hybrid";
    }
    row[key] = value;
  }
}

std::vector<std::string> plugin_names_of(const json& summary, const json& config) {
  std::vector<std::string> names;
  const json layers = get(get(config, "model"), "layer_plugins");
  if (layers.is_array()) {
    for (const auto& l : layers) {
      if (!l.is_string()) continue;
      const std::string name = l.get<std::string>();
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
  }
  if (names.empty() && summary.contains("plugins") && summary["plugins"].is_array()) {
    for (const auto& p : summary["plugins"]) names.push_back(p.value("name", std::string()));
  }
  if (names.empty() && summary.contains("model") && summary["model"].is_string()) {
    names.push_back(summary["model"]);
  }
  return names;
}

json empty_row() {
  json row = json::object();
  for (const auto& c : kHeadColumns) row[c] = nullptr;
  for (const auto& c : kTailColumns) row[c] = nullptr;
  row["axes"] = json::object();
  return row;
}

std::string gpu_of(const json& device, const json& model) {
  if (device.is_string() && device.get<std::string>().rfind("cuda", 0) == 0 && model.is_string()) {
    return model.get<std::string>();
  }
  return "";
}

// The last line of metrics.jsonl: how far an unfinished run got.
std::optional<json> last_metrics(const fs::path& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line)) {
    if (!line.empty()) last = line;
  }
  if (last.empty()) return std::nullopt;
  json j = json::parse(last, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

json row_of_summary(const json& s, const json& config, const fs::path& dir,
                    const TaxonomyLookup& lookup) {
  json row = empty_row();
  const std::string display = s.value("task", std::string());
  row["benchmark"] = get(s, "benchmark");
  row["benchmark_file"] = get(s, "benchmark_file");
  row["task"] = task_name_of(display);
  if (s.contains("variant")) {
    row["axes"] = axes_of(s["variant"]);
  } else if (get(config, "task").contains("variant")) {
    row["axes"] = axes_of(config["task"]["variant"]);
  } else {
    row["axes"] = axes_from_display_name(display);
  }
  for (const char* k : {"model", "width", "layers", "seed", "lr", "warmup", "status", "parameters",
                        "state_elements_per_layer", "test_acc", "best_acc", "best_update",
                        "test_loss", "updates", "tokens_per_s", "wall_seconds", "device",
                        "trained_run", "checkpoint"}) {
    row[k] = get(s, k);
  }
  // Per layer: one number when every layer holds the same (a list only for mixed layers).
  if (const json& st = row["state_elements_per_layer"]; st.is_array() && !st.empty() &&
      std::all_of(st.begin(), st.end(), [&](const json& v) { return v == st.front(); })) {
    row["state_elements_per_layer"] = st.front();
  }
  row["dtype"] = s.contains("dtype") ? s["dtype"] : get(config, "dtype");
  add_taxonomy(row, get(s, "plugins"), plugin_names_of(s, config), lookup);
  const std::string status = s.value("status", std::string());
  if (s.contains("message")) {
    row["error"] = s["message"];
  } else if (status == "failed" && fs::exists(dir / "error.txt")) {
    row["error"] = first_line(dir / "error.txt");
  }
  row["gpu"] = gpu_of(get(s, "device"), get(s, "device_model"));
  row["kind"] = s.contains("trained_run") ? "evaluated" : "trained";
  if (row["kind"] == "evaluated" && row["checkpoint"].is_null()) row["checkpoint"] = "last";
  row["dir"] = dir.string();
  return row;
}

// A run that has started and not ended (running, stopped, or killed): what config.json and the
// metrics say.
json row_of_unfinished(const json& config, const fs::path& dir, const TaxonomyLookup& lookup) {
  json row = empty_row();
  const json task = get(config, "task"), model = get(config, "model"),
             training = get(config, "training"), bench = get(config, "benchmark");
  row["benchmark"] = get(bench, "name");
  row["benchmark_file"] = get(bench, "source");
  row["task"] = get(task, "name");
  row["axes"] = axes_of(get(task, "variant"));
  row["model"] = get(model, "name");
  row["width"] = get(model, "width");
  row["layers"] = get(model, "layers");
  row["seed"] = get(training, "seed");
  row["lr"] = get(training, "lr");
  row["warmup"] = get(training, "warmup_steps");
  row["dtype"] = get(config, "dtype");
  row["device"] = get(config, "device");
  row["status"] = "incomplete";
  add_taxonomy(row, json(), plugin_names_of(json::object(), config), lookup);
  if (auto m = last_metrics(dir / "metrics.jsonl")) row["updates"] = get(*m, "update");
  row["kind"] = "trained";
  row["dir"] = dir.string();
  return row;
}

// An `evaluate` record of this run: the run's model, the evaluation's task and result.
json row_of_evaluation(const json& run_row, const json& e, const fs::path& file) {
  json row = run_row;
  const std::string display = e.value("task", std::string());
  row["task"] = e.contains("task_name") ? e["task_name"] : json(task_name_of(display));
  row["axes"] = e.contains("variant") ? axes_of(e["variant"]) : axes_from_display_name(display);
  row["status"] = "evaluated";
  row["error"] = nullptr;
  row["test_acc"] = get(e, "test_acc");
  row["test_loss"] = get(e, "test_loss");
  row["best_acc"] = row["best_update"] = row["tokens_per_s"] = nullptr;
  row["wall_seconds"] = get(e, "seconds");
  row["device"] = get(e, "device");
  row["gpu"] = gpu_of(get(e, "device"), get(e, "device_model"));
  row["kind"] = "evaluated";
  row["trained_run"] = run_row["dir"];
  row["checkpoint"] = get(e, "checkpoint");
  row["dir"] = file.string();
  return row;
}

bool is_run_folder(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "summary.json", ec) || fs::is_regular_file(dir / "config.json", ec);
}

// Sort key: numbers compare as numbers, text as text, unknown first.
struct Key {
  std::vector<json> parts;
  bool operator<(const Key& other) const {
    for (std::size_t i = 0; i < parts.size() && i < other.parts.size(); ++i) {
      const json &a = parts[i], &b = other.parts[i];
      if (a == b) continue;
      if (a.is_null() || b.is_null()) return a.is_null();
      if (a.is_number() && b.is_number()) return a.get<double>() < b.get<double>();
      if (a.is_number() != b.is_number()) return a.is_number();
      return a.dump() < b.dump();
    }
    return parts.size() < other.parts.size();
  }
};

Key sort_key(const json& row, const std::vector<std::string>& axes) {
  Key k;
  for (const char* c : {"benchmark", "task"}) k.parts.push_back(row[c]);
  for (const auto& a : axes) k.parts.push_back(row["axes"].contains(a) ? row["axes"][a] : json());
  for (const char* c : {"model", "width", "layers", "seed", "lr", "warmup", "kind", "dir"}) {
    k.parts.push_back(row[c]);
  }
  return k;
}

std::string plain_number(double v) {
  // Shortest text that reads back as the same double (what JSON writes).
  return json(v).dump();
}

std::string cell_text(const json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
    return plain_number(d);
  }
  return v.dump();
}

// A value of a row as its columns see it: the axes live in row["axes"].
json column_value(const json& row, const std::string& column, const ResultTable& table) {
  if (std::find(table.axes.begin(), table.axes.end(), column) != table.axes.end()) {
    const json& axes = row.at("axes");
    return axes.contains(column) ? axes.at(column) : json();
  }
  return row.contains(column) ? row.at(column) : json();
}

std::string markdown_cell(const json& v, const std::string& column) {
  std::string text;
  if (v.is_number_float()) {
    char buf[64];
    const double d = v.get<double>();
    if (column == "test_acc" || column == "best_acc" || column == "test_loss") {
      std::snprintf(buf, sizeof(buf), "%.4f", d);
    } else if (column == "tokens_per_s" || column == "wall_seconds") {
      std::snprintf(buf, sizeof(buf), "%.1f", d);
    } else {
      std::snprintf(buf, sizeof(buf), "%g", d);
    }
    text = buf;
  } else {
    text = cell_text(v);
  }
  std::string out;
  for (char c : text) {
    if (c == '|') out += "\\|";
    else if (c == '\n' || c == '\r') out += ' ';
    else out += c;
  }
  return out;
}

}  // namespace

std::vector<std::string> result_columns(const std::vector<std::string>& axes) {
  std::vector<std::string> c = kHeadColumns;
  c.insert(c.end(), axes.begin(), axes.end());
  c.insert(c.end(), kTailColumns.begin(), kTailColumns.end());
  return c;
}

std::vector<std::pair<std::string, std::string>> variant_of_display_name(const std::string& name) {
  std::vector<std::pair<std::string, std::string>> out;
  const auto open = name.find('[');
  if (open == std::string::npos || name.back() != ']') return out;
  const std::string inner = name.substr(open + 1, name.size() - open - 2);
  int depth = 0;
  bool quoted = false;
  std::string part;
  const auto flush = [&] {
    const auto eq = part.find('=');
    if (eq != std::string::npos) out.emplace_back(part.substr(0, eq), part.substr(eq + 1));
    part.clear();
  };
  for (char c : inner) {
    if (c == '"') quoted = !quoted;
    if (!quoted && (c == '{' || c == '[')) ++depth;
    if (!quoted && (c == '}' || c == ']')) --depth;
    if (c == ',' && depth == 0 && !quoted) {
      flush();
      continue;
    }
    part += c;
  }
  flush();
  return out;
}

json axis_value(const std::string& text) {
  if (text.empty()) return text;
  const char* begin = text.c_str();
  char* end = nullptr;
  const double v = std::strtod(begin, &end);
  if (end != begin + text.size() || !std::isfinite(v)) return text;
  // Integers stay integers ("20" -> 20); anything with a point or exponent is a double.
  if (text.find_first_of(".eE") == std::string::npos && std::abs(v) < 9e15) {
    return static_cast<std::int64_t>(v);
  }
  return v;
}

std::vector<json> rows_of_run_folder(const std::string& dir_text, const TaxonomyLookup& lookup) {
  const fs::path dir(dir_text);
  std::vector<json> rows;
  const auto summary = read_json(dir / "summary.json");
  const auto config = read_json(dir / "config.json");
  if (summary) {
    rows.push_back(row_of_summary(*summary, config ? *config : json::object(), dir, lookup));
  } else if (config) {
    rows.push_back(row_of_unfinished(*config, dir, lookup));
  } else {
    return rows;
  }
  std::error_code ec;
  const fs::path evaluations = dir / "evaluations";
  if (fs::is_directory(evaluations, ec)) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(evaluations, ec)) {
      if (e.path().extension() == ".json" && e.is_regular_file(ec)) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    const json run_row = rows.front();
    for (const auto& f : files) {
      if (auto e = read_json(f)) rows.push_back(row_of_evaluation(run_row, *e, f));
    }
  }
  return rows;
}

ResultTable make_result_table(std::vector<json> rows) {
  ResultTable table;
  for (auto& row : rows) {
    if (!row.contains("axes") || !row["axes"].is_object()) row["axes"] = json::object();
    for (const auto& [k, v] : row["axes"].items()) {
      if (std::find(table.axes.begin(), table.axes.end(), k) == table.axes.end()) {
        table.axes.push_back(k);
      }
    }
  }
  table.rows = std::move(rows);
  return table;
}

ResultTable collect_results(const std::vector<std::string>& roots, const TaxonomyLookup& lookup) {
  std::vector<json> rows;
  std::set<std::string> seen;  // a folder named twice (or inside another root) counts once
  for (const auto& root : roots) {
    std::error_code ec;
    if (!fs::is_directory(root, ec)) {
      throw std::runtime_error(root + ": not a folder (collect reads run folders under folders)");
    }
    const auto add = [&](const fs::path& dir) {
      const std::string key = fs::weakly_canonical(dir, ec).string();
      if (!seen.insert(key).second) return;
      for (auto& r : rows_of_run_folder(dir.string(), lookup)) rows.push_back(std::move(r));
    };
    if (is_run_folder(root)) {
      add(root);
      continue;
    }
    // Symbolic links are not followed: a link loop cannot make the walk endless.
    fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
    for (; it != end; it.increment(ec)) {
      if (ec) break;
      if (!it->is_directory(ec) || it->is_symlink(ec)) continue;
      if (is_run_folder(it->path())) {
        add(it->path());
        it.disable_recursion_pending();  // a run folder's own folders hold no runs
      }
    }
    if (ec) throw std::runtime_error(root + ": cannot read: " + ec.message());
  }
  ResultTable table = make_result_table(std::move(rows));
  std::vector<std::pair<Key, std::size_t>> order;
  for (std::size_t i = 0; i < table.rows.size(); ++i) {
    order.emplace_back(sort_key(table.rows[i], table.axes), i);
  }
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<json> sorted;
  for (const auto& [key, i] : order) sorted.push_back(std::move(table.rows[i]));
  table.rows = std::move(sorted);
  return table;
}

std::string csv_field(const std::string& value) {
  if (value.find_first_of(",\"\r\n") == std::string::npos) return value;
  std::string out = "\"";
  for (char c : value) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string format_csv(const ResultTable& table) {
  const auto columns = result_columns(table.axes);
  std::string out;
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (i) out += ',';
    out += csv_field(columns[i]);
  }
  out += "\r\n";
  for (const auto& row : table.rows) {
    for (std::size_t i = 0; i < columns.size(); ++i) {
      if (i) out += ',';
      out += csv_field(cell_text(column_value(row, columns[i], table)));
    }
    out += "\r\n";
  }
  return out;
}

std::string format_jsonl(const ResultTable& table) {
  const auto columns = result_columns(table.axes);
  std::string out;
  for (const auto& row : table.rows) {
    json o = json::object();
    for (const auto& c : columns) {
      json v = column_value(row, c, table);
      // JSON has no NaN: a diverged run's loss is written as null.
      if (v.is_number_float() && !std::isfinite(v.get<double>())) v = nullptr;
      o[c] = v;
    }
    // nlohmann orders keys alphabetically; write them in column order instead.
    out += '{';
    for (std::size_t i = 0; i < columns.size(); ++i) {
      if (i) out += ',';
      out += json(columns[i]).dump();
      out += ':';
      out += o[columns[i]].dump();
    }
    out += "}\n";
  }
  return out;
}

std::string format_markdown(const ResultTable& table) {
  std::vector<std::string> columns = {"task"};
  columns.insert(columns.end(), table.axes.begin(), table.axes.end());
  for (const char* c : {"model", "width", "layers", "seed", "lr", "warmup", "dtype", "status",
                        "parameters", "test_acc", "best_acc", "test_loss", "updates",
                        "tokens_per_s", "wall_seconds"}) {
    columns.push_back(c);
  }
  std::ostringstream md;
  md << "|";
  for (const auto& c : columns) md << " " << c << " |";
  md << "\n|";
  for (std::size_t i = 0; i < columns.size(); ++i) md << "---|";
  md << "\n";
  for (const auto& row : table.rows) {
    md << "|";
    for (const auto& c : columns) md << " " << markdown_cell(column_value(row, c, table), c) << " |";
    md << "\n";
  }
  return md.str();
}

}  // namespace sb
