#include "core/config/task.hpp"

#include <toml++/toml.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>

namespace sb {

namespace {

constexpr std::int64_t kIntMax = std::numeric_limits<int>::max();
constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();
// A sweep larger than this is almost certainly a mistake (and would take forever to list).
constexpr std::size_t kMaxVariants = 100000;

const std::vector<std::string> kRootKeys = {"task", "grammar", "sequence", "train", "test"};
const std::vector<std::string> kTaskKeys = {"name", "description", "protocol",
                                            "seed", "labels",      "evaluates"};
const std::vector<std::string> kGrammarKeys = {
    "vocab",        "ambiguities", "ambiguity_depth", "transition_density", "initial_states",
    "max_attempts", "scale"};
const std::vector<std::string> kSequenceKeys = {"length", "min_string_length", "max_string_length",
                                                "max_string_tries"};
const std::vector<std::string> kSplitKeys = {"size", "noise", "gap"};
const std::vector<std::string> kGapKeys = {"fill", "start", "prob", "duration"};
const std::vector<std::string> kDurationKeys = {"dist", "low", "high"};

const char* kReferenceHint = "; remove the key or use protocol = \"clean\"";

// --- sweep axes ---

struct Axis {
  std::vector<std::string> path;  // table keys from the root, then the key of the array
  std::string key;                // dotted
  std::vector<std::string> values;
  std::pair<std::uint64_t, std::uint64_t> order;  // document position; overrides after the file
};

void find_axes(const toml::table& table, std::vector<std::string>& path, const std::string& source,
               const std::shared_ptr<const TableReader::Origins>& origins,
               std::vector<Axis>& axes) {
  std::string dotted;
  for (const auto& p : path) dotted += (dotted.empty() ? "" : ".") + p;
  for (const auto& [k, node] : table) {
    const std::string key(k.str());
    path.push_back(key);
    if (node.is_table()) {
      find_axes(*node.as_table(), path, source, origins, axes);
    } else if (node.is_array()) {
      TableReader reader(&table, dotted, source);
      reader.set_origins(origins);
      const toml::array& array = *node.as_array();
      if (array.empty()) {
        reader.fail(key, "an empty array: a sweep axis needs at least one value");
      }
      Axis axis;
      axis.path = path;
      axis.key = reader.full_key(key);
      for (const auto& element : array) {
        if (element.is_array()) {
          reader.fail(key, "a sweep axis is a list of values; nested arrays are not allowed");
        }
        std::string text = TableReader::value_text(element);
        if (element.is_string()) text = element.as_string()->get();
        axis.values.push_back(text);
      }
      const auto& pos = node.source().begin;
      if (pos.line > 0) {
        axis.order = {pos.line, pos.column};
      } else {
        // From an override: after the file's axes, in the order of the overrides.
        std::uint64_t index = 0;
        for (std::size_t i = 0; origins && i < origins->size(); ++i) {
          const std::string& o = (*origins)[i].first;
          if (o == axis.key || axis.key.rfind(o + ".", 0) == 0) index = i;
        }
        axis.order = {std::numeric_limits<std::uint32_t>::max() + index, 0};
      }
      axes.push_back(std::move(axis));
    }
    path.pop_back();
  }
}

// Replaces the array at `axis.path` by its element `index`, moving it so that it keeps its line.
void pick(toml::table& root, const Axis& axis, std::size_t index) {
  toml::table* table = &root;
  for (std::size_t i = 0; i + 1 < axis.path.size(); ++i)
    table = table->get(axis.path[i])->as_table();
  const std::string& key = axis.path.back();
  toml::node& element = *table->get(key)->as_array()->get(index);
  element.visit([&](auto& value) {
    auto moved = std::move(value);
    table->insert_or_assign(key, std::move(moved));
  });
}

// --- one concrete task ---

Duration read_duration(TableReader& gap, const Duration& fallback) {
  const toml::node* node = gap.get_node("duration");
  if (node == nullptr) return fallback;
  Duration d;
  if (node->is_integer() || node->is_floating_point()) {
    d.kind = Duration::Kind::kConstant;
    d.value = gap.get_float("duration", 0.0, 0.0, 1000.0);
    return d;
  }
  if (!node->is_table()) {
    gap.fail("duration",
             "expected a number (a constant duration; 0.1 = one step) or a table "
             "{ dist = \"uniform\", low = ..., high = ... }, got " +
                 TableReader::describe(*node));
  }
  TableReader t = gap.get_table("duration");
  if (!t.has("dist")) {
    t.fail("dist", "missing: a duration table needs dist = \"uniform\" with low and high");
  }
  t.get_enum("dist", "uniform", {"uniform"});
  d.kind = Duration::Kind::kUniform;
  const auto low = t.get_float("low", 0.0, 1000.0);
  const auto high = t.get_float("high", 0.0, 1000.0);
  if (!low) t.fail("low", "missing: a uniform duration needs low and high");
  if (!high) t.fail("high", "missing: a uniform duration needs low and high");
  if (*low > *high) {
    t.fail("low", "low = " + TableReader::value_text(*t.get_node("low")) +
                      " exceeds high = " + TableReader::value_text(*t.get_node("high")));
  }
  t.finish(kDurationKeys);
  d.low = *low;
  d.high = *high;
  return d;
}

GapSpec read_gap(TableReader& gap, const GapSpec& fallback) {
  GapSpec g;
  const std::string fill = gap.get_enum(
      "fill", fallback.fill == GapFill::kBlank ? "blank" : "grammar", {"blank", "grammar"});
  g.fill = fill == "blank" ? GapFill::kBlank : GapFill::kGrammar;
  g.start = static_cast<int>(gap.get_int("start", fallback.start, 0, kIntMax));
  g.prob = gap.get_float("prob", fallback.prob, 0.0, 1.0);
  g.duration = read_duration(gap, fallback.duration);
  gap.finish(kGapKeys);
  return g;
}

GrammarParams read_grammar(TableReader& t, bool& scale) {
  GrammarParams g;
  scale = t.get_bool("scale", false);
  if (scale) {
    for (const char* key : {"vocab", "ambiguity_depth"}) {
      if (t.has(key)) {
        t.fail(key,
               "not allowed with scale = true, which sets vocab = ambiguities + 1 and "
               "ambiguity_depth = ambiguities; remove the key or set scale = false");
      }
    }
    const auto amb = t.get_int("ambiguities", g.ambiguities, 0, kInt64Max);
    if (amb < 1 || amb > Grammar::kMaxVocab - 1) {
      t.fail("ambiguities", "value " + std::to_string(amb) +
                                " is out of range [1, 52] (with scale = true, vocab = ambiguities "
                                "+ 1 must be at most 53)");
    }
    g.ambiguities = static_cast<int>(amb);
    g.vocab = g.ambiguities + 1;
    g.ambiguity_depth = g.ambiguities;
  } else {
    g.vocab = static_cast<int>(t.get_int("vocab", g.vocab, 2, Grammar::kMaxVocab));
    const auto amb = t.get_int("ambiguities", g.ambiguities, 0, kInt64Max);
    if (amb > g.vocab - 1) {
      t.fail("ambiguities", "ambiguities = " + std::to_string(amb) +
                                " exceeds vocab - 1 = " + std::to_string(g.vocab - 1) +
                                " (only the vocab - 1 letters can be ambiguous; # cannot)");
    }
    g.ambiguities = static_cast<int>(amb);
    g.ambiguity_depth =
        static_cast<int>(t.get_int("ambiguity_depth", g.ambiguity_depth, 1, Grammar::kMaxDepth));
  }
  g.transition_density = t.get_float("transition_density", g.transition_density, 0.0, 1.0);
  if (g.transition_density <= 0.0) {
    t.fail("transition_density", "value " +
                                     TableReader::value_text(*t.get_node("transition_density")) +
                                     " is out of range (0, 1]");
  }
  const auto initial = t.get_int("initial_states", g.initial_states, 1, kIntMax);
  if (initial > g.num_states() - 1) {
    t.fail("initial_states", "initial_states = " + std::to_string(initial) +
                                 " exceeds the number of states - 1 = " +
                                 std::to_string(g.num_states() - 1) + " (# cannot be a start)");
  }
  g.initial_states = static_cast<int>(initial);
  g.max_attempts = static_cast<int>(t.get_int("max_attempts", g.max_attempts, 1, kIntMax));
  if (const std::string why = infeasibility(g); !why.empty()) t.fail("transition_density", why);
  t.finish(kGrammarKeys);
  return g;
}

SequenceParams read_sequence(TableReader& t) {
  SequenceParams s;
  s.length = static_cast<int>(t.get_int("length", s.length, 1, 100000));
  s.min_string_length =
      static_cast<int>(t.get_int("min_string_length", s.min_string_length, 1, 100000));
  s.max_string_length =
      static_cast<int>(t.get_int("max_string_length", s.max_string_length, 2, 100000));
  if (s.min_string_length > s.max_string_length) {
    t.fail("min_string_length",
           "min_string_length = " + std::to_string(s.min_string_length) +
               " exceeds max_string_length = " + std::to_string(s.max_string_length));
  }
  s.max_string_tries =
      static_cast<int>(t.get_int("max_string_tries", s.max_string_tries, 1, kIntMax));
  t.finish(kSequenceKeys);
  return s;
}

std::string stem_of(const std::string& source) {
  return std::filesystem::path(source).stem().string();
}

TaskSpec read_task(const toml::table& doc, const std::string& source,
                   const std::shared_ptr<const TableReader::Origins>& origins) {
  TaskSpec spec;
  spec.source = source;
  DataSpec& data = spec.data;

  TableReader root(&doc, "", source);
  root.set_origins(origins);
  // All tables first, so that a misspelt table name is the first thing reported.
  TableReader task = root.get_table("task");
  TableReader grammar = root.get_table("grammar");
  TableReader sequence = root.get_table("sequence");
  TableReader train = root.get_table("train");
  TableReader test = root.get_table("test");
  root.finish(kRootKeys);
  // An empty or unrelated file would otherwise be a task of every default.
  if (!root.has("task")) {
    root.fail("task", "required: a [task] table (it may be empty: every key has a default)");
  }
  TableReader train_gap = train.get_table("gap");
  TableReader test_gap = test.get_table("gap");

  // [task]
  spec.name = task.get_string("name", stem_of(source));
  if (!is_path_name(spec.name)) {
    const std::string rule = " (letters, digits, _, - and ., not first; it names run directories)";
    if (!task.has("name")) {
      task.fail("name", "the file name gives the task name \"" + spec.name +
                            "\", which is not valid" + rule + "; set [task] name");
    }
    task.fail("name", "\"" + spec.name + "\" is not a valid task name" + rule);
  }
  spec.description = task.get_string("description", "");
  data.protocol = task.get_enum("protocol", "clean", {"reference", "clean"}) == "reference"
                      ? Protocol::kReference
                      : Protocol::kClean;
  data.seed = static_cast<std::uint64_t>(task.get_int("seed", 1, 0, kInt64Max));
  data.labels = task.get_enum("labels", "state", {"state", "next_symbol"}) == "state"
                    ? LabelMode::kState
                    : LabelMode::kNextSymbol;
  if (auto evaluates = task.get_string("evaluates")) {
    std::string hint;
    if (evaluates->size() > 5 && evaluates->ends_with(".toml")) {
      hint = "; did you mean \"" + evaluates->substr(0, evaluates->size() - 5) + "\"?";
    }
    if (!is_bare_key(*evaluates)) {
      task.fail("evaluates", "\"" + *evaluates +
                                 "\" is not a task name (the name of a task file next to this "
                                 "one, without .toml)" +
                                 hint);
    }
    if (*evaluates == spec.name) task.fail("evaluates", "a task cannot evaluate itself");
    const auto file = std::filesystem::path(source).parent_path() / (*evaluates + ".toml");
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) {
      task.fail("evaluates", "no task \"" + *evaluates + "\": " + file.string() +
                                 " does not exist (evaluates names a task file in the same "
                                 "folder, without .toml)");
    }
    spec.evaluates = *evaluates;
  }
  task.finish(kTaskKeys);

  data.grammar = read_grammar(grammar, spec.grammar_scale);
  data.sequence = read_sequence(sequence);

  // [train]
  // At least one sample: an empty split trains nothing and evaluates to a meaningless 0.0.
  data.train.size = train.get_int("size", data.train.size, 1, kInt64Max);
  data.train.noise = train.get_float("noise", data.train.noise, 0.0, 10.0);
  data.train.gap = read_gap(train_gap, GapSpec{});
  train.finish(kSplitKeys);

  // [test]
  data.test.size = test.get_int("size", data.test.size, 1, kInt64Max);
  if (data.protocol == Protocol::kReference) {
    // data.md §2.3: the reference's test set is a copy of the training parameters with only the
    // size and the duration (test_dur, else the constant train maximum: quirk B3) replaced.
    if (test.has("noise")) {
      test.fail("noise",
                std::string("not allowed with protocol = \"reference\": the reference test "
                            "set inherits train.noise (quirk B4)") +
                    kReferenceHint);
    }
    for (const char* key : {"fill", "start", "prob"}) {
      if (test_gap.has(key)) {
        test_gap.fail(key, std::string("not allowed with protocol = \"reference\": the reference "
                                       "test gap inherits train.gap.") +
                               key + " (data.md §2.3); only test.gap.duration may be given" +
                               kReferenceHint);
      }
    }
    data.test.noise = data.train.noise;
    Duration constant_max;
    constant_max.kind = Duration::Kind::kConstant;
    constant_max.value = data.train.gap.duration.max();
    GapSpec fallback = data.train.gap;
    fallback.duration = constant_max;
    data.test.gap = read_gap(test_gap, fallback);
  } else {
    data.test.noise = test.get_float("noise", data.train.noise, 0.0, 10.0);
    data.test.gap = read_gap(test_gap, data.train.gap);
  }
  test.finish(kSplitKeys);

  if (const std::string problem = validate(data); !problem.empty()) {
    throw ConfigError(source + ": " + problem);
  }
  return spec;
}

}  // namespace

std::string TaskSpec::display_name() const {
  if (variant.empty()) return name;
  std::string out = name + "[";
  for (std::size_t i = 0; i < variant.size(); ++i) {
    out += (i ? "," : "") + variant[i].first + "=" + variant[i].second;
  }
  return out + "]";
}

std::vector<TaskSpec> parse_task_variants(const std::string& toml_text, const std::string& source,
                                          const std::vector<Override>& overrides) {
  const auto origins = origins_of(overrides);
  const toml::table first = build_document(toml_text, source, overrides);

  std::vector<Axis> axes;
  std::vector<std::string> path;
  find_axes(first, path, source, origins, axes);
  std::stable_sort(axes.begin(), axes.end(),
                   [](const Axis& a, const Axis& b) { return a.order < b.order; });

  std::size_t total = 1;
  for (const auto& axis : axes) {
    total *= axis.values.size();
    if (total > kMaxVariants) {
      throw ConfigError(source + ": the sweep axes make more than " + std::to_string(kMaxVariants) +
                        " variants");
    }
  }

  std::vector<TaskSpec> variants;
  std::vector<std::size_t> index(axes.size(), 0);
  for (std::size_t n = 0; n < total; ++n) {
    // A fresh document per variant: toml++ copies lose source positions, parsing keeps them.
    TaskSpec spec;
    if (axes.empty()) {
      spec = read_task(first, source, origins);
    } else {
      toml::table doc = build_document(toml_text, source, overrides);
      for (std::size_t a = 0; a < axes.size(); ++a) pick(doc, axes[a], index[a]);
      spec = read_task(doc, source, origins);
    }
    for (std::size_t a = 0; a < axes.size(); ++a) {
      spec.variant.emplace_back(axes[a].key, axes[a].values[index[a]]);
    }
    variants.push_back(std::move(spec));
    // Odometer: the last axis varies fastest.
    for (std::size_t a = axes.size(); a-- > 0;) {
      if (++index[a] < axes[a].values.size()) break;
      index[a] = 0;
    }
  }
  return variants;
}

std::vector<TaskSpec> load_task_variants(const std::string& path,
                                         const std::vector<Override>& overrides) {
  return parse_task_variants(read_config_file(path, "task file"), path, overrides);
}

TaskSpec load_task(const std::string& path, const std::vector<Override>& overrides) {
  std::vector<TaskSpec> variants = load_task_variants(path, overrides);
  if (variants.size() == 1) return std::move(variants.front());
  // List each axis with its values, in sweep order.
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;
  for (const auto& v : variants) {
    for (const auto& [axis_key, value] : v.variant) {
      const std::string& key = axis_key;  // (clang before 16 cannot capture a structured binding)
      auto it =
          std::find_if(axes.begin(), axes.end(), [&](const auto& a) { return a.first == key; });
      if (it == axes.end()) it = axes.insert(axes.end(), {key, {}});
      if (std::find(it->second.begin(), it->second.end(), value) == it->second.end()) {
        it->second.push_back(value);
      }
    }
  }
  std::string list;
  for (const auto& [key, values] : axes) {
    list += (list.empty() ? "" : "; ") + key + " = [";
    for (std::size_t i = 0; i < values.size(); ++i) list += (i ? ", " : "") + values[i];
    list += "]";
  }
  std::string example;
  for (const auto& [key, values] : axes) {
    if (!example.empty()) example += " ";
    example += "--set ";
    example += key;
    example += "=";
    example += values.front();
  }
  throw ConfigError(path + ": this task file is a sweep of " + std::to_string(variants.size()) +
                    " variants (" + list + "); pick one with " + example);
}

}  // namespace sb
