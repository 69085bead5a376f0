// Symbol sequences: length-conditioned grammar strings concatenated into fixed-length samples
// (data.md §5).
//
// A string starts at a uniformly chosen start state and follows uniformly chosen successors until
// it reaches `#`. Strings longer than max_string_length (or shorter than min_string_length) are
// rejected and drawn again, so the data follow the length-conditioned string distribution. A sample
// concatenates accepted strings and is cut at exactly `length` elements.
#pragma once

#include <cstdint>
#include <stdexcept>

#include "core/data/grammar.hpp"

namespace sb {

struct SequenceParams {
  int length = 200;              // elements per sample
  int min_string_length = 1;     // including the final `#`
  int max_string_length = 200;   // including the final `#`
  int max_string_tries = 10001;  // draws of one string before the sample fails
};

std::string validate(const SequenceParams& params);

struct SampleError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Counts of string draws, for the grammar statistics.
struct StringStats {
  std::uint64_t attempts = 0;         // strings drawn
  std::uint64_t accepted = 0;         // strings within the length limits
  std::uint64_t accepted_length = 0;  // summed length of accepted strings (with `#`)
  std::uint64_t samples = 0;
  void add(const StringStats& o) {
    attempts += o.attempts;
    accepted += o.accepted;
    accepted_length += o.accepted_length;
    samples += o.samples;
  }
};

// Writes the hidden states of one sample, states[0 .. params.length), drawing from the stream
// `key`. Symbols follow as grammar.symbol_of(state). Throws SampleError when one string needs more
// than max_string_tries draws. Updates `stats` when given.
void sample_states(const Grammar& grammar, const SequenceParams& params, std::uint64_t key,
                   std::uint16_t* states, StringStats* stats = nullptr);

}  // namespace sb
