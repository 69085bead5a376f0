// Strict reading of TOML tables: every key is either read or reported.
//
// TableReader wraps one toml++ table. Each get_* call marks its key as used and checks the type and
// range; finish() reports keys that nothing read, with a "did you mean" suggestion. Every error is
// a ConfigError whose message names the source file, the line, the full dotted key and what is
// allowed, e.g.
//   tasks/task2.toml:14: grammar.ambiguties: unknown key; did you mean 'ambiguities'? (allowed:
//   vocab, ambiguities, ambiguity_depth, ...)
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace toml {
inline namespace v3 {
class table;
class node;
}  // namespace v3
}  // namespace toml

namespace sb {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Levenshtein distance, for "did you mean".
int edit_distance(const std::string& a, const std::string& b);
// The candidate closest to `key` if it is close enough to be a likely misspelling, else "".
std::string closest_match(const std::string& key, const std::vector<std::string>& candidates);

class TableReader {
 public:
  // `table` may be null (an absent optional table: every get returns its default).
  // `path` is the dotted path of the table ("" for the root), `source` the file name.
  TableReader(const toml::table* table, std::string path, std::string source);

  bool has(const std::string& key) const;

  std::int64_t get_int(const std::string& key, std::int64_t fallback, std::int64_t min,
                       std::int64_t max);
  std::optional<std::int64_t> get_int(const std::string& key, std::int64_t min, std::int64_t max);
  // Accepts integers too (1 is 1.0).
  double get_float(const std::string& key, double fallback, double min, double max);
  std::optional<double> get_float(const std::string& key, double min, double max);
  bool get_bool(const std::string& key, bool fallback);
  std::optional<bool> get_bool(const std::string& key);
  std::string get_string(const std::string& key, const std::string& fallback);
  std::optional<std::string> get_string(const std::string& key);
  // A string that must be one of `allowed`.
  std::string get_enum(const std::string& key, const std::string& fallback,
                       const std::vector<std::string>& allowed);
  // A sub-table; absent gives a reader over nothing. A non-table value is an error.
  TableReader get_table(const std::string& key);
  // The raw node of `key` (marked as used), or null; for values of several possible types.
  const toml::node* get_node(const std::string& key);

  // Reports the first key that no get_* call read. `allowed` lists the valid keys for the message.
  void finish(const std::vector<std::string>& allowed);

  // "file:line: path.key: message"
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;
  std::string full_key(const std::string& key) const;
  const std::string& source() const { return source_; }

  // Where values without a source line came from: (dotted key, "--set KEY=VALUE") pairs of the
  // overrides applied to the document. An error about such a value (or one inside a table that an
  // override created) says "(from --set KEY=VALUE)" instead of a line number. Sub-tables share it.
  using Origins = std::vector<std::pair<std::string, std::string>>;
  void set_origins(std::shared_ptr<const Origins> origins) { origins_ = std::move(origins); }

  // A value as text: 20, 0.1, 1.0, "clean" (quoted), [20, 24], { dist = "uniform", low = 0.1 }.
  static std::string value_text(const toml::node& node);
  // A value with its type, for "expected ..., got ..." messages: integer 41, string "41", table.
  static std::string describe(const toml::node& node);

 private:
  std::string where(const std::string& key) const;
  std::uint32_t line_of(const std::string& key) const;  // 0: absent or without a position
  std::string origin_note(const std::string& key) const;
  const toml::node* take(const std::string& key);
  const toml::table* table_;
  std::string path_;
  std::string source_;
  std::vector<std::string> used_;
  std::shared_ptr<const Origins> origins_;
};


// ---- documents ---------------------------------------------------------------------------------

// One `--set KEY=VALUE` override. VALUE is read as a TOML value (`20`, `0.5`, `true`, `"x"`,
// `[1, 2]`, `{ dist = "uniform", low = 0.1, high = 1.0 }`); a bare word is taken as a string.
struct Override {
  std::string key;
  std::string value;
};
// Parses "KEY=VALUE"; throws ConfigError on a malformed override.
Override parse_override(const std::string& text);
// "--set KEY=VALUE"
std::string override_text(const Override& o);

bool is_bare_key(const std::string& s);
// A name that becomes one part of a path (task, benchmark and model names name run folders):
// letters, digits, _, - and ., not first; at most 128 characters. No separator, so no "..".
bool is_path_name(const std::string& s);
inline constexpr const char* kPathNameRule =
    "letters, digits, _, - and ., not first, at most 128 characters: it names folders";
std::vector<std::string> split_key(const std::string& key);
std::string trim(const std::string& s);

// The text of a configuration file; ConfigError "<path>: cannot open <what>: <why>".
std::string read_config_file(const std::string& path, const std::string& what);
// Parses TOML text (ConfigError "file:line:column: TOML syntax error: ...").
toml::table parse_document(const std::string& text, const std::string& source);
// Sets one dotted key, creating tables; the value has no source line (errors name the --set).
void apply_override(toml::table& root, const Override& o, const std::string& source);
// Parses `text` and applies `overrides` in order.
toml::table build_document(const std::string& text, const std::string& source,
                           const std::vector<Override>& overrides);
// The origins of overridden keys, for TableReader::set_origins.
std::shared_ptr<const TableReader::Origins> origins_of(const std::vector<Override>& overrides);

}  // namespace sb
