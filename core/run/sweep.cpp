#include "core/run/sweep.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/util/host.hpp"
#include "core/util/stop.hpp"

namespace sb {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::optional<json> read_summary(const std::string& dir) {
  std::ifstream in(fs::path(dir) / "summary.json");
  if (!in) return std::nullopt;
  try {
    return json::parse(in);
  } catch (const std::exception&) {
    return std::nullopt;  // written atomically: only a hand edit makes it unreadable
  }
}

bool is_failed(const json& summary) { return summary.value("status", std::string()) == "failed"; }

// A failed run that this worker should run again: --retry-failed, and it failed before the worker
// started (a retry by another worker of this sweep is not retried again).
bool should_retry(const json& summary, const SweepOptions& options, const std::string& since) {
  return options.retry_failed && is_failed(summary) &&
         summary.value("finished_at", std::string()) < since;
}

void sleep_unless_stopped(double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until && stop_signal() == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

json row_for(const RunPlan& plan) {
  if (auto s = read_summary(plan.dir)) {
    (*s)["dir"] = plan.dir;
    return *s;
  }
  return {{"task", plan.task.display_name()}, {"model", plan.model}, {"width", plan.width},
          {"layers", plan.layers},            {"seed", plan.seed},   {"lr", plan.lr},
          {"warmup", plan.warmup},            {"status", "not run"}, {"dir", plan.dir}};
}

enum class Outcome { kNotTaken, kRan, kStopped };

// Claims the run and runs it (or records why it cannot run). kNotTaken when another worker holds
// it or it is over after all.
Outcome try_run(const RunPlan& plan, std::size_t index, const RunContext& base,
                const SweepOptions& options, const std::string& since,
                const SweepObserver& observer) {
  auto claim = RunClaim::try_take(plan.dir, options.claims);
  if (!claim) return Outcome::kNotTaken;
  // Over since we looked (its worker finished and released it just now)?
  if (auto s = read_summary(plan.dir)) {
    if (!should_retry(*s, options, since)) {
      claim->release(s->value("status", std::string("finished")));
      return Outcome::kNotTaken;
    }
    std::error_code ec;
    fs::remove(fs::path(plan.dir) / "summary.json", ec);
    fs::remove(fs::path(plan.dir) / "error.txt", ec);
  }
  if (observer.run_started) observer.run_started(plan, index);
  if (claim->previous() && claim->previous()->released.empty()) {
    std::ofstream(fs::path(plan.dir) / "log.txt", std::ios::app)
        << "took over from a dead claim: " << claim->previous()->describe() << "\n";
  }
  RunContext ctx = base;
  RunClaim* held = claim.get();
  ctx.should_stop = [held] {
    if (held->lost()) return StopRequest::kAbandon;
    if (stop_signal() != 0) return StopRequest::kCheckpoint;
    return StopRequest::kNone;
  };
  json summary;
  try {
    if (!plan.trained_dir.empty()) {
      const auto trained = read_summary(plan.trained_dir);
      if (trained && is_failed(*trained)) {
        throw std::runtime_error("the trained run " + plan.trained_dir +
                                 " failed: " + trained->value("message", std::string("?")));
      }
    }
    summary = execute_run(plan, ctx);
  } catch (const std::exception& e) {
    if (held->lost()) return Outcome::kRan;
    summary = record_failed_run(plan, ctx, e.what());
  }
  const std::string status = summary.value("status", std::string("?"));
  if (status == "abandoned") return Outcome::kRan;  // someone else's now: write nothing
  claim->release(status);
  summary["dir"] = plan.dir;
  if (observer.run_ended) observer.run_ended(plan, index, summary);
  return status == "interrupted" ? Outcome::kStopped : Outcome::kRan;
}

}  // namespace

std::string SweepCounts::line() const {
  char buf[200];
  std::snprintf(buf, sizeof(buf), "sweep: %zu/%zu done, %zu running, %zu failed, %zu left", done,
                total, running, failed, left);
  std::string out = buf;
  if (eta_seconds >= 0) {
    const double m = eta_seconds / 60;
    std::snprintf(buf, sizeof(buf), ", ETA %s",
                  m < 1 ? "< 1 min"
                  : m < 120 ? (std::to_string(static_cast<long>(std::lround(m))) + " min").c_str()
                            : (std::to_string(static_cast<long>(std::lround(m / 60))) + " h").c_str());
    out += buf;
  }
  return out;
}

SweepCounts count_sweep(const std::vector<RunPlan>& plans, const ClaimOptions& claims) {
  SweepCounts c;
  c.total = plans.size();
  for (const auto& plan : plans) {
    if (auto s = read_summary(plan.dir)) {
      ++(is_failed(*s) ? c.failed : c.done);
    } else if (read_claim_status(plan.dir, claims).held_by_live_worker) {
      ++c.running;
    } else {
      ++c.left;
    }
  }
  return c;
}

std::string describe_run_state(const RunPlan& plan, const SweepOptions& options) {
  if (const auto s = read_summary(plan.dir)) {
    if (!is_failed(*s)) return "done (" + s->value("status", std::string("?")) + "): skipped";
    return options.retry_failed ? "failed: runs again (--retry-failed)"
                                : "failed: skipped (--retry-failed runs it again)";
  }
  const ClaimStatus claim = read_claim_status(plan.dir, options.claims);
  if (claim.held_by_live_worker && claim.current) return "running: " + claim.current->describe();
  std::error_code ec;
  if (fs::exists(fs::path(plan.dir) / "checkpoints" / "last.pt", ec)) {
    return "resumes from its checkpoint";
  }
  if (!plan.trained_dir.empty() && !read_summary(plan.trained_dir)) {
    return "to run once " + plan.trained_dir + " is over";
  }
  return "to run";
}

SweepResult run_sweep(const std::vector<RunPlan>& plans, const RunContext& context,
                      const SweepOptions& options, const SweepObserver& observer) {
  SweepResult result;
  const std::string since = iso_time(unix_seconds());
  const auto t0 = std::chrono::steady_clock::now();
  const SweepCounts at_start = count_sweep(plans, options.claims);
  const auto report = [&] {
    if (!observer.status) return;
    SweepCounts c = count_sweep(plans, options.claims);
    // Runs that ended since this worker started, by any worker: the rate that predicts the rest.
    const double ended = static_cast<double>(c.done + c.failed) -
                         static_cast<double>(at_start.done + at_start.failed);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (ended > 0) c.eta_seconds = static_cast<double>(c.left + c.running) * elapsed / ended;
    observer.status(c);
  };
  std::string last_note;
  while (stop_signal() == 0) {
    std::size_t held_elsewhere = 0;
    bool ran_any = false;
    for (std::size_t i = 0; i < plans.size() && stop_signal() == 0; ++i) {
      const RunPlan& plan = plans[i];
      if (auto s = read_summary(plan.dir); s && !should_retry(*s, options, since)) continue;
      // An evaluation of another run's checkpoint waits until that run is over.
      if (!plan.trained_dir.empty() && !read_summary(plan.trained_dir)) {
        ++held_elsewhere;
        continue;
      }
      const Outcome o = try_run(plan, i, context, options, since, observer);
      if (o == Outcome::kNotTaken) {
        if (!read_summary(plan.dir)) ++held_elsewhere;
        continue;
      }
      ran_any = true;
      ++result.ran;
      report();
      if (o == Outcome::kStopped) break;
    }
    if (stop_signal() != 0 || held_elsewhere == 0 || !options.wait_for_others) break;
    if (!ran_any) {
      const std::string note = "waiting for " + std::to_string(held_elsewhere) + " run" +
                               (held_elsewhere == 1 ? "" : "s") + " held by other workers";
      if (observer.note && note != last_note) observer.note(note);
      last_note = note;
      sleep_unless_stopped(options.poll_seconds);
    }
  }
  result.stop_signal = stop_signal();
  for (const auto& plan : plans) {
    result.rows.push_back(row_for(plan));
    if (is_failed(result.rows.back())) ++result.failed;
  }
  return result;
}

}  // namespace sb
