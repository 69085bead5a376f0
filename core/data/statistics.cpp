#include "core/data/statistics.hpp"

#include <algorithm>
#include <set>
#include <sstream>

namespace sb {

GrammarStatistics grammar_statistics(const Grammar& g, const DataSpec& spec, std::int64_t samples,
                                     int threads) {
  GrammarStatistics st;
  st.states = g.num_states();
  st.transitions = g.num_transitions();
  st.attempts = g.attempts;
  st.out_degree_min = g.num_states() > 1 ? g.out_degree(1) : 0;
  for (int s = 1; s < g.num_states(); ++s) {
    st.out_degree_min = std::min(st.out_degree_min, g.out_degree(s));
    st.out_degree_max = std::max(st.out_degree_max, g.out_degree(s));
    if (g.next_state(s, Grammar::kEnd) >= 0) ++st.states_with_end_edge;
  }
  st.out_degree_mean =
      g.num_states() > 1 ? static_cast<double>(st.transitions) / (g.num_states() - 1) : 0.0;
  std::set<int> letters;
  for (int s : g.start_states()) {
    st.start_states.push_back(g.state_name(s));
    st.start_letter_collision |= !letters.insert(g.symbol_of(s)).second;
  }

  st.samples = samples;
  if (samples > 0) {
    const SymbolSet set = generate_symbols(g, spec, Split::kTrain, 0, samples, threads);
    const StringStats& s = set.stats;
    st.strings_drawn = s.attempts;
    st.string_accept_rate = s.attempts ? static_cast<double>(s.accepted) / s.attempts : 0.0;
    st.accepted_string_length_mean =
        s.accepted ? static_cast<double>(s.accepted_length) / s.accepted : 0.0;
    st.strings_per_sample_mean = static_cast<double>(s.accepted) / samples;
    const auto& data = set.data();
    const auto ends = std::count(data.begin(), data.end(), std::uint16_t{0});
    st.end_elements_per_sample_mean = static_cast<double>(ends) / samples;
  }
  return st;
}

std::string grammar_to_dot(const Grammar& g) {
  std::ostringstream out;
  out << "digraph grammar {\n  rankdir=LR;\n  node [shape=circle];\n";
  out << "  \"#\" [shape=doublecircle];\n";
  for (std::size_t i = 0; i < g.start_states().size(); ++i) {
    out << "  start" << i << " [shape=point, style=invis];\n";
    out << "  start" << i << " -> \"" << g.state_name(g.start_states()[i]) << "\";\n";
  }
  for (int s = 0; s < g.num_states(); ++s) {
    const std::uint16_t* succ = g.successors_begin(s);
    for (int i = 0; i < g.out_degree(s); ++i) {
      out << "  \"" << g.state_name(s) << "\" -> \"" << g.state_name(succ[i]) << "\" [label=\""
          << Grammar::symbol_name(g.symbol_of(succ[i])) << "\"];\n";
    }
  }
  out << "}\n";
  return out.str();
}

}  // namespace sb
