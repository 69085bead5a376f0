// From a sample's symbols to model time steps: blank gaps and distractor gaps (data.md §7).
//
// Each element (a grammar symbol) becomes one one-hot step, followed by its gap:
//   - blank gap: `ceil(d / 0.1)` zero steps;
//   - grammar gap (distractors): `round_half_even(d / 0.1)` steps, each a uniformly drawn symbol that
//     the grammar forbids after the element's state; no steps if nothing is forbidden.
// The gap duration d (time units of 0.1 step) is 0 before element `start` and with probability
// 1 - prob; otherwise a constant, or U(low, high) rounded to one decimal. Element e's window is its
// symbol step plus its gap steps; windows tile the time axis. The label of every step of a window is
// the element's hidden state. Noise is not applied here but when a batch is made (core/tensor).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/data/grammar.hpp"

namespace sb {

// One time step lasts 0.1 time units for one-hot inputs (data.md §2.2).
inline constexpr double kTimestep = 0.1;

struct Duration {
  enum class Kind { kConstant, kUniform };
  Kind kind = Kind::kConstant;
  double value = 0.1;  // kConstant
  double low = 0.1;    // kUniform
  double high = 0.1;   // kUniform
  double max() const { return kind == Kind::kConstant ? value : high; }
  std::string describe() const;
};

enum class GapFill { kBlank, kGrammar };

struct GapSpec {
  GapFill fill = GapFill::kBlank;
  int start = 0;      // first element that may be followed by a gap
  double prob = 1.0;  // probability of a gap after an element at or past `start`
  Duration duration;
  std::string describe() const;
};

std::string validate(const GapSpec& gap);

// Steps in a gap of duration d: blanks use ceil(d/0.1), distractors round-half-even(d/0.1). A d
// within 1e-9 of a multiple of 0.1 counts as that multiple, so 0.3 gives 3 in both.
int blank_steps(double duration);
int distractor_steps(double duration);

// A realised sample, without noise.
struct Item {
  std::vector<std::int8_t> step_symbol;      // [T] symbol on symbol and distractor steps, -1 blank
  std::vector<std::uint32_t> element_start;  // [E+1] element e covers [start[e], start[e+1])
  int steps() const { return static_cast<int>(step_symbol.size()); }
  int elements() const { return static_cast<int>(element_start.size()) - 1; }
};

// Realises the sample with hidden states `states[0..length)` using the gap stream `gap_key`.
Item realize(const Grammar& grammar, const GapSpec& gap, const std::uint16_t* states, int length,
             std::uint64_t gap_key);

}  // namespace sb
