#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "core/data/container.hpp"
#include "core/data/dataset.hpp"

namespace sb {
namespace {

namespace fs = std::filesystem;

DataSpec small_spec(Protocol protocol) {
  DataSpec spec;
  spec.protocol = protocol;
  spec.seed = 3;
  spec.grammar.vocab = 9;
  spec.grammar.ambiguities = 8;
  spec.grammar.ambiguity_depth = 3;
  spec.sequence.length = 64;
  spec.sequence.max_string_length = 64;
  spec.train.size = 3000;
  spec.test.size = 300;
  spec.train.gap.duration = {Duration::Kind::kUniform, 0, 0.1, 1.0};
  spec.test.gap = spec.train.gap;
  return spec;
}

std::shared_ptr<const Grammar> grammar_of(const DataSpec& spec) {
  return std::make_shared<const Grammar>(make_grammar(spec.grammar, spec.seed));
}

fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("sb_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(Dataset, IdenticalBytesOnAnyThreadCount) {
  const DataSpec spec = small_spec(Protocol::kClean);
  const auto g = grammar_of(spec);
  const SymbolSet one = generate_symbols(*g, spec, Split::kTrain, 0, 3000, 1);
  for (int threads : {2, 3, 8}) {
    const SymbolSet many = generate_symbols(*g, spec, Split::kTrain, 0, 3000, threads);
    EXPECT_EQ(one.data(), many.data()) << threads << " threads";
  }
  // A slice generated alone equals the same samples of the whole set.
  const SymbolSet slice = generate_symbols(*g, spec, Split::kTrain, 1000, 10, 2);
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(std::equal(slice.states(i), slice.states(i) + 64, one.states(1000 + i)));
  }
}

TEST(Dataset, ReferenceProtocolTestSamplesAreTrainingSamples) {
  // B1: test sample i has the symbols of training sample i; only the gaps differ.
  const DataSpec spec = small_spec(Protocol::kReference);
  const auto g = grammar_of(spec);
  const Dataset train = Dataset::create(g, spec, Split::kTrain);
  const Dataset test = Dataset::create(g, spec, Split::kTest);
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(std::equal(test.states(i), test.states(i) + 64, train.states(i))) << i;
  }
  int differing_gaps = 0;
  for (int i = 0; i < 20; ++i) {
    differing_gaps += train.item(i).element_start != test.item(i).element_start;
  }
  EXPECT_GT(differing_gaps, 15);
}

TEST(Dataset, CleanProtocolTestSamplesAreDisjointFromTraining) {
  const DataSpec spec = small_spec(Protocol::kClean);
  const auto g = grammar_of(spec);
  const Dataset train = Dataset::create(g, spec, Split::kTrain);
  const Dataset test = Dataset::create(g, spec, Split::kTest);
  std::set<std::vector<std::uint16_t>> seen;
  for (int i = 0; i < train.size(); ++i) seen.emplace(train.states(i), train.states(i) + 64);
  for (int i = 0; i < test.size(); ++i) {
    EXPECT_EQ(seen.count(std::vector<std::uint16_t>(test.states(i), test.states(i) + 64)), 0U)
        << "test sample " << i << " is a training sample";
  }
}

TEST(Dataset, CleanTestSetIsFrozenReferenceIsRedrawn) {
  for (Protocol protocol : {Protocol::kClean, Protocol::kReference}) {
    const DataSpec spec = small_spec(protocol);
    const auto g = grammar_of(spec);
    const Dataset test = Dataset::create(g, spec, Split::kTest);
    const Dataset train = Dataset::create(g, spec, Split::kTrain);
    int test_changed = 0, train_changed = 0;
    for (int i = 0; i < 20; ++i) {
      test_changed += test.item(i, 0).element_start != test.item(i, 5).element_start;
      train_changed += train.item(i, 0).element_start != train.item(i, 5).element_start;
      EXPECT_EQ(test.item(i, 3).element_start, test.item(i, 3).element_start);
    }
    if (protocol == Protocol::kClean) {
      EXPECT_EQ(test_changed, 0);  // frozen once generated
      EXPECT_EQ(test.noise_key(4, 0), test.noise_key(4, 9));
    } else {
      EXPECT_GT(test_changed, 15);  // B5: re-drawn at every evaluation
      EXPECT_NE(test.noise_key(4, 0), test.noise_key(4, 9));
    }
    EXPECT_GT(train_changed, 15);  // each training pass draws new gaps
  }
}

TEST(Dataset, CacheRoundTripAndRecovery) {
  const fs::path dir = temp_dir("cache");
  const DataSpec spec = small_spec(Protocol::kClean);
  const auto g = grammar_of(spec);
  DatasetOptions options;
  options.cache_dir = dir.string();

  const Dataset first = Dataset::create(g, spec, Split::kTrain, options);
  EXPECT_NE(first.origin().find("cache written"), std::string::npos) << first.origin();
  const Dataset second = Dataset::create(g, spec, Split::kTrain, options);
  EXPECT_NE(second.origin().find("cache hit"), std::string::npos) << second.origin();
  EXPECT_EQ(first.symbols().data(), second.symbols().data());

  // Only the cache file is left: no temporary files.
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path());
  ASSERT_EQ(files.size(), 1U);

  // Anything that changes the content changes the key: another seed is another file.
  DataSpec other = spec;
  other.seed = 4;
  EXPECT_NE(symbols_cache_key(spec, Split::kTrain), symbols_cache_key(other, Split::kTrain));
  EXPECT_NE(symbols_cache_key(spec, Split::kTrain), symbols_cache_key(spec, Split::kTest));
  // Gap and noise settings do not change the symbols: same key.
  other = spec;
  other.train.noise = 0.2;
  EXPECT_EQ(symbols_cache_key(spec, Split::kTrain), symbols_cache_key(other, Split::kTrain));

  // A corrupted cache is detected by its checksum and regenerated.
  {
    std::fstream f(files[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.put('\x7f');
  }
  const Dataset third = Dataset::create(g, spec, Split::kTrain, options);
  EXPECT_NE(third.origin().find("checksum"), std::string::npos) << third.origin();
  EXPECT_EQ(first.symbols().data(), third.symbols().data());
  const Dataset fourth = Dataset::create(g, spec, Split::kTrain, options);
  EXPECT_NE(fourth.origin().find("cache hit"), std::string::npos) << fourth.origin();
}

// A cache with a valid checksum but a state id the grammar does not have (a file written by
// something else, or for another grammar) read memory past the grammar's tables: it is refused
// and regenerated.
TEST(Dataset, ACacheWithForeignStateIdsIsRegenerated) {
  const fs::path dir = temp_dir("cache_foreign");
  const DataSpec spec = small_spec(Protocol::kClean);
  const auto g = grammar_of(spec);
  DatasetOptions options;
  options.cache_dir = dir.string();
  const Dataset first = Dataset::create(g, spec, Split::kTrain, options);
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path());
  ASSERT_EQ(files.size(), 1U);
  const std::string path = files[0].string();
  for (const std::uint16_t bad : {static_cast<std::uint16_t>(g->num_states()), std::uint16_t{65535}}) {
    auto ids = first.symbols().data();
    ids[3 * static_cast<std::size_t>(spec.sequence.length) + 5] = bad;  // sample 3, element 5
    write_container(path, {Section::text("key", symbols_cache_key(spec, Split::kTrain)),
                           Section::of("states", DType::kU16,
                                       {spec.train.size, spec.sequence.length}, ids.data(), ids.size())});
    const Dataset d = Dataset::create(g, spec, Split::kTrain, options);
    EXPECT_NE(d.origin().find("cache rewritten: " + path + ": state id " + std::to_string(bad) +
                              " at sample 3, element 5 is not a state of the grammar"),
              std::string::npos)
        << d.origin();
    EXPECT_EQ(d.symbols().data(), first.symbols().data());
    EXPECT_NE(Dataset::create(g, spec, Split::kTrain, options).origin().find("cache hit"), std::string::npos);
  }
}

TEST(Dataset, GenerationErrorsNameTheSample) {
  DataSpec spec = small_spec(Protocol::kClean);
  // Strings of exactly 64 elements are rare: 3 tries fail (the streams are fixed).
  spec.sequence.min_string_length = 64;
  spec.sequence.max_string_tries = 3;
  const auto g = grammar_of(spec);
  try {
    generate_symbols(*g, spec, Split::kTest, 0, 10, 2);
    FAIL() << "expected SampleError";
  } catch (const SampleError& e) {
    EXPECT_NE(std::string(e.what()).find("test sample "), std::string::npos) << e.what();
  }
}

TEST(Dataset, ValidatesTheSpec) {
  DataSpec spec = small_spec(Protocol::kClean);
  EXPECT_TRUE(validate(spec).empty());
  spec.test.noise = -1;
  EXPECT_NE(validate(spec).find("test: noise"), std::string::npos);
  spec = small_spec(Protocol::kClean);
  spec.train.gap.prob = 2;
  EXPECT_NE(validate(spec).find("train.gap"), std::string::npos);
  spec = small_spec(Protocol::kClean);
  spec.grammar.ambiguities = 9;
  EXPECT_NE(validate(spec).find("grammar"), std::string::npos);
}

}  // namespace
}  // namespace sb
