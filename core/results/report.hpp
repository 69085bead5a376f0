// `selectivbench report`: the collected runs as a document a researcher reads — report.md, a
// self-contained report.html (figures inline), figures/*.svg and *.png drawn with gnuplot, and the
// table itself (runs.csv, runs.jsonl). Each view is drawn only where its data exists; the report
// says which are missing. The findings are sentences computed from the numbers, never written by
// hand.
#pragma once

#include <string>
#include <vector>

#include "core/results/aggregate.hpp"
#include "core/results/collect.hpp"

namespace sb {

struct ReportOptions {
  std::string out_dir;
  std::vector<std::string> sources;  // the folders collected (named in the report)
  std::string command_line;          // how the report was made
  std::string gnuplot = "gnuplot";
  std::size_t max_curve_figures_per_task = 8;
};

struct ReportFiles {
  std::vector<std::string> written;  // every file, relative to out_dir
  std::vector<std::string> missing;  // views not drawn, with the reason
  std::vector<std::string> findings;
};

ReportFiles write_report(const ResultTable& table, const ReportOptions& options);

// The findings sentences of an aggregate (also in the report; tested on their own).
std::vector<std::string> report_findings(const Aggregate& aggregate);

}  // namespace sb
