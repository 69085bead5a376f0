#include "core/config/strict_toml.hpp"

#include <sys/stat.h>

#include <toml++/toml.h>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <sstream>

namespace sb {

int edit_distance(const std::string& a, const std::string& b) {
  // One row of the classic dynamic programme: row[j] = distance(a[0..i), b[0..j)).
  std::vector<int> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    int diagonal = row[0];
    row[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int above = row[j];
      const int substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitute});
      diagonal = above;
    }
  }
  return row[b.size()];
}

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

namespace {

// Levenshtein distance where swapping two neighbouring characters also counts as one edit
// ("optimal string alignment"): "gpa" is one edit from "gap", as a typist would count it.
int typo_distance(const std::string& a, const std::string& b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = static_cast<int>(i);
  for (size_t j = 0; j <= m; ++j) d[0][j] = static_cast<int>(j);
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      const int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

}  // namespace

std::string closest_match(const std::string& key, const std::vector<std::string>& candidates) {
  if (key.empty()) return {};
  // Allowed edits grow with the key: 1 up to 3 characters, 2 up to 5, else 3.
  const int limit = key.size() <= 3 ? 1 : key.size() <= 5 ? 2 : 3;
  const std::string k = lower(key);
  std::string best;
  int best_distance = limit + 1;
  for (const auto& c : candidates) {
    const int d = typo_distance(k, lower(c));
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  if (!best.empty()) return best;
  // An abbreviation ("dur" for "duration") when exactly one candidate starts with it.
  if (k.size() >= 3) {
    std::string prefix_match;
    for (const auto& c : candidates) {
      if (lower(c).rfind(k, 0) == 0) {
        if (!prefix_match.empty()) return {};
        prefix_match = c;
      }
    }
    return prefix_match;
  }
  return {};
}

namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

// Shortest text that reads back as the same double; "1.0" rather than "1" so that it stays a float.
std::string float_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  // Plain notation for everyday magnitudes (200000.0, not 2e+05), else the shortest form.
  const double a = std::fabs(v);
  const bool plain = a == 0.0 || (a >= 1e-6 && a < 1e15);
  char buf[400];
  const auto res = plain ? std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed)
                         : std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, res.ptr);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

// A number in a range message: integers without a fraction.
std::string number_text(double v) {
  if (std::isfinite(v) && v == std::trunc(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<long long>(v));
  }
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// (Built with += : GCC 12 warns falsely about "literal" + std::string, PR 105329.)
std::string range_text(const std::string& min, const std::string& max, bool unbounded) {
  std::string out = unbounded ? ">= " : "[";
  out += min;
  if (!unbounded) {
    out += ", ";
    out += max;
    out += "]";
  }
  return out;
}

std::string int_range(std::int64_t min, std::int64_t max) {
  return range_text(std::to_string(min), std::to_string(max),
                    max == std::numeric_limits<std::int64_t>::max());
}

std::string float_range(double min, double max) {
  return range_text(number_text(min), number_text(max),
                    max == std::numeric_limits<double>::infinity());
}

}  // namespace

std::string TableReader::value_text(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return quote(node.as_string()->get());
    case toml::node_type::integer:
      return std::to_string(node.as_integer()->get());
    case toml::node_type::floating_point:
      return float_text(node.as_floating_point()->get());
    case toml::node_type::boolean:
      return node.as_boolean()->get() ? "true" : "false";
    case toml::node_type::array: {
      std::string out = "[";
      bool first = true;
      for (const auto& e : *node.as_array()) {
        out += first ? "" : ", ";
        out += value_text(e);
        first = false;
      }
      return out + "]";
    }
    case toml::node_type::table: {
      // Keys in document order where known (toml++ keeps tables sorted by key).
      std::vector<std::pair<const toml::key*, const toml::node*>> items;
      for (const auto& [k, v] : *node.as_table()) items.emplace_back(&k, &v);
      std::stable_sort(items.begin(), items.end(), [](const auto& a, const auto& b) {
        const auto& pa = a.first->source().begin;
        const auto& pb = b.first->source().begin;
        return std::pair(pa.line, pa.column) < std::pair(pb.line, pb.column);
      });
      std::string out = "{ ";
      bool first = true;
      for (const auto& [k, v] : items) {
        out += first ? "" : ", ";
        out += std::string(k->str()) + " = " + value_text(*v);
        first = false;
      }
      return items.empty() ? "{}" : out + " }";
    }
    default: {
      std::ostringstream os;
      node.visit([&](const auto& v) {
        if constexpr (toml::is_date<decltype(v)> || toml::is_time<decltype(v)> ||
                      toml::is_date_time<decltype(v)>) {
          os << v;
        }
      });
      return os.str();
    }
  }
}

std::string TableReader::describe(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "string " + value_text(node);
    case toml::node_type::integer:
      return "integer " + value_text(node);
    case toml::node_type::floating_point:
      return "float " + value_text(node);
    case toml::node_type::boolean:
      return "boolean " + value_text(node);
    case toml::node_type::array: {
      std::string text = value_text(node);
      if (text.size() > 60) text = text.substr(0, 56) + " ...]";
      return "array " + text;
    }
    case toml::node_type::table:
      return "table";
    case toml::node_type::date:
      return "date " + value_text(node);
    case toml::node_type::time:
      return "time " + value_text(node);
    case toml::node_type::date_time:
      return "date-time " + value_text(node);
    default:
      return "nothing";
  }
}

TableReader::TableReader(const toml::table* table, std::string path, std::string source)
    : table_(table), path_(std::move(path)), source_(std::move(source)) {}

bool TableReader::has(const std::string& key) const {
  return table_ != nullptr && table_->contains(key);
}

std::string TableReader::full_key(const std::string& key) const {
  if (path_.empty()) return key;
  if (key.empty()) return path_;
  return path_ + "." + key;
}

std::string TableReader::origin_note(const std::string& key) const {
  if (!origins_) return {};
  const std::string full = full_key(key);
  // The last override that set this key, a table around it, or a key inside it.
  for (auto it = origins_->rbegin(); it != origins_->rend(); ++it) {
    const std::string& k = it->first;
    const bool inside = full.size() > k.size() && full.rfind(k + ".", 0) == 0;
    const bool around = k.size() > full.size() && k.rfind(full + ".", 0) == 0;
    if (k == full || inside || around) return " (from " + it->second + ")";
  }
  return {};
}

std::uint32_t TableReader::line_of(const std::string& key) const {
  if (table_ == nullptr || key.empty()) return 0;
  const auto it = table_->find(key);
  // (Not the key's position: toml++ keeps a key when an override replaces its value.)
  return it != table_->end() ? it->second.source().begin.line : 0;
}

std::string TableReader::where(const std::string& key) const {
  const std::string full = full_key(key);
  const std::string prefix_key = full.empty() ? "" : full + ": ";
  std::uint32_t line = line_of(key);
  // A value from an override has no line; the origin note says where it came from. Otherwise an
  // absent key points at its table.
  if (line == 0 && origin_note(key).empty() && table_ != nullptr) {
    line = table_->source().begin.line;
  }
  if (line == 0) return source_ + ": " + prefix_key;
  return source_ + ":" + std::to_string(line) + ": " + prefix_key;
}

void TableReader::fail(const std::string& key, const std::string& message) const {
  // Values written in the file have a line; only the others can come from --set.
  const std::string note = line_of(key) == 0 ? origin_note(key) : "";
  throw ConfigError(where(key) + message + note);
}

const toml::node* TableReader::take(const std::string& key) {
  if (std::find(used_.begin(), used_.end(), key) == used_.end()) used_.push_back(key);
  return table_ != nullptr ? table_->get(key) : nullptr;
}

const toml::node* TableReader::get_node(const std::string& key) {
  return take(key);
}

std::optional<std::int64_t> TableReader::get_int(const std::string& key, std::int64_t min,
                                                 std::int64_t max) {
  const toml::node* node = take(key);
  if (node == nullptr) return std::nullopt;
  if (!node->is_integer()) fail(key, "expected an integer, got " + describe(*node));
  const std::int64_t v = node->as_integer()->get();
  if (v < min || v > max) {
    fail(key, "value " + std::to_string(v) + " is out of range " + int_range(min, max));
  }
  return v;
}

std::int64_t TableReader::get_int(const std::string& key, std::int64_t fallback, std::int64_t min,
                                  std::int64_t max) {
  return get_int(key, min, max).value_or(fallback);
}

std::optional<double> TableReader::get_float(const std::string& key, double min, double max) {
  const toml::node* node = take(key);
  if (node == nullptr) return std::nullopt;
  double v = 0.0;
  if (node->is_integer()) {
    v = static_cast<double>(node->as_integer()->get());
  } else if (node->is_floating_point()) {
    v = node->as_floating_point()->get();
  } else {
    fail(key, "expected a number, got " + describe(*node));
  }
  if (!(v >= min && v <= max)) {
    fail(key, "value " + value_text(*node) + " is out of range " + float_range(min, max));
  }
  return v;
}

double TableReader::get_float(const std::string& key, double fallback, double min, double max) {
  return get_float(key, min, max).value_or(fallback);
}

std::optional<bool> TableReader::get_bool(const std::string& key) {
  const toml::node* node = take(key);
  if (node == nullptr) return std::nullopt;
  if (!node->is_boolean()) fail(key, "expected true or false, got " + describe(*node));
  return node->as_boolean()->get();
}

bool TableReader::get_bool(const std::string& key, bool fallback) {
  return get_bool(key).value_or(fallback);
}

std::optional<std::string> TableReader::get_string(const std::string& key) {
  const toml::node* node = take(key);
  if (node == nullptr) return std::nullopt;
  if (!node->is_string()) fail(key, "expected a string, got " + describe(*node));
  return node->as_string()->get();
}

std::string TableReader::get_string(const std::string& key, const std::string& fallback) {
  return get_string(key).value_or(fallback);
}

std::string TableReader::get_enum(const std::string& key, const std::string& fallback,
                                  const std::vector<std::string>& allowed) {
  const toml::node* node = take(key);
  if (node == nullptr) return fallback;
  if (!node->is_string()) {
    fail(key, "expected one of the strings " + join(allowed) + ", got " + describe(*node));
  }
  std::string v = node->as_string()->get();
  if (std::find(allowed.begin(), allowed.end(), v) != allowed.end()) return v;
  std::string message = "unknown value " + quote(v);
  if (auto guess = closest_match(v, allowed); !guess.empty()) {
    message += "; did you mean " + quote(guess) + "?";
  }
  fail(key, message + " (allowed: " + join(allowed) + ")");
}

TableReader TableReader::get_table(const std::string& key) {
  const toml::node* node = take(key);
  if (node != nullptr && !node->is_table()) fail(key, "expected a table, got " + describe(*node));
  TableReader sub(node != nullptr ? node->as_table() : nullptr, full_key(key), source_);
  sub.origins_ = origins_;
  return sub;
}

void TableReader::finish(const std::vector<std::string>& allowed) {
  if (table_ == nullptr) return;
  // The first unread key in document order (toml++ keeps a table sorted by key).
  const toml::key* first = nullptr;
  for (const auto& [k, v] : *table_) {
    if (std::find(used_.begin(), used_.end(), std::string(k.str())) != used_.end()) continue;
    const auto& p = k.source().begin;
    if (first == nullptr) {
      first = &k;
      continue;
    }
    const auto& q = first->source().begin;
    // Keys without a position (from overrides) come after those of the file.
    const auto rank = [](const toml::source_position& s) {
      return std::pair(s.line == 0 ? std::numeric_limits<std::uint32_t>::max() : s.line, s.column);
    };
    if (rank(p) < rank(q)) first = &k;
  }
  if (first == nullptr) return;
  const std::string key(first->str());
  const bool is_table = table_->get(key)->is_table();
  std::string message = is_table ? "unknown table" : "unknown key";
  if (auto guess = closest_match(key, allowed); !guess.empty()) {
    message += "; did you mean '" + guess + "'?";
  }
  if (allowed.empty()) {
    message += " (this table takes no keys)";
  } else {
    message += " (allowed: " + join(allowed) + ")";
  }
  fail(key, message);
}


// --- documents: reading, overrides (shared by task and benchmark files) ---

bool is_bare_key(const std::string& s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

bool is_path_name(const std::string& s) {
  if (s.empty() || s.size() > 128 || s.front() == '.') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return c == '.' || c == '_' || c == '-' || std::isalnum(static_cast<unsigned char>(c));
  });
}

std::vector<std::string> split_key(const std::string& key) {
  std::vector<std::string> parts;
  std::size_t begin = 0;
  while (true) {
    const std::size_t dot = key.find('.', begin);
    parts.push_back(key.substr(begin, dot == std::string::npos ? std::string::npos : dot - begin));
    if (dot == std::string::npos) break;
    begin = dot + 1;
  }
  return parts;
}

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t");
  if (begin == std::string::npos) return {};
  const auto end = s.find_last_not_of(" \t");
  return s.substr(begin, end - begin + 1);
}

std::string override_text(const Override& o) {
  return "--set " + o.key + "=" + o.value;
}

namespace {

// A task or benchmark file is a few kilobytes; anything past this is not one.
constexpr std::size_t kMaxConfigBytes = 16u << 20;

// Tables and arrays nested deeper than this are refused: no task or benchmark key is more than a
// few levels deep, and the readers (and toml++'s destructors) recurse once per level.
constexpr std::size_t kMaxNesting = 64;

// Walks with an explicit stack, so the check itself cannot overflow on what it refuses.
void check_nesting(const toml::table& root, const std::string& source) {
  std::vector<std::pair<const toml::node*, std::size_t>> todo = {{&root, 0}};
  while (!todo.empty()) {
    const auto [node, depth] = todo.back();
    todo.pop_back();
    if (depth > kMaxNesting) {
      const auto line = node->source().begin.line;
      throw ConfigError(source + ":" + std::to_string(line) + ": tables or arrays nested more than " +
                        std::to_string(kMaxNesting) + " levels deep (no key needs more than a few)");
    }
    if (const auto* t = node->as_table()) {
      for (const auto& [key, child] : *t) todo.emplace_back(&child, depth + 1);
    } else if (const auto* a = node->as_array()) {
      for (const auto& child : *a) todo.emplace_back(&child, depth + 1);
    }
  }
}

toml::table parse_document_unchecked(const std::string& text, const std::string& source) {
#if TOML_EXCEPTIONS
  try {
    return toml::parse(std::string_view(text), std::string_view(source));
  } catch (const toml::parse_error& e) {
    const auto& p = e.source().begin;
    throw ConfigError(source + ":" + std::to_string(p.line) + ":" + std::to_string(p.column) +
                      ": TOML syntax error: " + std::string(e.description()));
  }
#else
  toml::parse_result result = toml::parse(std::string_view(text), std::string_view(source));
  if (!result) {
    const auto& p = result.error().source().begin;
    throw ConfigError(source + ":" + std::to_string(p.line) + ":" + std::to_string(p.column) +
                      ": TOML syntax error: " + std::string(result.error().description()));
  }
  return std::move(result).table();
#endif
}

}  // namespace

toml::table parse_document(const std::string& text, const std::string& source) {
  toml::table root = parse_document_unchecked(text, source);
  check_nesting(root, source);
  return root;
}

// The value of an override: VALUE read as TOML (`v = VALUE`), else VALUE as a plain string.
static toml::table override_value(const std::string& value) {
  const std::string snippet = "v = " + value;
#if TOML_EXCEPTIONS
  try {
    toml::table t = toml::parse(std::string_view(snippet));
    if (t.size() == 1 && t.contains("v")) return t;
  } catch (const toml::parse_error&) {
  }
#else
  toml::parse_result result = toml::parse(std::string_view(snippet));
  if (result && result.table().size() == 1 && result.table().contains("v")) {
    return std::move(result).table();
  }
#endif
  toml::table t;
  t.insert("v", value);
  return t;
}

void apply_override(toml::table& root, const Override& o, const std::string& source) {
  const std::vector<std::string> parts = split_key(o.key);
  if (parts.size() > kMaxNesting) {
    throw ConfigError(override_text(o).substr(0, 80) + "...: a key of " + std::to_string(parts.size()) +
                      " parts (at most " + std::to_string(kMaxNesting) + ")");
  }
  toml::table* table = &root;
  std::string path;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    path += (path.empty() ? "" : ".") + parts[i];
    toml::node* node = table->get(parts[i]);
    if (node == nullptr) {
      table = table->insert(parts[i], toml::table{}).first->second.as_table();
    } else if (node->is_table()) {
      table = node->as_table();
    } else {
      throw ConfigError(source + ": " + o.key + ": cannot set: " + path + " is " +
                        TableReader::describe(*node) + ", not a table (from " + override_text(o) +
                        ")");
    }
  }
  const toml::table value = override_value(o.value);
  // A copy: toml++ does not copy source positions, so the value is known to come from --set.
  value.get("v")->visit([&](const auto& v) { table->insert_or_assign(parts.back(), v); });
}

std::shared_ptr<const TableReader::Origins> origins_of(const std::vector<Override>& overrides) {
  auto origins = std::make_shared<TableReader::Origins>();
  for (const auto& o : overrides) origins->emplace_back(o.key, override_text(o));
  return origins;
}

toml::table build_document(const std::string& text, const std::string& source,
                           const std::vector<Override>& overrides) {
  toml::table root = parse_document(text, source);
  for (const auto& o : overrides) apply_override(root, o, source);
  return root;
}

std::string read_config_file(const std::string& path, const std::string& what) {
  // Regular files only, checked before opening: a FIFO would block the open, a device such as
  // /dev/zero would be read without end.
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    const char* kind = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                       : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                                                                    : "not a regular file";
    throw ConfigError(path + ": cannot open " + what + ": it is " + kind + " (a regular file is needed)");
  }
  if (st.st_size > static_cast<off_t>(kMaxConfigBytes)) {
    throw ConfigError(path + ": cannot open " + what + ": " + std::to_string(st.st_size) +
                      " bytes (at most " + std::to_string(kMaxConfigBytes) + ")");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    const std::string why = err != 0 ? std::strerror(err) : "unreadable";
    throw ConfigError(path + ": cannot open " + what + ": " + why);
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError(path + ": cannot read " + what);
  return text.str();
}


Override parse_override(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos) {
    throw ConfigError("--set " + text + ": expected KEY=VALUE, e.g. --set grammar.ambiguities=20");
  }
  Override o{trim(text.substr(0, eq)), trim(text.substr(eq + 1))};
  for (const auto& part : split_key(o.key)) {
    if (!is_bare_key(part)) {
      throw ConfigError("--set " + text + ": \"" + o.key +
                        "\" is not a dotted key (letters, digits, _ and -, separated by dots, "
                        "e.g. grammar.ambiguities)");
    }
  }
  if (o.value.empty()) {
    throw ConfigError("--set " + text + ": empty value (write " + o.key +
                      "='\"\"' for an empty string)");
  }
  return o;
}


}  // namespace sb
