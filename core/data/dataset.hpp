// Datasets: the data specification of a task, its symbol sets, and realised items (data.md §5–§7).
//
// Two protocols (README "Data protocols"):
//   reference  reproduces the reference's data quirks B1, B3, B4, B5: test sample i has the symbols of
//              training sample i; the test gap and noise are inherited from training (resolved when
//              the task is loaded); gaps and noise are re-drawn at every evaluation.
//   clean      (default) test samples come from their own streams (disjoint from training), the test
//              gap and noise are as configured, and the test set is frozen once generated.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/data/container.hpp"
#include "core/data/grammar.hpp"
#include "core/data/realize.hpp"
#include "core/data/sequence.hpp"
#include "core/util/random.hpp"

namespace sb {

enum class Protocol { kReference, kClean };
enum class LabelMode {
  kState,       // classify the hidden state of the most recent symbol (every paper task)
  kNextSymbol,  // predict the next symbol; KL metric against P_next (data.md §9.3, without B22)
};

const char* protocol_name(Protocol protocol);
const char* label_mode_name(LabelMode mode);

struct SplitSpec {
  std::int64_t size = 1000;  // samples
  GapSpec gap;
  double noise = 0.0;  // uniform input noise U[0, noise) added to every input entry
};

// Everything that determines a task's data.
struct DataSpec {
  Protocol protocol = Protocol::kClean;
  std::uint64_t seed = 1;
  GrammarParams grammar;
  SequenceParams sequence;
  SplitSpec train;
  SplitSpec test;
  LabelMode labels = LabelMode::kState;

  const SplitSpec& split(Split s) const { return s == Split::kTrain ? train : test; }
};

std::string validate(const DataSpec& spec);

// A split's symbol sequences, stored as hidden states [count, length]; symbols follow from the
// grammar. Sample i holds the states of dataset index first + i.
class SymbolSet {
 public:
  SymbolSet() = default;
  SymbolSet(std::int64_t count, int length)
      : count_(count), length_(length), states_(static_cast<size_t>(count) * length) {}

  std::int64_t count() const { return count_; }
  int length() const { return length_; }
  const std::uint16_t* states(std::int64_t i) const {
    return states_.data() + static_cast<size_t>(i) * length_;
  }
  std::uint16_t* states(std::int64_t i) { return states_.data() + static_cast<size_t>(i) * length_; }
  const std::vector<std::uint16_t>& data() const { return states_; }
  std::vector<std::uint16_t>& data() { return states_; }

  StringStats stats;  // string draws, when generated (not stored in caches)

 private:
  std::int64_t count_ = 0;
  int length_ = 0;
  std::vector<std::uint16_t> states_;
};

using ProgressFn = std::function<void(std::int64_t done, std::int64_t total)>;

// The stream of sample `index` of a split. Under the reference protocol the test split uses the
// training streams (B1), so test sample i equals training sample i.
std::uint64_t symbol_stream_key(const DataSpec& spec, Split split, std::int64_t index);

// The epoch whose gap and noise draws an access at `epoch` uses. The clean protocol's test set is
// frozen (always 0); training data and the reference protocol's test set are re-drawn per epoch
// (B5), where an epoch is a pass over the training data or an evaluation of the test set.
std::uint64_t realization_epoch(const DataSpec& spec, Split split, std::uint64_t epoch);

// The gap and noise streams of sample `index` accessed at `epoch`.
std::uint64_t gap_stream_key(const DataSpec& spec, Split split, std::int64_t index,
                             std::uint64_t epoch);
std::uint64_t noise_stream_key(const DataSpec& spec, Split split, std::int64_t index,
                               std::uint64_t epoch);

// Generates samples [first, first + count) of a split on `threads` threads (0 = all cores). The
// result does not depend on the thread count.
SymbolSet generate_symbols(const Grammar& grammar, const DataSpec& spec, Split split,
                           std::int64_t first, std::int64_t count, int threads,
                           const ProgressFn& progress = {});

// Canonical text of everything that determines a split's symbol set (the cache key).
std::string symbols_cache_key(const DataSpec& spec, Split split);

// The symbol set a cache file's sections hold, when they are a valid copy for `key` (the split's
// symbols_cache_key) and `grammar`: the key matches, the states are [count, length] u16, and every
// id is a state of the grammar. Otherwise nothing, with why in `why_not` (FormatError for a
// missing section). `path` names the file in messages.
std::optional<SymbolSet> symbols_from_cache(const std::vector<Section>& sections,
                                            const std::string& key, const Grammar& grammar,
                                            std::int64_t count, std::int64_t length,
                                            const std::string& path, std::string& why_not);

struct DatasetOptions {
  int threads = 0;          // 0 = all cores
  std::string cache_dir;    // empty: no on-disk cache
  ProgressFn progress;      // generation progress
};

class Dataset {
 public:
  Dataset(std::shared_ptr<const Grammar> grammar, DataSpec spec, Split split, SymbolSet symbols);

  // Loads the split's symbol set from the cache when it has a valid copy, else generates it (and
  // writes the cache atomically when a cache folder is set).
  static Dataset create(std::shared_ptr<const Grammar> grammar, const DataSpec& spec, Split split,
                        const DatasetOptions& options = {});

  std::int64_t size() const { return symbols_.count(); }
  Split split() const { return split_; }
  const Grammar& grammar() const { return *grammar_; }
  const std::shared_ptr<const Grammar>& grammar_ptr() const { return grammar_; }
  const DataSpec& spec() const { return spec_; }
  const SplitSpec& split_spec() const { return spec_.split(split_); }
  const SymbolSet& symbols() const { return symbols_; }
  const std::uint16_t* states(std::int64_t index) const { return symbols_.states(index); }
  // How the symbol set was obtained: "generated", "cache hit", "generated, cache written", or
  // "generated, cache ignored: <why>".
  const std::string& origin() const { return origin_; }

  // See sb::realization_epoch.
  std::uint64_t realization_epoch(std::uint64_t epoch) const {
    return sb::realization_epoch(spec_, split_, epoch);
  }

  // Sample `index` realised into steps (without noise) at `epoch`.
  Item item(std::int64_t index, std::uint64_t epoch = 0) const;
  // The noise stream of sample `index` at `epoch` (consumed when a batch is made).
  std::uint64_t noise_key(std::int64_t index, std::uint64_t epoch = 0) const;
  double noise() const { return split_spec().noise; }

 private:
  std::shared_ptr<const Grammar> grammar_;
  DataSpec spec_;
  Split split_;
  SymbolSet symbols_;
  std::string origin_ = "generated";
};

}  // namespace sb
