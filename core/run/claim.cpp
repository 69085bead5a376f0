#include "core/run/claim.hpp"

#include <atomic>

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "core/util/atomic_file.hpp"
#include "core/util/host.hpp"

namespace sb {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

fs::path claims_dir(const std::string& run_dir) { return fs::path(run_dir) / "claims"; }

fs::path claim_path(const std::string& run_dir, int number) {
  char name[32];
  std::snprintf(name, sizeof(name), "%06d.json", number);
  return claims_dir(run_dir) / name;
}

// The highest claim number in the folder (0: none). Names that are not claims are ignored.
int highest_claim(const std::string& run_dir) {
  int best = 0;
  std::error_code ec;
  for (fs::directory_iterator it(claims_dir(run_dir), ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() != 11 || name.substr(6) != ".json") continue;
    char* stop = nullptr;
    const long n = std::strtol(name.c_str(), &stop, 10);
    if (stop == name.c_str() + 6 && n > best) best = static_cast<int>(n);
  }
  return best;
}

std::optional<ClaimRecord> read_claim(const std::string& run_dir, int number) {
  std::ifstream in(claim_path(run_dir, number));
  if (!in) return std::nullopt;
  try {
    ClaimRecord r = ClaimRecord::from_json(json::parse(in));
    r.number = number;
    return r;
  } catch (const std::exception&) {
    // A claim file is written whole (link or rename of a complete file): an unreadable one was
    // damaged by hand or by a disk. It holds nobody.
    ClaimRecord r;
    r.number = number;
    r.released = "unreadable";
    return r;
  }
}

bool is_dead(const ClaimRecord& c, const ClaimOptions& options) {
  if (!c.released.empty()) return true;
  if (c.host == host_name() && c.boot_id == boot_id()) return !process_alive(c.pid, c.pid_start);
  return unix_seconds() - c.heartbeat > options.stale_seconds;
}

}  // namespace

json ClaimRecord::to_json() const {
  json j = {{"host", host},       {"boot_id", boot_id},    {"pid", pid},
            {"pid_start", pid_start}, {"worker", worker}, {"started", started},
            {"started_at", iso_time(started)}, {"heartbeat", heartbeat},
            {"heartbeat_at", iso_time(heartbeat)}};
  if (!released.empty()) j["released"] = released;
  return j;
}

ClaimRecord ClaimRecord::from_json(const json& j) {
  ClaimRecord r;
  r.host = j.at("host").get<std::string>();
  r.boot_id = j.value("boot_id", std::string());
  r.pid = j.at("pid").get<int>();
  r.pid_start = j.value("pid_start", -1LL);
  r.worker = j.value("worker", std::string());
  r.started = j.at("started").get<double>();
  r.heartbeat = j.at("heartbeat").get<double>();
  r.released = j.value("released", std::string());
  return r;
}

std::string ClaimRecord::describe() const {
  char age[64];
  std::snprintf(age, sizeof(age), "%.0f", std::max(0.0, unix_seconds() - heartbeat));
  return "pid " + std::to_string(pid) + " on " + host +
         (worker.empty() ? "" : " (worker " + worker + ")") + ", heartbeat " + age + " s ago" +
         (released.empty() ? "" : ", released: " + released);
}

ClaimStatus read_claim_status(const std::string& run_dir, const ClaimOptions& options) {
  ClaimStatus s;
  const int n = highest_claim(run_dir);
  if (n == 0) return s;
  s.current = read_claim(run_dir, n);
  s.held_by_live_worker = s.current && !is_dead(*s.current, options);
  return s;
}

std::unique_ptr<RunClaim> RunClaim::try_take(const std::string& run_dir,
                                             const ClaimOptions& options) {
  std::error_code ec;
  fs::create_directories(claims_dir(run_dir), ec);
  if (ec) throw std::runtime_error("cannot create " + claims_dir(run_dir).string() + ": " + ec.message());
  ClaimRecord mine;
  mine.host = host_name();
  mine.boot_id = boot_id();
  mine.pid = static_cast<int>(::getpid());
  mine.pid_start = process_start_ticks(mine.pid);
  mine.worker = options.worker;
  // A few rounds: each lost race means someone else took a number, and the next look decides.
  for (int round = 0; round < 16; ++round) {
    const int n = highest_claim(run_dir);
    std::optional<ClaimRecord> previous;
    if (n > 0) {
      previous = read_claim(run_dir, n);
      if (!previous) continue;  // removed between the listing and the read: look again
      if (!is_dead(*previous, options)) return nullptr;
    }
    mine.number = n + 1;
    mine.started = mine.heartbeat = unix_seconds();
    // Write the whole claim to a private file, then link it to its number: link() never replaces,
    // so exactly one of the workers racing for this number gets it.
    const fs::path target = claim_path(run_dir, mine.number);
    // Private to this take: host, pid and a number of this process (two takes of one process,
    // from two threads, must not share the file).
    static std::atomic<unsigned long> takes{0};
    const std::string tmp = target.string() + ".new." + mine.host + "." + std::to_string(mine.pid) +
                            "." + std::to_string(takes.fetch_add(1));
    write_file_atomically(tmp, [&](std::ostream& o) { o << mine.to_json().dump(2) << "\n"; });
    const int rc = ::link(tmp.c_str(), target.c_str());
    const int err = errno;
    fs::remove(tmp, ec);
    if (rc == 0) {
      return std::unique_ptr<RunClaim>(new RunClaim(run_dir, options, mine, previous));
    }
    if (err != EEXIST) {
      throw std::runtime_error("cannot create claim " + target.string() + ": " + std::strerror(err));
    }
  }
  return nullptr;  // contended for a long time: treat as held, the sweep comes back later
}

RunClaim::RunClaim(std::string run_dir, ClaimOptions options, ClaimRecord record,
                   std::optional<ClaimRecord> previous)
    : dir_(std::move(run_dir)),
      options_(std::move(options)),
      record_(std::move(record)),
      previous_(std::move(previous)) {
  heartbeat_ = std::thread([this] { heartbeat_loop(); });
}

RunClaim::~RunClaim() { release("abandoned"); }

void RunClaim::write_locked() {
  write_file_atomically(claim_path(dir_, record_.number).string(),
                        [&](std::ostream& o) { o << record_.to_json().dump(2) << "\n"; });
}

void RunClaim::heartbeat_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto period = std::chrono::duration<double>(options_.heartbeat_seconds);
  while (!released_) {
    wake_.wait_for(lock, period);
    if (released_) break;
    if (highest_claim(dir_) > record_.number) {
      lost_ = true;  // judged dead and taken over: the run is someone else's now
      break;
    }
    record_.heartbeat = unix_seconds();
    try {
      write_locked();
    } catch (const std::exception&) {
      // A full disk or a hiccup of the shared filesystem: try again at the next beat. Should it
      // last past stale_seconds, another worker takes the run over and this one sees it.
    }
  }
}

void RunClaim::release(const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (released_) return;
    released_ = true;
    if (!lost_ && highest_claim(dir_) == record_.number) {
      record_.released = why;
      record_.heartbeat = unix_seconds();
      try {
        write_locked();
      } catch (const std::exception&) {
        // Unwritable now: the claim still dies with this process (same host) or its heartbeat.
      }
    }
  }
  wake_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
}

}  // namespace sb
