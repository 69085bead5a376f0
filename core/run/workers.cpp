#include "core/run/workers.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "core/util/stop.hpp"

namespace sb {

namespace {

std::vector<int> parse_gpu_list(const std::string& gpus, int device_count) {
  if (gpus == "all") {
    if (device_count == 0) throw std::invalid_argument("--gpus all: this machine has no CUDA device");
    std::vector<int> all;
    for (int i = 0; i < device_count; ++i) all.push_back(i);
    return all;
  }
  std::vector<int> out;
  std::set<int> seen;
  std::stringstream in(gpus);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    const long i = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || i < 0) {
      throw std::invalid_argument("--gpus " + gpus + ": '" + item +
                                  "' is not a GPU index (allowed: all, or indices such as 0,1,3)");
    }
    if (i >= device_count) {
      throw std::invalid_argument("--gpus " + gpus + ": GPU " + item + " does not exist (" +
                                  std::to_string(device_count) + " CUDA device" +
                                  (device_count == 1 ? "" : "s") + " here)");
    }
    if (!seen.insert(static_cast<int>(i)).second) {
      throw std::invalid_argument("--gpus " + gpus + ": GPU " + item + " is listed twice");
    }
    out.push_back(static_cast<int>(i));
  }
  if (out.empty()) throw std::invalid_argument("--gpus: an empty list");
  return out;
}

// Splits the CPUs into `n` contiguous shares (their sizes differ by at most one); with fewer CPUs
// than workers, workers share CPUs round-robin.
std::vector<std::vector<int>> split_cpus(const std::vector<int>& cpus, std::size_t n) {
  std::vector<std::vector<int>> shares(n);
  if (cpus.size() < n) {
    for (std::size_t w = 0; w < n; ++w) shares[w] = {cpus[w % cpus.size()]};
    return shares;
  }
  for (std::size_t w = 0; w < n; ++w) {
    const std::size_t b = cpus.size() * w / n, e = cpus.size() * (w + 1) / n;
    shares[w].assign(cpus.begin() + static_cast<long>(b), cpus.begin() + static_cast<long>(e));
  }
  return shares;
}

}  // namespace

std::vector<WorkerSlot> plan_workers(const std::string& gpus, int device_count, int runs_per_gpu,
                                     int jobs, const std::vector<int>& cpus) {
  if (cpus.empty()) throw std::invalid_argument("no CPU may be used by this process");
  std::vector<WorkerSlot> slots;
  if (!gpus.empty()) {
    if (runs_per_gpu < 1) throw std::invalid_argument("--runs-per-gpu must be at least 1");
    for (int g : parse_gpu_list(gpus, device_count)) {
      for (int k = 0; k < runs_per_gpu; ++k) {
        slots.push_back({"gpu" + std::to_string(g) + "." + std::to_string(k), "cuda:" + std::to_string(g), {}});
      }
    }
  } else {
    if (jobs < 1) throw std::invalid_argument("--jobs must be at least 1");
    for (int j = 0; j < jobs; ++j) slots.push_back({"cpu" + std::to_string(j), "", {}});
  }
  const auto shares = split_cpus(cpus, slots.size());
  for (std::size_t i = 0; i < slots.size(); ++i) slots[i].cpus = shares[i];
  return slots;
}

int run_worker_processes(const std::string& exe, const std::vector<WorkerSlot>& slots,
                         const std::function<std::vector<std::string>(const WorkerSlot&)>& args,
                         const std::function<void()>& tick, double tick_seconds) {
  std::map<pid_t, std::size_t> running;
  std::vector<int> codes(slots.size(), 0);
  for (std::size_t i = 0; i < slots.size(); ++i) {
    // Everything the child needs is prepared before fork(): after it, only system calls.
    std::vector<std::string> argv_s = args(slots[i]);
    argv_s.insert(argv_s.begin(), exe);
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : slots[i].cpus) CPU_SET(c, &set);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error(std::string("cannot start a worker: ") + std::strerror(errno));
    if (pid == 0) {
      ::setpgid(0, 0);  // signals reach it through its parent, once
      ::sched_setaffinity(0, sizeof(set), &set);
      ::execv(exe.c_str(), argv.data());
      ::_exit(127);
    }
    ::setpgid(pid, pid);
    add_stop_group(pid);
    running[pid] = i;
  }
  int forwarded = 0;
  auto last_tick = std::chrono::steady_clock::now();
  while (!running.empty()) {
    if (const int sig = stop_signal(); sig != 0 && sig != forwarded) {
      for (const auto& [pid, i] : running) ::kill(-pid, sig);
      forwarded = sig;
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0 && running.count(pid)) {
      codes[running[pid]] = WIFEXITED(status) ? WEXITSTATUS(status)
                                              : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
      running.erase(pid);
      if (tick) tick();
      continue;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const auto now = std::chrono::steady_clock::now();
    if (tick && now - last_tick > std::chrono::duration<double>(tick_seconds)) {
      tick();
      last_tick = now;
    }
  }
  if (stop_signal() != 0) return exit_code_for_signal(stop_signal());
  for (int c : codes) {
    if (c != 0) return c;
  }
  return 0;
}

}  // namespace sb
