#include "core/data/grammar.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <numeric>

#include "core/util/random.hpp"

namespace sb {

std::string Grammar::symbol_name(int symbol) {
  if (symbol == kEnd) return "#";
  if (symbol >= 1 && symbol <= 26) return std::string(1, static_cast<char>('A' + symbol - 1));
  if (symbol >= 27 && symbol <= 52) return std::string(1, static_cast<char>('a' + symbol - 27));
  return "?";
}

int Grammar::symbol_id(char c) {
  if (c == '#') return kEnd;
  if (c >= 'A' && c <= 'Z') return c - 'A' + 1;
  if (c >= 'a' && c <= 'z') return c - 'a' + 27;
  return -1;
}

int Grammar::state_by_name(const std::string& name) const {
  if (name.empty()) return -1;
  const int symbol = symbol_id(name[0]);
  if (symbol < 0 || symbol >= vocab()) return -1;
  for (int s = 0; s < num_states(); ++s) {
    if (state_names_[s] == name) return s;
    // "X0" is an alias of the single state of a plain letter X (data.md §4).
    if (state_symbol_[s] == symbol && name.size() == 2 && name[1] == '0' &&
        state_names_[s].size() == 1 && symbol != kEnd) {
      return s;
    }
  }
  return -1;
}

std::vector<double> Grammar::next_symbol_probs(int state) const {
  std::vector<double> p(vocab(), 0.0);
  const int degree = out_degree(state);
  if (state == kEnd || degree == 0) return p;
  const std::uint16_t* succ = successors_begin(state);
  for (int i = 0; i < degree; ++i) p[symbol_of(succ[i])] += 1.0 / degree;
  return p;
}

std::string validate(const GrammarParams& p) {
  if (p.vocab < 2 || p.vocab > Grammar::kMaxVocab) {
    return "vocab must be in [2, 53] (the end symbol # and up to 52 letters A..Z, a..z)";
  }
  if (p.ambiguities < 0 || p.ambiguities > p.vocab - 1) {
    return "ambiguities must be in [0, vocab - 1] = [0, " + std::to_string(p.vocab - 1) + "]";
  }
  if (p.ambiguity_depth < 1 || p.ambiguity_depth > Grammar::kMaxDepth) {
    return "ambiguity_depth must be in [1, 100] (state names are at most 3 characters)";
  }
  if (!(p.transition_density > 0.0 && p.transition_density <= 1.0)) {
    return "transition_density must be in (0, 1]";
  }
  if (p.initial_states < 1 || p.initial_states > p.num_states() - 1) {
    return "initial_states must be in [1, number of states - 1] = [1, " +
           std::to_string(p.num_states() - 1) + "]";
  }
  if (p.max_attempts < 1) return "max_attempts must be at least 1";
  return infeasibility(p);
}

std::string infeasibility(const GrammarParams& p) {
  // Expected out-degree of a state: one draw per symbol, kept with probability min(1, n * td)
  // for a symbol of n instances (`#` and plain letters 1, ambiguous letters ambiguity_depth).
  const double td = p.instance_density();
  const double plain = static_cast<double>(1 + p.letters() - p.ambiguities);
  const double m = plain * std::min(1.0, td) +
                   p.ambiguities * std::min(1.0, p.ambiguity_depth * td);
  if (m >= 1.0) return {};
  const double log_chance = std::log(static_cast<double>(p.max_attempts)) +
                            static_cast<double>(p.num_states() - 1) * std::log(m);
  if (log_chance >= std::log(1e-9)) return {};
  char buf[320];
  std::snprintf(buf, sizeof(buf),
                "transition_density = %g cannot produce a grammar: a state has %.3g outgoing edges "
                "on average, so %d draws find one in which each of the %d states reaches # with a "
                "chance below 1e-9; raise transition_density (the reference uses 0.4)",
                p.transition_density, m, p.max_attempts, p.num_states() - 1);
  return buf;
}

namespace {

// Every state has a directed path to `#`: a breadth-first search from `#` over reversed edges.
bool all_reach_end(int num_states, const std::vector<std::vector<int>>& predecessors) {
  std::vector<char> seen(num_states, 0);
  std::deque<int> queue{Grammar::kEnd};
  seen[Grammar::kEnd] = 1;
  int count = 1;
  while (!queue.empty()) {
    const int s = queue.front();
    queue.pop_front();
    for (int p : predecessors[s]) {
      if (!seen[p]) {
        seen[p] = 1;
        ++count;
        queue.push_back(p);
      }
    }
  }
  return count == num_states;
}

}  // namespace

Grammar make_grammar(const GrammarParams& params, std::uint64_t seed) {
  if (std::string problem = validate(params); !problem.empty()) throw GrammarError(problem);
  const int V = params.vocab;
  const int L = params.letters();
  const int D = params.ambiguity_depth;
  const int S = params.num_states();
  const double td = params.instance_density();

  CounterRng rng(stream_key(seed, StreamPurpose::kGrammar, Split::kTrain));

  Grammar g;
  g.params = params;
  g.seed = seed;
  std::vector<int> first_state(V, 0);  // first state id of each symbol
  std::vector<int> instances(V, 1);    // states per symbol
  std::vector<std::vector<int>> adjacency(S);
  std::vector<std::vector<int>> predecessors(S);

  for (int attempt = 1; attempt <= params.max_attempts; ++attempt) {
    // Ambiguous letters: a uniformly random ordered subset (partial Fisher-Yates).
    std::vector<int> letters(L);
    std::iota(letters.begin(), letters.end(), 1);
    for (int i = 0; i < params.ambiguities; ++i) {
      const int j = i + static_cast<int>(rng.below(static_cast<std::uint32_t>(L - i)));
      std::swap(letters[i], letters[j]);
    }
    std::vector<char> is_ambiguous(V, 0);
    g.ambiguous_letters_.assign(letters.begin(), letters.begin() + params.ambiguities);
    for (int a : g.ambiguous_letters_) is_ambiguous[a] = 1;

    // State ids in classification order: `#`, then letters by symbol id (data.md §4).
    g.state_symbol_.assign(1, Grammar::kEnd);
    g.state_names_.assign(1, "#");
    for (int a = 1; a < V; ++a) {
      first_state[a] = static_cast<int>(g.state_symbol_.size());
      instances[a] = is_ambiguous[a] ? D : 1;
      for (int k = 0; k < instances[a]; ++k) {
        g.state_symbol_.push_back(a);
        g.state_names_.push_back(Grammar::symbol_name(a) +
                                 (is_ambiguous[a] ? std::to_string(k) : std::string()));
      }
    }

    // Edges: for each (source, symbol), one uniformly chosen instance of the symbol, kept with
    // probability instances * td. Edges leaving `#` are dropped, so `#` sources are skipped.
    for (int s = 0; s < S; ++s) {
      adjacency[s].clear();
      predecessors[s].clear();
    }
    for (int src = 1; src < S; ++src) {
      for (int a = 0; a < V; ++a) {
        const int n = instances[a];
        const int k = n > 1 ? static_cast<int>(rng.below(static_cast<std::uint32_t>(n))) : 0;
        if (rng.uniform() < n * td) {
          const int dst = first_state[a] + k;
          adjacency[src].push_back(dst);
          predecessors[dst].push_back(src);
        }
      }
    }

    // Start states: drawn from all states without replacement; a draw of `#` invalidates.
    std::vector<int> pool(S);
    std::iota(pool.begin(), pool.end(), 0);
    g.start_states_.clear();
    bool start_is_end = false;
    for (int i = 0; i < params.initial_states; ++i) {
      const int j = i + static_cast<int>(rng.below(static_cast<std::uint32_t>(S - i)));
      std::swap(pool[i], pool[j]);
      g.start_states_.push_back(pool[i]);
      start_is_end |= pool[i] == Grammar::kEnd;
    }

    if (start_is_end || !all_reach_end(S, predecessors)) continue;

    g.attempts = attempt;
    g.successor_offset_.assign(1, 0);
    g.successors_.clear();
    g.next_state_.assign(static_cast<size_t>(S) * V, -1);
    g.forbidden_offset_.assign(1, 0);
    g.forbidden_.clear();
    for (int s = 0; s < S; ++s) {
      std::sort(adjacency[s].begin(), adjacency[s].end());
      for (int dst : adjacency[s]) {
        g.successors_.push_back(static_cast<std::uint16_t>(dst));
        g.next_state_[static_cast<size_t>(s) * V + g.state_symbol_[dst]] = dst;
      }
      g.successor_offset_.push_back(static_cast<std::uint32_t>(g.successors_.size()));
      for (int a = 0; a < V; ++a) {
        if (g.next_state_[static_cast<size_t>(s) * V + a] < 0) {
          g.forbidden_.push_back(static_cast<std::uint8_t>(a));
        }
      }
      g.forbidden_offset_.push_back(static_cast<std::uint32_t>(g.forbidden_.size()));
    }
    return g;
  }
  throw GrammarError("could not generate a valid grammar in " +
                     std::to_string(params.max_attempts) +
                     " attempts (every state must reach # and no start state may be #); "
                     "try another seed or a higher transition_density");
}

}  // namespace sb
