// The task files in tasks/: each loads, and each carries the parameters of data.md §11.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/config/task.hpp"
#include "core/data/dataset.hpp"
#include "core/data/grammar.hpp"

namespace sb {
namespace {

namespace fs = std::filesystem;

std::string task_file(const std::string& name) {
  return (fs::path(SELECTIVBENCH_SOURCE_DIR) / "tasks" / (name + ".toml")).string();
}

// data.md §11.1, shared by every paper task.
void expect_paper_shared(const TaskSpec& t) {
  SCOPED_TRACE(t.display_name());
  EXPECT_EQ(t.data.protocol, Protocol::kReference);
  EXPECT_EQ(t.data.seed, 1u);
  EXPECT_EQ(t.data.labels, LabelMode::kState);
  EXPECT_EQ(t.data.grammar.transition_density, 0.4);
  EXPECT_EQ(t.data.grammar.initial_states, 4);
  EXPECT_EQ(t.data.sequence.length, 200);
  EXPECT_EQ(t.data.sequence.min_string_length, 1);
  EXPECT_EQ(t.data.sequence.max_string_length, 200);
  EXPECT_EQ(t.data.sequence.max_string_tries, 10001);
  EXPECT_EQ(t.data.train.size, 200000);
  EXPECT_EQ(t.data.test.size, 1000);
  EXPECT_FALSE(t.description.empty());
  EXPECT_EQ(validate(t.data), "");
}

void expect_amb40(const GrammarParams& g) {
  EXPECT_EQ(g.vocab, 41);
  EXPECT_EQ(g.ambiguities, 40);
  EXPECT_EQ(g.ambiguity_depth, 40);
  EXPECT_EQ(g.num_states(), 1601);
  EXPECT_DOUBLE_EQ(g.instance_density(), 0.01);
}

void expect_uniform(const Duration& d, double low, double high) {
  EXPECT_EQ(d.kind, Duration::Kind::kUniform);
  EXPECT_EQ(d.low, low);
  EXPECT_EQ(d.high, high);
}

void expect_constant(const Duration& d, double value) {
  EXPECT_EQ(d.kind, Duration::Kind::kConstant);
  EXPECT_EQ(d.value, value);
}

TEST(Presets, EveryTaskFileLoads) {
  int files = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(SELECTIVBENCH_SOURCE_DIR) / "tasks")) {
    if (entry.path().extension() != ".toml") continue;
    SCOPED_TRACE(entry.path().string());
    ++files;
    std::vector<TaskSpec> variants;
    ASSERT_NO_THROW(variants = load_task_variants(entry.path().string()));
    ASSERT_FALSE(variants.empty());
    for (const auto& t : variants) {
      EXPECT_EQ(t.name, entry.path().stem().string());  // the name matches the file
      EXPECT_FALSE(t.description.empty());
      EXPECT_EQ(validate(t.data), "");
    }
  }
  EXPECT_GE(files, 6);
}

TEST(Presets, Task1Complexity) {
  const auto v = load_task_variants(task_file("task1_complexity"));
  ASSERT_EQ(v.size(), 7u);
  const int amb[] = {20, 24, 26, 30, 34, 38, 40};
  const int classes[] = {401, 577, 677, 901, 1157, 1445, 1601};
  for (size_t i = 0; i < v.size(); ++i) {
    const TaskSpec& t = v[i];
    expect_paper_shared(t);
    EXPECT_TRUE(t.grammar_scale);
    EXPECT_EQ(t.data.grammar.ambiguities, amb[i]);
    EXPECT_EQ(t.data.grammar.vocab, amb[i] + 1);
    EXPECT_EQ(t.data.grammar.ambiguity_depth, amb[i]);
    EXPECT_EQ(t.data.grammar.num_states(), classes[i]);
    EXPECT_DOUBLE_EQ(t.data.grammar.instance_density(), 0.4 / amb[i]);
    EXPECT_EQ(t.data.train.gap.fill, GapFill::kBlank);
    expect_uniform(t.data.train.gap.duration, 0.1, 0.1);  // 1 blank
    EXPECT_EQ(blank_steps(t.data.train.gap.duration.high), 1);
    EXPECT_EQ(t.data.train.noise, 0.0);
    expect_constant(t.data.test.gap.duration, 0.1);  // B3: constant train maximum
    EXPECT_EQ(t.data.test.gap.fill, GapFill::kBlank);
    EXPECT_EQ(t.data.test.noise, 0.0);
    EXPECT_EQ(t.display_name(),
              "task1_complexity[grammar.ambiguities=" + std::to_string(amb[i]) + "]");
  }
  EXPECT_THROW(load_task(task_file("task1_complexity")), ConfigError);
  EXPECT_EQ(load_task(task_file("task1_complexity"), {{"grammar.ambiguities", "26"}})
                .data.grammar.num_states(),
            677);
}

TEST(Presets, Task1ModelSizeHasTheDataOfComplexityAt40) {
  const TaskSpec t = load_task(task_file("task1_model_size"));
  expect_paper_shared(t);
  EXPECT_FALSE(t.grammar_scale);
  expect_amb40(t.data.grammar);
  const TaskSpec c = load_task_variants(task_file("task1_complexity")).back();
  ASSERT_EQ(c.data.grammar.ambiguities, 40);
  // data.md §11 notes: exactly the same data.
  EXPECT_EQ(symbols_cache_key(t.data, Split::kTrain), symbols_cache_key(c.data, Split::kTrain));
  EXPECT_EQ(symbols_cache_key(t.data, Split::kTest), symbols_cache_key(c.data, Split::kTest));
  EXPECT_EQ(t.data.train.gap.describe(), c.data.train.gap.describe());
  EXPECT_EQ(t.data.test.gap.describe(), c.data.test.gap.describe());
  EXPECT_EQ(t.data.train.noise, c.data.train.noise);
  EXPECT_EQ(t.data.test.noise, c.data.test.noise);
}

TEST(Presets, Task2) {
  const TaskSpec t = load_task(task_file("task2"));
  expect_paper_shared(t);
  expect_amb40(t.data.grammar);
  EXPECT_EQ(t.evaluates, "");
  EXPECT_EQ(t.data.train.noise, 0.2);
  EXPECT_EQ(t.data.train.gap.fill, GapFill::kBlank);
  EXPECT_EQ(t.data.train.gap.start, 0);
  EXPECT_EQ(t.data.train.gap.prob, 1.0);
  expect_uniform(t.data.train.gap.duration, 0.1, 1.0);  // 1..10 blanks
  // The effective test: constant 1.0 -> 10 blanks (B3), noise 0.2 (B4).
  expect_constant(t.data.test.gap.duration, 1.0);
  EXPECT_EQ(blank_steps(t.data.test.gap.duration.value), 10);
  EXPECT_EQ(t.data.test.noise, 0.2);
  EXPECT_EQ(t.data.test.gap.fill, GapFill::kBlank);
  EXPECT_EQ(t.data.test.gap.prob, 1.0);
}

TEST(Presets, Task3) {
  const TaskSpec t = load_task(task_file("task3"));
  expect_paper_shared(t);
  expect_amb40(t.data.grammar);
  EXPECT_EQ(t.data.train.noise, 0.0);
  EXPECT_EQ(t.data.train.gap.fill, GapFill::kGrammar);
  EXPECT_EQ(t.data.train.gap.start, 50);
  EXPECT_EQ(t.data.train.gap.prob, 0.1);
  expect_constant(t.data.train.gap.duration, 0.1);
  EXPECT_EQ(distractor_steps(t.data.train.gap.duration.value), 1);
  // The test has the training rule (data.md §11.2).
  EXPECT_EQ(t.data.test.gap.fill, GapFill::kGrammar);
  EXPECT_EQ(t.data.test.gap.start, 50);
  EXPECT_EQ(t.data.test.gap.prob, 0.1);
  expect_constant(t.data.test.gap.duration, 0.1);
  EXPECT_EQ(t.data.test.noise, 0.0);
}

TEST(Presets, Task4TestsTask2ModelsWithLongerGaps) {
  const auto v = load_task_variants(task_file("task4"));
  ASSERT_EQ(v.size(), 4u);
  const TaskSpec t2 = load_task(task_file("task2"));
  const double durations[] = {1.0, 2.0, 5.0, 10.0};
  const int blanks[] = {10, 20, 50, 100};
  for (size_t i = 0; i < v.size(); ++i) {
    const TaskSpec& t = v[i];
    expect_paper_shared(t);
    expect_amb40(t.data.grammar);
    EXPECT_EQ(t.evaluates, "task2");
    // The training side is task 2's, so the test symbols are task 2's (B1).
    EXPECT_EQ(symbols_cache_key(t.data, Split::kTrain), symbols_cache_key(t2.data, Split::kTrain));
    EXPECT_EQ(t.data.train.gap.describe(), t2.data.train.gap.describe());
    EXPECT_EQ(t.data.train.noise, t2.data.train.noise);
    expect_constant(t.data.test.gap.duration, durations[i]);
    EXPECT_EQ(blank_steps(t.data.test.gap.duration.value), blanks[i]);
    EXPECT_EQ(t.data.test.noise, 0.2);
    EXPECT_EQ(t.data.test.gap.fill, GapFill::kBlank);
    ASSERT_EQ(t.variant.size(), 1u);
    EXPECT_EQ(t.variant[0].first, "test.gap.duration");
  }
  EXPECT_EQ(v[0].display_name(), "task4[test.gap.duration=1.0]");
  // Duration 1.0 is task 2's test condition.
  EXPECT_EQ(v[0].data.test.gap.describe(), t2.data.test.gap.describe());
  EXPECT_EQ(v[0].data.test.noise, t2.data.test.noise);
}

TEST(Presets, Quickstart) {
  const TaskSpec t = load_task(task_file("quickstart"));
  EXPECT_EQ(t.data.protocol, Protocol::kClean);
  EXPECT_TRUE(t.description.find("quickstart") != std::string::npos);
  EXPECT_EQ(t.data.grammar.vocab, 9);
  EXPECT_EQ(t.data.grammar.ambiguities, 8);
  EXPECT_EQ(t.data.grammar.ambiguity_depth, 3);
  EXPECT_EQ(t.data.grammar.num_states(), 25);
  EXPECT_EQ(t.data.sequence.length, 64);
  EXPECT_EQ(t.data.sequence.max_string_length, 64);
  EXPECT_EQ(t.data.train.size, 4000);
  EXPECT_EQ(t.data.test.size, 200);
  expect_constant(t.data.train.gap.duration, 0.1);
  expect_constant(t.data.test.gap.duration, 0.1);
  EXPECT_EQ(t.data.train.noise, 0.0);
  EXPECT_EQ(t.data.test.noise, 0.0);
  // The grammar exists for the preset's seed, and samples can be drawn from it.
  const Grammar g = make_grammar(t.data.grammar, t.data.seed);
  EXPECT_EQ(g.num_states(), 25);
  const SymbolSet s = generate_symbols(g, t.data, Split::kTrain, 0, 50, 1);
  EXPECT_EQ(s.count(), 50);
  EXPECT_EQ(s.length(), 64);
}

}  // namespace
}  // namespace sb
