// Aggregates (the two readings of a grid), findings and the report's files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/results/aggregate.hpp"
#include "core/results/report.hpp"

namespace sb {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

json taxonomy(const std::string& recurrence, const std::string& gate, const std::string& transition) {
  return {{"recurrence", recurrence}, {"gate", gate}, {"transition", transition}, {"memory", "constant"}};
}

json row(const std::string& model, std::int64_t seed, double lr, double acc,
         const std::string& status = "finished", json axes = json::object()) {
  static const std::map<std::string, json> kTaxonomy = {
      {"transformer", taxonomy("none (attention)", "none", "n/a")},
      {"gla", taxonomy("linear", "input-dependent vector per channel", "diagonal")},
      {"linear_attention", taxonomy("linear", "none", "diagonal")},
      {"delta_net", taxonomy("linear", "none", "diagonal plus low rank")}};
  json r = {{"benchmark", "b"}, {"task", "t"},      {"model", model},   {"width", 64},
            {"layers", 2},      {"seed", seed},     {"lr", lr},         {"warmup", 1},
            {"status", status}, {"test_acc", acc},  {"kind", "trained"}, {"axes", axes},
            {"parameters", 1000}, {"state_elements_per_layer", 64}, {"dir", "/nowhere"}};
  for (const auto& [k, v] : kTaxonomy.at(model).items()) r[k] = v;
  return r;
}

TEST(StatOf, MeanAndSampleSd) {
  const Stat s = stat_of({0.7, 0.6});
  EXPECT_DOUBLE_EQ(s.mean, 0.65);
  EXPECT_NEAR(s.sd, std::sqrt(0.005), 1e-15);
  EXPECT_EQ(s.n, 2);
  EXPECT_EQ(stat_of({0.3}).sd, 0);
  EXPECT_TRUE(std::isnan(stat_of({}).mean));
}

TEST(Aggregate, BestPerSeedAndMeanOverGrid) {
  const ResultTable t = make_result_table({row("gla", 1, 1e-3, 0.5), row("gla", 1, 2e-3, 0.7),
                                           row("gla", 2, 1e-3, 0.6), row("gla", 2, 2e-3, 0.2),
                                           row("gla", 3, 1e-3, 0.9, "failed"),
                                           row("gla", 4, 1e-3, 0.9, "incomplete")});
  const Aggregate a = aggregate_results(t);
  ASSERT_EQ(a.tasks.size(), 1u);
  ASSERT_EQ(a.tasks[0].cells.size(), 1u);
  const Cell& c = a.tasks[0].cells[0];
  EXPECT_EQ(c.runs, 4);  // the failed and unfinished runs give no result
  EXPECT_DOUBLE_EQ(c.best_per_seed.at(1), 0.7);
  EXPECT_DOUBLE_EQ(c.best_per_seed.at(2), 0.6);
  EXPECT_DOUBLE_EQ(c.best.mean, 0.65);
  EXPECT_EQ(c.best.n, 2);
  EXPECT_DOUBLE_EQ(c.grid.mean, 0.5);  // seed means 0.6 and 0.4
  EXPECT_EQ(a.failed, 1u);
  EXPECT_EQ(a.unfinished, 1u);
  EXPECT_EQ(a.models.at("gla").group, "gated, diagonal");
}

TEST(Findings, NameOnlyModelsPresentAndSayWhatIsMissing) {
  const ResultTable t = make_result_table({row("transformer", 1, 1e-3, 0.30), row("gla", 1, 1e-3, 0.80),
                                           row("linear_attention", 1, 1e-3, 0.55)});
  const auto findings = report_findings(aggregate_results(t));
  std::string all;
  for (const auto& f : findings) all += f + "\n";
  EXPECT_NE(all.find("gla 0.8000 > linear_attention 0.5500 > transformer 0.3000"), std::string::npos) << all;
  EXPECT_NE(all.find("the best gated model, gla (0.8000), is ahead of the best ungated one, "
                     "linear_attention (0.5500), by 25.0 points"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("delta-rule vs diagonal: not enough data"), std::string::npos) << all;
  EXPECT_NE(all.find("transformer (0.3000), is behind the best recurrent one, gla (0.8000), by 50.0"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("**task4**: not enough data"), std::string::npos) << all;
  for (const char* absent : {"delta_net", "mamba", "gated_delta"}) {
    EXPECT_EQ(all.find(absent), std::string::npos) << absent << " is named but has no runs:\n" << all;
  }
}

bool have_gnuplot() { return std::system("gnuplot --version > /dev/null 2>&1") == 0; }

TEST(Report, WritesEveryFileWithTheTableNumbers) {
  if (!have_gnuplot()) GTEST_SKIP() << "gnuplot is not installed (scripts/install-deps.sh)";
  const fs::path out = fs::temp_directory_path() / "sb_report_test";
  fs::remove_all(out);
  std::vector<json> rows;
  for (double d : {1.0, 2.0}) {
    for (const char* m : {"gla", "delta_net"}) {
      rows.push_back(row(m, 1, 1e-3, d == 1.0 ? 0.7 : 0.5, "finished", {{"test.gap.duration", d}}));
      rows.push_back(row(m, 2, 1e-3, d == 1.0 ? 0.6 : 0.4, "finished", {{"test.gap.duration", d}}));
    }
  }
  ReportOptions options;
  options.out_dir = out.string();
  options.command_line = "selectivbench report test";
  const ReportFiles files = write_report(make_result_table(rows), options);
  for (const auto& f : files.written) EXPECT_TRUE(fs::exists(out / f)) << f;
  for (const char* f : {"report.md", "report.html", "runs.csv", "runs.jsonl",
                        "figures/t_vs_test.gap.duration_d64.svg", "figures/t_vs_test.gap.duration_d64.png"}) {
    EXPECT_TRUE(fs::exists(out / f)) << f;
    EXPECT_GT(fs::file_size(out / f), 0u) << f;
  }
  std::ifstream in(out / "report.md");
  std::stringstream md;
  md << in.rdbuf();
  EXPECT_NE(md.str().find("0.6500 ± 0.0707 (2)"), std::string::npos);
  EXPECT_NE(md.str().find("0.4500 ± 0.0707 (2)"), std::string::npos);
  // The gap axis is drawn in steps: 1.0 -> 10, 2.0 -> 20.
  std::ifstream dat(out / "figures" / "t_vs_test.gap.duration_d64.dat");
  std::stringstream d;
  d << dat.rdbuf();
  EXPECT_NE(d.str().find("10\t0.65"), std::string::npos) << d.str();
  EXPECT_NE(d.str().find("20\t0.45"), std::string::npos) << d.str();
  fs::remove_all(out);
}

TEST(Report, MissingGnuplotIsAClearError) {
  ReportOptions options;
  options.out_dir = (fs::temp_directory_path() / "sb_report_nognuplot").string();
  options.gnuplot = "/nonexistent/gnuplot";
  try {
    write_report(make_result_table({row("gla", 1, 1e-3, 0.5)}), options);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("gnuplot-nox"), std::string::npos) << e.what();
  }
  fs::remove_all(options.out_dir);
}

}  // namespace
}  // namespace sb
