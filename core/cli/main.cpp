// selectivbench: the command line. Subcommands live in commands_*.cpp; this file wires them up and
// turns exceptions into the documented exit codes with a one-line message on stderr.
#include <torch/torch.h>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "core/cli/commands.hpp"
#include "core/config/strict_toml.hpp"
#include "core/data/container.hpp"
#include "core/data/grammar.hpp"
#include "core/data/sequence.hpp"
#include "core/plugins/registry.hpp"
#include "core/util/build_info.hpp"
#include "core/util/parallel.hpp"
#include "core/util/text.hpp"
#include "selectivbench/torch_compat.hpp"

namespace {

// CLI11 reads an unknown first word as a stray argument and says only "A subcommand is
// required". Name the word, the likely command (also from words other tools use: `train`,
// `eval`, ...) and the commands there are; "" when `word` is a command.
std::string unknown_command_message(const CLI::App& app, const std::string& word) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands({})) names.push_back(sub->get_name());
  if (std::find(names.begin(), names.end(), word) != names.end()) return {};
  const std::vector<std::pair<std::string, std::string>> other_words = {
      {"train", "run"},      {"fit", "run"},        {"sweep", "run"},          {"eval", "evaluate"},
      {"test", "evaluate"},  {"list", "plugins"},   {"check", "check-plugin"}, {"plot", "report"},
      {"figures", "report"}, {"results", "collect"}};
  std::vector<std::string> candidates = names;
  for (const auto& [other, command] : other_words) candidates.push_back(other);
  std::string guess = sb::closest_match(word, candidates);
  for (const auto& [other, command] : other_words) {
    if (guess == other) guess = command;
  }
  std::string message = "error: unknown command '" + word + "'";
  if (!guess.empty()) message += "; did you mean '" + guess + "'?";
  message += " (commands:";
  for (const auto& n : names) message += " " + n;
  return message + "; selectivbench --help describes them)";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sb::cli;
  CLI::App app{
      "selectivbench: how well sequence models select what matters and ignore distractors.\n"
      "Exit codes: 0 success, 1 the work failed, 2 bad command line, 3 invalid task or "
      "benchmark file."};
  app.set_version_flag("--version", std::string("selectivbench ") + SELECTIVBENCH_VERSION +
                                        " (git " + sb::build_git_sha() +
                                        ", LibTorch " + sb::compat::torch_version() + ")");
  app.require_subcommand(1);
  std::function<int()> action;
  add_grammar_command(app, action);
  add_show_command(app, action);
  add_generate_command(app, action);
  add_run_command(app, action);
  add_evaluate_command(app, action);
  add_plugins_command(app, action);
  add_check_plugin_command(app, action);
  add_slurm_command(app, action);
  add_collect_command(app, action);
  add_report_command(app, action);
  set_command_line(argc, argv);

  // LibTorch starts with one intra-op thread here; use the CPUs this process may use (affinity,
  // SLURM_CPUS_PER_TASK) unless a command says otherwise.
  at::set_num_threads(sb::hardware_threads());
  // Logs go to stderr so that stdout carries only results (JSON, tables, samples).
  // Colours only on a terminal, and never when NO_COLOR is set to anything (no-color.org).
  const char* no_color = std::getenv("NO_COLOR");
  spdlog::set_default_logger(spdlog::stderr_color_mt(
      "selectivbench", no_color != nullptr && *no_color != '\0' ? spdlog::color_mode::never
                                                                 : spdlog::color_mode::automatic));
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");
  if (argc > 1 && argv[1][0] != '-') {
    if (const std::string message = unknown_command_message(app, argv[1]); !message.empty()) {
      std::cerr << message << "\n";
      return kExitUsage;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  try {
    return action ? action() : kExitUsage;
  } catch (const CLI::Error& e) {  // a command-line value found wrong once the command runs
    std::cerr << "error: " << e.what() << "\n";
    return kExitUsage;
  } catch (const sb::ConfigError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitConfig;
  } catch (const sb::PluginError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitFailure;
  } catch (const sb::GrammarError& e) {
    std::cerr << "error: grammar: " << e.what() << "\n";
    return kExitFailure;
  } catch (const std::exception& e) {  // LibTorch's errors carry a backtrace after their first line
    std::cerr << "error: " << sb::first_line(e.what()) << "\n";
    return kExitFailure;
  }
}
