#include <gtest/gtest.h>

#include <boost/crc.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/data/container.hpp"
#include "core/data/npy.hpp"

namespace sb {
namespace {

namespace fs = std::filesystem;

std::string temp_file(const std::string& name) {
  return (fs::path(::testing::TempDir()) / ("sb_container_" + name)).string();
}

std::vector<char> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::vector<Section> sample_sections() {
  const std::vector<std::uint16_t> states = {1, 2, 3, 4, 5, 6};
  const std::vector<float> x = {0.5F, -1.0F};
  return {Section::text("meta", "{\"a\": 1}"),
          Section::of("states", DType::kU16, {2, 3}, states.data(), states.size()),
          Section::of("x", DType::kF32, {2}, x.data(), x.size())};
}

TEST(Container, RoundTrip) {
  const std::string path = temp_file("roundtrip.sbd");
  write_container(path, sample_sections());
  const auto back = read_container(path);
  ASSERT_EQ(back.size(), 3U);
  EXPECT_EQ(find_section(back, "meta", path).as_text(), "{\"a\": 1}");
  const Section& st = find_section(back, "states", path);
  EXPECT_EQ(st.dtype, DType::kU16);
  EXPECT_EQ(st.shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(st.as<std::uint16_t>()[5], 6);
  EXPECT_EQ(find_section(back, "x", path).as<float>()[1], -1.0F);
  EXPECT_THROW(find_section(back, "nope", path), FormatError);
}

TEST(Container, DetectsCorruptionTruncationAndForeignFiles) {
  const std::string path = temp_file("corrupt.sbd");
  write_container(path, sample_sections());
  const std::vector<char> good = read_all(path);

  auto expect_error = [&](const std::vector<char>& bytes, const std::string& what) {
    write_all(path, bytes);
    try {
      read_container(path);
      FAIL() << "expected FormatError containing '" << what << "'";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  };
  std::vector<char> flipped = good;
  flipped[flipped.size() / 2] ^= 0x10;
  expect_error(flipped, "checksum");
  expect_error(std::vector<char>(good.begin(), good.begin() + 40), "checksum");
  std::vector<char> foreign = good;
  foreign[0] = 'X';
  expect_error(foreign, "bad magic");
  expect_error({}, "bad magic");
  EXPECT_THROW(read_container(temp_file("missing.sbd")), FormatError);
}

// The bytes of a container whose checksum matches whatever was changed in them.
std::vector<char> with_checksum(std::vector<char> bytes) {
  boost::crc_32_type crc;
  crc.process_bytes(bytes.data(), bytes.size() - 4);
  const std::uint32_t sum = crc.checksum();
  std::memcpy(bytes.data() + bytes.size() - 4, &sum, 4);
  return bytes;
}

// Found by fuzz_data_cache: dimensions whose product overflows (6 · 8.7e18) were multiplied as
// signed integers. Any shape whose element count does not fit the section's bytes is refused.
TEST(Container, RefusesShapesWhoseProductOverflows) {
  const std::vector<std::uint16_t> states = {1, 2, 3, 4, 5, 6};
  const std::string path = temp_file("overflow.sbd");
  write_container(path, {Section::of("states", DType::kU16, {2, 3}, states.data(), 6)});
  const std::vector<char> good = read_all(path);
  // magic 8, version 4, count 4, name 24, dtype 1, rank 1, reserved 2 + 4: the dimensions at 48.
  const auto with_dims = [&](std::uint64_t d0, std::uint64_t d1) {
    std::vector<char> bytes = good;
    std::memcpy(bytes.data() + 48, &d0, 8);
    std::memcpy(bytes.data() + 56, &d1, 8);
    return with_checksum(bytes);
  };
  const auto parse = [&](const std::vector<char>& bytes) {
    return parse_container(bytes.data(), bytes.size(), path);
  };
  EXPECT_EQ(parse(with_dims(3, 2))[0].shape, (std::vector<std::int64_t>{3, 2}));  // the offsets
  for (const auto& [d0, d1] : std::vector<std::pair<std::uint64_t, std::uint64_t>>{
           {6, 8747515498981229056ULL},     // the fuzzer's: 6 · d1 overflows int64
           {1ULL << 32, 1ULL << 32},        // 2^64 wraps to 0
           {~0ULL, ~0ULL},                  // -1 · -1 = 1 as signed
           {(1ULL << 63) + 3, 2}}) {        // negative as int64
    try {
      parse(with_dims(d0, d1));
      ADD_FAILURE() << "accepted shape " << d0 << " x " << d1;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("shape"), std::string::npos) << e.what();
    }
  }
}

TEST(Container, RefusesInconsistentSections) {
  Section bad = Section::text("t", "abc");
  bad.shape = {4};
  EXPECT_THROW(write_container(temp_file("bad.sbd"), {bad}), FormatError);
  EXPECT_FALSE(fs::exists(temp_file("bad.sbd")));
}

TEST(Npy, HeaderAndData) {
  const std::string path = temp_file("a.npy");
  const std::vector<std::int16_t> data = {1, -2, 3, 4, 5, 6};
  write_npy(path, {2, 3}, data);
  const std::vector<char> bytes = read_all(path);
  ASSERT_GT(bytes.size(), 10U);
  EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 6), "\x93NUMPY");
  const std::size_t header_len = static_cast<unsigned char>(bytes[8]) |
                                 (static_cast<unsigned char>(bytes[9]) << 8);
  EXPECT_EQ((10 + header_len) % 64, 0U);
  const std::string header(bytes.begin() + 10, bytes.begin() + 10 + header_len);
  EXPECT_NE(header.find("'descr': '<i2'"), std::string::npos) << header;
  EXPECT_NE(header.find("'shape': (2,3)"), std::string::npos) << header;
  EXPECT_EQ(header.back(), '\n');
  ASSERT_EQ(bytes.size(), 10 + header_len + 12);
  std::int16_t second = 0;
  std::memcpy(&second, bytes.data() + 10 + header_len + 2, 2);
  EXPECT_EQ(second, -2);

  write_npy(temp_file("b.npy"), {3}, std::vector<std::int32_t>{1, 2, 3});
  const std::vector<char> b = read_all(temp_file("b.npy"));
  EXPECT_NE(std::string(b.begin(), b.end()).find("'shape': (3,)"), std::string::npos);
}

}  // namespace
}  // namespace sb
