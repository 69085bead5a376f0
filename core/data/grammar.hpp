// Random partial deterministic automata with ambiguous letters (data.md §3–§4).
//
// A grammar is built once per run from its parameters and the data seed. It has V symbols: the end
// symbol `#` (id 0) and V-1 letters A..Z, a..z (ids 1..52). `ambiguities` of the letters are split into
// `ambiguity_depth` hidden states each ("A0".."A39"); the other letters have one state each. Every
// state has at most one successor per symbol, so the hidden state is a function of the symbol history
// and its start state.
//
// State ids are the reference's classification ids (data.md §4): id 0 is `#`, then letters in symbol
// order, an ambiguous letter taking `ambiguity_depth` consecutive ids. The ids therefore do not
// depend on which letters were drawn as ambiguous.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace sb {

struct GrammarParams {
  int vocab = 41;              // V: symbols including `#`; 2..53
  int ambiguities = 40;        // letters split into hidden instances; 0..V-1
  int ambiguity_depth = 40;    // D: instances per ambiguous letter; 1..100
  double transition_density = 0.4;  // base density; the per-instance edge probability is this / D
  int initial_states = 4;      // start states drawn per grammar
  int max_attempts = 100000;   // attempts before "could not generate grammar"

  int letters() const { return vocab - 1; }
  // Classes of the state-classification task: amb·D + (V-1-amb) + 1.
  int num_states() const { return ambiguities * ambiguity_depth + (vocab - 1 - ambiguities) + 1; }
  double instance_density() const { return transition_density / ambiguity_depth; }
};

// Thrown when no valid grammar is found within max_attempts, or on impossible parameters.
struct GrammarError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Grammar {
 public:
  static constexpr int kEnd = 0;  // id of `#`, both as symbol and as state
  static constexpr int kMaxVocab = 53;
  static constexpr int kMaxDepth = 100;

  GrammarParams params;
  std::uint64_t seed = 0;
  int attempts = 0;  // attempts used to find a valid grammar

  int num_states() const { return static_cast<int>(state_symbol_.size()); }
  int vocab() const { return params.vocab; }
  int num_transitions() const { return static_cast<int>(successors_.size()); }

  int symbol_of(int state) const { return state_symbol_[state]; }
  const std::string& state_name(int state) const { return state_names_[state]; }
  // Letters chosen ambiguous, as symbol ids in draw order.
  const std::vector<int>& ambiguous_letters() const { return ambiguous_letters_; }
  const std::vector<int>& start_states() const { return start_states_; }

  // Successor states of `state`, ascending; all equally likely.
  const std::uint16_t* successors_begin(int state) const {
    return successors_.data() + successor_offset_[state];
  }
  int out_degree(int state) const {
    return static_cast<int>(successor_offset_[state + 1] - successor_offset_[state]);
  }
  // The state reached from `state` on `symbol`, or -1 when the grammar forbids that symbol.
  int next_state(int state, int symbol) const { return next_state_[state * vocab() + symbol]; }

  // Symbols the grammar forbids after `state` (data.md §7.2: all symbols after `#`), ascending.
  const std::uint8_t* forbidden_begin(int state) const {
    return forbidden_.data() + forbidden_offset_[state];
  }
  int num_forbidden(int state) const {
    return static_cast<int>(forbidden_offset_[state + 1] - forbidden_offset_[state]);
  }

  // P_next(state) over the V symbols (data.md §4): the probability that `symbol` comes next.
  // All zeros for `#`.
  std::vector<double> next_symbol_probs(int state) const;

  // Name of a symbol id: "#", "A".."Z", "a".."z".
  static std::string symbol_name(int symbol);
  // Symbol id of a letter or `#`; -1 if the character is not a symbol.
  static int symbol_id(char c);
  // Looks a state up by its name ("#", "C", "A12", with "X0" accepted for a single-state letter X).
  // Returns -1 if there is no such state.
  int state_by_name(const std::string& name) const;

  friend Grammar make_grammar(const GrammarParams& params, std::uint64_t seed);

 private:
  std::vector<int> state_symbol_;
  std::vector<std::string> state_names_;
  std::vector<std::uint32_t> successor_offset_;
  std::vector<std::uint16_t> successors_;
  std::vector<int> next_state_;
  std::vector<std::uint32_t> forbidden_offset_;
  std::vector<std::uint8_t> forbidden_;
  std::vector<int> start_states_;
  std::vector<int> ambiguous_letters_;
};

// Checks the parameters; returns an empty string if they are valid, else what is wrong.
std::string validate(const GrammarParams& params);

// "" unless no grammar can be drawn in practice: every state but `#` needs an outgoing edge, so a
// draw succeeds with probability at most m^(S-1) (m: a state's expected out-degree, S: states);
// when max_attempts draws together have a chance below 1e-9, says so (transition_density = 1e-320
// otherwise ran for minutes before failing).
std::string infeasibility(const GrammarParams& params);

// Builds the grammar of data.md §3.3 from `seed`. Throws GrammarError when the parameters are
// invalid or no valid grammar is found within params.max_attempts.
Grammar make_grammar(const GrammarParams& params, std::uint64_t seed);

}  // namespace sb
