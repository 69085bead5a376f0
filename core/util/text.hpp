// Small text helpers the CLI and the runtime share.
#pragma once

#include <string>

namespace sb {

// The first line of a message: LibTorch's errors carry a backtrace after it, and a run's failure
// is reported on one line (the whole message stays in the run's error.txt).
inline std::string first_line(const std::string& message) {
  return message.substr(0, message.find('\n'));
}

}  // namespace sb
