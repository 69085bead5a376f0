// A progress bar on stderr for long operations; silent when stderr is not a terminal.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace sb::cli {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  // Redraws at most 10 times a second; done == total draws the final state.
  void update(std::int64_t done, std::int64_t total);
  void finish();

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace sb::cli
