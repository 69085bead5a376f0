// Work claims: many workers (processes on one host or on several hosts over a shared filesystem)
// share one output folder, and each run is trained by exactly one of them at a time. The run
// folders are the only coordinator; there is no server.
//
// A run's claims are numbered files <run>/claims/000001.json, 000002.json, ...; the highest number
// is the current claim. A claim is taken by creating the next number with link(2), which fails when
// the file exists, on a local disk and on NFS alike, so of several workers that try at once exactly
// one gets it, and the file appears with its whole content. A claim records who holds it (host,
// boot id, pid and the pid's start time, worker name, start time) and a heartbeat that the holder
// rewrites every `heartbeat_seconds`.
//
// The next number may be taken when the current claim is
//   - released (its holder finished, failed or was stopped by a signal and checkpointed), or
//   - dead: on this host (same host name and boot id) its process is gone; on another host, or
//     after a reboot, its heartbeat is older than `stale_seconds` (clocks of the hosts must agree
//     to well within that; NTP does).
// A holder whose claim was taken over (it was judged dead: a hung NFS mount, a paused process)
// sees the higher number at its next heartbeat and stops working on the run.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

namespace sb {

struct ClaimOptions {
  std::string worker;              // a name for logs and the sweep line ("gpu0.1", "slurm 42_3")
  double heartbeat_seconds = 30;   // how often the holder rewrites its heartbeat
  double stale_seconds = 300;      // a claim from another host with an older heartbeat is dead
};

// What a claim file says about its holder.
struct ClaimRecord {
  int number = 0;
  std::string host, boot_id, worker;
  int pid = 0;
  long long pid_start = -1;
  double started = 0, heartbeat = 0;
  std::string released;  // "" while held; else why: "finished", "failed", "interrupted", ...

  nlohmann::json to_json() const;
  static ClaimRecord from_json(const nlohmann::json& j);
  std::string describe() const;  // "pid 123 on node7 (worker gpu0.1), heartbeat 12 s ago"
};

// The state of a run's claims as another worker sees it.
struct ClaimStatus {
  std::optional<ClaimRecord> current;  // the highest-numbered claim, if any
  bool held_by_live_worker = false;    // current is neither released nor dead
};
ClaimStatus read_claim_status(const std::string& run_dir, const ClaimOptions& options);

class RunClaim {
 public:
  // Takes the run's claim when it is free (no claim, released or dead) and starts the heartbeat;
  // nullptr when a live worker holds it. Creates <run>/claims/.
  static std::unique_ptr<RunClaim> try_take(const std::string& run_dir,
                                            const ClaimOptions& options);
  ~RunClaim();  // releases with "abandoned" if release() was not called
  RunClaim(const RunClaim&) = delete;
  RunClaim& operator=(const RunClaim&) = delete;

  // Marks the claim released (its file says why) and stops the heartbeat. Idempotent.
  void release(const std::string& why);
  // True once another worker has taken the run over: stop working on it, write nothing more.
  bool lost() const { return lost_.load(); }
  const ClaimRecord& record() const { return record_; }
  // The claim this one took over, when there was one (dead or released): for the run's log.
  const std::optional<ClaimRecord>& previous() const { return previous_; }

 private:
  RunClaim(std::string run_dir, ClaimOptions options, ClaimRecord record,
           std::optional<ClaimRecord> previous);
  void heartbeat_loop();
  void write_locked();

  std::string dir_;
  ClaimOptions options_;
  ClaimRecord record_;
  std::optional<ClaimRecord> previous_;
  std::atomic<bool> lost_{false};
  bool released_ = false;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::thread heartbeat_;
};

}  // namespace sb
