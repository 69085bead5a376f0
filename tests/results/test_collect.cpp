// collect: run folders as rows (equal to their summaries), axes as columns, CSV by RFC 4180.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/results/collect.hpp"

namespace sb {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// A minimal RFC 4180 reader (quoted fields, doubled quotes, CRLF) to read our CSV back.
std::vector<std::vector<std::string>> read_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows(1);
  std::string field;
  bool quoted = false, was_quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      EXPECT_TRUE(field.empty()) << "a quote inside an unquoted field";
      quoted = was_quoted = true;
    } else if (c == ',') {
      rows.back().push_back(field);
      field.clear();
    } else if (c == '\r') {
      EXPECT_EQ(text[i + 1], '\n') << "CR without LF";
    } else if (c == '\n') {
      rows.back().push_back(field);
      field.clear();
      rows.emplace_back();
    } else {
      field += c;
    }
  }
  EXPECT_FALSE(quoted) << "unterminated quoted field";
  (void)was_quoted;
  rows.pop_back();  // after the last CRLF
  return rows;
}

class CollectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("sb_collect_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  fs::path write_run(const std::string& rel, const json& summary) {
    const fs::path dir = root_ / rel;
    fs::create_directories(dir);
    std::ofstream(dir / "summary.json") << summary.dump(2);
    return dir;
  }

  static json summary(const std::string& model, std::int64_t seed, double acc, json variant) {
    std::string display = "gaps";
    if (!variant.empty()) {
      display += "[";
      bool first = true;
      for (const auto& [k, v] : variant.items()) {
        display += (first ? "" : ",") + k + "=" + v.get<std::string>();
        first = false;
      }
      display += "]";
    }
    return {{"benchmark", "b"},         {"benchmark_file", "b.toml"},
            {"task", display},          {"task_name", "gaps"},
            {"variant", variant},       {"model", model},
            {"width", 16},              {"layers", 1},
            {"seed", seed},             {"lr", 0.01},
            {"warmup", 1},              {"status", "finished"},
            {"dtype", "float32"},       {"parameters", 3457},
            {"state_elements_per_layer", json::array({320})},
            {"test_acc", acc},          {"best_acc", acc + 0.01},
            {"best_update", 8},         {"test_loss", 2.0 / 3.0},
            {"updates", 16},            {"tokens_per_s", 12345.678901234567},
            {"wall_seconds", 0.123456789}, {"device", "cuda:0"},
            {"device_model", "NVIDIA H200"},
            {"plugins", json::array({{{"name", model},
                                      {"taxonomy",
                                       {{"recurrence", "linear"},
                                        {"gate", "none"},
                                        {"transition", "diagonal"},
                                        {"memory", "constant"}}}}})}};
  }

  fs::path root_;
};

TEST(CsvField, QuotesOnlyWhatMustBeQuoted) {
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("{ dist = \"uniform\", low = 0.1 }"), "\"{ dist = \"\"uniform\"\", low = 0.1 }\"");
  EXPECT_EQ(csv_field("two\nlines"), "\"two\nlines\"");
}

TEST(VariantOfDisplayName, SplitsAtTopLevelCommasOnly) {
  const auto v = variant_of_display_name(
      "task4[test.gap.duration={ dist = \"uniform\", low = 0.1, high = 1.0 },grammar.ambiguities=20]");
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].first, "test.gap.duration");
  EXPECT_EQ(v[0].second, "{ dist = \"uniform\", low = 0.1, high = 1.0 }");
  EXPECT_EQ(v[1].first, "grammar.ambiguities");
  EXPECT_EQ(v[1].second, "20");
  EXPECT_TRUE(variant_of_display_name("task2").empty());
}

TEST(AxisValue, NumbersBecomeNumbers) {
  EXPECT_EQ(axis_value("20"), json(20));
  EXPECT_TRUE(axis_value("20").is_number_integer());
  EXPECT_TRUE(axis_value("2.0").is_number_float());
  EXPECT_DOUBLE_EQ(axis_value("2.0").get<double>(), 2.0);
  EXPECT_TRUE(axis_value("{ dist = \"uniform\" }").is_string());
  EXPECT_TRUE(axis_value("nan").is_string());
}

TEST_F(CollectTest, RowsEqualSummariesWithAxesAsColumns) {
  const json table_value = "{ dist = \"uniform\", low = 0.1, high = 1.0 }";
  write_run("x/gaps-1/gla_s1", summary("gla", 1, 0.4010416666666667, {{"test.gap.duration", "2.0"}}));
  write_run("x/gaps-2/gla_s1", summary("gla", 1, 0.25, {{"test.gap.duration", table_value}}));
  write_run("y/plain/transformer_s2", summary("transformer", 2, 0.5, json::object()));
  const ResultTable t = collect_results({root_.string()});
  ASSERT_EQ(t.rows.size(), 3u);
  ASSERT_EQ(t.axes, std::vector<std::string>{"test.gap.duration"});

  const auto csv = read_csv(format_csv(t));
  ASSERT_EQ(csv.size(), 4u);
  const auto columns = result_columns(t.axes);
  ASSERT_EQ(csv[0], columns);
  const auto col = [&](const std::string& name) {
    return static_cast<std::size_t>(std::find(columns.begin(), columns.end(), name) - columns.begin());
  };
  for (std::size_t r = 1; r < csv.size(); ++r) ASSERT_EQ(csv[r].size(), columns.size()) << "row " << r;
  // Sorted by task, then axes (none first, numbers before text), then model.
  EXPECT_EQ(csv[1][col("model")], "transformer");
  EXPECT_EQ(csv[1][col("test.gap.duration")], "");
  EXPECT_EQ(csv[1][col("seed")], "2");
  EXPECT_EQ(csv[2][col("test.gap.duration")], "2.0");
  EXPECT_EQ(csv[3][col("test.gap.duration")], table_value.get<std::string>());
  // Full precision: the text reads back as the same double.
  EXPECT_EQ(std::stod(csv[2][col("test_acc")]), 0.4010416666666667);
  EXPECT_EQ(std::stod(csv[2][col("tokens_per_s")]), 12345.678901234567);
  EXPECT_EQ(std::stod(csv[2][col("test_loss")]), 2.0 / 3.0);
  EXPECT_EQ(csv[2][col("state_elements_per_layer")], "320");
  EXPECT_EQ(csv[2][col("gpu")], "NVIDIA H200");
  EXPECT_EQ(csv[2][col("gate")], "none");

  // JSONL: one object per line with every column, numbers as numbers.
  std::istringstream lines(format_jsonl(t));
  std::string line;
  std::vector<json> objects;
  while (std::getline(lines, line)) objects.push_back(json::parse(line));
  ASSERT_EQ(objects.size(), 3u);
  EXPECT_EQ(objects[0].size(), columns.size());
  EXPECT_TRUE(objects[0]["test.gap.duration"].is_null());
  EXPECT_EQ(objects[1]["test.gap.duration"], json(2.0));
  EXPECT_EQ(objects[2]["test.gap.duration"], table_value);
  EXPECT_EQ(objects[1]["test_acc"].get<double>(), 0.4010416666666667);
}

TEST_F(CollectTest, FailedUnfinishedAndEvaluatedRuns) {
  json failed = summary("gla", 1, 0, json::object());
  failed["status"] = "failed";
  failed.erase("test_acc");
  failed["message"] = "model gla at width 16: not divisible, by 3 heads";
  write_run("f", failed);
  // A run that started and did not end: config.json and metrics only.
  fs::create_directories(root_ / "u");
  std::ofstream(root_ / "u" / "config.json")
      << json{{"task", {{"name", "gaps"}, {"variant", json::object()}}},
              {"model", {{"name", "mamba"}, {"width", 32}, {"layers", 2}}},
              {"training", {{"seed", 3}, {"lr", 0.001}, {"warmup_steps", 5}}},
              {"dtype", "float32"}}
             .dump();
  std::ofstream(root_ / "u" / "metrics.jsonl") << "{\"update\": 8, \"test_acc\": 0.1}\n{\"update\": 16}\n";
  // An evaluation recorded by `evaluate` in a finished run.
  const fs::path run = write_run("e", summary("transformer", 1, 0.5, json::object()));
  fs::create_directories(run / "evaluations");
  std::ofstream(run / "evaluations" / "gaps_test.gap.duration_5.0.last.json")
      << json{{"task", "gaps[test.gap.duration=5.0]"}, {"task_name", "gaps"},
              {"variant", {{"test.gap.duration", "5.0"}}}, {"checkpoint", "last"},
              {"test_acc", 0.125}, {"test_loss", 3.5}, {"seconds", 0.5}, {"device", "cpu"}}
             .dump();

  const ResultTable t = collect_results({root_.string()});
  ASSERT_EQ(t.rows.size(), 4u);
  std::map<std::string, json> by_status;
  for (const auto& r : t.rows) by_status[r["status"]] = r;
  ASSERT_EQ(by_status.count("failed"), 1u);
  EXPECT_EQ(by_status["failed"]["error"], "model gla at width 16: not divisible, by 3 heads");
  ASSERT_EQ(by_status.count("incomplete"), 1u);
  EXPECT_EQ(by_status["incomplete"]["model"], "mamba");
  EXPECT_EQ(by_status["incomplete"]["updates"], 16);
  EXPECT_EQ(by_status["incomplete"]["seed"], 3);
  ASSERT_EQ(by_status.count("evaluated"), 1u);
  const json& e = by_status["evaluated"];
  EXPECT_EQ(e["model"], "transformer");
  EXPECT_EQ(e["kind"], "evaluated");
  EXPECT_EQ(e["test_acc"], 0.125);
  EXPECT_EQ(e["axes"]["test.gap.duration"], 5.0);
  EXPECT_EQ(e["trained_run"], run.string());
  // The error message keeps its comma through the CSV.
  const auto csv = read_csv(format_csv(t));
  bool found = false;
  for (const auto& row : csv) {
    found = found || std::find(row.begin(), row.end(), "model gla at width 16: not divisible, by 3 heads") != row.end();
  }
  EXPECT_TRUE(found);
}

TEST_F(CollectTest, RootThatIsNotAFolderIsNamed) {
  try {
    collect_results({(root_ / "missing").string()});
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos);
  }
}

TEST(Markdown, PipesInValuesAreEscaped) {
  ResultTable t = make_result_table({json{{"task", "a|b"}, {"model", "m"}, {"axes", json::object()}}});
  const std::string md = format_markdown(t);
  EXPECT_NE(md.find("a\\|b"), std::string::npos);
}

}  // namespace
}  // namespace sb
