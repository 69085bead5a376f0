// Counter-based random streams.
//
// Every random quantity in selectivbench comes from a stream named by a key
// (seed, purpose, split, sample index, epoch). The i-th draw of a stream is a pure function of its key
// and i, so a dataset is the same bytes whatever the thread count or the order of generation
// (spec README: "Our own random streams"). Bit compatibility with numpy or PyTorch is not a goal.
//
// The generator is SplitMix64 evaluated at counter i of a 64-bit stream key (the key is itself a
// SplitMix-style hash of the naming tuple). SplitMix64 passes BigCrush; streams of unrelated keys
// overlap only if two random 64-bit keys land within a few thousand strides of each other.
#pragma once

#include <cstdint>

namespace sb {

// What a stream is used for. Values are part of the data format: never renumber.
enum class StreamPurpose : std::uint64_t {
  kGrammar = 1,
  kSymbols = 2,
  kGaps = 3,   // gap occurrence, gap duration and distractor identity
  kNoise = 4,  // uniform input noise, drawn when a batch is made
  kStatistics = 5,
};

// Which split a stream belongs to. Values are part of the data format: never renumber.
enum class Split : std::uint64_t { kTrain = 0, kTest = 1 };

const char* split_name(Split split);

// The SplitMix64 finaliser (Stafford's mix 13): a bijection on 64-bit words with full avalanche.
constexpr std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

inline constexpr std::uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

// Hash of the naming tuple of a stream.
constexpr std::uint64_t stream_key(std::uint64_t seed, StreamPurpose purpose, Split split,
                                   std::uint64_t index = 0, std::uint64_t epoch = 0) {
  std::uint64_t h = mix64(seed + kGolden);
  h = mix64(h ^ (static_cast<std::uint64_t>(purpose) * kGolden));
  h = mix64(h ^ ((static_cast<std::uint64_t>(split) + 1) * 0xd1b54a32d192ed03ULL));
  h = mix64(h ^ (index * 0xa0761d6478bd642fULL + 1));
  h = mix64(h ^ (epoch * 0xe7037ed1a0b428dbULL + 2));
  return h;
}

// A stream: draw i is mix64(key + (i + 1) * golden).
class CounterRng {
 public:
  explicit constexpr CounterRng(std::uint64_t key) : key_(key) {}

  constexpr std::uint64_t next_u64() {
    ++counter_;
    return mix64(key_ + counter_ * kGolden);
  }

  // Uniform double in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

  // Uniform float in [0, 1) with 24 random bits.
  float uniform_float() { return static_cast<float>(next_u64() >> 40) * 0x1.0p-24F; }

  // Uniform integer in [0, n), n >= 1, exactly unbiased (Lemire's multiply-and-reject).
  std::uint32_t below(std::uint32_t n) {
    std::uint64_t m = static_cast<std::uint64_t>(static_cast<std::uint32_t>(next_u64() >> 32)) * n;
    auto low = static_cast<std::uint32_t>(m);
    if (low < n) {
      const std::uint32_t threshold = (0U - n) % n;
      while (low < threshold) {
        m = static_cast<std::uint64_t>(static_cast<std::uint32_t>(next_u64() >> 32)) * n;
        low = static_cast<std::uint32_t>(m);
      }
    }
    return static_cast<std::uint32_t>(m >> 32);
  }

  std::uint64_t draws() const { return counter_; }

 private:
  std::uint64_t key_;
  std::uint64_t counter_ = 0;
};

}  // namespace sb
