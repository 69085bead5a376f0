// Benchmark files (core/config/benchmark.cpp) and the grid they expand to (core/run/runner.cpp):
// every shipped config loads, errors name file, line and key, and the grid has the right runs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/config/benchmark.hpp"
#include "core/run/runner.hpp"

namespace fs = std::filesystem;

namespace {

const std::string kSource = SELECTIVBENCH_SOURCE_DIR;

// Writes a benchmark file next to a copy-free reference to the quickstart task.
std::string write_config(const std::string& name, const std::string& body) {
  const fs::path dir = fs::temp_directory_path() / ("sb_bench_cfg_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path file = dir / (name + ".toml");
  std::ofstream(file) << body;
  return file.string();
}

const std::string kMinimal =
    "[benchmark]\n"
    "tasks = [\"" + kSource + "/tasks/quickstart.toml\"]\n"
    "models = [\"gla\", \"transformer\"]\n"
    "widths = [32, 64]\n"
    "layers = [2]\n"
    "seeds = [1, 2, 3]\n"
    "learning_rates = [1e-3]\n"
    "warmups = [10]\n";

std::string error_of(const std::string& path, const std::vector<sb::Override>& overrides = {}) {
  try {
    sb::load_benchmark(path, overrides);
  } catch (const sb::ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a ConfigError for " << path;
  return "";
}

TEST(BenchmarkFile, ShippedConfigsLoad) {
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(kSource + "/configs")) {
    if (entry.path().extension() != ".toml") continue;
    SCOPED_TRACE(entry.path().string());
    const auto b = sb::load_benchmark(entry.path().string());
    EXPECT_FALSE(b.models.empty());
    EXPECT_FALSE(plan_benchmark(b, "/tmp/unused").empty());
    ++files;
  }
  EXPECT_GE(files, 12);  // quickstart, 6 paper, 5 paper-small
}

TEST(BenchmarkFile, PaperGridsHaveTheReferenceSizes) {
  // data.md §11.2 "grid runs", less the transformer's skipped width 960 and its 648 = 768 duplicate.
  const auto count = [](const std::string& file) {
    return sb::plan_benchmark(sb::load_benchmark(kSource + "/configs/paper/" + file), "/o").size();
  };
  EXPECT_EQ(count("task1_complexity.toml"), 10584u - 7 * 2 * 4 * 3 * 2);
  EXPECT_EQ(count("task1_model_size.toml"), 1512u - 2 * 4 * 3 * 2);
  EXPECT_EQ(count("task2.toml") + count("task2_wide.toml"), 1512u - 2 * 4 * 3 * 2);
  EXPECT_EQ(count("task3.toml"), 1344u - 2 * 4 * 3 * 2);
  // Task 4: 4 test conditions x 7 models x 2 widths x 4 seeds x 2 lr x 2 warmups, after the task-2
  // runs they evaluate.
  EXPECT_EQ(count("task4.toml"), 896u + 7 * 2 * 4 * 2 * 2);
}

TEST(BenchmarkFile, QuickstartIsSmallAndCompares) {
  const auto b = sb::load_benchmark(kSource + "/configs/quickstart.toml");
  EXPECT_EQ(b.models, (std::vector<std::string>{"transformer", "gla"}));
  EXPECT_EQ(b.training.device, "cpu");
  EXPECT_GT(b.training.max_updates, 0);
}

TEST(BenchmarkFile, GridOrderAndRunNames) {
  const auto b = sb::load_benchmark(write_config("grid", kMinimal));
  const auto plans = sb::plan_benchmark(b, "/out");
  ASSERT_EQ(plans.size(), 2u * 2u * 3u);
  EXPECT_EQ(plans[0].model, "gla");
  EXPECT_EQ(plans[0].width, 32);
  EXPECT_EQ(plans[0].seed, 1);
  EXPECT_EQ(plans[1].seed, 2);  // the last axes vary fastest
  EXPECT_EQ(plans.back().model, "transformer");
  EXPECT_EQ(plans.back().width, 64);
  EXPECT_EQ(plans[0].layer_plugins, (std::vector<std::string>{"gla", "gla"}));
  for (std::size_t i = 1; i < plans.size(); ++i) EXPECT_NE(plans[i].dir, plans[i - 1].dir);
  EXPECT_EQ(plans[0].dir.rfind("/out/quickstart/", 0), 0u) << plans[0].dir;
}

TEST(BenchmarkFile, HybridsRepeatOverTheLayers) {
  const auto b = sb::load_benchmark(write_config(
      "hybrid", kMinimal + "\n[hybrids]\ngla3t = [\"gla\", \"gla\", \"gla\", \"transformer\"]\n"),
      {{"benchmark.models", "[\"gla3t\"]"}, {"benchmark.layers", "[8]"}});
  const auto plugins = b.layer_plugins("gla3t", 8);
  EXPECT_EQ(plugins, (std::vector<std::string>{"gla", "gla", "gla", "transformer", "gla", "gla",
                                               "gla", "transformer"}));
  EXPECT_EQ(b.layer_plugins("gla", 2), (std::vector<std::string>{"gla", "gla"}));
}

TEST(BenchmarkFile, WidthRemapAsTheReferenceTransformer) {
  const auto b = sb::load_benchmark(
      write_config("remap", kMinimal + "\n[width_remap.transformer]\n648 = 768\n960 = 0\n"),
      {{"benchmark.widths", "[648, 768, 960]"}, {"benchmark.seeds", "[1]"}});
  EXPECT_EQ(b.effective_width("transformer", 648), 768);
  EXPECT_EQ(b.effective_width("transformer", 960), 0);
  EXPECT_EQ(b.effective_width("gla", 648), 648);
  const auto plans = sb::plan_benchmark(b, "/out");
  // gla: 648, 768, 960; transformer: 648 -> 768 (heads of 648), and 768 is then a duplicate; 960
  // is skipped.
  ASSERT_EQ(plans.size(), 4u);
  EXPECT_EQ(plans[3].model, "transformer");
  EXPECT_EQ(plans[3].width, 768);
  EXPECT_EQ(plans[3].grid_width, 648);

  const std::string msg = error_of(
      write_config("badremap", kMinimal + "\n[width_remap.transformer]\nwide = 768\n"));
  EXPECT_NE(msg.find("wide"), std::string::npos) << msg;
  EXPECT_NE(msg.find("positive integer"), std::string::npos) << msg;
}

TEST(BenchmarkFile, PluginOptionsAreKeptForValidation) {
  const auto b = sb::load_benchmark(
      write_config("opts", kMinimal + "\n[plugins.gla]\nchunk_size = 32\nmode = \"recurrent\"\n"));
  ASSERT_EQ(b.plugin_options.count("gla"), 1u);
  EXPECT_EQ(b.plugin_options.at("gla").size(), 2u);
  EXPECT_NE(b.plugin_options_where.at("gla").find("opts.toml"), std::string::npos);
}

TEST(BenchmarkFile, ErrorsNameFileKeyAndWhatIsAllowed) {
  // A misspelt key, with a suggestion.
  std::string msg = error_of(write_config("typo", kMinimal + "\n[training]\nbatch_sise = 8\n"));
  EXPECT_NE(msg.find("typo.toml"), std::string::npos) << msg;
  EXPECT_NE(msg.find("batch_sise"), std::string::npos) << msg;
  EXPECT_NE(msg.find("batch_size"), std::string::npos) << msg;  // did you mean

  // Wrong types and ranges.
  const std::string path = write_config("base", kMinimal);
  msg = error_of(path, {{"benchmark.widths", "[\"wide\"]"}});
  EXPECT_NE(msg.find("widths"), std::string::npos) << msg;
  msg = error_of(path, {{"training.optimizer", "\"sgd\""}});
  EXPECT_NE(msg.find("adam"), std::string::npos) << msg;
  msg = error_of(path, {{"training.device", "\"tpu\""}});
  EXPECT_NE(msg.find("cuda:N"), std::string::npos) << msg;
  msg = error_of(path, {{"model.dropout", "1.5"}});
  EXPECT_NE(msg.find("dropout"), std::string::npos) << msg;
  msg = error_of(path, {{"benchmark.seeds", "[]"}});
  EXPECT_NE(msg.find("seeds"), std::string::npos) << msg;

  // A task file that does not exist, relative to the benchmark file.
  msg = error_of(write_config("notask", "[benchmark]\ntasks = [\"nope.toml\"]\nmodels = [\"gla\"]\n"
                                        "widths = [8]\nlayers = [1]\nseeds = [1]\n"
                                        "learning_rates = [1e-3]\nwarmups = [1]\n"));
  EXPECT_NE(msg.find("nope.toml"), std::string::npos) << msg;

  // A missing [benchmark] table and an unknown top-level table.
  msg = error_of(write_config("empty", "[training]\nbatch_size = 8\n"));
  EXPECT_NE(msg.find("benchmark"), std::string::npos) << msg;
  msg = error_of(write_config("extra", kMinimal + "\n[trainig]\nbatch_size = 8\n"));
  EXPECT_NE(msg.find("training"), std::string::npos) << msg;
}

TEST(BenchmarkRun, RunsSkipsAndRefusesToResumeWithOtherSettings) {
  const std::string config = write_config(
      "tiny", "[benchmark]\n"
              "tasks = [\"" + kSource + "/tasks/quickstart.toml\"]\n"
              "task_set = [\"train.size=48\", \"test.size=8\", \"sequence.length=10\","
              " \"sequence.max_string_length=10\"]\n"
              "models = [\"gla\"]\nwidths = [16]\nlayers = [1]\nseeds = [1]\n"
              "learning_rates = [1e-2]\nwarmups = [1]\n"
              "[training]\nbatch_size = 8\nmax_updates = 6\neval_every = 2\n");
  const fs::path out = fs::temp_directory_path() / ("sb_bench_run_" + std::to_string(::getpid()));
  fs::remove_all(out);
  const auto bench = sb::load_benchmark(config);
  const auto plans = sb::plan_benchmark(bench, out.string());
  ASSERT_EQ(plans.size(), 1u);
  sb::RunContext ctx;
  ctx.bench = &bench;
  ctx.plugin_folders = {{SB_TEST_PLUGIN_DIR, "build tree"}};
  ctx.log = [](const std::string&) {};
  // Interrupted after update 3 (checkpoint at 2).
  ctx.progress = [](std::int64_t update, std::int64_t) {
    if (update == 3) throw std::runtime_error("interrupted");
  };
  EXPECT_THROW(sb::execute_run(plans[0], ctx), std::runtime_error);
  EXPECT_FALSE(fs::exists(fs::path(plans[0].dir) / "summary.json"));

  // Other training settings: refused, naming the run folder and the setting.
  const auto changed = sb::load_benchmark(config, {{"training.clip_norm", "0.5"}});
  sb::RunContext ctx2 = ctx;
  ctx2.bench = &changed;
  ctx2.progress = {};
  try {
    sb::execute_run(sb::plan_benchmark(changed, out.string())[0], ctx2);
    ADD_FAILURE() << "resumed with other settings";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(plans[0].dir), std::string::npos) << msg;
    EXPECT_NE(msg.find("clip_norm"), std::string::npos) << msg;
  }

  // The same settings resume and finish; a second call skips the finished run.
  ctx.progress = {};
  const auto summary = sb::execute_run(plans[0], ctx);
  EXPECT_EQ(summary.at("status"), "finished");
  EXPECT_EQ(summary.at("updates"), 6);
  EXPECT_TRUE(sb::execute_run(plans[0], ctx).value("skipped", false));
}

}  // namespace

namespace {

// The state size the reference gives mamba and mamba2 in each paper preset (data.md §11.2): its
// network builder passes d_state to both, 64 in task 3's sweep and 128 (the plugins' default)
// elsewhere.
TEST(Benchmark, PaperPresetsGiveMambaAndMamba2TheReferenceStateSize) {
  int checked = 0;
  for (const char* folder : {"configs/paper", "configs/paper-small"}) {
    for (const auto& entry : fs::directory_iterator(fs::path(SELECTIVBENCH_SOURCE_DIR) / folder)) {
      if (entry.path().extension() != ".toml") continue;
      const sb::BenchmarkSpec b = sb::load_benchmark(entry.path().string());
      const std::int64_t expected =
          entry.path().filename().string().rfind("task3", 0) == 0 ? 64 : 128;
      for (const std::string model : {"mamba", "mamba2"}) {
        if (std::find(b.models.begin(), b.models.end(), model) == b.models.end()) continue;
        std::int64_t d_state = 128;  // OptionSpec default in plugins/mamba*/
        const auto it = b.plugin_options.find(model);
        if (it != b.plugin_options.end()) {
          for (const auto& [key, value] : it->second) {
            if (key == "d_state") d_state = std::get<std::int64_t>(value);
          }
        }
        EXPECT_EQ(d_state, expected) << entry.path() << ": " << model;
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 4);
}

}  // namespace

// Names that become folder names cannot leave --out; a grid too large to plan is refused early.
TEST(BenchmarkFile, NamesThatBecomePathsAreChecked) {
  std::string with_model = kMinimal;
  const std::string models = "[\"gla\", \"transformer\"]";
  with_model.replace(with_model.find(models), models.size(), "[\"../../../elsewhere/evil\"]");
  const std::string e = error_of(write_config("evil_model", with_model));
  EXPECT_NE(e.find("evil_model.toml:3: benchmark.models: \"../../../elsewhere/evil\" is not a model name"),
            std::string::npos) << e;
  const std::string n = error_of(write_config("evil_name", kMinimal + "name = \"../../../escape\"\n"));
  EXPECT_NE(n.find("benchmark.name: \"../../../escape\" is not a valid benchmark name"), std::string::npos) << n;
  // The file name gives the name when none is set: a file name with a space is named as the cause.
  const std::string f = error_of(write_config("with space", kMinimal));
  EXPECT_NE(f.find("set [benchmark] name"), std::string::npos) << f;
  EXPECT_EQ(sb::load_benchmark(write_config("plain", kMinimal + "name = \"a-b_c.1\"\n")).name, "a-b_c.1");
}

TEST(BenchmarkFile, AGridTooLargeToPlanIsRefused) {
  // 1000 widths x 1000 layers x 1000 seeds took 8.9 GB in --dry-run before this check.
  std::string big = "[benchmark]\ntasks = [\"" + kSource + "/tasks/quickstart.toml\"]\nmodels = [\"gla\"]\n";
  const auto list = [](int n, int from) {
    std::string s = "[";
    for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(from + i);
    return s + "]";
  };
  big += "widths = " + list(1000, 1) + "\nlayers = " + list(1000, 1) + "\nseeds = " + list(1000, 0) +
         "\nlearning_rates = [1e-3]\nwarmups = [0]\n";
  const std::string e = error_of(write_config("huge", big));
  EXPECT_NE(e.find("make 1000000000 runs (at most 100000"), std::string::npos) << e.substr(0, 300);
}
