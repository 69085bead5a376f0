// Task files: every key, both protocols, overrides, sweep axes and every error path.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/config/task.hpp"

namespace sb {
namespace {

namespace fs = std::filesystem;

::testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

::testing::AssertionResult StartsWith(const std::string& text, const std::string& prefix) {
  if (text.rfind(prefix, 0) == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "\"" << text << "\" does not start with \"" << prefix << "\"";
}

// Snippets that test other tables get an empty [task] appended (line numbers stay as written).
std::string with_task_table(const std::string& text) {
  return text.find("[task]") == std::string::npos ? text + "\n[task]\n" : text;
}

TaskSpec one(const std::string& text, const std::vector<Override>& overrides = {}) {
  auto variants = parse_task_variants(with_task_table(text), "t.toml", overrides);
  EXPECT_EQ(variants.size(), 1u);
  return variants.at(0);
}

// The ConfigError message of parsing `text` as t.toml.
std::string error(const std::string& text, const std::vector<Override>& overrides = {}) {
  try {
    parse_task_variants(with_task_table(text), "t.toml", overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

// A fresh folder for task files, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("sb_test_task_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    const fs::path p = path_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// --- defaults and values ---

TEST(Task, EmptyFileGivesDefaults) {
  const TaskSpec t = one("");
  EXPECT_EQ(t.name, "t");  // the file stem
  EXPECT_EQ(t.description, "");
  EXPECT_EQ(t.source, "t.toml");
  EXPECT_EQ(t.evaluates, "");
  EXPECT_FALSE(t.grammar_scale);
  EXPECT_TRUE(t.variant.empty());
  const DataSpec d;
  EXPECT_EQ(t.data.protocol, Protocol::kClean);
  EXPECT_EQ(t.data.seed, 1u);
  EXPECT_EQ(t.data.labels, LabelMode::kState);
  EXPECT_EQ(t.data.grammar.vocab, d.grammar.vocab);
  EXPECT_EQ(t.data.grammar.ambiguities, d.grammar.ambiguities);
  EXPECT_EQ(t.data.grammar.ambiguity_depth, d.grammar.ambiguity_depth);
  EXPECT_EQ(t.data.grammar.transition_density, d.grammar.transition_density);
  EXPECT_EQ(t.data.grammar.initial_states, d.grammar.initial_states);
  EXPECT_EQ(t.data.grammar.max_attempts, d.grammar.max_attempts);
  EXPECT_EQ(t.data.sequence.length, d.sequence.length);
  EXPECT_EQ(t.data.sequence.min_string_length, d.sequence.min_string_length);
  EXPECT_EQ(t.data.sequence.max_string_length, d.sequence.max_string_length);
  EXPECT_EQ(t.data.sequence.max_string_tries, d.sequence.max_string_tries);
  EXPECT_EQ(t.data.train.size, d.train.size);
  EXPECT_EQ(t.data.train.noise, 0.0);
  EXPECT_EQ(t.data.train.gap.fill, GapFill::kBlank);
  EXPECT_EQ(t.data.train.gap.start, 0);
  EXPECT_EQ(t.data.train.gap.prob, 1.0);
  EXPECT_EQ(t.data.train.gap.duration.kind, Duration::Kind::kConstant);
  EXPECT_EQ(t.data.train.gap.duration.value, 0.1);
  EXPECT_EQ(t.data.test.size, d.test.size);
  EXPECT_EQ(t.data.test.noise, 0.0);
  EXPECT_EQ(t.data.test.gap.duration.value, 0.1);
  EXPECT_EQ(t.display_name(), "t");
}

TEST(Task, ReadsEveryKey) {
  const TaskSpec t = one(R"(
[task]
name = "mine"
description = "a test"
protocol = "clean"
seed = 7
labels = "next_symbol"

[grammar]
vocab = 11
ambiguities = 5
ambiguity_depth = 3
transition_density = 0.5
initial_states = 2
max_attempts = 99

[sequence]
length = 50
min_string_length = 2
max_string_length = 40
max_string_tries = 77

[train]
size = 123
noise = 0.3
[train.gap]
fill = "grammar"
start = 4
prob = 0.25
duration = { dist = "uniform", low = 0.2, high = 0.7 }

[test]
size = 45
noise = 1
[test.gap]
fill = "blank"
start = 1
prob = 0.5
duration = 3
)");
  EXPECT_EQ(t.name, "mine");
  EXPECT_EQ(t.description, "a test");
  EXPECT_EQ(t.data.protocol, Protocol::kClean);
  EXPECT_EQ(t.data.seed, 7u);
  EXPECT_EQ(t.data.labels, LabelMode::kNextSymbol);
  EXPECT_EQ(t.data.grammar.vocab, 11);
  EXPECT_EQ(t.data.grammar.ambiguities, 5);
  EXPECT_EQ(t.data.grammar.ambiguity_depth, 3);
  EXPECT_EQ(t.data.grammar.transition_density, 0.5);
  EXPECT_EQ(t.data.grammar.initial_states, 2);
  EXPECT_EQ(t.data.grammar.max_attempts, 99);
  EXPECT_EQ(t.data.sequence.length, 50);
  EXPECT_EQ(t.data.sequence.min_string_length, 2);
  EXPECT_EQ(t.data.sequence.max_string_length, 40);
  EXPECT_EQ(t.data.sequence.max_string_tries, 77);
  EXPECT_EQ(t.data.train.size, 123);
  EXPECT_EQ(t.data.train.noise, 0.3);
  EXPECT_EQ(t.data.train.gap.fill, GapFill::kGrammar);
  EXPECT_EQ(t.data.train.gap.start, 4);
  EXPECT_EQ(t.data.train.gap.prob, 0.25);
  EXPECT_EQ(t.data.train.gap.duration.kind, Duration::Kind::kUniform);
  EXPECT_EQ(t.data.train.gap.duration.low, 0.2);
  EXPECT_EQ(t.data.train.gap.duration.high, 0.7);
  EXPECT_EQ(t.data.test.size, 45);
  EXPECT_EQ(t.data.test.noise, 1.0);  // an integer where a float is expected
  EXPECT_EQ(t.data.test.gap.fill, GapFill::kBlank);
  EXPECT_EQ(t.data.test.gap.start, 1);
  EXPECT_EQ(t.data.test.gap.prob, 0.5);
  EXPECT_EQ(t.data.test.gap.duration.kind, Duration::Kind::kConstant);
  EXPECT_EQ(t.data.test.gap.duration.value, 3.0);
}

TEST(Task, GrammarScale) {
  const TaskSpec t = one("[grammar]\nscale = true\nambiguities = 20\n");
  EXPECT_TRUE(t.grammar_scale);
  EXPECT_EQ(t.data.grammar.vocab, 21);
  EXPECT_EQ(t.data.grammar.ambiguities, 20);
  EXPECT_EQ(t.data.grammar.ambiguity_depth, 20);
  EXPECT_EQ(t.data.grammar.num_states(), 401);
  // Without ambiguities, the default 40 is scaled.
  const TaskSpec d = one("[grammar]\nscale = true\n");
  EXPECT_EQ(d.data.grammar.vocab, 41);
  EXPECT_EQ(d.data.grammar.ambiguity_depth, 40);
  // scale = false is the plain reading.
  const TaskSpec f = one("[grammar]\nscale = false\nvocab = 30\nambiguities = 3\n");
  EXPECT_FALSE(f.grammar_scale);
  EXPECT_EQ(f.data.grammar.vocab, 30);
  EXPECT_EQ(f.data.grammar.ambiguity_depth, 40);
}

// --- protocols ---

TEST(Protocol, CleanInheritsEveryAbsentTestKeyFromTrain) {
  const TaskSpec t = one(R"(
[train]
noise = 0.2
[train.gap]
fill = "grammar"
start = 3
prob = 0.4
duration = { dist = "uniform", low = 0.1, high = 0.5 }
[test]
size = 10
)");
  EXPECT_EQ(t.data.test.size, 10);
  EXPECT_EQ(t.data.test.noise, 0.2);
  EXPECT_EQ(t.data.test.gap.fill, GapFill::kGrammar);
  EXPECT_EQ(t.data.test.gap.start, 3);
  EXPECT_EQ(t.data.test.gap.prob, 0.4);
  // The clean protocol keeps the training distribution (no quirk B3).
  EXPECT_EQ(t.data.test.gap.duration.kind, Duration::Kind::kUniform);
  EXPECT_EQ(t.data.test.gap.duration.low, 0.1);
  EXPECT_EQ(t.data.test.gap.duration.high, 0.5);
}

TEST(Protocol, CleanTakesEachGivenTestKey) {
  const TaskSpec t = one(R"(
[train]
noise = 0.2
[train.gap]
fill = "grammar"
start = 3
prob = 0.4
[test]
noise = 0.0
[test.gap]
prob = 1.0
)");
  EXPECT_EQ(t.data.test.noise, 0.0);
  EXPECT_EQ(t.data.test.gap.prob, 1.0);
  EXPECT_EQ(t.data.test.gap.fill, GapFill::kGrammar);  // inherited
  EXPECT_EQ(t.data.test.gap.start, 3);                 // inherited
}

TEST(Protocol, ReferenceTestGapIsTheConstantTrainMaximum) {
  // Quirk B3 and B4: test duration = constant train max, noise = train noise.
  const TaskSpec t = one(R"(
[task]
protocol = "reference"
[train]
noise = 0.2
[train.gap]
fill = "grammar"
start = 50
prob = 0.1
duration = { dist = "uniform", low = 0.1, high = 1.0 }
)");
  EXPECT_EQ(t.data.protocol, Protocol::kReference);
  EXPECT_EQ(t.data.test.noise, 0.2);
  EXPECT_EQ(t.data.test.gap.fill, GapFill::kGrammar);
  EXPECT_EQ(t.data.test.gap.start, 50);
  EXPECT_EQ(t.data.test.gap.prob, 0.1);
  EXPECT_EQ(t.data.test.gap.duration.kind, Duration::Kind::kConstant);
  EXPECT_EQ(t.data.test.gap.duration.value, 1.0);
  // The training gap is unchanged.
  EXPECT_EQ(t.data.train.gap.duration.kind, Duration::Kind::kUniform);
}

TEST(Protocol, ReferenceConstantTrainDuration) {
  const TaskSpec t = one("[task]\nprotocol = \"reference\"\n[train.gap]\nduration = 0.3\n");
  EXPECT_EQ(t.data.test.gap.duration.kind, Duration::Kind::kConstant);
  EXPECT_EQ(t.data.test.gap.duration.value, 0.3);
}

TEST(Protocol, ReferenceTestDurationMayBeGiven) {
  const TaskSpec t = one(R"(
[task]
protocol = "reference"
[train]
noise = 0.2
[train.gap]
duration = { dist = "uniform", low = 0.1, high = 1.0 }
[test]
size = 5
[test.gap]
duration = 5.0
)");
  EXPECT_EQ(t.data.test.size, 5);
  EXPECT_EQ(t.data.test.gap.duration.kind, Duration::Kind::kConstant);
  EXPECT_EQ(t.data.test.gap.duration.value, 5.0);
  EXPECT_EQ(t.data.test.noise, 0.2);
}

TEST(Protocol, ReferenceRejectsTestNoise) {
  EXPECT_EQ(error("[task]\nprotocol = \"reference\"\n[test]\nnoise = 0.2\n"),
            "t.toml:4: test.noise: not allowed with protocol = \"reference\": the reference test "
            "set inherits train.noise (quirk B4); remove the key or use protocol = \"clean\"");
}

TEST(Protocol, ReferenceRejectsTestGapFillStartProb) {
  for (const std::string key : {"fill = \"blank\"", "start = 2", "prob = 0.5"}) {
    const std::string name = key.substr(0, key.find(' '));
    const std::string e =
        error("[task]\nprotocol = \"reference\"\n[test.gap]\nduration = 1.0\n" + key + "\n");
    EXPECT_TRUE(StartsWith(e, "t.toml:5: test.gap." + name +
                                  ": not allowed with protocol = \"reference\": the reference "
                                  "test gap inherits train.gap." +
                                  name));
    EXPECT_TRUE(Contains(e, "use protocol = \"clean\""));
  }
}

// --- errors: one test per path ---

TEST(Errors, UnknownKeyWithSuggestion) {
  EXPECT_EQ(error("[grammar]\nvocab = 41\nambiguties = 40\n"),
            "t.toml:3: grammar.ambiguties: unknown key; did you mean 'ambiguities'? (allowed: "
            "vocab, ambiguities, ambiguity_depth, transition_density, initial_states, "
            "max_attempts, scale)");
  EXPECT_TRUE(StartsWith(error("[task]\nsed = 3\n"),
                         "t.toml:2: task.sed: unknown key; did you mean 'seed'?"));
  EXPECT_TRUE(StartsWith(error("[sequence]\nlenght = 3\n"),
                         "t.toml:2: sequence.lenght: unknown key; did you mean 'length'?"));
  EXPECT_TRUE(StartsWith(error("[train]\nnosie = 3\n"),
                         "t.toml:2: train.nosie: unknown key; did you mean 'noise'?"));
  EXPECT_TRUE(StartsWith(error("[train.gap]\ndurration = 3\n"),
                         "t.toml:2: train.gap.durration: unknown key; did you mean 'duration'?"));
  EXPECT_TRUE(StartsWith(error("[test]\nsiz = 3\n"),
                         "t.toml:2: test.siz: unknown key; did you mean 'size'?"));
  EXPECT_TRUE(StartsWith(error("[test.gap]\nprobability = 0.3\n"),
                         "t.toml:2: test.gap.probability: unknown key"));
  EXPECT_EQ(
      error("[train.gap]\nduration = { dist = \"uniform\", low = 0.1, hgih = 1.0, high = 1.0 }\n"),
      "t.toml:2: train.gap.duration.hgih: unknown key; did you mean 'high'? (allowed: "
      "dist, low, high)");
  EXPECT_EQ(error("seed = 3\n"),
            "t.toml:1: seed: unknown key (allowed: task, grammar, sequence, train, test)");
}

TEST(Errors, MisspeltTable) {
  EXPECT_EQ(error("[task]\nseed = 1\n\n[grammer]\nvocab = 41\n"),
            "t.toml:4: grammer: unknown table; did you mean 'grammar'? (allowed: task, grammar, "
            "sequence, train, test)");
  EXPECT_TRUE(StartsWith(error("[train.gpa]\nprob = 1.0\n"),
                         "t.toml:1: train.gpa: unknown table; did you mean 'gap'?"));
  // The misspelt table is reported before anything inside the other tables.
  EXPECT_TRUE(StartsWith(error("[grammar]\nvocab = 99\n[sequnce]\nlength = 3\n"),
                         "t.toml:3: sequnce: unknown table; did you mean 'sequence'?"));
}

TEST(Errors, TableWhereAValueIsExpectedAndViceVersa) {
  EXPECT_EQ(error("grammar = 3\n"), "t.toml:1: grammar: expected a table, got integer 3");
  EXPECT_EQ(error("[train]\ngap = \"blank\"\n"),
            "t.toml:2: train.gap: expected a table, got string \"blank\"");
  EXPECT_EQ(error("[grammar.vocab]\nx = 1\n"),
            "t.toml:1: grammar.vocab: expected an integer, got table");
}

TEST(Errors, WrongTypes) {
  EXPECT_EQ(error("[grammar]\nvocab = \"41\"\n"),
            "t.toml:2: grammar.vocab: expected an integer, got string \"41\"");
  EXPECT_EQ(error("[grammar]\nvocab = 41.0\n"),
            "t.toml:2: grammar.vocab: expected an integer, got float 41.0");
  EXPECT_EQ(error("[grammar]\nscale = \"yes\"\n"),
            "t.toml:2: grammar.scale: expected true or false, got string \"yes\"");
  EXPECT_EQ(error("[task]\nseed = 1.5\n"),
            "t.toml:2: task.seed: expected an integer, got float 1.5");
  EXPECT_EQ(error("[task]\nname = 3\n"), "t.toml:2: task.name: expected a string, got integer 3");
  EXPECT_EQ(error("[train]\nnoise = \"0.2\"\n"),
            "t.toml:2: train.noise: expected a number, got string \"0.2\"");
  EXPECT_EQ(error("[train]\nsize = 2e5\n"),
            "t.toml:2: train.size: expected an integer, got float 200000.0");
  EXPECT_EQ(error("[train.gap]\nduration = \"1.0\"\n"),
            "t.toml:2: train.gap.duration: expected a number (a constant duration; 0.1 = one "
            "step) or a table { dist = \"uniform\", low = ..., high = ... }, got string \"1.0\"");
  EXPECT_EQ(error("[train.gap]\nstart = true\n"),
            "t.toml:2: train.gap.start: expected an integer, got boolean true");
  EXPECT_EQ(error("[task]\nseed = 2020-01-01\n"),
            "t.toml:2: task.seed: expected an integer, got date 2020-01-01");
}

TEST(Errors, UnknownEnumValues) {
  EXPECT_EQ(error("[task]\nprotocol = \"referense\"\n"),
            "t.toml:2: task.protocol: unknown value \"referense\"; did you mean \"reference\"? "
            "(allowed: reference, clean)");
  EXPECT_EQ(error("[task]\nlabels = \"states\"\n"),
            "t.toml:2: task.labels: unknown value \"states\"; did you mean \"state\"? (allowed: "
            "state, next_symbol)");
  EXPECT_EQ(error("[train.gap]\nfill = \"distractor\"\n"),
            "t.toml:2: train.gap.fill: unknown value \"distractor\" (allowed: blank, grammar)");
  EXPECT_EQ(error("[train.gap]\nduration = { dist = \"normal\", low = 0.1, high = 1.0 }\n"),
            "t.toml:2: train.gap.duration.dist: unknown value \"normal\" (allowed: uniform)");
}

TEST(Errors, GrammarRanges) {
  EXPECT_EQ(error("[grammar]\nvocab = 54\n"),
            "t.toml:2: grammar.vocab: value 54 is out of range [2, 53]");
  EXPECT_EQ(error("[grammar]\nvocab = 1\n"),
            "t.toml:2: grammar.vocab: value 1 is out of range [2, 53]");
  EXPECT_EQ(error("[grammar]\nvocab = 41\nambiguities = 45\n"),
            "t.toml:3: grammar.ambiguities: ambiguities = 45 exceeds vocab - 1 = 40 (only the "
            "vocab - 1 letters can be ambiguous; # cannot)");
  EXPECT_TRUE(StartsWith(error("[grammar]\nvocab = 9\n"),
                         "t.toml:1: grammar.ambiguities: ambiguities = 40 exceeds vocab - 1 = 8"));
  EXPECT_EQ(error("[grammar]\nambiguities = -1\n"),
            "t.toml:2: grammar.ambiguities: value -1 is out of range >= 0");
  EXPECT_EQ(error("[grammar]\nambiguity_depth = 101\n"),
            "t.toml:2: grammar.ambiguity_depth: value 101 is out of range [1, 100]");
  EXPECT_EQ(error("[grammar]\nambiguity_depth = 0\n"),
            "t.toml:2: grammar.ambiguity_depth: value 0 is out of range [1, 100]");
  EXPECT_EQ(error("[grammar]\ntransition_density = 0\n"),
            "t.toml:2: grammar.transition_density: value 0 is out of range (0, 1]");
  EXPECT_EQ(error("[grammar]\ntransition_density = 1.5\n"),
            "t.toml:2: grammar.transition_density: value 1.5 is out of range [0, 1]");
  EXPECT_EQ(error("[grammar]\ninitial_states = 0\n"),
            "t.toml:2: grammar.initial_states: value 0 is out of range [1, 2147483647]");
  EXPECT_EQ(error("[grammar]\nvocab = 3\nambiguities = 0\ninitial_states = 3\n"),
            "t.toml:4: grammar.initial_states: initial_states = 3 exceeds the number of states - "
            "1 = 2 (# cannot be a start)");
  EXPECT_EQ(error("[grammar]\nmax_attempts = 0\n"),
            "t.toml:2: grammar.max_attempts: value 0 is out of range [1, 2147483647]");
}

TEST(Errors, GrammarScaleConflicts) {
  EXPECT_EQ(error("[grammar]\nscale = true\nvocab = 41\n"),
            "t.toml:3: grammar.vocab: not allowed with scale = true, which sets vocab = "
            "ambiguities + 1 and ambiguity_depth = ambiguities; remove the key or set scale = "
            "false");
  EXPECT_TRUE(StartsWith(error("[grammar]\nambiguity_depth = 20\nscale = true\n"),
                         "t.toml:2: grammar.ambiguity_depth: not allowed with scale = true"));
  EXPECT_EQ(error("[grammar]\nscale = true\nambiguities = 53\n"),
            "t.toml:3: grammar.ambiguities: value 53 is out of range [1, 52] (with scale = true, "
            "vocab = ambiguities + 1 must be at most 53)");
  EXPECT_TRUE(StartsWith(error("[grammar]\nscale = true\nambiguities = 0\n"),
                         "t.toml:3: grammar.ambiguities: value 0 is out of range [1, 52]"));
}

TEST(Errors, SequenceRanges) {
  EXPECT_EQ(error("[sequence]\nlength = 0\n"),
            "t.toml:2: sequence.length: value 0 is out of range [1, 100000]");
  EXPECT_EQ(error("[sequence]\nlength = 100001\n"),
            "t.toml:2: sequence.length: value 100001 is out of range [1, 100000]");
  EXPECT_EQ(error("[sequence]\nmin_string_length = 0\n"),
            "t.toml:2: sequence.min_string_length: value 0 is out of range [1, 100000]");
  EXPECT_EQ(error("[sequence]\nmax_string_length = 1\n"),
            "t.toml:2: sequence.max_string_length: value 1 is out of range [2, 100000]");
  EXPECT_EQ(error("[sequence]\nmin_string_length = 5\nmax_string_length = 4\n"),
            "t.toml:2: sequence.min_string_length: min_string_length = 5 exceeds "
            "max_string_length = 4");
  EXPECT_EQ(error("[sequence]\nmax_string_tries = 0\n"),
            "t.toml:2: sequence.max_string_tries: value 0 is out of range [1, 2147483647]");
}

TEST(Errors, SplitRanges) {
  EXPECT_EQ(error("[train]\nsize = -1\n"), "t.toml:2: train.size: value -1 is out of range >= 1");
  EXPECT_EQ(error("[test]\nsize = -5\n"), "t.toml:2: test.size: value -5 is out of range >= 1");
  EXPECT_EQ(error("[train]\nnoise = 10.5\n"),
            "t.toml:2: train.noise: value 10.5 is out of range [0, 10]");
  EXPECT_EQ(error("[test]\nnoise = -0.1\n"),
            "t.toml:2: test.noise: value -0.1 is out of range [0, 10]");
  EXPECT_EQ(error("[task]\nseed = -1\n"), "t.toml:2: task.seed: value -1 is out of range >= 0");
}

TEST(Errors, GapRanges) {
  EXPECT_EQ(error("[train.gap]\nprob = 1.5\n"),
            "t.toml:2: train.gap.prob: value 1.5 is out of range [0, 1]");
  EXPECT_EQ(error("[train.gap]\nprob = -0.1\n"),
            "t.toml:2: train.gap.prob: value -0.1 is out of range [0, 1]");
  EXPECT_EQ(error("[test.gap]\nprob = 2\n"),
            "t.toml:2: test.gap.prob: value 2 is out of range [0, 1]");
  EXPECT_EQ(error("[train.gap]\nstart = -1\n"),
            "t.toml:2: train.gap.start: value -1 is out of range [0, 2147483647]");
  EXPECT_EQ(error("[train.gap]\nduration = -0.1\n"),
            "t.toml:2: train.gap.duration: value -0.1 is out of range [0, 1000]");
  EXPECT_EQ(error("[test.gap]\nduration = 1001\n"),
            "t.toml:2: test.gap.duration: value 1001 is out of range [0, 1000]");
  EXPECT_EQ(error("[train.gap]\nduration = { dist = \"uniform\", low = -1, high = 1.0 }\n"),
            "t.toml:2: train.gap.duration.low: value -1 is out of range [0, 1000]");
  EXPECT_EQ(error("[train.gap]\nduration = { dist = \"uniform\", low = 0.1, high = 2000 }\n"),
            "t.toml:2: train.gap.duration.high: value 2000 is out of range [0, 1000]");
  EXPECT_EQ(error("[train.gap]\nduration = { dist = \"uniform\", low = 2, high = 1.0 }\n"),
            "t.toml:2: train.gap.duration.low: low = 2 exceeds high = 1.0");
  // A zero-length gap is allowed: no gap steps.
  EXPECT_EQ(one("[train.gap]\nduration = 0\n").data.train.gap.duration.value, 0.0);
}

TEST(Errors, IncompleteDurationTable) {
  EXPECT_EQ(error("[train.gap]\nduration = { low = 0.1, high = 1.0 }\n"),
            "t.toml:2: train.gap.duration.dist: missing: a duration table needs dist = "
            "\"uniform\" with low and high");
  EXPECT_EQ(error("[train.gap]\nduration = { dist = \"uniform\", low = 0.1 }\n"),
            "t.toml:2: train.gap.duration.high: missing: a uniform duration needs low and high");
  EXPECT_EQ(error("[train.gap]\nduration = { dist = \"uniform\", high = 0.1 }\n"),
            "t.toml:2: train.gap.duration.low: missing: a uniform duration needs low and high");
  // As a sub-table too.
  EXPECT_EQ(error("[train.gap.duration]\ndist = \"uniform\"\nlow = 0.1\nhigh = 0.5\n"),
            "(no error)");
}

TEST(Errors, TaskNameAndEvaluates) {
  EXPECT_TRUE(StartsWith(error("[task]\nname = \"my task\"\n"),
                         "t.toml:2: task.name: \"my task\" is not a valid task name"));
  EXPECT_TRUE(StartsWith(error("[task]\nname = \"\"\n"), "t.toml:2: task.name: \"\" is not"));
  EXPECT_TRUE(
      StartsWith(error("[task]\nname = \"../up\"\n"), "t.toml:2: task.name: \"../up\" is not"));
  EXPECT_EQ(one("[task]\nname = \"t1.v2\"\n").name, "t1.v2");
  // A name taken from an unusual file name.
  try {
    parse_task_variants("[task]\n", "dir/my task.toml");
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "dir/my task.toml:1: task.name: the file name gives the task name \"my task\", which "
              "is not valid (letters, digits, _, - and ., not first; it names run directories); "
              "set [task] name");
  }
  EXPECT_TRUE(StartsWith(error("[task]\nname = \"a\"\nevaluates = \"a\"\n"),
                         "t.toml:3: task.evaluates: a task cannot evaluate itself"));
  EXPECT_EQ(error("[task]\nevaluates = \"task2.toml\"\n"),
            "t.toml:2: task.evaluates: \"task2.toml\" is not a task name (the name of a task "
            "file next to this one, without .toml); did you mean \"task2\"?");
  EXPECT_EQ(error("[task]\nevaluates = \"../x\"\n"),
            "t.toml:2: task.evaluates: \"../x\" is not a task name (the name of a task file next "
            "to this one, without .toml)");
}

TEST(Errors, ATaskFileNeedsItsTaskTable) {
  // An empty file, or one of another kind, is not a task of every default.
  for (const std::string text : {"", "# nothing\n", "[grammar]\nvocab = 41\n"}) {
    try {
      parse_task_variants(text, "empty.toml");
      ADD_FAILURE() << "accepted: \"" << text << "\"";
    } catch (const ConfigError& e) {
      EXPECT_TRUE(Contains(e.what(), "empty.toml"));
      EXPECT_TRUE(Contains(e.what(), "task: required: a [task] table"));
    }
  }
  // A misspelt table is reported as such, before the missing one.
  EXPECT_TRUE(Contains(error("[tsak]\nname = \"a\"\n"), "did you mean"));
  EXPECT_EQ(one("[task]\n").name, "t");
}

TEST(Errors, EvaluatesNamesAMissingFile) {
  TempDir dir;
  const std::string path = dir.write("t4.toml", "[task]\nevaluates = \"t2\"\n");
  try {
    load_task(path);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              path + ":2: task.evaluates: no task \"t2\": " + (dir.path() / "t2.toml").string() +
                  " does not exist (evaluates names a task file in the same folder, without "
                  ".toml)");
  }
  dir.write("t2.toml", "");
  const TaskSpec t = load_task(path);
  EXPECT_EQ(t.evaluates, "t2");
  EXPECT_EQ(t.name, "t4");
  EXPECT_EQ(t.source, path);
}

TEST(Errors, TomlSyntax) {
  const std::string e = error("[grammar]\nvocab = 41\nambiguities = = 3\n");
  EXPECT_TRUE(StartsWith(e, "t.toml:3:15: TOML syntax error: ")) << e;
  EXPECT_TRUE(StartsWith(error("[grammar\n"), "t.toml:1:")) << error("[grammar\n");
  const std::string dup = error("[grammar]\nvocab = 41\nvocab = 42\n");
  EXPECT_TRUE(StartsWith(dup, "t.toml:3:")) << dup;
  EXPECT_TRUE(Contains(dup, "TOML syntax error: ")) << dup;
  EXPECT_TRUE(Contains(dup, "vocab")) << dup;
}

TEST(Errors, MissingFile) {
  TempDir dir;
  const std::string path = (dir.path() / "nope.toml").string();
  try {
    load_task(path);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_TRUE(StartsWith(e.what(), path + ": cannot open task file: ")) << e.what();
  }
  try {
    load_task_variants(dir.path().string());
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_TRUE(StartsWith(e.what(), dir.path().string() + ": cannot open task file: "))
        << e.what();
  }
}

TEST(Errors, EveryMessageNamesTheFile) {
  TempDir dir;
  const std::string path = dir.write("bad.toml", "\n\n[grammar]\nvocab = 60\n[task]\n");
  try {
    load_task(path);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), path + ":4: grammar.vocab: value 60 is out of range [2, 53]");
  }
}

// --- overrides ---

TEST(Overrides, Parse) {
  const Override o = parse_override("grammar.ambiguities=20");
  EXPECT_EQ(o.key, "grammar.ambiguities");
  EXPECT_EQ(o.value, "20");
  const Override spaced = parse_override(" task.description = a = b ");
  EXPECT_EQ(spaced.key, "task.description");
  EXPECT_EQ(spaced.value, "a = b");
  EXPECT_EQ(
      parse_override("train.gap.duration={ dist = \"uniform\", low = 0.1, high = 1.0 }").value,
      "{ dist = \"uniform\", low = 0.1, high = 1.0 }");
}

TEST(Overrides, ParseErrors) {
  auto message = [](const std::string& text) {
    try {
      parse_override(text);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_EQ(message("grammar.vocab"),
            "--set grammar.vocab: expected KEY=VALUE, e.g. --set grammar.ambiguities=20");
  EXPECT_TRUE(StartsWith(message("=3"), "--set =3: \"\" is not a dotted key"));
  EXPECT_TRUE(StartsWith(message("grammar..vocab=3"),
                         "--set grammar..vocab=3: \"grammar..vocab\" "
                         "is not a dotted key"));
  EXPECT_TRUE(StartsWith(message("grammar.vo cab=3"), "--set grammar.vo cab=3: "));
  EXPECT_TRUE(StartsWith(message("grammar.vocab="), "--set grammar.vocab=: empty value"));
}

TEST(Overrides, ValuesAreTomlOrPlainStrings) {
  const TaskSpec t = one("[grammar]\nvocab = 41\n",
                         {{"grammar.ambiguities", "20"},
                          {"task.protocol", "reference"},  // a bare word is a string
                          {"task.description", "\"quoted\""},
                          {"grammar.transition_density", "0.5"},
                          {"grammar.scale", "false"},
                          {"train.gap.duration", "{ dist = \"uniform\", low = 0.1, high = 0.4 }"}});
  EXPECT_EQ(t.data.grammar.ambiguities, 20);
  EXPECT_EQ(t.data.protocol, Protocol::kReference);
  EXPECT_EQ(t.description, "quoted");
  EXPECT_EQ(t.data.grammar.transition_density, 0.5);
  EXPECT_EQ(t.data.train.gap.duration.kind, Duration::Kind::kUniform);
  EXPECT_EQ(t.data.train.gap.duration.high, 0.4);
  EXPECT_EQ(t.data.test.gap.duration.value, 0.4);  // reference: the constant train maximum
  EXPECT_TRUE(t.variant.empty());                  // overrides are not sweep values
}

TEST(Overrides, ReplaceFileValuesAndCreateTables) {
  const TaskSpec t = one("[task]\nseed = 1\n[grammar]\nambiguities = 40\n",
                         {{"task.seed", "4"}, {"train.gap.prob", "0.5"}, {"test.size", "3"}});
  EXPECT_EQ(t.data.seed, 4u);
  EXPECT_EQ(t.data.train.gap.prob, 0.5);
  EXPECT_EQ(t.data.test.size, 3);
  // The later of two overrides wins.
  EXPECT_EQ(one("", {{"task.seed", "2"}, {"task.seed", "3"}}).data.seed, 3u);
}

TEST(Overrides, UnknownKeyIsReportedLikeInTheFile) {
  EXPECT_EQ(error("[grammar]\nvocab = 41\n", {{"grammar.ambiguties", "3"}}),
            "t.toml: grammar.ambiguties: unknown key; did you mean 'ambiguities'? (allowed: "
            "vocab, ambiguities, ambiguity_depth, transition_density, initial_states, "
            "max_attempts, scale) (from --set grammar.ambiguties=3)");
  EXPECT_EQ(error("", {{"grammer.vocab", "3"}}),
            "t.toml: grammer: unknown table; did you mean 'grammar'? (allowed: task, grammar, "
            "sequence, train, test) (from --set grammer.vocab=3)");
}

TEST(Overrides, BadValuesNameTheOverride) {
  EXPECT_EQ(error("[grammar]\nvocab = 41\n", {{"grammar.vocab", "60"}}),
            "t.toml: grammar.vocab: value 60 is out of range [2, 53] (from --set "
            "grammar.vocab=60)");
  EXPECT_EQ(error("", {{"grammar.vocab", "4l"}}),
            "t.toml: grammar.vocab: expected an integer, got string \"4l\" (from --set "
            "grammar.vocab=4l)");
  EXPECT_EQ(error("[task]\nprotocol = \"clean\"\n", {{"task.protocol", "referense"}}),
            "t.toml: task.protocol: unknown value \"referense\"; did you mean \"reference\"? "
            "(allowed: reference, clean) (from --set task.protocol=referense)");
  EXPECT_EQ(error("", {{"train.gap.duration", "{ dist = \"uniform\", low = 2, high = 1 }"}}),
            "t.toml: train.gap.duration.low: low = 2 exceeds high = 1 (from --set "
            "train.gap.duration={ dist = \"uniform\", low = 2, high = 1 })");
  // A problem in the file itself keeps its line.
  EXPECT_EQ(error("[grammar]\nvocab = 60\n", {{"grammar.ambiguities", "3"}}),
            "t.toml:2: grammar.vocab: value 60 is out of range [2, 53]");
  // ... even when an override sets something next to it.
  EXPECT_EQ(error("[train]\nsize = -1\n", {{"train.gap.prob", "0.5"}}),
            "t.toml:2: train.size: value -1 is out of range >= 1");
  // An override of a whole table.
  EXPECT_EQ(error("[train]\nsize = 1\n", {{"train", "{ size = -1 }"}}),
            "t.toml: train.size: value -1 is out of range >= 1 (from --set train={ size = -1 })");
}

TEST(Overrides, IntoANonTableIsAnError) {
  EXPECT_EQ(error("[train]\nsize = 10\n", {{"train.size.x", "1"}}),
            "t.toml: train.size.x: cannot set: train.size is integer 10, not a table (from --set "
            "train.size.x=1)");
}

TEST(Overrides, ReferenceRulesApplyToOverrides) {
  EXPECT_EQ(error("[task]\nprotocol = \"reference\"\n", {{"test.noise", "0.1"}}),
            "t.toml: test.noise: not allowed with protocol = \"reference\": the reference test set "
            "inherits train.noise (quirk B4); remove the key or use protocol = \"clean\" (from "
            "--set test.noise=0.1)");
  // Switching the protocol by override makes the key legal.
  EXPECT_EQ(
      one("[task]\nprotocol = \"reference\"\n[test]\nnoise = 0.1\n", {{"task.protocol", "clean"}})
          .data.test.noise,
      0.1);
}

// --- sweep axes ---

TEST(Sweep, OneAxis) {
  const auto v = parse_task_variants(
      with_task_table(
          "[task]\nname = \"sw\"\n[grammar]\nscale = true\nambiguities = [20, 24, 40]\n"),
      "t.toml");
  ASSERT_EQ(v.size(), 3u);
  const int expected[] = {20, 24, 40};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(v[i].data.grammar.ambiguities, expected[i]);
    EXPECT_EQ(v[i].data.grammar.vocab, expected[i] + 1);
    ASSERT_EQ(v[i].variant.size(), 1u);
    EXPECT_EQ(v[i].variant[0].first, "grammar.ambiguities");
    EXPECT_EQ(v[i].variant[0].second, std::to_string(expected[i]));
  }
  EXPECT_EQ(v[0].display_name(), "sw[grammar.ambiguities=20]");
}

TEST(Sweep, FirstAxisInDocumentOrderVariesSlowest) {
  // [train] comes first in the file although "grammar" sorts first.
  const auto v = parse_task_variants(
      with_task_table("[train]\nnoise = [0.0, 0.2]\n[grammar]\nambiguities = [10, 20, 30]\n"),
      "t.toml");
  ASSERT_EQ(v.size(), 6u);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(v[i].data.train.noise, i < 3 ? 0.0 : 0.2);
    EXPECT_EQ(v[i].data.grammar.ambiguities, 10 * (i % 3 + 1));
    ASSERT_EQ(v[i].variant.size(), 2u);
    EXPECT_EQ(v[i].variant[0].first, "train.noise");
    EXPECT_EQ(v[i].variant[1].first, "grammar.ambiguities");
  }
  EXPECT_EQ(v[4].display_name(), "t[train.noise=0.2,grammar.ambiguities=20]");
}

TEST(Sweep, DurationsAndMixedForms) {
  const auto v = parse_task_variants(
      with_task_table(
          "[test.gap]\nduration = [1.0, 2, { dist = \"uniform\", low = 0.1, high = 1.0 }]\n"),
      "t.toml");
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].data.test.gap.duration.value, 1.0);
  EXPECT_EQ(v[0].variant[0], (std::pair<std::string, std::string>("test.gap.duration", "1.0")));
  EXPECT_EQ(v[1].data.test.gap.duration.value, 2.0);
  EXPECT_EQ(v[1].variant[0].second, "2");
  EXPECT_EQ(v[2].data.test.gap.duration.kind, Duration::Kind::kUniform);
  EXPECT_EQ(v[2].variant[0].second, "{ dist = \"uniform\", low = 0.1, high = 1.0 }");
}

TEST(Sweep, StringAxis) {
  const auto v = parse_task_variants(
      with_task_table("[task]\nprotocol = [\"reference\", \"clean\"]\n"), "t.toml");
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].data.protocol, Protocol::kReference);
  EXPECT_EQ(v[1].data.protocol, Protocol::kClean);
  EXPECT_EQ(v[1].display_name(), "t[task.protocol=clean]");
}

TEST(Sweep, SingleValueArray) {
  const auto v = parse_task_variants(with_task_table("[grammar]\nambiguities = [30]\n"), "t.toml");
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].data.grammar.ambiguities, 30);
  EXPECT_EQ(v[0].display_name(), "t[grammar.ambiguities=30]");
}

TEST(Sweep, EmptyArrayIsAnError) {
  EXPECT_EQ(error("[grammar]\nambiguities = []\n"),
            "t.toml:2: grammar.ambiguities: an empty array: a sweep axis needs at least one value");
}

TEST(Sweep, NestedArrayIsAnError) {
  EXPECT_EQ(error("[grammar]\nambiguities = [[20, 24], 30]\n"),
            "t.toml:2: grammar.ambiguities: a sweep axis is a list of values; nested arrays are "
            "not allowed");
}

TEST(Sweep, BadValueIsReportedAtItsLine) {
  EXPECT_EQ(error("[grammar]\nvocab = 41\nambiguities = [\n  20,\n  60,\n]\n"),
            "t.toml:5: grammar.ambiguities: ambiguities = 60 exceeds vocab - 1 = 40 (only the "
            "vocab - 1 letters can be ambiguous; # cannot)");
  EXPECT_EQ(error("[test.gap]\nduration = [1.0, -2.0]\n"),
            "t.toml:2: test.gap.duration: value -2.0 is out of range [0, 1000]");
  EXPECT_EQ(error("[grammar]\nvocab = [\"41\"]\n"),
            "t.toml:2: grammar.vocab: expected an integer, got string \"41\"");
}

TEST(Sweep, OverridePicksOneValue) {
  const std::string text = "[grammar]\nscale = true\nambiguities = [20, 24, 40]\n";
  const auto v =
      parse_task_variants(with_task_table(text), "t.toml", {{"grammar.ambiguities", "24"}});
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].data.grammar.ambiguities, 24);
  EXPECT_TRUE(v[0].variant.empty());
}

TEST(Sweep, OverrideAddsAnAxisAfterTheFileAxes) {
  const auto v = parse_task_variants(with_task_table("[train]\nnoise = [0.0, 0.1]\n"), "t.toml",
                                     {{"task.seed", "[1, 2, 3]"}});
  ASSERT_EQ(v.size(), 6u);
  EXPECT_EQ(v[0].variant[0].first, "train.noise");
  EXPECT_EQ(v[0].variant[1].first, "task.seed");
  EXPECT_EQ(v[1].data.seed, 2u);
  EXPECT_EQ(v[1].data.train.noise, 0.0);
  EXPECT_EQ(v[3].data.train.noise, 0.1);
  // A bad value of an override axis names the override.
  EXPECT_EQ(error("", {{"task.seed", "[1, -2]"}}),
            "t.toml: task.seed: value -2 is out of range >= 0 (from --set task.seed=[1, -2])");
}

TEST(Sweep, LoadTaskRefusesASweep) {
  TempDir dir;
  const std::string path = dir.write(
      "sw.toml",
      "[task]\n[grammar]\nscale = true\nambiguities = [20, 24]\n[train]\nnoise = [0, 0.5]\n");
  try {
    load_task(path);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              path +
                  ": this task file is a sweep of 4 variants (grammar.ambiguities = [20, 24]; "
                  "train.noise = [0, 0.5]); pick one with --set grammar.ambiguities=20 --set "
                  "train.noise=0");
  }
  EXPECT_EQ(load_task_variants(path).size(), 4u);
  const TaskSpec t = load_task(path, {{"grammar.ambiguities", "24"}, {"train.noise", "0.5"}});
  EXPECT_EQ(t.data.grammar.ambiguities, 24);
  EXPECT_EQ(t.data.train.noise, 0.5);
}

TEST(Sweep, TooManyVariants) {
  // 10^5 · 2 combinations: refused before any is read.
  const std::string text = R"(
[train]
size = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
[test]
size = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
[grammar]
max_attempts = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
[sequence]
length = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
max_string_tries = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
max_string_length = [10, 11]
)";
  EXPECT_EQ(error(text), "t.toml: the sweep axes make more than 100000 variants");
}

// --- hardening: input built to crash, hang or mislead ---

TEST(Hardening, DeeplyNestedTablesAreRefusedNotRecursedInto) {
  // 20 000 levels crashed the sweep-axis search with a stack overflow.
  std::string deep = "[task]\n[";
  for (int i = 0; i < 20000; ++i) deep += i ? ".a" : "a";
  deep += "]\nx = 1\n";
  const std::string e = error(deep);
  EXPECT_TRUE(StartsWith(e, "t.toml:")) << e.substr(0, 200);
  EXPECT_TRUE(Contains(e, "nested more than 64 levels deep")) << e.substr(0, 200);
  // Through --set too.
  std::string key = "grammar";
  for (int i = 0; i < 20000; ++i) key += ".a";
  const std::string o = error("[task]\n", {{key, "1"}});
  EXPECT_TRUE(Contains(o, "a key of 20001 parts (at most 64)")) << o.substr(0, 200);
  // Shallow nesting, as in every real file, still reads (and unknown keys are still named).
  EXPECT_TRUE(Contains(error("[task]\n[grammar.a.b]\nx = 1\n"), "grammar.a")) << error("[grammar.a.b]\n");
}

TEST(Hardening, OnlyRegularFilesAreRead) {
  TempDir dir;
  const std::string fifo = (dir.path() / "fifo.toml").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const auto& [path, kind] : std::vector<std::pair<std::string, std::string>>{
           {fifo, "a FIFO"}, {"/dev/zero", "a device"}, {dir.path().string(), "a directory"}}) {
    try {
      load_task(path);  // a FIFO blocked here for ever, /dev/zero was read without end
      ADD_FAILURE() << path << " accepted";
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()),
                path + ": cannot open task file: it is " + kind + " (a regular file is needed)");
    }
  }
}

TEST(Hardening, ADensityThatCannotProduceAGrammarIsRefusedAtOnce) {
  // 1e-320 passed the (0, 1] check and then drew grammars for 265 s before failing.
  const std::string e = error("[grammar]\ntransition_density = 1e-320\n");
  EXPECT_TRUE(StartsWith(e, "t.toml:2: grammar.transition_density: transition_density = 9.99989e-321 "
                            "cannot produce a grammar"))
      << e;
  EXPECT_TRUE(Contains(e, "raise transition_density")) << e;
  // Low but workable densities still read.
  EXPECT_NO_THROW(one("[grammar]\ntransition_density = 0.05\n"));
}

TEST(Hardening, EmptySplitsAreRefused) {
  // test.size = 0 evaluated to 0.0 at every evaluation and then failed the run.
  EXPECT_TRUE(Contains(error("[test]\nsize = 0\n"), "test.size")) << error("[test]\nsize = 0\n");
  EXPECT_TRUE(Contains(error("[test]\nsize = 0\n"), "value 0 is out of range")) << error("[test]\nsize = 0\n");
  EXPECT_TRUE(Contains(error("[train]\nsize = 0\n"), "train.size")) << error("[train]\nsize = 0\n");
  EXPECT_EQ(one("[test]\nsize = 1\n").data.test.size, 1);
}

}  // namespace
}  // namespace sb
