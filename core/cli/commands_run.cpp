// `selectivbench run`, `evaluate` and `plugins`: benchmarks, trained runs and the plugin zoo.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/cli/commands.hpp"
#include "core/cli/progress.hpp"
#include "core/config/benchmark.hpp"
#include "core/run/runner.hpp"

namespace sb::cli {

namespace {

std::vector<Override> parse_overrides(const std::vector<std::string>& texts) {
  std::vector<Override> out;
  for (const auto& t : texts) out.push_back(parse_override(t));
  return out;
}

void add_plugin_path_option(CLI::App& cmd, std::vector<std::string>& paths) {
  cmd.add_option("--plugin-path", paths,
                 "Folder searched for plugins first (repeatable; then [plugins] paths, "
                 "SELECTIVBENCH_PLUGIN_PATH, the installed and the build-tree folders)");
}

}  // namespace

void add_run_command(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand("run", "Run a benchmark: every run of its grid, then a table");
  struct Opts {
    std::string config;
    std::string out;
    std::vector<std::string> overrides;
    std::vector<std::string> plugin_paths;
    std::string device;
    std::string dtype;
    int threads = -1;
    bool dry_run = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("config", o->config, "Benchmark file (TOML), e.g. configs/quickstart.toml")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", o->out, "Output folder (default: out/<benchmark name>)");
  cmd->add_option("--set", o->overrides,
                  "Override a benchmark key, e.g. --set training.device=\"cuda\" (repeatable)")
      ->type_name("KEY=VALUE");
  add_plugin_path_option(*cmd, o->plugin_paths);
  cmd->add_option("--device", o->device,
                  "cpu, cuda or cuda:N (same as --set training.device=\"...\")");
  cmd->add_option("--dtype", o->dtype, "auto, float32 or bfloat16 (same as --set training.dtype)")
      ->check(CLI::IsMember({"auto", "float32", "bfloat16"}));
  cmd->add_option("--threads", o->threads, "CPU threads (default: the file's, 0 = all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--dry-run", o->dry_run, "List the runs and exit");
  cmd->callback([o, &action] {
    action = [o] {
      std::vector<Override> overrides = parse_overrides(o->overrides);
      // The shortcuts go through the same validation as the file's keys.
      if (!o->device.empty()) overrides.push_back({"training.device", "\"" + o->device + "\""});
      if (!o->dtype.empty()) overrides.push_back({"training.dtype", "\"" + o->dtype + "\""});
      if (o->threads >= 0) overrides.push_back({"training.threads", std::to_string(o->threads)});
      const BenchmarkSpec bench = load_benchmark(o->config, overrides);
      const std::string out = o->out.empty() ? "out/" + bench.name : o->out;
      const auto plans = plan_benchmark(bench, out);
      std::cout << "benchmark " << bench.name << ": " << plans.size() << " run"
                << (plans.size() == 1 ? "" : "s") << " into " << out << "\n";
      if (o->dry_run) {
        for (const auto& p : plans) std::cout << "  " << p.dir << "\n";
        return kExitOk;
      }
      RunContext ctx;
      ctx.bench = &bench;
      ctx.plugin_folders = plugin_search_path(o->plugin_paths, bench.plugin_paths);
      std::vector<nlohmann::json> results;
      int failed = 0;
      for (std::size_t i = 0; i < plans.size(); ++i) {
        const auto& plan = plans[i];
        const std::string label = "[" + std::to_string(i + 1) + "/" +
                                  std::to_string(plans.size()) + "] " + plan.task.name + " " +
                                  plan.id;
        ProgressBar bar(label);
        ctx.progress = [&](std::int64_t done, std::int64_t total) { bar.update(done, total); };
        ctx.log = [&](const std::string& m) { spdlog::debug("{}", m); };
        try {
          nlohmann::json r = execute_run(plan, ctx);
          bar.finish();
          r["dir"] = plan.dir;
          std::string line = label + ": ";
          if (r.value("skipped", false)) line += "already finished, ";
          line += r.value("status", std::string("?"));
          if (r.contains("test_acc")) {
            char buf[160];
            std::snprintf(buf, sizeof(buf), ", test_acc %.4f, test_loss %.4f",
                          r["test_acc"].get<double>(), r["test_loss"].get<double>());
            line += buf;
          }
          if (r.contains("tokens_per_s") && !r.value("skipped", false)) {
            char buf[96];
            std::snprintf(buf, sizeof(buf), ", %.0f tokens/s, %.0f s",
                          r["tokens_per_s"].get<double>(), r["wall_seconds"].get<double>());
            line += buf;
          }
          std::cout << line << std::endl;
          results.push_back(r);
        } catch (const std::exception& e) {
          bar.finish();
          ++failed;
          std::cout << label << ": FAILED: " << e.what() << std::endl;
          results.push_back({{"task", plan.task.display_name()},
                             {"model", plan.model},
                             {"width", plan.width},
                             {"layers", plan.layers},
                             {"seed", plan.seed},
                             {"lr", plan.lr},
                             {"warmup", plan.warmup},
                             {"status", "failed"},
                             {"message", e.what()}});
        }
      }
      const std::string table = write_result_tables(out, results);
      std::cout << "\n" << table << "\nresults: " << out << "/results.csv, " << out
                << "/results.md\n";
      return failed ? kExitFailure : kExitOk;
    };
  });
}

void add_evaluate_command(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand(
      "evaluate", "Evaluate a trained run's checkpoint on a task's test set (e.g. task 4)");
  struct Opts {
    std::string run_dir;
    TaskOptions task;
    std::string checkpoint = "last";
    std::string device = "cpu";
    std::int64_t batch_size = 50;
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
  cmd->add_option("--device", o->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--batch-size", o->batch_size, "Evaluation batch size")->capture_default_str();
  add_plugin_path_option(*cmd, o->plugin_paths);
  cmd->callback([o, &action] {
    action = [o] {
      std::vector<Override> overrides = parse_overrides(o->task.overrides);
      if (o->task.seed >= 0) overrides.push_back({"task.seed", std::to_string(o->task.seed)});
      // The trained run's data seed is the task seed unless --seed says otherwise.
      if (o->task.seed < 0) {
        std::ifstream in(std::filesystem::path(o->run_dir) / "config.json");
        if (in) {
          const auto config = nlohmann::json::parse(in);
          overrides.push_back({"task.seed", config.at("task").at("seed").dump()});
        }
      }
      const TaskSpec task = load_task(o->task.task_file, overrides);
      const auto r = evaluate_run_checkpoint(o->run_dir, task,
                                             plugin_search_path(o->plugin_paths, {}),
                                             o->checkpoint, o->device, o->batch_size);
      std::cout << r.dump(2) << "\n";
      return kExitOk;
    };
  });
}

void add_plugins_command(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand("plugins", "List the plugins found, or describe one");
  struct Opts {
    bool verbose = false;
    std::vector<std::string> plugin_paths;
    std::string info_name;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_flag("--verbose,-v", o->verbose, "Show the search path and files that failed to load");
  add_plugin_path_option(*cmd, o->plugin_paths);
  auto* info = cmd->add_subcommand("info", "Options (schema, defaults, docs) of one plugin");
  info->add_option("name", o->info_name, "Plugin name or path")->required();
  cmd->callback([o, &action, info] {
    action = [o, info] {
      const auto folders = plugin_search_path(o->plugin_paths, {});
      auto& registry = PluginRegistry::instance();
      if (info->parsed()) {
        const auto plugin = registry.resolve(o->info_name, folders);
        const auto& d = plugin->descriptor;
        std::cout << d.name << " " << d.version << ": " << d.summary << "\n"
                  << "source        " << d.source << "\n"
                  << "file          " << plugin->path << "\n"
                  << "built with    " << describe_fingerprint(plugin->fingerprint) << "\n"
                  << "taxonomy      " << describe_taxonomy(d.taxonomy) << "\n"
                  << "capabilities  step " << (d.capabilities.recurrent_step ? "yes" : "no")
                  << ", cuda " << (d.capabilities.cuda ? "yes" : "no") << ", bf16 "
                  << (d.capabilities.bf16 ? "yes" : "no")
                  << (d.capabilities.reference_only ? ", reference path only (slow)" : "")
                  << "; trains in "
                  << (d.cuda_dtype == torch::kBFloat16 ? "bfloat16" : "float32") << " on CUDA\n"
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
      const auto entries = registry.scan(folders);
      // The zoo as the paper's taxonomy: one row per plugin, one column per axis.
      const char* format = "%-20s %-7s %-10s %-15s %-16s %-15s %-9s %-5s %s\n";
      std::printf(format, "name", "version", "recurrence", "gate", "transition", "state",
                  "memory", "conv", "capabilities");
      int problems = 0;
      for (const auto& e : entries) {
        if (!e.plugin) {
          if (!e.shadowed_by.empty()) {
            if (o->verbose) std::cout << "  (shadowed) " << e.path << " by " << e.shadowed_by << "\n";
          } else {
            ++problems;
            if (o->verbose) std::cout << "  (error) " << e.error << "\n";
          }
          continue;
        }
        const auto& d = e.plugin->descriptor;
        std::string caps;
        if (d.capabilities.recurrent_step) caps += "step ";
        if (d.capabilities.cuda) caps += "cuda ";
        if (d.capabilities.bf16) caps += "bf16 ";
        if (d.capabilities.reference_only) caps += "reference-only ";
        const auto& t = d.taxonomy;
        const char* gate = t.gate == Gate::kNone              ? "none"
                           : t.gate == Gate::kFixedDecay      ? "fixed decay"
                           : t.gate == Gate::kScalarPerHead   ? "scalar/head"
                                                              : "vector/channel";
        const char* transition = t.transition == Transition::kDiagonal ? "diagonal"
                                 : t.transition == Transition::kDiagonalPlusLowRank
                                     ? "diag + low rank"
                                 : t.transition == Transition::kDense ? "dense"
                                                                      : "n/a";
        const char* state = t.state_expansion == StateExpansion::kMatrixPerHead ? "matrix/head"
                            : t.state_expansion == StateExpansion::kVectorPerChannel
                                ? "vector/channel"
                                : "n/a";
        std::printf(format, d.name.c_str(), d.version.c_str(),
                    t.recurrence == Recurrence::kNone     ? "attention"
                    : t.recurrence == Recurrence::kLinear ? "linear"
                                                          : "nonlinear",
                    gate, transition, state, t.memory == Memory::kConstant ? "constant" : "grows",
                    t.short_conv ? "yes" : "no", caps.c_str());
        if (o->verbose) std::cout << "    " << e.plugin->path << "  (" << e.folder_origin << ")\n";
      }
      if (problems && !o->verbose) {
        std::cout << problems << " file(s) could not be loaded; see --verbose\n";
      }
      return kExitOk;
    };
  });
}

}  // namespace sb::cli
