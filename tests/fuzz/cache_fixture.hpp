// The small task whose symbol cache fuzz_data_cache checks inputs against, and that
// fuzz_seed_cache writes the seed of (a valid cache file, so mutations start from one).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/config/task.hpp"
#include "core/data/dataset.hpp"
#include "core/data/grammar.hpp"

namespace sb::fuzz {

// Gaps of random durations and a noisy test split: realising a sample walks every table the
// state ids index.
inline constexpr const char* kCacheTask = R"(
[task]
name = "fuzz_cache"
seed = 3
[grammar]
vocab = 5
ambiguities = 3
ambiguity_depth = 2
[sequence]
length = 12
max_string_length = 12
[train]
size = 6
[train.gap]
fill = "blank"
start = 0
prob = 0.5
duration = 0.3
[test]
size = 4
noise = 0.1
)";

struct CacheFixture {
  DataSpec spec;
  Split split = Split::kTrain;
  std::int64_t count = 0;
  std::shared_ptr<const Grammar> grammar;
  std::string key;

  CacheFixture() {
    const TaskSpec task = parse_task_variants(kCacheTask, "fuzz_cache.toml").at(0);
    spec = task.data;
    count = spec.split(split).size;
    grammar = std::make_shared<const Grammar>(make_grammar(spec.grammar, spec.seed));
    key = symbols_cache_key(spec, split);
  }
};

}  // namespace sb::fuzz
