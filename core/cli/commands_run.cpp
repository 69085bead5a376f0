// `selectivbench run`, `evaluate` and `plugins`: benchmarks, trained runs and the plugin zoo.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/cli/commands.hpp"
#include "core/cli/progress.hpp"
#include "core/config/benchmark.hpp"
#include "core/plugins/manifest.hpp"
#include "core/util/install_dirs.hpp"
#include "core/util/text.hpp"
#include "core/util/json_file.hpp"
#include "core/run/device_info.hpp"
#include "core/run/preflight.hpp"
#include "core/run/results.hpp"
#include "core/run/runner.hpp"
#include "core/run/slurm.hpp"
#include "core/run/sweep.hpp"
#include "core/run/workers.hpp"
#include "core/train/precision.hpp"
#include "core/util/atomic_file.hpp"
#include "core/util/host.hpp"
#include "core/util/stop.hpp"

namespace sb::cli {

namespace {

std::vector<Override> parse_overrides(const std::vector<std::string>& texts) {
  std::vector<Override> out;
  for (const auto& t : texts) out.push_back(parse_override(t));
  return out;
}

}  // namespace

void add_plugin_path_option(CLI::App& cmd, std::vector<std::string>& paths) {
  cmd.add_option("--plugin-path", paths,
                 "Folder searched for plugins first (repeatable; then [plugins] paths, "
                 "SELECTIVBENCH_PLUGIN_PATH, the installed and the build-tree folders)");
}

namespace {

// The options of `run` and `slurm` that describe the sweep itself.
struct SweepArgs {
  std::string config;
  std::string out;
  std::vector<std::string> overrides;
  std::vector<std::string> plugin_paths;
  std::string device;
  std::string dtype;
  bool retry_failed = false;
  double heartbeat = 30;
  double claim_timeout = 300;
};

void add_sweep_options(CLI::App& cmd, SweepArgs& o) {
  cmd.add_option("config", o.config,
                 "Benchmark file (TOML), e.g. configs/quickstart.toml (also found among the "
                 "installed presets)")
      ->required()
      ->transform(preset_file());
  cmd.add_option("--out", o.out, "Output folder (default: out/<benchmark name>)");
  cmd.add_option("--set", o.overrides,
                 "Override a benchmark key, e.g. --set training.max_updates=500 (repeatable)")
      ->type_name("KEY=VALUE");
  add_plugin_path_option(cmd, o.plugin_paths);
  // Spelling only: `run` checks this machine's GPUs itself, `slurm` leaves them to the nodes.
  cmd.add_option("--device", o.device, "cpu, cuda or cuda:N (same as --set training.device=\"...\")")
      ->check(device_spelling());
  cmd.add_option("--dtype", o.dtype,
                 "Precision: auto, float32, tf32, bfloat16 or bf16-mixed (same as --set "
                 "training.dtype)")
      ->check(CLI::IsMember(precision_choices()));
  cmd.add_flag("--retry-failed", o.retry_failed,
               "Run again the runs that failed before (their error.txt says why)");
  cmd.add_option("--heartbeat", o.heartbeat, "Seconds between a worker's claim heartbeats")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  cmd.add_option("--claim-timeout", o.claim_timeout,
                 "Seconds after which a claim from another host without a heartbeat is dead")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1e6));
}

// The benchmark with the command line's shortcuts, which go through the file's validation.
BenchmarkSpec load_sweep(const SweepArgs& o, std::vector<Override>* used = nullptr) {
  std::vector<Override> overrides = parse_overrides(o.overrides);
  if (!o.device.empty()) overrides.push_back({"training.device", "\"" + o.device + "\""});
  if (!o.dtype.empty()) overrides.push_back({"training.dtype", "\"" + o.dtype + "\""});
  if (used) *used = overrides;
  return load_benchmark(o.config, overrides);
}

std::string self_executable() {
  const std::string p = executable_path();
  if (p.empty()) throw std::runtime_error("cannot find this program's path (/proc/self/exe)");
  return p;
}

std::string absolute(const std::string& path) {
  return std::filesystem::absolute(path).lexically_normal().string();
}

std::string format_seconds(double s) {
  char buf[32];
  if (s < 0) return "?";
  if (s < 120) {
    std::snprintf(buf, sizeof(buf), "%.0f s", s);
  } else if (s < 7200) {
    std::snprintf(buf, sizeof(buf), "%.0f min", s / 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f h", s / 3600);
  }
  return buf;
}

std::string result_line(const nlohmann::json& r) {
  std::string line = r.value("status", std::string("?"));
  if (r.contains("test_acc")) {
    char buf[160];
    std::snprintf(buf, sizeof(buf), ", test_acc %.4f, test_loss %.4f", r["test_acc"].get<double>(),
                  r["test_loss"].get<double>());
    line += buf;
  }
  if (r.contains("tokens_per_s")) {
    char buf[96];
    std::snprintf(buf, sizeof(buf), ", %.0f tokens/s, %.0f s", r["tokens_per_s"].get<double>(),
                  r.value("wall_seconds", 0.0));
    line += buf;
  }
  if (r.value("status", std::string()) == "failed") {
    line += ": " + first_line(r.value("message", std::string())) + " (error.txt has it all)";
  }
  return line;
}

// One worker in this process: the sweep with a progress bar per run on a terminal, or a plain
// line per evaluation (Slurm logs, pipes, the workers of --gpus).
int run_one_worker(const BenchmarkSpec& bench, const std::vector<RunPlan>& plans,
                   const SweepArgs& o, const std::string& out, const std::string& worker,
                   bool no_wait, const std::string& command_line) {
  const bool terminal = ::isatty(STDOUT_FILENO) != 0 && ::isatty(STDERR_FILENO) != 0 &&
                        worker.empty();
  const std::string prefix = worker.empty() ? "" : "[" + worker + "] ";
  const auto say = [&](const std::string& line) { std::cout << prefix << line << std::endl; };
  RunContext ctx;
  ctx.bench = &bench;
  ctx.plugin_folders = plugin_search_path(o.plugin_paths, bench.plugin_paths);
  ctx.log = [](const std::string& m) { spdlog::debug("{}", m); };
  ctx.command_line = command_line;
  ctx.worker = worker;
  SweepOptions options;
  options.retry_failed = o.retry_failed;
  options.wait_for_others = !no_wait;
  options.claims.worker = worker;
  options.claims.heartbeat_seconds = o.heartbeat;
  options.claims.stale_seconds = o.claim_timeout;

  std::unique_ptr<ProgressBar> bar;
  std::string label;
  auto run_start = std::chrono::steady_clock::now();
  ctx.progress = [&](std::int64_t done, std::int64_t total) {
    if (bar) bar->update(done, total);
  };
  ctx.evaluated = [&](std::int64_t update, std::int64_t total, const nlohmann::json& m) {
    if (terminal) return;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
    char buf[200];
    std::snprintf(buf, sizeof(buf), ": update %lld/%lld, test_acc %.4f, test_loss %.4f, %s elapsed",
                  static_cast<long long>(update), static_cast<long long>(total),
                  m.at("test_acc").get<double>(), m.at("test_loss").get<double>(),
                  format_seconds(elapsed).c_str());
    std::string line = label + buf;
    if (update < total) {
      line += ", ETA " + format_seconds(elapsed / static_cast<double>(update) *
                                        static_cast<double>(total - update));
    }
    say(line);
  };
  SweepObserver observer;
  observer.run_started = [&](const RunPlan& plan, std::size_t i) {
    label = "[" + std::to_string(i + 1) + "/" + std::to_string(plans.size()) + "] " +
            plan.task.name + " " + plan.id;
    run_start = std::chrono::steady_clock::now();
    if (terminal) {
      bar = std::make_unique<ProgressBar>(label);
    } else {
      say(label + ": started");
    }
  };
  observer.run_ended = [&](const RunPlan& plan, std::size_t, const nlohmann::json& r) {
    if (bar) bar->finish();
    bar.reset();
    say(label + ": " + result_line(r));
    if (r.value("status", std::string()) == "failed") {  // README: one line on stderr per error
      std::cerr << prefix << "error: run " << plan.dir << " failed: "
                << first_line(r.value("message", std::string())) << " (the whole reason: "
                << (std::filesystem::path(plan.dir) / "error.txt").string() << ")" << std::endl;
    }
  };
  observer.status = [&](const SweepCounts& c) { say(c.line()); };
  observer.note = [&](const std::string& n) { say(n); };

  const SweepResult result = run_sweep(plans, ctx, options, observer);
  if (bar) bar->finish();
  if (result.stop_signal != 0) {
    say("stopped by signal " + std::to_string(result.stop_signal) +
        ": the run in progress is checkpointed and released; run the same command again to resume");
    return exit_code_for_signal(result.stop_signal);
  }
  if (worker.empty() || worker.rfind("slurm-", 0) == 0) {
    const std::string table = write_result_tables(out, plans);
    if (worker.empty()) std::cout << "\n" << table;
    say("results: " + out + "/results.csv, " + out + "/results.md");
  }
  return result.failed ? kExitFailure : kExitOk;
}


}  // namespace

namespace {
std::string g_command_line;  // recorded in every run's summary
}  // namespace

const std::string& command_line() { return g_command_line; }

void set_command_line(int argc, char** argv) {
  g_command_line.clear();
  for (int i = 0; i < argc; ++i) g_command_line += (i ? " " : "") + shell_quote(argv[i]);
}

void add_run_command(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand("run", "Run a benchmark: every run of its grid, then a table");
  struct Opts {
    SweepArgs sweep;
    int threads = -1;
    bool dry_run = false;
    std::string gpus;
    int runs_per_gpu = 1;
    int jobs = 1;
    bool no_wait = false;
    std::string worker;
  };
  auto o = std::make_shared<Opts>();
  add_sweep_options(*cmd, o->sweep);
  cmd->add_option("--threads", o->threads,
                  "CPU threads (default: the file's; 0 = the CPUs this process may use)")
      ->check(whole_number(0, kMaxThreads));
  cmd->add_flag("--dry-run", o->dry_run, "Check everything, list the runs and exit");
  cmd->add_option("--gpus", o->gpus, "One worker per GPU: all, or indices such as 0,1,3");
  cmd->add_option("--runs-per-gpu", o->runs_per_gpu, "Workers on each GPU of --gpus")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_option("--jobs", o->jobs, "Workers on the configured device, the CPUs split between them")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_flag("--no-wait", o->no_wait,
                "Leave when no run is free instead of waiting for runs that other workers hold");
  cmd->add_option("--worker-name", o->worker,
                  "This worker's name in claims, logs and summaries (set by --gpus, --jobs, slurm)");
  cmd->callback([o, cmd, &action] {
    action = [o, cmd] {
      if (!o->gpus.empty() && !o->sweep.device.empty()) {
        throw CLI::ValidationError("--gpus", "give --gpus or --device, not both");
      }
      if (!o->gpus.empty() && cmd->count("--jobs") > 0) {
        throw CLI::ValidationError("--gpus", "give --gpus (with --runs-per-gpu) or --jobs, not both");
      }
      if (!o->sweep.device.empty()) {
        if (const std::string why = device_problem(o->sweep.device); !why.empty()) {
          throw CLI::ValidationError("--device", why);
        }
      }
      std::vector<WorkerSlot> slots;
      try {
        slots = plan_workers(o->gpus, o->gpus.empty() ? 0 : cuda_device_count(), o->runs_per_gpu,
                             o->jobs, allowed_cpus());
      } catch (const std::invalid_argument& e) {
        throw CLI::ValidationError(e.what());
      }
      SweepArgs args = o->sweep;
      if (!o->gpus.empty()) args.device = slots.front().device;  // checked like the others
      std::vector<Override> overrides;
      BenchmarkSpec bench = load_sweep(args, &overrides);
      if (o->threads >= 0) bench.training.threads = o->threads;
      const std::string out = o->sweep.out.empty() ? "out/" + bench.name : o->sweep.out;
      const auto plans = plan_benchmark(bench, out);
      preflight_sweep(bench, plans, plugin_search_path(o->sweep.plugin_paths, bench.plugin_paths));
      if (o->worker.empty()) {
        std::cout << "benchmark " << bench.name << ": " << plans.size() << " run"
                  << (plans.size() == 1 ? "" : "s") << " into " << out;
        if (slots.size() > 1) std::cout << ", " << slots.size() << " workers";
        std::cout << "\n";
      }
      if (o->dry_run) {  // each run with what a worker started now would do with it
        SweepOptions options;
        options.retry_failed = o->sweep.retry_failed;
        options.claims.stale_seconds = o->sweep.claim_timeout;
        std::size_t width = 0;
        for (const auto& p : plans) width = std::max(width, p.dir.size());
        for (const auto& p : plans) {
          std::cout << "  " << p.dir << std::string(width - p.dir.size() + 2, ' ')
                    << describe_run_state(p, options) << "\n";
        }
        std::cout << count_sweep(plans, options.claims).line() << "\n";
        return kExitOk;
      }
      install_stop_handlers();
      if (slots.size() == 1) {
        if (!o->gpus.empty()) bench.training.device = slots[0].device;
        return run_one_worker(bench, plans, o->sweep, out, o->worker, o->no_wait, g_command_line);
      }
      // Several workers: one child process each, on the same folder.
      const auto child_args = [&](const WorkerSlot& slot) {
        std::vector<std::string> a = {"run", o->sweep.config, "--out", out,
                                      "--worker-name", (o->worker.empty() ? "" : o->worker + ".") + slot.name,
                                      "--threads", std::to_string(slot.cpus.size()),
                                      "--heartbeat", std::to_string(o->sweep.heartbeat),
                                      "--claim-timeout", std::to_string(o->sweep.claim_timeout)};
        for (const auto& s : o->sweep.overrides) a.insert(a.end(), {"--set", s});
        for (const auto& p : o->sweep.plugin_paths) a.insert(a.end(), {"--plugin-path", p});
        if (!slot.device.empty()) a.insert(a.end(), {"--device", slot.device});
        if (slot.device.empty() && !o->sweep.device.empty()) a.insert(a.end(), {"--device", o->sweep.device});
        if (!o->sweep.dtype.empty()) a.insert(a.end(), {"--dtype", o->sweep.dtype});
        if (o->sweep.retry_failed) a.push_back("--retry-failed");
        if (o->no_wait) a.push_back("--no-wait");
        return a;
      };
      for (const auto& slot : slots) {
        std::cout << "worker " << slot.name << ": " << (slot.device.empty() ? bench.training.device : slot.device)
                  << ", " << slot.cpus.size() << " CPU" << (slot.cpus.size() == 1 ? "" : "s") << "\n";
      }
      std::cout << std::flush;
      ClaimOptions claims;
      claims.stale_seconds = o->sweep.claim_timeout;
      const auto tick = [&] { std::cout << count_sweep(plans, claims).line() << std::endl; };
      const int code = run_worker_processes(self_executable(), slots, child_args, tick, 60);
      const std::string table = write_result_tables(out, plans);
      std::cout << "\n" << table << "\nresults: " << out << "/results.csv, " << out << "/results.md\n";
      return code;
    };
  });
}

void add_slurm_command(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand(
      "slurm", "Write (and submit) a Slurm job array whose tasks are workers of a sweep");
  struct Opts {
    SweepArgs sweep;
    SlurmJob job;
    int runs_per_gpu = 1;
    bool submit = false;
    bool wait = false;
    bool no_requeue = false;
  };
  auto o = std::make_shared<Opts>();
  add_sweep_options(*cmd, o->sweep);
  cmd->add_option("--array", o->job.array, "Tasks in the job array (workers)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("--cpus-per-task", o->job.cpus_per_task, "CPUs of each task (0: the cluster's default)")
      ->check(CLI::Range(0, 4096));
  cmd->add_option("--gpus-per-task", o->job.gpus_per_task,
                  "GPUs of each task (--gres=gpu:G); a task runs a worker per GPU")
      ->check(CLI::Range(0, 64));
  cmd->add_option("--runs-per-gpu", o->runs_per_gpu, "Workers on each GPU of a task")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_option("--time", o->job.time, "Time limit of each task (sbatch --time), e.g. 04:00:00");
  cmd->add_option("--partition", o->job.partition, "Partition (sbatch --partition)");
  cmd->add_option("--job-name", o->job.job_name, "Job name (default: sb-<benchmark>)");
  cmd->add_option("--sbatch-option", o->job.sbatch_options,
                  "Another #SBATCH line, e.g. --sbatch-option=--account=proj42 (repeatable)");
  cmd->add_option("--signal-seconds", o->job.signal_seconds,
                  "Seconds before the time limit at which a task checkpoints and releases its run")
      ->capture_default_str()
      ->check(CLI::Range(10, 86400));
  cmd->add_flag("--no-requeue", o->no_requeue, "Do not requeue preempted tasks");
  cmd->add_flag("--submit", o->submit, "Submit the script with sbatch");
  cmd->add_flag("--wait", o->wait, "Submit and wait until the array has ended (sbatch --wait)");
  cmd->callback([o, &action] {
    action = [o] {
      SlurmJob job = o->job;
      SweepArgs& a = o->sweep;
      if (job.gpus_per_task > 0 && a.device.empty()) a.device = "cuda";
      const std::string device = a.device;
      // The GPUs are on the compute nodes, not necessarily here: check everything but the device.
      if (device.rfind("cuda", 0) == 0) a.device = "cpu";
      BenchmarkSpec bench = load_sweep(a);
      a.device = device;
      const std::string out = absolute(a.out.empty() ? "out/" + bench.name : a.out);
      const auto plans = plan_benchmark(bench, out);
      preflight_sweep(bench, plans, plugin_search_path(a.plugin_paths, bench.plugin_paths));

      std::vector<std::string> w = {self_executable(), "run", absolute(a.config), "--out", out,
                                    "--heartbeat", std::to_string(a.heartbeat),
                                    "--claim-timeout", std::to_string(a.claim_timeout)};
      for (const auto& s : a.overrides) w.insert(w.end(), {"--set", s});
      for (const auto& p : a.plugin_paths) w.insert(w.end(), {"--plugin-path", absolute(p)});
      if (job.gpus_per_task > 1 || o->runs_per_gpu > 1) {
        w.insert(w.end(), {"--gpus", "all", "--runs-per-gpu", std::to_string(o->runs_per_gpu)});
      } else if (!device.empty()) {
        w.insert(w.end(), {"--device", device});
      }
      if (!a.dtype.empty()) w.insert(w.end(), {"--dtype", a.dtype});
      if (a.retry_failed) w.push_back("--retry-failed");
      job.worker_command = w;
      if (job.job_name.empty()) job.job_name = "sb-" + bench.name;
      job.requeue = !o->no_requeue;
      job.workdir = std::filesystem::current_path().string();
      job.output_dir = out + "/slurm";
      std::filesystem::create_directories(job.output_dir);
      const std::string stamp = iso_time(unix_seconds());
      std::string name = bench.name + "-" + stamp + ".sbatch";
      for (char& c : name) {
        if (c == ':') c = '-';
      }
      const std::string script = job.output_dir + "/" + name;
      write_file_atomically(script, [&](std::ostream& s) { s << slurm_script(job); });
      std::filesystem::permissions(script, std::filesystem::perms::owner_exec,
                                   std::filesystem::perm_options::add);
      std::cout << "benchmark " << bench.name << ": " << plans.size() << " runs into " << out
                << ", a job array of " << job.array << " workers\n"
                << "sbatch script: " << script << "\n";
      if (!o->submit && !o->wait) {
        std::cout << "submit it with: sbatch " << shell_quote(script) << "\n";
        return kExitOk;
      }
      const std::string command =
          std::string("sbatch ") + (o->wait ? "--wait " : "") + shell_quote(script);
      std::cout << command << std::endl;
      const int rc = std::system(command.c_str());
      const int code = WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
      if (code != 0) {
        std::cerr << "error: " << command << " exited with " << code
                  << (code == 127 ? " (is Slurm installed? no sbatch on the PATH)" : "") << "\n";
        return kExitFailure;
      }
      if (o->wait) {
        const ClaimOptions claims;
        std::cout << count_sweep(plans, claims).line() << "\n";
      }
      return kExitOk;
    };
  });
}

namespace {
// "task4[test.gap.duration=2.0]" -> "task4_test.gap.duration_2.0_": a file name for any condition.
std::string evaluation_file_stem(const std::string& display_name) {
  std::string out;
  for (char c : display_name) {
    out += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_') ? c : '_';
  }
  return out.substr(0, 200);
}
}  // namespace

void add_evaluate_command(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand(
      "evaluate", "Evaluate a trained run's checkpoint on a task's test set (e.g. task 4)");
  struct Opts {
    std::string run_dir;
    TaskOptions task;
    std::string checkpoint = "last";
    std::string device = "cpu";
    std::int64_t batch_size = 50;
    std::string dtype;
    std::vector<std::string> plugin_paths;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("run", o->run_dir, "Run folder (holds config.json and checkpoints/)")
      ->required()
      ->check(CLI::ExistingDirectory);
  add_task_options(*cmd, o->task);
  cmd->add_option("--checkpoint", o->checkpoint, "Which checkpoint")
      ->capture_default_str()
      ->check(CLI::IsMember({"last", "best"}));
  cmd->add_option("--device", o->device, "cpu, cuda or cuda:N")
      ->capture_default_str()
      ->check(device_name());
  cmd->add_option("--batch-size", o->batch_size, "Evaluation batch size")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 20))
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--dtype", o->dtype,
                  "Precision: auto, float32, tf32, bfloat16 or bf16-mixed (default: the run's own)")
      ->check(CLI::IsMember(precision_choices()));
  add_plugin_path_option(*cmd, o->plugin_paths);
  cmd->callback([o, &action] {
    action = [o] {
      std::vector<Override> overrides = parse_overrides(o->task.overrides);
      if (o->task.seed >= 0) overrides.push_back({"task.seed", std::to_string(o->task.seed)});
      // The trained run's data seed is the task seed unless --seed says otherwise.
      if (o->task.seed < 0) {
        const auto config_path = std::filesystem::path(o->run_dir) / "config.json";
        if (std::filesystem::exists(config_path)) {
          const auto config = read_json_file(config_path.string());
          overrides.push_back({"task.seed", config.at("task").at("seed").dump()});
        }
      }
      const TaskSpec task = load_task(o->task.task_file, overrides);
      const auto r = evaluate_run_checkpoint(o->run_dir, task,
                                             plugin_search_path(o->plugin_paths, {}),
                                             o->checkpoint, o->device, o->batch_size, o->dtype);
      // The record in the run folder, so that `collect` and `report` see the evaluation.
      nlohmann::json record = r;
      // The test condition: the task's own sweep values and what --set changed (the data seed
      // follows the trained run and is no condition).
      for (const auto& ov : overrides) {
        if (ov.key != "task.seed") record["variant"][ov.key] = ov.value;
      }
      std::string condition = task.name;  // one record per condition and checkpoint
      for (const auto& [k, v] : record["variant"].items()) condition += "_" + k + "=" + v.get<std::string>();
      if (!o->dtype.empty()) condition += "_dtype=" + o->dtype;  // a second precision, a second record
      record["evaluated_at"] = iso_time(unix_seconds());
      record["command_line"] = g_command_line;
      const std::string file = (std::filesystem::path(o->run_dir) / "evaluations" /
                                (evaluation_file_stem(condition) + "." + o->checkpoint + ".json"))
                                   .string();
      write_file_atomically(file, [&](std::ostream& out) { out << record.dump(2) << "\n"; });
      record["record"] = file;
      std::cout << record.dump(2) << "\n";
      return kExitOk;
    };
  });
}

namespace {

// `plugins info`: one plugin's descriptor, from its manifest or, without a usable one, its library.
void print_plugin_info(const PluginDescriptor& d, const std::string& file,
                       const SbBuildFingerprint& fingerprint, const std::string& described_by) {
  const std::string no_cuda_here = cuda_unavailable_reason();
  std::cout << d.name << " " << d.version << ": " << d.summary << "\n"
            << "source        " << d.source << "\n"
            << "file          " << file << "\n"
            << "described by  " << described_by << "\n"
            << "built with    " << describe_fingerprint(fingerprint) << "\n"
            << "taxonomy      " << describe_taxonomy(d.taxonomy) << "\n"
            << "capabilities  step " << (d.capabilities.recurrent_step ? "yes" : "no") << ", cuda "
            << (!d.capabilities.cuda       ? "no"
                : no_cuda_here.empty() ? "yes"
                                       : "yes, but not here (" + no_cuda_here + ")")
            << ", bf16 " << (d.capabilities.bf16 ? "yes" : "no")
            << (d.capabilities.reference_only ? ", reference path only (slow)" : "")
            << "; trains in " << (d.cuda_dtype == torch::kBFloat16 ? "bfloat16" : "float32")
            << " on CUDA\n"
            << "options:\n";
  for (const auto& s : d.options) {
    std::string range;
    if (s.type == OptionType::kInt || s.type == OptionType::kFloat) {
      // Integers print as integers (1048576, not 1.04858e+06); floats with 6 digits.
      const auto bound = [&](double v) {
        std::ostringstream b;
        if (s.type == OptionType::kInt && std::abs(v) < 9e15) {
          b << static_cast<long long>(v);
        } else {
          b << v;
        }
        return b.str();
      };
      range = " in [" + bound(s.min) + ", " + bound(s.max) + "]";
    } else if (!s.choices.empty()) {
      range = " one of";
      for (const auto& c : s.choices) range += " \"" + c + "\"";
    }
    std::cout << "  " << s.name << " = " << option_to_string(s.default_value) << "  ("
              << option_type_name(s.type) << range << ")  " << s.doc << "\n";
  }
}

// One row of the zoo as the paper's taxonomy: one column per axis.
void print_plugin_row(const char* format, const PluginDescriptor& d, const std::string& caps) {
  const auto& t = d.taxonomy;
  const char* gate = t.gate == Gate::kNone              ? "none"
                     : t.gate == Gate::kFixedDecay      ? "fixed decay"
                     : t.gate == Gate::kScalarPerHead   ? "scalar/head"
                                                        : "vector/channel";
  const char* transition = t.transition == Transition::kDiagonal             ? "diagonal"
                           : t.transition == Transition::kDiagonalPlusLowRank ? "diag + low rank"
                           : t.transition == Transition::kDense               ? "dense"
                                                                              : "n/a";
  const char* state = t.state_expansion == StateExpansion::kMatrixPerHead      ? "matrix/head"
                      : t.state_expansion == StateExpansion::kVectorPerChannel ? "vector/channel"
                                                                               : "n/a";
  std::printf(format, d.name.c_str(), d.version.c_str(),
              t.recurrence == Recurrence::kNone     ? "attention"
              : t.recurrence == Recurrence::kLinear ? "linear"
                                                    : "nonlinear",
              gate, transition, state, t.memory == Memory::kConstant ? "constant" : "grows",
              t.short_conv ? "yes" : "no", caps.c_str());
}

}  // namespace

void add_plugins_command(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand(
      "plugins", "List the plugins found (from their manifests: nothing is loaded), or describe one");
  struct Opts {
    bool verbose = false;
    std::vector<std::string> plugin_paths;
    std::string info_name;
    std::string manifest_library;
    std::string manifest_out;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_flag("--verbose,-v", o->verbose, "Show the search path and files that cannot be used");
  add_plugin_path_option(*cmd, o->plugin_paths);
  auto* info = cmd->add_subcommand("info", "Options (schema, defaults, docs) of one plugin");
  info->add_option("name", o->info_name, "Plugin name or path")->required();
  add_plugin_path_option(*info, o->plugin_paths);  // after the name reads as naturally
  auto* manifest = cmd->add_subcommand(
      "manifest", "Write the manifest of a plugin library (loads it; selectivbench_add_plugin "
                  "does this at build time)");
  manifest->add_option("library", o->manifest_library, "Path to libsb_<name>.so")->required();
  manifest->add_option("--out", o->manifest_out, "Where to write it (default: libsb_<name>.json "
                                                 "beside the library)");
  cmd->callback([o, &action, info, manifest] {
    action = [o, info, manifest] {
      const auto folders = plugin_search_path(o->plugin_paths, {});
      auto& registry = PluginRegistry::instance();
      if (manifest->parsed()) {
        const auto plugin = registry.load_file(o->manifest_library);
        const std::string out =
            o->manifest_out.empty() ? manifest_path_of(plugin->path) : o->manifest_out;
        write_file_atomically(out, [&](std::ostream& os) {
          os << manifest_json(*plugin).dump(2) << "\n";
        });
        std::cout << out << "\n";
        return kExitOk;
      }
      if (info->parsed()) {
        // From the manifest when it is current; otherwise loading the library is the only way.
        const std::string file = plugin_file(o->info_name, folders);
        std::optional<PluginManifest> m;
        if (!file.empty()) {
          try {
            m = read_manifest(file);
          } catch (const PluginError& e) {
            std::cerr << "warning: " << e.what() << "\n";
          }
        }
        if (m) {
          if (const std::string why = manifest_refusal(*m); !why.empty()) throw PluginError(why);
          print_plugin_info(m->descriptor, file, m->fingerprint, m->path);
        } else {
          const auto plugin = registry.resolve(o->info_name, folders);
          print_plugin_info(plugin->descriptor, plugin->path, plugin->fingerprint,
                            "the library (loaded: it has no usable manifest)");
        }
        return kExitOk;
      }
      if (o->verbose) {
        std::cout << "search path:\n";
        for (const auto& f : folders) {
          std::error_code ec;
          std::cout << "  " << f.path << "  (" << f.origin << ")"
                    << (std::filesystem::is_directory(f.path, ec) ? "" : "  [missing]") << "\n";
        }
        std::cout << "\n";
      }
      // A plugin's `cuda` capability is only worth listing where CUDA can be used.
      const std::string no_cuda_here = cuda_unavailable_reason();
      const char* format = "%-20s %-7s %-10s %-15s %-16s %-15s %-9s %-5s %s\n";
      std::printf(format, "name", "version", "recurrence", "gate", "transition", "state",
                  "memory", "conv", "capabilities");
      int problems = 0;
      int cuda_not_shown = 0;
      for (const auto& e : list_plugins(folders)) {
        if (!e.manifest) {
          if (!e.shadowed_by.empty()) {
            if (o->verbose) std::cout << "  (shadowed) " << e.path << " by " << e.shadowed_by << "\n";
          } else {
            ++problems;
            if (o->verbose) std::cout << "  (cannot be used) " << e.error << "\n";
          }
          continue;
        }
        const auto& d = e.manifest->descriptor;
        std::string caps;
        if (d.capabilities.recurrent_step) caps += "step ";
        if (d.capabilities.cuda && no_cuda_here.empty()) caps += "cuda ";
        if (d.capabilities.cuda && !no_cuda_here.empty()) ++cuda_not_shown;
        if (d.capabilities.bf16) caps += "bf16 ";
        if (d.capabilities.reference_only) caps += "reference-only ";
        print_plugin_row(format, d, caps);
        if (o->verbose) std::cout << "    " << e.path << "  (" << e.folder_origin << ")\n";
      }
      if (cuda_not_shown > 0) {
        std::cout << "cuda is not listed: " << no_cuda_here << " (" << cuda_not_shown
                  << " plugin(s) support it elsewhere)\n";
      }
      if (problems && !o->verbose) {
        std::cout << problems << " file(s) cannot be used; see --verbose\n";
      }
      return kExitOk;
    };
  });
}

}  // namespace sb::cli
