// `selectivbench collect` and `report`: every run folder under some folders as one table, and the
// report (Markdown, HTML, gnuplot figures) made from it.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/cli/commands.hpp"
#include "core/plugins/manifest.hpp"
#include "core/results/collect.hpp"
#include "core/results/report.hpp"
#include "core/util/atomic_file.hpp"

namespace sb::cli {

namespace {

// Taxonomy of plugins for run folders whose summaries predate it being recorded: from the
// manifests of the plugins on the search path, nothing loaded (none found: unknown).
TaxonomyLookup plugin_taxonomy(const std::vector<std::string>& plugin_paths) {
  const auto folders = plugin_search_path(plugin_paths, {});
  // Listed once, when the first summary without a taxonomy asks.
  auto taxonomies = std::make_shared<std::optional<std::map<std::string, nlohmann::json>>>();
  return [folders, taxonomies](const std::string& name) -> std::optional<nlohmann::json> {
    if (!*taxonomies) {
      taxonomies->emplace();
      for (const auto& p : list_plugins(folders)) {
        if (p.manifest) (*taxonomies)->emplace(p.name, taxonomy_json(p.manifest->descriptor.taxonomy));
      }
    }
    // Not on the path here: the report groups the model as "taxonomy unknown".
    const auto it = (*taxonomies)->find(name);
    if (it == (*taxonomies)->end()) return std::nullopt;
    return it->second;
  };
}

void add_folders_argument(CLI::App& cmd, std::vector<std::string>& folders) {
  cmd.add_option("folders", folders,
                 "Folders searched (recursively) for run folders: run --out folders, or any "
                 "folder above them")
      ->required()
      ->check(CLI::ExistingDirectory);
}

}  // namespace

void add_collect_command(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand(
      "collect", "Every run under some folders as one table (a row per run and evaluation)");
  struct Opts {
    std::vector<std::string> folders;
    std::string format = "csv";
    std::string out;
    std::vector<std::string> plugin_paths;
  };
  auto o = std::make_shared<Opts>();
  add_folders_argument(*cmd, o->folders);
  cmd->add_option("--format", o->format, "csv (RFC 4180), jsonl (one object per line) or md")
      ->capture_default_str()
      ->check(CLI::IsMember({"csv", "jsonl", "md"}));
  cmd->add_option("--out", o->out, "File to write (default: stdout)");
  add_plugin_path_option(*cmd, o->plugin_paths);
  cmd->callback([o, &action] {
    action = [o] {
      const ResultTable table = collect_results(o->folders, plugin_taxonomy(o->plugin_paths));
      const std::string text = o->format == "csv"     ? format_csv(table)
                               : o->format == "jsonl" ? format_jsonl(table)
                                                      : format_markdown(table);
      if (o->out.empty()) {
        std::cout << text << std::flush;
      } else {
        write_file_atomically(o->out, [&](std::ostream& out) { out << text; });
        std::cerr << "collect: " << table.rows.size() << " rows to " << o->out << "\n";
      }
      return kExitOk;
    };
  });
}

void add_report_command(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand(
      "report", "A report of the runs under some folders: report.md, report.html, figures/");
  struct Opts {
    std::vector<std::string> folders;
    std::string out;
    std::string gnuplot = "gnuplot";
    std::vector<std::string> plugin_paths;
  };
  auto o = std::make_shared<Opts>();
  add_folders_argument(*cmd, o->folders);
  cmd->add_option("--out", o->out, "Report folder (default: <first folder>/report)");
  cmd->add_option("--gnuplot", o->gnuplot, "The gnuplot program that draws the figures")
      ->capture_default_str();
  add_plugin_path_option(*cmd, o->plugin_paths);
  cmd->callback([o, &action] {
    action = [o] {
      ReportOptions options;
      options.out_dir = o->out.empty() ? (std::filesystem::path(o->folders.front()) / "report").string()
                                       : o->out;
      options.sources = o->folders;
      options.command_line = command_line();
      options.gnuplot = o->gnuplot;
      const ResultTable table = collect_results(o->folders, plugin_taxonomy(o->plugin_paths));
      if (table.rows.empty()) {
        std::cerr << "error: no run folders under";
        for (const auto& f : o->folders) std::cerr << " " << f;
        std::cerr << " (a run folder holds summary.json or config.json)\n";
        return kExitFailure;
      }
      const ReportFiles files = write_report(table, options);
      std::cout << "report: " << table.rows.size() << " rows, " << files.written.size()
                << " files in " << options.out_dir << " (report.md, report.html, figures/)\n";
      for (const auto& m : files.missing) std::cout << "not drawn: " << m << "\n";
      return kExitOk;
    };
  });
}

}  // namespace sb::cli
