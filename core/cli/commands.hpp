// The `selectivbench` subcommands. Each registers itself on the CLI11 app and returns the exit
// code through the `run` callback it installs.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace sb::cli {

// Exit codes (README "Command line").
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the work failed: I/O, generation, ...
inline constexpr int kExitUsage = 2;    // bad command line
inline constexpr int kExitConfig = 3;   // invalid task or benchmark file
// 128 + N: stopped by signal N (130 SIGINT, 143 SIGTERM, 138 SIGUSR1); the run in progress was
// checkpointed and released, and the same command resumes the sweep.

// Options every command that reads a task file shares.
struct TaskOptions {
  std::string task_file;
  std::vector<std::string> overrides;  // --set KEY=VALUE
  long long seed = -1;                 // --seed: same as --set task.seed=N
  int threads = 0;                     // --threads: 0 = all cores
};
void add_task_options(CLI::App& command, TaskOptions& options);

// A task or benchmark file argument: as given, or the installed presets' copy of a relative path
// (share/selectivbench/tasks/…, configs/…) when it does not exist here; then it must exist.
CLI::Validator preset_file();

// A whole number in [min, max] as typed: no sign, no fraction, nothing that would wrap or saturate
// (CLI11's own conversion turns 2^64 into INT64_MAX and -1 into 2^64 - 1 for unsigned options).
CLI::Validator whole_number(std::uint64_t min, std::uint64_t max);
// A device this machine has: cpu, cuda or cuda:N (an empty name is not "the default").
CLI::Validator device_name();
// The same spelling, wherever the device is: `slurm --device cuda` on a login node without GPUs.
CLI::Validator device_spelling();
// The most CPU threads a command accepts (0 means all the CPUs this process may use).
inline constexpr std::uint64_t kMaxThreads = 4096;

// Sets `action` to the command's body.
void add_grammar_command(CLI::App& app, std::function<int()>& action);
void add_show_command(CLI::App& app, std::function<int()>& action);
void add_generate_command(CLI::App& app, std::function<int()>& action);
void add_run_command(CLI::App& app, std::function<int()>& action);
void add_evaluate_command(CLI::App& app, std::function<int()>& action);
void add_plugins_command(CLI::App& app, std::function<int()>& action);
void add_check_plugin_command(CLI::App& app, std::function<int()>& action);
void add_slurm_command(CLI::App& app, std::function<int()>& action);

void add_collect_command(CLI::App& app, std::function<int()>& action);
void add_report_command(CLI::App& app, std::function<int()>& action);

// --plugin-path (repeatable), as every command that loads plugins spells it.
void add_plugin_path_option(CLI::App& command, std::vector<std::string>& paths);

// The command line as typed, recorded in every run's summary.json.
void set_command_line(int argc, char** argv);
const std::string& command_line();

}  // namespace sb::cli
