// selectivbench: the command line. Subcommands live in commands_*.cpp; this file wires them up and
// turns exceptions into the documented exit codes with a one-line message on stderr.
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "core/cli/commands.hpp"
#include "core/config/strict_toml.hpp"
#include "core/data/container.hpp"
#include "core/data/grammar.hpp"
#include "core/data/sequence.hpp"

int main(int argc, char** argv) {
  using namespace sb::cli;
  CLI::App app{
      "selectivbench: how well sequence models select what matters and ignore distractors.\n"
      "Exit codes: 0 success, 1 the work failed, 2 bad command line, 3 invalid task or "
      "benchmark file."};
  app.set_version_flag("--version", std::string("selectivbench ") + SELECTIVBENCH_VERSION +
                                        " (LibTorch " + TORCH_VERSION + ")");
  app.require_subcommand(1);
  std::function<int()> action;
  add_grammar_command(app, action);
  add_show_command(app, action);
  add_generate_command(app, action);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  try {
    return action ? action() : kExitUsage;
  } catch (const sb::ConfigError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitConfig;
  } catch (const sb::GrammarError& e) {
    std::cerr << "error: grammar: " << e.what() << "\n";
    return kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitFailure;
  }
}
