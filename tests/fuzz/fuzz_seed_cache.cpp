// Writes the seed of fuzz_data_cache: the cache file a run writes for cache_fixture.hpp's task.
// Usage: fuzz_seed_cache FOLDER (the cache file appears in it as symbols-<hash>.sbd).
#include <cstdio>

#include "tests/fuzz/cache_fixture.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seed_cache FOLDER\n");
    return 2;
  }
  const sb::fuzz::CacheFixture fixture;
  sb::DatasetOptions options;
  options.threads = 1;
  options.cache_dir = argv[1];
  const auto d = sb::Dataset::create(fixture.grammar, fixture.spec, fixture.split, options);
  std::printf("%s\n", d.origin().c_str());
  return d.origin().find("cache written") != std::string::npos ? 0 : 1;
}
