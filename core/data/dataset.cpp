#include "core/data/dataset.hpp"

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/data/container.hpp"
#include "core/util/parallel.hpp"

namespace sb {

// Bump when the symbol generator's output for a given key changes: it invalidates caches.
inline constexpr int kSymbolGeneratorVersion = 1;

const char* protocol_name(Protocol p) { return p == Protocol::kReference ? "reference" : "clean"; }

const char* label_mode_name(LabelMode m) {
  return m == LabelMode::kState ? "state" : "next_symbol";
}

std::string validate(const DataSpec& spec) {
  if (auto e = validate(spec.grammar); !e.empty()) return "grammar: " + e;
  if (auto e = validate(spec.sequence); !e.empty()) return "sequence: " + e;
  for (Split s : {Split::kTrain, Split::kTest}) {
    const SplitSpec& sp = spec.split(s);
    const std::string name = split_name(s);
    if (sp.size < 0) return name + ": size must be >= 0";
    if (!(sp.noise >= 0.0 && sp.noise <= 10.0)) return name + ": noise must be in [0, 10]";
    if (auto e = validate(sp.gap); !e.empty()) return name + ".gap: " + e;
  }
  return {};
}

std::uint64_t symbol_stream_key(const DataSpec& spec, Split split, std::int64_t index) {
  const Split stream_split = spec.protocol == Protocol::kReference ? Split::kTrain : split;
  return stream_key(spec.seed, StreamPurpose::kSymbols, stream_split,
                    static_cast<std::uint64_t>(index));
}

std::uint64_t realization_epoch(const DataSpec& spec, Split split, std::uint64_t epoch) {
  const bool frozen = split == Split::kTest && spec.protocol == Protocol::kClean;
  return frozen ? 0 : epoch;
}

std::uint64_t gap_stream_key(const DataSpec& spec, Split split, std::int64_t index,
                             std::uint64_t epoch) {
  return stream_key(spec.seed, StreamPurpose::kGaps, split, static_cast<std::uint64_t>(index),
                    realization_epoch(spec, split, epoch));
}

std::uint64_t noise_stream_key(const DataSpec& spec, Split split, std::int64_t index,
                               std::uint64_t epoch) {
  return stream_key(spec.seed, StreamPurpose::kNoise, split, static_cast<std::uint64_t>(index),
                    realization_epoch(spec, split, epoch));
}

SymbolSet generate_symbols(const Grammar& grammar, const DataSpec& spec, Split split,
                           std::int64_t first, std::int64_t count, int threads,
                           const ProgressFn& progress) {
  SymbolSet set(count, spec.sequence.length);
  std::vector<StringStats> stats(static_cast<size_t>((count + 255) / 256));
  parallel_for(
      count, threads, 256,
      [&](std::int64_t begin, std::int64_t end) {
        StringStats& st = stats[static_cast<size_t>(begin / 256)];
        for (std::int64_t i = begin; i < end; ++i) {
          try {
            sample_states(grammar, spec.sequence, symbol_stream_key(spec, split, first + i),
                          set.states(i), &st);
          } catch (const SampleError& e) {
            throw SampleError(std::string(split_name(split)) + " sample " +
                              std::to_string(first + i) + ": " + e.what());
          }
        }
      },
      progress);
  for (const auto& st : stats) set.stats.add(st);
  return set;
}

std::string symbols_cache_key(const DataSpec& spec, Split split) {
  const GrammarParams& g = spec.grammar;
  const SequenceParams& q = spec.sequence;
  nlohmann::json key = {
      {"kind", "selectivbench symbol set"},
      {"generator_version", kSymbolGeneratorVersion},
      {"seed", spec.seed},
      {"stream_split", split_name(spec.protocol == Protocol::kReference ? Split::kTrain : split)},
      {"count", spec.split(split).size},
      {"grammar",
       {{"vocab", g.vocab},
        {"ambiguities", g.ambiguities},
        {"ambiguity_depth", g.ambiguity_depth},
        {"transition_density", g.transition_density},
        {"initial_states", g.initial_states},
        {"max_attempts", g.max_attempts}}},
      {"sequence",
       {{"length", q.length},
        {"min_string_length", q.min_string_length},
        {"max_string_length", q.max_string_length},
        {"max_string_tries", q.max_string_tries}}},
  };
  return key.dump();
}

namespace {

std::string cache_path(const std::string& dir, const std::string& key) {
  // FNV-1a names the file; the full key inside the file is compared on load.
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : key) h = (h ^ c) * 0x100000001b3ULL;
  char name[64];
  std::snprintf(name, sizeof(name), "symbols-%016llx.sbd", static_cast<unsigned long long>(h));
  return (std::filesystem::path(dir) / name).string();
}

}  // namespace

Dataset::Dataset(std::shared_ptr<const Grammar> grammar, DataSpec spec, Split split,
                 SymbolSet symbols)
    : grammar_(std::move(grammar)), spec_(std::move(spec)), split_(split),
      symbols_(std::move(symbols)) {}

namespace {

// "" when every state id of `set` is a state of `grammar`; else where the first one is not.
std::string first_foreign_state(const SymbolSet& set, const Grammar& grammar, const std::string& path) {
  const auto& ids = set.data();
  const std::uint16_t states = static_cast<std::uint16_t>(grammar.num_states());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] >= states) {
      const auto length = static_cast<std::size_t>(set.length());
      return path + ": state id " + std::to_string(ids[i]) + " at sample " +
             std::to_string(i / length) + ", element " + std::to_string(i % length) +
             " is not a state of the grammar (it has " + std::to_string(states) + ")";
    }
  }
  return "";
}

}  // namespace

std::optional<SymbolSet> symbols_from_cache(const std::vector<Section>& sections,
                                            const std::string& key, const Grammar& grammar,
                                            std::int64_t count, std::int64_t length,
                                            const std::string& path, std::string& why_not) {
  if (find_section(sections, "key", path).as_text() != key) {
    why_not = path + ": key differs (hash collision)";
    return std::nullopt;
  }
  const Section& st = find_section(sections, "states", path);
  if (st.dtype != DType::kU16 || st.shape.size() != 2 || st.shape[0] != count ||
      st.shape[1] != length) {
    why_not = path + ": states section has the wrong type or shape";
    return std::nullopt;
  }
  SymbolSet set(count, length);
  std::memcpy(set.data().data(), st.bytes.data(), st.bytes.size());
  // A valid CRC says the file is what was written, not that it was written by us for this
  // grammar: every id indexes the grammar's tables, so each is checked before use.
  why_not = first_foreign_state(set, grammar, path);
  if (!why_not.empty()) return std::nullopt;
  return set;
}

Dataset Dataset::create(std::shared_ptr<const Grammar> grammar, const DataSpec& spec, Split split,
                        const DatasetOptions& options) {
  const std::int64_t count = spec.split(split).size;
  if (options.cache_dir.empty()) {
    return Dataset(grammar, spec, split,
                   generate_symbols(*grammar, spec, split, 0, count, options.threads,
                                    options.progress));
  }
  const std::string key = symbols_cache_key(spec, split);
  const std::string path = cache_path(options.cache_dir, key);
  std::string why_not;
  if (std::filesystem::exists(path)) {
    try {
      if (auto cached = symbols_from_cache(read_container(path), key, *grammar, count,
                                           spec.sequence.length, path, why_not)) {
        Dataset d(grammar, spec, split, std::move(*cached));
        d.origin_ = "cache hit (" + path + ")";
        return d;
      }
    } catch (const FormatError& e) {
      why_not = e.what();
    }
  }
  SymbolSet set =
      generate_symbols(*grammar, spec, split, 0, count, options.threads, options.progress);
  const auto& data = set.data();
  std::string origin;
  try {
    write_container(path, {Section::text("key", key),
                           Section::of("states", DType::kU16, {count, spec.sequence.length},
                                       data.data(), data.size())});
    origin = why_not.empty() ? "generated, cache written (" + path + ")"
                             : "generated, cache rewritten: " + why_not;
  } catch (const std::exception& e) {
    origin = std::string("generated, cache not written: ") + e.what();
  }
  Dataset d(grammar, spec, split, std::move(set));
  d.origin_ = origin;
  return d;
}

Item Dataset::item(std::int64_t index, std::uint64_t epoch) const {
  return realize(*grammar_, split_spec().gap, states(index), symbols_.length(),
                 gap_stream_key(spec_, split_, index, epoch));
}

std::uint64_t Dataset::noise_key(std::int64_t index, std::uint64_t epoch) const {
  return noise_stream_key(spec_, split_, index, epoch);
}

}  // namespace sb
