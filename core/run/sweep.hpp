// A worker of a sweep: goes through the planned runs, trains each one it can claim, skips finished
// ones and comes back to those that other workers hold until every run is over. Any number of
// workers, on one host or on several over a shared filesystem, may work on one output folder at
// once; the claims in the run folders (core/run/claim.hpp) make each run trained by one of them.
#pragma once

#include <cstddef>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/run/claim.hpp"
#include "core/run/runner.hpp"

namespace sb {

struct SweepOptions {
  ClaimOptions claims;
  bool retry_failed = false;     // run again the runs that failed before this worker started
  bool wait_for_others = true;   // stay until runs held by other workers are over (taking over
                                 // those whose worker dies); false: leave when nothing is free
  double poll_seconds = 5;       // how often a waiting worker looks again
};

// Where a sweep stands, from its run folders.
struct SweepCounts {
  std::size_t total = 0, done = 0, failed = 0, running = 0, left = 0;
  double eta_seconds = -1;  // -1: not known yet
  std::string line() const;  // "sweep: 5/12 done, 1 running, 0 failed, 6 left, ETA 12 min"
};
SweepCounts count_sweep(const std::vector<RunPlan>& plans, const ClaimOptions& claims);

// What a worker started now would do with a run, for --dry-run: "done (finished): skipped",
// "failed: skipped (--retry-failed runs it again)", "running: pid 12 on node7 ...",
// "resumes from its checkpoint", "to run".
std::string describe_run_state(const RunPlan& plan, const SweepOptions& options);

struct SweepObserver {
  std::function<void(const RunPlan&, std::size_t index)> run_started;  // index in the plan
  std::function<void(const RunPlan&, std::size_t index, const nlohmann::json& summary)> run_ended;
  std::function<void(const SweepCounts&)> status;  // after each run this worker ends
  std::function<void(const std::string&)> note;    // "waiting for 2 runs held by ..."
};

struct SweepResult {
  std::vector<nlohmann::json> rows;  // every planned run's summary as on disk at the end
  std::size_t ran = 0;               // runs this worker ran to their end
  std::size_t failed = 0;            // runs of the sweep whose status is "failed"
  int stop_signal = 0;               // the signal that stopped this worker, 0 if none
};

// `context` is the template for each run (its should_stop is set here: a signal checkpoints the
// run and stops the worker; a lost claim abandons the run).
SweepResult run_sweep(const std::vector<RunPlan>& plans, const RunContext& context,
                      const SweepOptions& options, const SweepObserver& observer = {});

}  // namespace sb
