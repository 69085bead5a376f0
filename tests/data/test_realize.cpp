#include <gtest/gtest.h>

#include <map>
#include <numeric>
#include <vector>

#include "core/data/realize.hpp"
#include "core/data/sequence.hpp"
#include "core/util/random.hpp"

namespace sb {
namespace {

struct Fixture {
  Grammar g;
  std::vector<std::uint16_t> states;
};

Fixture make_fixture(int length = 200, std::uint64_t seed = 1) {
  GrammarParams p;  // amb = 40 defaults
  Fixture f{make_grammar(p, seed), std::vector<std::uint16_t>(length)};
  SequenceParams q;
  q.length = length;
  sample_states(f.g, q, 99, f.states.data());
  return f;
}

GapSpec blank_gap(double low, double high) {
  GapSpec gap;
  gap.duration.kind = Duration::Kind::kUniform;
  gap.duration.low = low;
  gap.duration.high = high;
  return gap;
}

// Windows tile the time axis; the symbol step of each element carries the element's symbol.
void check_tiling(const Grammar& g, const std::vector<std::uint16_t>& states, const Item& item) {
  ASSERT_EQ(item.elements(), static_cast<int>(states.size()));
  EXPECT_EQ(item.element_start.front(), 0U);
  EXPECT_EQ(item.element_start.back(), static_cast<std::uint32_t>(item.steps()));
  for (int e = 0; e < item.elements(); ++e) {
    ASSERT_LT(item.element_start[e], item.element_start[e + 1]);
    EXPECT_EQ(item.step_symbol[item.element_start[e]], g.symbol_of(states[e]));
  }
}

TEST(Duration, StepArithmetic) {
  // data.md §7.3: blanks ceil(d/0.1), distractors round-half-even(d/0.1); multiples of 0.1 exact.
  for (int k = 0; k <= 100; ++k) {
    EXPECT_EQ(blank_steps(k / 10.0), k);
    EXPECT_EQ(distractor_steps(k / 10.0), k);
  }
  EXPECT_EQ(blank_steps(1.1), 11);  // 1.1/0.1 = 11.000000000000002 in floating point
  EXPECT_EQ(blank_steps(0.25), 3);
  EXPECT_EQ(distractor_steps(0.25), 2);
  EXPECT_EQ(distractor_steps(0.75), 8);  // 7.5 rounds half to even
  EXPECT_EQ(distractor_steps(0.35), 3);  // 0.35/0.1 = 3.4999999999999996, as in Python
  EXPECT_EQ(blank_steps(10.0), 100);
}

TEST(Realize, OneBlankAfterEverySymbol) {
  // Task 1: U(0.1, 0.1) gives exactly one blank after every element: T = 400.
  const Fixture f = make_fixture();
  const Item item = realize(f.g, blank_gap(0.1, 0.1), f.states.data(), 200, 5);
  check_tiling(f.g, f.states, item);
  EXPECT_EQ(item.steps(), 400);
  for (int e = 0; e < 200; ++e) EXPECT_EQ(item.step_symbol[2 * e + 1], -1);
}

TEST(Realize, ConstantTestGaps) {
  const Fixture f = make_fixture();
  for (auto [duration, blanks] : {std::pair{1.0, 10}, {2.0, 20}, {5.0, 50}, {10.0, 100}}) {
    GapSpec gap;
    gap.duration.value = duration;
    const Item item = realize(f.g, gap, f.states.data(), 200, 5);
    check_tiling(f.g, f.states, item);
    EXPECT_EQ(item.steps(), 200 * (1 + blanks));
  }
}

TEST(Realize, BlankCountDistributionMatchesTheRoundingRule) {
  // U(0.1, 1.0) rounded to 0.1: P(1) = P(10) = 1/18, P(2..9) = 1/9, mean 5.5 (data.md §7.3).
  const Fixture f = make_fixture();
  std::map<int, int> counts;
  int total = 0;
  for (std::uint64_t key = 0; key < 200; ++key) {
    const Item item = realize(f.g, blank_gap(0.1, 1.0), f.states.data(), 200, key);
    check_tiling(f.g, f.states, item);
    for (int e = 0; e < 200; ++e) {
      ++counts[static_cast<int>(item.element_start[e + 1] - item.element_start[e]) - 1];
      ++total;
    }
  }
  ASSERT_EQ(counts.size(), 10U);
  double chi2 = 0, mean = 0;
  for (int k = 1; k <= 10; ++k) {
    const double p = (k == 1 || k == 10) ? 1.0 / 18 : 1.0 / 9;
    chi2 += (counts[k] - total * p) * (counts[k] - total * p) / (total * p);
    mean += static_cast<double>(k) * counts[k] / total;
  }
  EXPECT_LT(chi2, 27.9);  // 99.9% quantile of chi2(9), fixed streams
  EXPECT_NEAR(mean, 5.5, 0.05);
}

TEST(Realize, GapStartAndProbability) {
  const Fixture f = make_fixture();
  GapSpec gap;
  gap.start = 50;
  gap.prob = 0.1;
  int gaps = 0, eligible = 0;
  for (std::uint64_t key = 0; key < 100; ++key) {
    const Item item = realize(f.g, gap, f.states.data(), 200, key);
    check_tiling(f.g, f.states, item);
    for (int e = 0; e < 200; ++e) {
      const int g = static_cast<int>(item.element_start[e + 1] - item.element_start[e]) - 1;
      if (e < 50) {
        EXPECT_EQ(g, 0) << "gap before start";
      } else {
        EXPECT_TRUE(g == 0 || g == 1);
        gaps += g;
        ++eligible;
      }
    }
  }
  EXPECT_NEAR(static_cast<double>(gaps) / eligible, 0.1, 0.01);

  gap.prob = 0.0;
  EXPECT_EQ(realize(f.g, gap, f.states.data(), 200, 1).steps(), 200);
}

TEST(Realize, DistractorsAreForbiddenSymbols) {
  // Task 3: grammar gaps; a distractor never has an edge from the element's state.
  const Fixture f = make_fixture();
  GapSpec gap;
  gap.fill = GapFill::kGrammar;
  gap.duration.value = 0.3;  // three distractors per gap
  int distractors = 0;
  for (std::uint64_t key = 0; key < 20; ++key) {
    const Item item = realize(f.g, gap, f.states.data(), 200, key);
    check_tiling(f.g, f.states, item);
    for (int e = 0; e < 200; ++e) {
      const int state = f.states[e];
      const auto begin = item.element_start[e], end = item.element_start[e + 1];
      EXPECT_EQ(static_cast<int>(end - begin) - 1, f.g.num_forbidden(state) ? 3 : 0);
      for (auto t = begin + 1; t < end; ++t) {
        const int sym = item.step_symbol[t];
        ASSERT_GE(sym, 0);
        EXPECT_EQ(f.g.next_state(state, sym), -1) << "distractor " << sym << " is allowed";
        ++distractors;
      }
    }
  }
  EXPECT_GT(distractors, 0);
}

TEST(Realize, AfterEndEverySymbolIsADistractorCandidate) {
  // B9: after `#` the forbidden set is every symbol, `#` included.
  GrammarParams p;
  p.vocab = 6;
  p.ambiguities = 2;
  p.ambiguity_depth = 2;
  const Grammar g = make_grammar(p, 7);
  std::vector<std::uint16_t> states(1, Grammar::kEnd);
  GapSpec gap;
  gap.fill = GapFill::kGrammar;
  gap.duration.value = 5.0;  // 50 distractors
  std::vector<int> seen(6, 0);
  for (std::uint64_t key = 0; key < 10; ++key) {
    const Item item = realize(g, gap, states.data(), 1, key);
    ASSERT_EQ(item.steps(), 51);
    for (int t = 1; t < 51; ++t) ++seen[item.step_symbol[t]];
  }
  for (int k = 0; k < 6; ++k) EXPECT_GT(seen[k], 0) << "symbol " << k;
}

TEST(Realize, SameKeySameItem) {
  const Fixture f = make_fixture();
  const GapSpec gap = blank_gap(0.1, 1.0);
  const Item a = realize(f.g, gap, f.states.data(), 200, 77);
  const Item b = realize(f.g, gap, f.states.data(), 200, 77);
  const Item c = realize(f.g, gap, f.states.data(), 200, 78);
  EXPECT_EQ(a.step_symbol, b.step_symbol);
  EXPECT_EQ(a.element_start, b.element_start);
  EXPECT_NE(a.element_start, c.element_start);
}

TEST(Realize, ValidatesGaps) {
  GapSpec gap;
  gap.prob = 1.5;
  EXPECT_FALSE(validate(gap).empty());
  gap = blank_gap(1.0, 0.5);
  EXPECT_FALSE(validate(gap).empty());
  gap = GapSpec{};
  gap.duration.value = -0.1;
  EXPECT_FALSE(validate(gap).empty());
  EXPECT_TRUE(validate(GapSpec{}).empty());
}

}  // namespace
}  // namespace sb
