// Several workers of one sweep on one host: `run --gpus 0,1 --runs-per-gpu K` starts K workers per
// GPU, `run --jobs N` N workers on the device of the file; the host's CPUs (those this process may
// use) are split between them. Each worker is a child process running `selectivbench run` on the
// same output folder; the claims (core/run/claim.hpp) keep them from running a run twice.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace sb {

struct WorkerSlot {
  std::string name;       // "gpu0.1" (GPU 0, its second worker), "cpu2"
  std::string device;     // "cuda:0", or the sweep's device for CPU workers ("" = as configured)
  std::vector<int> cpus;  // the CPUs it may use; its thread count is their number
};

// The workers for `gpus` ("" none, "all", or indices "0,2,3") with `runs_per_gpu` each, or
// `jobs` workers when gpus is empty; `device_count` GPUs exist, `cpus` may be used. Throws
// std::invalid_argument with a message for the command line (bad list, missing GPU, zero jobs).
std::vector<WorkerSlot> plan_workers(const std::string& gpus, int device_count, int runs_per_gpu,
                                     int jobs, const std::vector<int>& cpus);

// Starts one child per slot, `exe` with `args(slot)` as its arguments, pinned to the slot's CPUs,
// each in its own process group; forwards SIGINT/SIGTERM/SIGUSR1 to them (once per signal
// received), calls `tick` about every `tick_seconds` and when a child ends, and waits for all.
// Returns the exit code: 0 when all ended with 0; 128 + signal when stopped by a signal; else the
// first non-zero child code.
int run_worker_processes(const std::string& exe, const std::vector<WorkerSlot>& slots,
                         const std::function<std::vector<std::string>(const WorkerSlot&)>& args,
                         const std::function<void()>& tick, double tick_seconds);

}  // namespace sb
