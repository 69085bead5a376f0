// Plugin options: a plugin declares a schema (name, type, default, range, doc); the core validates
// the TOML values against it and hands the plugin an Options map holding a value for every option.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace sb {

enum class OptionType { kInt, kFloat, kBool, kString };
using OptionValue = std::variant<std::int64_t, double, bool, std::string>;

inline const char* option_type_name(OptionType t) {
  switch (t) {
    case OptionType::kInt: return "integer";
    case OptionType::kFloat: return "float";
    case OptionType::kBool: return "bool";
    case OptionType::kString: return "string";
  }
  return "?";
}

struct OptionSpec {
  std::string name;
  OptionType type = OptionType::kInt;
  OptionValue default_value;
  double min = -std::numeric_limits<double>::infinity();  // kInt, kFloat
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices;  // kString: allowed values (empty: any)
  std::string doc;                   // one line

  static OptionSpec integer(std::string name, std::int64_t value, std::int64_t lo, std::int64_t hi,
                            std::string doc) {
    return {std::move(name), OptionType::kInt, value, static_cast<double>(lo),
            static_cast<double>(hi), {}, std::move(doc)};
  }
  static OptionSpec real(std::string name, double value, double lo, double hi, std::string doc) {
    return {std::move(name), OptionType::kFloat, value, lo, hi, {}, std::move(doc)};
  }
  static OptionSpec boolean(std::string name, bool value, std::string doc) {
    return {std::move(name), OptionType::kBool, value, 0, 1, {}, std::move(doc)};
  }
  static OptionSpec choice(std::string name, std::string value, std::vector<std::string> allowed,
                           std::string doc) {
    return {std::move(name), OptionType::kString, std::move(value), 0, 0, std::move(allowed),
            std::move(doc)};
  }
};

// Validated option values, one per schema entry.
class Options {
 public:
  Options() = default;
  // The defaults of a schema.
  explicit Options(const std::vector<OptionSpec>& schema) {
    for (const auto& s : schema) values_[s.name] = s.default_value;
  }

  std::int64_t get_int(const std::string& name) const { return get<std::int64_t>(name); }
  double get_float(const std::string& name) const { return get<double>(name); }
  bool get_bool(const std::string& name) const { return get<bool>(name); }
  const std::string& get_string(const std::string& name) const { return get<std::string>(name); }

  void set(const std::string& name, OptionValue value) { values_[name] = std::move(value); }
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  const std::map<std::string, OptionValue>& values() const { return values_; }

 private:
  template <typename T>
  const T& get(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end()) throw std::out_of_range("no option '" + name + "'");
    if (const T* v = std::get_if<T>(&it->second)) return *v;
    throw std::invalid_argument("option '" + name + "' has another type");
  }
  std::map<std::string, OptionValue> values_;
};

// Value as TOML-like text: 128, 0.5, true, "chunk".
inline std::string option_to_string(const OptionValue& v) {
  if (auto i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  if (auto d = std::get_if<double>(&v)) {
    std::string s = std::to_string(*d);
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.push_back('0');
    return s;
  }
  if (auto b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  return "\"" + std::get<std::string>(v) + "\"";
}

}  // namespace sb
