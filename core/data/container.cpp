#include "core/data/container.hpp"

#include <algorithm>
#include <bit>
#include <boost/crc.hpp>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string_view>

#include "core/util/atomic_file.hpp"

namespace sb {

static_assert(std::endian::native == std::endian::little, "the container format is little-endian");

namespace {
constexpr std::size_t kNameBytes = 24;
constexpr std::uint8_t kMaxRank = 8;

template <typename T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(T));
}
}  // namespace

std::size_t dtype_size(DType d) {
  switch (d) {
    case DType::kU8: case DType::kI8: case DType::kText: return 1;
    case DType::kU16: case DType::kI16: return 2;
    case DType::kU32: case DType::kI32: case DType::kF32: return 4;
    case DType::kU64: case DType::kI64: case DType::kF64: return 8;
  }
  return 0;
}

const char* dtype_name(DType d) {
  switch (d) {
    case DType::kU8: return "u8";
    case DType::kI8: return "i8";
    case DType::kU16: return "u16";
    case DType::kI16: return "i16";
    case DType::kU32: return "u32";
    case DType::kI32: return "i32";
    case DType::kU64: return "u64";
    case DType::kI64: return "i64";
    case DType::kF32: return "f32";
    case DType::kF64: return "f64";
    case DType::kText: return "text";
  }
  return "?";
}

Section Section::text(std::string name, const std::string& value) {
  return of(std::move(name), DType::kText, {static_cast<std::int64_t>(value.size())},
            value.data(), value.size());
}

std::int64_t Section::elements() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

void write_container(const std::string& path, const std::vector<Section>& sections) {
  std::string head;
  head.append(kContainerMagic, sizeof(kContainerMagic));
  put<std::uint32_t>(head, kContainerVersion);
  put<std::uint32_t>(head, static_cast<std::uint32_t>(sections.size()));
  boost::crc_32_type crc;
  write_file_atomically(path, [&](std::ostream& out) {
    auto emit = [&](const char* data, std::size_t n) {
      crc.process_bytes(data, n);
      out.write(data, static_cast<std::streamsize>(n));
    };
    emit(head.data(), head.size());
    for (const Section& s : sections) {
      if (s.name.size() >= kNameBytes) throw FormatError("section name too long: " + s.name);
      if (s.shape.size() > kMaxRank) throw FormatError("section rank too high: " + s.name);
      if (static_cast<std::size_t>(s.elements()) * dtype_size(s.dtype) != s.bytes.size()) {
        throw FormatError("section " + s.name + ": shape does not match its byte count");
      }
      std::string h(kNameBytes, '\0');
      std::copy(s.name.begin(), s.name.end(), h.begin());
      put<std::uint8_t>(h, static_cast<std::uint8_t>(s.dtype));
      put<std::uint8_t>(h, static_cast<std::uint8_t>(s.shape.size()));
      put<std::uint16_t>(h, 0);
      put<std::uint32_t>(h, 0);
      for (auto d : s.shape) put<std::uint64_t>(h, static_cast<std::uint64_t>(d));
      put<std::uint64_t>(h, s.bytes.size());
      emit(h.data(), h.size());
      emit(s.bytes.data(), s.bytes.size());
    }
    const std::uint32_t checksum = crc.checksum();
    out.write(reinterpret_cast<const char*>(&checksum), sizeof(checksum));
  });
}

std::vector<Section> read_container(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError(path + ": cannot open");
  const std::vector<char> data((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
  return parse_container(data.data(), data.size(), path);
}

std::vector<Section> parse_container(const char* bytes, std::size_t size, const std::string& path) {
  const std::string_view data(bytes, size);
  auto fail = [&](const std::string& why) { throw FormatError(path + ": " + why); };
  if (data.size() < sizeof(kContainerMagic) + 12 ||
      !std::equal(kContainerMagic, kContainerMagic + 8, data.begin())) {
    fail("not a selectivbench data file (bad magic)");
  }
  boost::crc_32_type crc;
  crc.process_bytes(data.data(), data.size() - 4);
  std::uint32_t stored = 0;
  std::memcpy(&stored, data.data() + data.size() - 4, 4);
  if (crc.checksum() != stored) fail("checksum mismatch (file truncated or corrupted)");

  std::size_t pos = 8;
  auto get = [&]<typename T>(T& value) {
    if (pos + sizeof(T) > data.size() - 4) fail("truncated header");
    std::memcpy(&value, data.data() + pos, sizeof(T));
    pos += sizeof(T);
  };
  std::uint32_t version = 0, count = 0;
  get(version);
  if (version != kContainerVersion) {
    fail("format version " + std::to_string(version) + ", this build reads version " +
         std::to_string(kContainerVersion));
  }
  get(count);
  std::vector<Section> sections;
  for (std::uint32_t i = 0; i < count; ++i) {
    if (pos + kNameBytes > data.size() - 4) fail("truncated section header");
    Section s;
    s.name.assign(data.data() + pos, strnlen(data.data() + pos, kNameBytes));
    pos += kNameBytes;
    std::uint8_t dtype = 0, rank = 0;
    std::uint16_t r16 = 0;
    std::uint32_t r32 = 0;
    get(dtype);
    get(rank);
    get(r16);
    get(r32);
    if (dtype < 1 || dtype > 11) fail("section " + s.name + ": unknown element type");
    if (rank > kMaxRank) fail("section " + s.name + ": rank too high");
    s.dtype = static_cast<DType>(dtype);
    std::vector<std::uint64_t> dims(rank);
    for (auto& d : dims) get(d);
    std::uint64_t n = 0;
    get(n);
    if (n > data.size() - 4 - pos) fail("section " + s.name + ": truncated data");
    // The element count, computed without overflow: no product of the dimensions may exceed the
    // section's bytes (a zero dimension makes the count zero whatever the others are).
    const bool empty = std::find(dims.begin(), dims.end(), 0) != dims.end();
    std::uint64_t elements = empty ? 0 : 1;
    for (const std::uint64_t d : dims) {
      if (empty) break;
      if (d > n || elements > n / d) fail("section " + s.name + ": shape does not match its byte count");
      elements *= d;
    }
    for (const std::uint64_t d : dims) {
      if (d > static_cast<std::uint64_t>(INT64_MAX)) {
        fail("section " + s.name + ": shape does not match its byte count");
      }
      s.shape.push_back(static_cast<std::int64_t>(d));
    }
    if (elements * dtype_size(s.dtype) != n) {
      fail("section " + s.name + ": shape does not match its byte count");
    }
    s.bytes.assign(data.begin() + static_cast<std::ptrdiff_t>(pos),
                   data.begin() + static_cast<std::ptrdiff_t>(pos + n));
    pos += n;
    sections.push_back(std::move(s));
  }
  if (pos != data.size() - 4) fail("trailing bytes after the last section");
  return sections;
}

const Section& find_section(const std::vector<Section>& sections, const std::string& name,
                            const std::string& path) {
  for (const auto& s : sections) {
    if (s.name == name) return s;
  }
  throw FormatError(path + ": no section '" + name + "'");
}

}  // namespace sb
