// Checks of command-line values that CLI11's own conversions would let through changed.
#include <charconv>
#include <string>

#include "core/cli/commands.hpp"
#include "core/run/preflight.hpp"

namespace sb::cli {

CLI::Validator whole_number(std::uint64_t min, std::uint64_t max) {
  const std::string range = "[" + std::to_string(min) + ", " + std::to_string(max) + "]";
  return CLI::Validator(
      [min, max, range](std::string& text) -> std::string {
        std::uint64_t value = 0;
        const char* end = text.data() + text.size();
        const auto [ptr, ec] = std::from_chars(text.data(), end, value);
        if (text.empty() || ec == std::errc::invalid_argument || ptr != end) {
          return "'" + text + "' is not a whole number in " + range;
        }
        if (ec == std::errc::result_out_of_range || value < min || value > max) {
          return "'" + text + "' is out of range " + range;
        }
        return "";
      },
      "UINT in " + range);
}

CLI::Validator device_name() {
  return CLI::Validator(
      [](std::string& device) -> std::string { return device_problem(device); },
      "cpu|cuda|cuda:N");
}

CLI::Validator device_spelling() {
  return CLI::Validator(
      [](std::string& device) -> std::string { return device_spelling_problem(device); },
      "cpu|cuda|cuda:N");
}

}  // namespace sb::cli
