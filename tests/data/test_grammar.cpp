#include <gtest/gtest.h>

#include <deque>
#include <numeric>
#include <set>

#include "core/data/grammar.hpp"

namespace sb {
namespace {

GrammarParams params(int vocab, int amb, int depth) {
  GrammarParams p;
  p.vocab = vocab;
  p.ambiguities = amb;
  p.ambiguity_depth = depth;
  return p;
}

struct Case {
  int vocab, amb, depth;
};

class GrammarInvariants : public ::testing::TestWithParam<Case> {};

TEST_P(GrammarInvariants, HoldForSeveralSeeds) {
  const Case c = GetParam();
  for (std::uint64_t seed : {1, 2, 3, 4, 17}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const Grammar g = make_grammar(params(c.vocab, c.amb, c.depth), seed);
    const int S = g.num_states();
    const int V = g.vocab();
    // State count = amb·depth + (V-1-amb) + 1.
    EXPECT_EQ(S, c.amb * c.depth + (c.vocab - 1 - c.amb) + 1);
    // `#` has id 0 and no successors; no start state is `#`.
    EXPECT_EQ(g.state_name(0), "#");
    EXPECT_EQ(g.out_degree(Grammar::kEnd), 0);
    for (int s : g.start_states()) EXPECT_NE(s, Grammar::kEnd);
    EXPECT_EQ(static_cast<int>(g.start_states().size()), 4);
    EXPECT_EQ(std::set<int>(g.start_states().begin(), g.start_states().end()).size(), 4U);

    std::vector<std::vector<int>> preds(S);
    for (int s = 0; s < S; ++s) {
      // At most one successor per (state, symbol), and next_state agrees with the edge list.
      std::vector<int> per_symbol(V, 0);
      for (int i = 0; i < g.out_degree(s); ++i) {
        const int dst = g.successors_begin(s)[i];
        ++per_symbol[g.symbol_of(dst)];
        EXPECT_EQ(g.next_state(s, g.symbol_of(dst)), dst);
        preds[dst].push_back(s);
      }
      for (int a = 0; a < V; ++a) {
        EXPECT_LE(per_symbol[a], 1);
        if (per_symbol[a] == 0) {
          EXPECT_EQ(g.next_state(s, a), -1);
        }
      }
      // Forbidden symbols are exactly those without a successor (all of them after `#`).
      std::set<int> forbidden(g.forbidden_begin(s), g.forbidden_begin(s) + g.num_forbidden(s));
      for (int a = 0; a < V; ++a) EXPECT_EQ(forbidden.count(a) == 1, g.next_state(s, a) < 0);
      if (s == Grammar::kEnd) {
        EXPECT_EQ(g.num_forbidden(s), V);
      }
      // P_next is a distribution for every state but `#`.
      const auto p = g.next_symbol_probs(s);
      const double total = std::accumulate(p.begin(), p.end(), 0.0);
      EXPECT_NEAR(total, s == Grammar::kEnd ? 0.0 : 1.0, 1e-12);
    }
    // Every state reaches `#`.
    std::vector<char> seen(S, 0);
    std::deque<int> queue{0};
    seen[0] = 1;
    while (!queue.empty()) {
      const int s = queue.front();
      queue.pop_front();
      for (int p : preds[s]) {
        if (!seen[p]) {
          seen[p] = 1;
          queue.push_back(p);
        }
      }
    }
    EXPECT_EQ(std::accumulate(seen.begin(), seen.end(), 0), S);
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, GrammarInvariants,
                         ::testing::Values(Case{6, 2, 2}, Case{21, 20, 20}, Case{41, 40, 40},
                                           Case{41, 10, 5}, Case{9, 8, 3}, Case{53, 52, 4}));

TEST(Grammar, StateIdsFollowTheReferenceClassOrder) {
  // data.md §4: `#`→0, then letters by symbol id, an ambiguous letter taking D consecutive ids.
  const Grammar g = make_grammar(params(41, 40, 40), 1);
  EXPECT_EQ(g.state_name(1), "A0");
  EXPECT_EQ(g.state_name(40), "A39");
  EXPECT_EQ(g.state_name(41), "B0");
  EXPECT_EQ(g.state_name(1600), "n39");
  EXPECT_EQ(g.symbol_of(1600), Grammar::symbol_id('n'));
  EXPECT_EQ(g.state_by_name("c4"), g.state_by_name("c0") + 4);
  EXPECT_EQ(g.state_by_name("#"), 0);
  EXPECT_EQ(g.state_by_name("Z"), -1);  // not a symbol of V = 41

  // Plain letters get one state named by the letter; "X0" is an alias.
  const Grammar small = make_grammar(params(6, 2, 2), 7);
  int plain = 0;
  for (int s = 1; s < small.num_states(); ++s) {
    if (small.state_name(s).size() == 1) {
      ++plain;
      EXPECT_EQ(small.state_by_name(small.state_name(s) + "0"), s);
    }
  }
  EXPECT_EQ(plain, 3);
}

TEST(Grammar, SymbolNamesAndIds) {
  EXPECT_EQ(Grammar::symbol_name(0), "#");
  EXPECT_EQ(Grammar::symbol_name(1), "A");
  EXPECT_EQ(Grammar::symbol_name(26), "Z");
  EXPECT_EQ(Grammar::symbol_name(27), "a");
  EXPECT_EQ(Grammar::symbol_name(52), "z");
  for (int k = 0; k <= 52; ++k) EXPECT_EQ(Grammar::symbol_id(Grammar::symbol_name(k)[0]), k);
  EXPECT_EQ(Grammar::symbol_id('!'), -1);
}

TEST(Grammar, EdgeDensityMatchesTheModel) {
  // Expected out-degree per non-# state = 0.4·L + 0.4/D (data.md §3.4): 16.01 at amb = 40.
  double total = 0;
  int states = 0;
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    const Grammar g = make_grammar(params(41, 40, 40), seed);
    total += g.num_transitions();
    states += g.num_states() - 1;
  }
  EXPECT_NEAR(total / states, 0.4 * 40 + 0.01, 0.15);

  // Plain letters and `#` are linked with probability 0.4/D only (B8).
  const Grammar g = make_grammar(params(41, 10, 20), 3);
  int plain_edges = 0, ambiguous_edges = 0;
  for (int s = 1; s < g.num_states(); ++s) {
    for (int i = 0; i < g.out_degree(s); ++i) {
      const std::string& name = g.state_name(g.successors_begin(s)[i]);
      (name.size() == 1 ? plain_edges : ambiguous_edges) += 1;
    }
  }
  const double sources = g.num_states() - 1;
  EXPECT_NEAR(ambiguous_edges / sources, 0.4 * 10, 0.2);
  EXPECT_NEAR(plain_edges / sources, 31 * 0.02, 0.1);  // 30 plain letters + `#`
}

TEST(Grammar, DeterministicPerSeed) {
  const Grammar a = make_grammar(params(21, 20, 20), 5);
  const Grammar b = make_grammar(params(21, 20, 20), 5);
  const Grammar c = make_grammar(params(21, 20, 20), 6);
  EXPECT_EQ(a.start_states(), b.start_states());
  EXPECT_EQ(a.num_transitions(), b.num_transitions());
  bool same = a.num_transitions() == c.num_transitions() && a.start_states() == c.start_states();
  for (int s = 0; same && s < a.num_states(); ++s) {
    for (int k = 0; k < a.vocab(); ++k) same &= a.next_state(s, k) == c.next_state(s, k);
  }
  EXPECT_FALSE(same);
  for (int s = 0; s < a.num_states(); ++s) {
    for (int k = 0; k < a.vocab(); ++k) ASSERT_EQ(a.next_state(s, k), b.next_state(s, k));
  }
}

TEST(Grammar, SmallGrammarsRetryUntilValid) {
  int retried = 0;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    retried += make_grammar(params(6, 2, 2), seed).attempts > 1;
  }
  EXPECT_GT(retried, 0);  // the toy of data.md §12 needed 4 attempts
}

TEST(Grammar, GivesUpAfterMaxAttempts) {
  GrammarParams p = params(3, 0, 1);
  p.transition_density = 0.001;  // almost never any edge: `#` unreachable
  p.initial_states = 1;
  p.max_attempts = 3;
  try {
    make_grammar(p, 1);
    FAIL() << "expected GrammarError";
  } catch (const GrammarError& e) {
    EXPECT_NE(std::string(e.what()).find("3 attempts"), std::string::npos) << e.what();
  }
}

TEST(Grammar, RejectsImpossibleParameters) {
  EXPECT_THROW(make_grammar(params(54, 2, 2), 1), GrammarError);  // more than 52 letters
  EXPECT_THROW(make_grammar(params(41, 41, 2), 1), GrammarError);  // amb > V - 1 (B14)
  EXPECT_THROW(make_grammar(params(41, 4, 0), 1), GrammarError);   // depth 0 (B14)
  EXPECT_THROW(make_grammar(params(41, 4, 101), 1), GrammarError);  // names of > 3 chars
  GrammarParams p = params(41, 40, 40);
  p.transition_density = 1.5;
  EXPECT_THROW(make_grammar(p, 1), GrammarError);
  EXPECT_NE(validate(params(41, 41, 2)).find("[0, 40]"), std::string::npos);
  EXPECT_TRUE(validate(params(41, 40, 40)).empty());
}

}  // namespace
}  // namespace sb
