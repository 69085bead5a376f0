// `selectivbench check-plugin NAME|PATH`: the conformance kit (core/plugins/conformance.hpp).
#include <torch/torch.h>

#include <iostream>
#include <thread>

#include "core/cli/commands.hpp"
#include "core/plugins/conformance.hpp"
#include "core/util/parallel.hpp"

namespace sb::cli {

void add_check_plugin_command(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand("check-plugin", "Run the conformance kit on a plugin");
  struct Opts {
    std::string plugin;
    std::vector<std::string> plugin_paths;
    ConformanceOptions options;
    bool no_throughput = false;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("plugin", o->plugin, "Plugin name (searched) or path to libsb_<name>.so")
      ->required();
  cmd->add_option("--plugin-path", o->plugin_paths, "Folder searched for plugins first");
  cmd->add_option("--device", o->options.device, "cpu, cuda or cuda:N")
      ->capture_default_str()
      ->check(device_name());
  cmd->add_option("--d-model", o->options.d_model, "Model width used for the checks")
      ->capture_default_str()
      ->check(whole_number(1, 65536));
  cmd->add_option("--heads", o->options.n_heads, "Heads used for the checks")
      ->capture_default_str()
      ->check(whole_number(1, 1024));
  cmd->add_option("--dtype", o->options.dtype, "float32, bfloat16 or float64 (precise checks)")
      ->check(CLI::IsMember({"float32", "bfloat16", "float64"}))
      ->capture_default_str();
  cmd->add_option("--seed", o->options.seed, "Seed of the mixers and inputs")
      ->capture_default_str()
      ->check(whole_number(0, UINT64_MAX));
  // A plain flag: CLI11's negated form ("!--no-throughput") prints as "--no-throughput{false}".
  cmd->add_flag("--no-throughput", o->no_throughput, "Skip the tokens/s line");
  cmd->add_option("--threads", o->threads, "CPU threads (0: all cores)")
      ->capture_default_str()
      ->check(whole_number(0, kMaxThreads));
  cmd->callback([o, &action] {
    action = [o] {
      o->options.throughput = !o->no_throughput;
      torch::set_num_threads(o->threads > 0 ? o->threads
                                            : sb::hardware_threads());
      const auto plugin = PluginRegistry::instance().resolve(
          o->plugin, plugin_search_path(o->plugin_paths, {}));
      const ConformanceReport report = run_conformance(*plugin, o->options);
      std::cout << format_report(report);
      return report.passed() ? kExitOk : kExitFailure;
    };
  });
}

}  // namespace sb::cli
