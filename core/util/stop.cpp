#include "core/util/stop.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <initializer_list>

namespace sb {

namespace {

std::atomic<int> g_stop{0};
constexpr int kMaxGroups = 1024;
int g_groups[kMaxGroups];
std::atomic<int> g_group_count{0};

void on_signal(int sig) {
  int expected = 0;
  if (g_stop.compare_exchange_strong(expected, sig)) return;
  // A second interrupt or termination: stop now. Only async-signal-safe calls here.
  if (sig == SIGINT || sig == SIGTERM) {
    const int n = g_group_count.load();
    for (int i = 0; i < n; ++i) ::kill(-g_groups[i], sig);
    ::_exit(128 + sig);
  }
}

}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM, SIGUSR1}) ::sigaction(sig, &sa, nullptr);
}

int stop_signal() { return g_stop.load(); }

void request_stop(int signal) {
  int expected = 0;
  g_stop.compare_exchange_strong(expected, signal);
}

int exit_code_for_signal(int signal) { return 128 + signal; }

void add_stop_group(int process_group) {
  const int i = g_group_count.load();
  if (i >= kMaxGroups) return;
  g_groups[i] = process_group;
  g_group_count.store(i + 1);
}

}  // namespace sb
