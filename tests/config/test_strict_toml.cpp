// The strict TOML table reader: types, ranges, unknown keys, messages.
#include <gtest/gtest.h>

#include <toml++/toml.h>
#include <memory>
#include <string>

#include "core/config/strict_toml.hpp"

namespace sb {
namespace {

::testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

toml::table parse(const std::string& text) {
  return toml::parse(std::string_view(text), std::string_view("f.toml"));
}

// The message of the ConfigError that `f` throws.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(EditDistance, Levenshtein) {
  EXPECT_EQ(edit_distance("", ""), 0);
  EXPECT_EQ(edit_distance("abc", ""), 3);
  EXPECT_EQ(edit_distance("", "abc"), 3);
  EXPECT_EQ(edit_distance("abc", "abc"), 0);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3);
  EXPECT_EQ(edit_distance("ab", "ba"), 2);  // a transposition is two edits
  EXPECT_EQ(edit_distance("ambiguties", "ambiguities"), 1);
  EXPECT_EQ(edit_distance("grammer", "grammar"), 1);
  EXPECT_EQ(edit_distance("flaw", "lawn"), edit_distance("lawn", "flaw"));
}

TEST(ClosestMatch, SuggestsLikelyMisspellings) {
  const std::vector<std::string> grammar = {
      "vocab",        "ambiguities", "ambiguity_depth", "transition_density", "initial_states",
      "max_attempts", "scale"};
  EXPECT_EQ(closest_match("ambiguties", grammar), "ambiguities");
  EXPECT_EQ(closest_match("vocb", grammar), "vocab");
  EXPECT_EQ(closest_match("Vocab", grammar), "vocab");
  EXPECT_EQ(closest_match("ambiguity_dept", grammar), "ambiguity_depth");
  EXPECT_EQ(closest_match("grammer", {"task", "grammar", "sequence", "train", "test"}), "grammar");
  EXPECT_EQ(closest_match("tset", {"task", "grammar", "sequence", "train", "test"}), "test");
  EXPECT_EQ(closest_match("nosie", {"size", "noise", "gap"}), "noise");
}

TEST(ClosestMatch, AbbreviationWhenUnique) {
  EXPECT_EQ(closest_match("dur", {"fill", "start", "prob", "duration"}), "duration");
  // "amb" starts two keys: no guess.
  EXPECT_EQ(closest_match("amb", {"ambiguities", "ambiguity_depth"}), "");
}

TEST(ClosestMatch, NothingForUnrelatedKeys) {
  EXPECT_EQ(closest_match("banana", {"vocab", "scale"}), "");
  EXPECT_EQ(closest_match("x", {"size", "gap"}), "");
  EXPECT_EQ(closest_match("", {"size"}), "");
  EXPECT_EQ(closest_match("size", {}), "");
}

TEST(TableReader, ReadsValuesAndFallbacks) {
  const toml::table doc =
      parse("i = 7\nf = 0.25\nfi = 3\nb = true\ns = \"text\"\ne = \"clean\"\n[sub]\nx = 1\n");
  TableReader r(&doc, "", "f.toml");
  EXPECT_EQ(r.get_int("i", 0, 0, 10), 7);
  EXPECT_EQ(r.get_int("absent_i", 5, 0, 10), 5);
  EXPECT_EQ(r.get_float("f", 0.0, 0.0, 1.0), 0.25);
  EXPECT_EQ(r.get_float("fi", 0.0, 0.0, 10.0), 3.0);  // an integer where a float is expected
  EXPECT_EQ(r.get_float("absent_f", 0.5, 0.0, 1.0), 0.5);
  EXPECT_TRUE(r.get_bool("b", false));
  EXPECT_FALSE(r.get_bool("absent_b", false));
  EXPECT_EQ(r.get_string("s", ""), "text");
  EXPECT_EQ(r.get_string("absent_s", "dflt"), "dflt");
  EXPECT_EQ(r.get_enum("e", "reference", {"reference", "clean"}), "clean");
  EXPECT_EQ(r.get_enum("absent_e", "reference", {"reference", "clean"}), "reference");
  TableReader sub = r.get_table("sub");
  EXPECT_EQ(sub.full_key("x"), "sub.x");
  EXPECT_EQ(sub.get_int("x", 0, 0, 10), 1);
  sub.finish({"x"});
  EXPECT_NO_THROW(r.finish({"i", "f", "fi", "b", "s", "e", "sub"}));
}

TEST(TableReader, OptionalOverloads) {
  const toml::table doc = parse("i = 7\nf = 1.5\nb = false\ns = \"x\"\n");
  TableReader r(&doc, "t", "f.toml");
  EXPECT_EQ(r.get_int("i", 0, 10), std::optional<std::int64_t>(7));
  EXPECT_EQ(r.get_int("j", 0, 10), std::nullopt);
  EXPECT_EQ(r.get_float("f", 0.0, 2.0), std::optional<double>(1.5));
  EXPECT_EQ(r.get_float("g", 0.0, 2.0), std::nullopt);
  EXPECT_EQ(r.get_bool("b"), std::optional<bool>(false));
  EXPECT_EQ(r.get_bool("c"), std::nullopt);
  EXPECT_EQ(r.get_string("s"), std::optional<std::string>("x"));
  EXPECT_EQ(r.get_string("t"), std::nullopt);
}

TEST(TableReader, HasAndGetNode) {
  const toml::table doc = parse("a = 1\nd = { dist = \"uniform\" }\n");
  TableReader r(&doc, "", "f.toml");
  EXPECT_TRUE(r.has("a"));
  EXPECT_FALSE(r.has("b"));
  const toml::node* d = r.get_node("d");
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(d->is_table());
  EXPECT_EQ(r.get_node("zzz"), nullptr);
  r.get_int("a", 0, 0, 5);
  EXPECT_NO_THROW(r.finish({"a", "d"}));  // get_node marked d as read
}

TEST(TableReader, AbsentTableGivesDefaults) {
  TableReader r(nullptr, "grammar", "f.toml");
  EXPECT_FALSE(r.has("vocab"));
  EXPECT_EQ(r.get_int("vocab", 41, 2, 53), 41);
  EXPECT_EQ(r.get_node("vocab"), nullptr);
  TableReader sub = r.get_table("x");
  EXPECT_FALSE(sub.has("y"));
  EXPECT_EQ(sub.full_key("y"), "grammar.x.y");
  EXPECT_NO_THROW(r.finish({"vocab"}));
}

TEST(TableReader, WrongTypes) {
  const toml::table doc = parse(
      "[grammar]\nvocab = \"41\"\nscale = 1\ndepth = 40.0\ndensity = \"0.4\"\nname = 3\n"
      "protocol = true\nsub = 5\nwhen = 2020-01-01\nlist = [1, 2]\n");
  TableReader g = TableReader(&doc, "", "f.toml").get_table("grammar");
  EXPECT_EQ(error_of([&] { g.get_int("vocab", 0, 0, 100); }),
            "f.toml:2: grammar.vocab: expected an integer, got string \"41\"");
  EXPECT_EQ(error_of([&] { g.get_bool("scale", false); }),
            "f.toml:3: grammar.scale: expected true or false, got integer 1");
  // A float where an integer is expected is an error, even when it is whole.
  EXPECT_EQ(error_of([&] { g.get_int("depth", 0, 0, 100); }),
            "f.toml:4: grammar.depth: expected an integer, got float 40.0");
  EXPECT_EQ(error_of([&] { g.get_float("density", 0.0, 0.0, 1.0); }),
            "f.toml:5: grammar.density: expected a number, got string \"0.4\"");
  EXPECT_EQ(error_of([&] { g.get_string("name", ""); }),
            "f.toml:6: grammar.name: expected a string, got integer 3");
  EXPECT_EQ(error_of([&] {
              g.get_enum("protocol", "clean", {"reference", "clean"});
            }),
            "f.toml:7: grammar.protocol: expected one of the strings reference, clean, got "
            "boolean true");
  EXPECT_EQ(error_of([&] { g.get_table("sub"); }),
            "f.toml:8: grammar.sub: expected a table, got integer 5");
  EXPECT_EQ(error_of([&] { g.get_int("when", 0, 0, 100); }),
            "f.toml:9: grammar.when: expected an integer, got date 2020-01-01");
  EXPECT_EQ(error_of([&] { g.get_float("list", 0.0, 0.0, 100.0); }),
            "f.toml:10: grammar.list: expected a number, got array [1, 2]");
}

TEST(TableReader, Ranges) {
  const toml::table doc = parse("v = 54\nn = -1\np = 1.5\nq = -0.1\nr = nan\nbig = 5\nneg = -3\n");
  TableReader r(&doc, "", "f.toml");
  EXPECT_EQ(error_of([&] { r.get_int("v", 0, 2, 53); }),
            "f.toml:1: v: value 54 is out of range [2, 53]");
  EXPECT_EQ(error_of([&] { r.get_int("n", 0, 0, std::numeric_limits<std::int64_t>::max()); }),
            "f.toml:2: n: value -1 is out of range >= 0");
  EXPECT_EQ(error_of([&] { r.get_float("p", 0.0, 0.0, 1.0); }),
            "f.toml:3: p: value 1.5 is out of range [0, 1]");
  EXPECT_EQ(error_of([&] { r.get_float("q", 0.0, 0.0, 1.0); }),
            "f.toml:4: q: value -0.1 is out of range [0, 1]");
  EXPECT_EQ(error_of([&] { r.get_float("r", 0.0, 0.0, 1.0); }),
            "f.toml:5: r: value nan is out of range [0, 1]");
  EXPECT_EQ(error_of([&] { r.get_float("big", 0.0, 0.0, 2.5); }),
            "f.toml:6: big: value 5 is out of range [0, 2.5]");
  EXPECT_EQ(
      error_of([&] { r.get_float("neg", 0.0, 0.0, std::numeric_limits<double>::infinity()); }),
      "f.toml:7: neg: value -3 is out of range >= 0");
  // The bounds themselves are allowed.
  const toml::table edges = parse("a = 2\nb = 53\nc = 0\nd = 1.0\n");
  TableReader e(&edges, "", "f.toml");
  EXPECT_EQ(e.get_int("a", 0, 2, 53), 2);
  EXPECT_EQ(e.get_int("b", 0, 2, 53), 53);
  EXPECT_EQ(e.get_float("c", 0.5, 0.0, 1.0), 0.0);
  EXPECT_EQ(e.get_float("d", 0.5, 0.0, 1.0), 1.0);
}

TEST(TableReader, UnknownEnumValue) {
  const toml::table doc = parse("[task]\nprotocol = \"referense\"\nlabels = \"banana\"\n");
  TableReader t = TableReader(&doc, "", "f.toml").get_table("task");
  EXPECT_EQ(error_of([&] {
              t.get_enum("protocol", "clean", {"reference", "clean"});
            }),
            "f.toml:2: task.protocol: unknown value \"referense\"; did you mean \"reference\"? "
            "(allowed: reference, clean)");
  EXPECT_EQ(error_of([&] {
              t.get_enum("labels", "state", {"state", "next_symbol"});
            }),
            "f.toml:3: task.labels: unknown value \"banana\" (allowed: state, next_symbol)");
}

TEST(TableReader, FinishReportsUnknownKeyWithSuggestion) {
  const toml::table doc = parse("[grammar]\nvocab = 41\nambiguties = 40\n");
  TableReader root(&doc, "", "tasks/task2.toml");
  TableReader g = root.get_table("grammar");
  g.get_int("vocab", 41, 2, 53);
  g.get_int("ambiguities", 40, 0, 52);
  EXPECT_EQ(error_of([&] {
              g.finish({"vocab", "ambiguities", "ambiguity_depth"});
            }),
            "tasks/task2.toml:3: grammar.ambiguties: unknown key; did you mean 'ambiguities'? "
            "(allowed: vocab, ambiguities, ambiguity_depth)");
}

TEST(TableReader, FinishWithoutSuggestion) {
  const toml::table doc = parse("banana = 1\n");
  TableReader root(&doc, "", "f.toml");
  EXPECT_EQ(error_of([&] {
              root.finish({"task", "grammar"});
            }),
            "f.toml:1: banana: unknown key (allowed: task, grammar)");
  EXPECT_EQ(error_of([&] { root.finish({}); }),
            "f.toml:1: banana: unknown key (this table takes no keys)");
}

TEST(TableReader, FinishReportsMisspeltTable) {
  const toml::table doc = parse("[task]\nseed = 1\n\n[grammer]\nvocab = 41\n");
  TableReader root(&doc, "", "f.toml");
  root.get_table("task");
  root.get_table("grammar");
  EXPECT_EQ(error_of([&] {
              root.finish({"task", "grammar", "sequence", "train", "test"});
            }),
            "f.toml:4: grammer: unknown table; did you mean 'grammar'? (allowed: task, grammar, "
            "sequence, train, test)");
}

TEST(TableReader, FinishReportsFirstUnknownKeyInDocumentOrder) {
  // toml++ keeps keys sorted; the report follows the file.
  const toml::table doc = parse("zeta = 1\nalpha = 2\n");
  TableReader r(&doc, "", "f.toml");
  EXPECT_TRUE(Contains(error_of([&] { r.finish({"x"}); }), "f.toml:1: zeta: unknown key"));
}

TEST(TableReader, FailPointsAtTableForAbsentKeys) {
  const toml::table doc = parse("\n[train]\nsize = 3\n");
  TableReader train = TableReader(&doc, "", "f.toml").get_table("train");
  EXPECT_EQ(error_of([&] { train.fail("noise", "missing"); }), "f.toml:2: train.noise: missing");
  EXPECT_EQ(error_of([&] { train.fail("size", "bad"); }), "f.toml:3: train.size: bad");
  TableReader none(nullptr, "test", "f.toml");
  EXPECT_EQ(error_of([&] { none.fail("noise", "missing"); }), "f.toml: test.noise: missing");
  TableReader root(nullptr, "", "f.toml");
  EXPECT_EQ(error_of([&] { root.fail("", "whole file"); }), "f.toml: whole file");
}

TEST(TableReader, ValuesFromOverridesNameTheOverride) {
  toml::table doc = parse("[grammar]\nvocab = 41\n");
  // Values inserted by code have no source position, as --set values.
  doc["grammar"].as_table()->insert_or_assign("vocab", 60);
  doc.insert("extra", toml::table{});
  doc["extra"].as_table()->insert("k", 1);
  auto origins = std::make_shared<TableReader::Origins>();
  origins->emplace_back("grammar.vocab", "--set grammar.vocab=60");
  origins->emplace_back("extra.k", "--set extra.k=1");
  TableReader root(&doc, "", "f.toml");
  root.set_origins(origins);
  TableReader g = root.get_table("grammar");
  EXPECT_EQ(error_of([&] { g.get_int("vocab", 41, 2, 53); }),
            "f.toml: grammar.vocab: value 60 is out of range [2, 53] (from --set "
            "grammar.vocab=60)");
  root.get_table("grammar");
  // An unknown table that an override created.
  EXPECT_EQ(error_of([&] { root.finish({"grammar"}); }),
            "f.toml: extra: unknown table (allowed: grammar) (from --set extra.k=1)");
}

TEST(TableReader, ValueText) {
  const toml::table doc = parse(
      "a = 0.1\nb = 1.0\nc = 20\nd = \"cl\\\"ean\"\ne = [1, 2.5, \"x\"]\n"
      "f = { dist = \"uniform\", low = 0.1, high = 1.0 }\ng = true\nh = 1e-7\ni = -inf\n");
  EXPECT_EQ(TableReader::value_text(*doc.get("a")), "0.1");
  EXPECT_EQ(TableReader::value_text(*doc.get("b")), "1.0");
  EXPECT_EQ(TableReader::value_text(*doc.get("c")), "20");
  EXPECT_EQ(TableReader::value_text(*doc.get("d")), "\"cl\\\"ean\"");
  EXPECT_EQ(TableReader::value_text(*doc.get("e")), "[1, 2.5, \"x\"]");
  // Keys in the order they were written, not sorted.
  EXPECT_EQ(TableReader::value_text(*doc.get("f")),
            "{ dist = \"uniform\", low = 0.1, high = 1.0 }");
  EXPECT_EQ(TableReader::value_text(*doc.get("g")), "true");
  EXPECT_EQ(TableReader::value_text(*doc.get("h")), "1e-07");
  EXPECT_EQ(TableReader::value_text(*doc.get("i")), "-inf");
  EXPECT_EQ(TableReader::describe(*doc.get("f")), "table");
  EXPECT_EQ(TableReader::describe(*doc.get("a")), "float 0.1");
  EXPECT_EQ(TableReader::describe(*doc.get("e")), "array [1, 2.5, \"x\"]");
}

}  // namespace
}  // namespace sb
