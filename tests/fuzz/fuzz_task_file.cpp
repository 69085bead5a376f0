// libFuzzer target: the task-file reader (core/config/task.hpp) on arbitrary text. Every input must
// give task variants or a ConfigError; anything else (a crash, a sanitizer report, another
// exception, a hang) is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/config/task.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    for (const auto& task : sb::parse_task_variants(text, "fuzz.toml")) {
      (void)task.display_name();
      (void)sb::validate(task.data);
    }
  } catch (const sb::ConfigError&) {
  }
  return 0;
}
