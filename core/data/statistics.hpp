// Statistics of a task's grammar and of the strings it produces (`selectivbench grammar`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/data/dataset.hpp"

namespace sb {

struct GrammarStatistics {
  int states = 0;
  int transitions = 0;
  double out_degree_mean = 0;
  int out_degree_min = 0;  // over states other than `#`
  int out_degree_max = 0;
  int states_with_end_edge = 0;  // states with an edge into `#`
  int attempts = 0;              // grammar draws until a valid one
  std::vector<std::string> start_states;
  // Two start states share a letter: the first element of each string cannot be resolved when it
  // is seen, which caps the achievable accuracy (data.md §3.4, B6).
  bool start_letter_collision = false;

  // Estimated from the first `samples` training samples.
  std::int64_t samples = 0;
  std::uint64_t strings_drawn = 0;
  double string_accept_rate = 0;           // strings within the length limits / strings drawn
  double accepted_string_length_mean = 0;  // with the final `#`
  double strings_per_sample_mean = 0;      // accepted strings started per sample
  double end_elements_per_sample_mean = 0; // `#` elements per sample
};

GrammarStatistics grammar_statistics(const Grammar& grammar, const DataSpec& spec,
                                     std::int64_t samples, int threads);

// The automaton in Graphviz's dot language: `#` is the accepting state, start states are marked
// with an arrow from an invisible node, edges are labelled with their symbol.
std::string grammar_to_dot(const Grammar& grammar);

}  // namespace sb
