#include "core/cli/progress.hpp"

#include <unistd.h>

#include <cstdio>
#include <string>

namespace sb::cli {

ProgressBar::ProgressBar(std::string label)
    : label_(std::move(label)),
      enabled_(::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

void ProgressBar::update(std::int64_t done, std::int64_t total) {
  if (!enabled_ || total <= 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (done < total && drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  drawn_ = true;
  constexpr int kWidth = 30;
  const double frac = static_cast<double>(done) / static_cast<double>(total);
  const int filled = static_cast<int>(frac * kWidth);
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(kWidth - filled), '.');
  const auto clock = [](double s) {
    char buf[32];
    const long t = static_cast<long>(s);
    if (t >= 3600) {
      std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    } else {
      std::snprintf(buf, sizeof(buf), "%ld:%02ld", t / 60, t % 60);
    }
    return std::string(buf);
  };
  const std::string eta = rate > 0 ? clock(static_cast<double>(total - done) / rate) : "?";
  std::fprintf(stderr, "\r%s [%s] %3.0f%% %lld/%lld  %.1f/s  %s elapsed, ETA %s ", label_.c_str(),
               bar.c_str(), frac * 100.0, static_cast<long long>(done),
               static_cast<long long>(total), rate, clock(elapsed).c_str(), eta.c_str());
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (enabled_ && drawn_) {
    std::fputc('\n', stderr);
    drawn_ = false;
  }
}

}  // namespace sb::cli
