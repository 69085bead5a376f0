// libFuzzer target: the data container reader (core/data/container.hpp) and the symbol cache
// check behind it (sb::symbols_from_cache), then every cached sample realised as a run would.
// The input is parsed twice: as it is (which mostly tests the checksum) and with its trailing
// CRC-32 recomputed, so that mutations reach the section parser and the cache check. Every input
// must give sections or a FormatError, and a cache hit must realise without fault.
#include <boost/crc.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/data/container.hpp"
#include "core/data/dataset.hpp"
#include "tests/fuzz/cache_fixture.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const sb::fuzz::CacheFixture fixture;
  std::vector<char> bytes(reinterpret_cast<const char*>(data),
                          reinterpret_cast<const char*>(data) + size);
  try {
    (void)sb::parse_container(bytes.data(), bytes.size(), "fuzz.sbd");
  } catch (const sb::FormatError&) {
  }
  if (bytes.size() >= 4) {
    boost::crc_32_type crc;
    crc.process_bytes(bytes.data(), bytes.size() - 4);
    const std::uint32_t sum = crc.checksum();
    std::memcpy(bytes.data() + bytes.size() - 4, &sum, 4);
  }
  try {
    const auto sections = sb::parse_container(bytes.data(), bytes.size(), "fuzz.sbd");
    std::string why_not;
    auto set = sb::symbols_from_cache(sections, fixture.key, *fixture.grammar, fixture.count,
                                      fixture.spec.sequence.length, "fuzz.sbd", why_not);
    if (set) {
      const sb::Dataset d(fixture.grammar, fixture.spec, fixture.split, std::move(*set));
      for (std::int64_t i = 0; i < d.size(); ++i) (void)d.item(i);
    }
  } catch (const sb::FormatError&) {
  }
  return 0;
}
