// The selectivbench binary container (docs/data-format.md): named, typed, shaped arrays plus a
// JSON metadata text, closed by a CRC-32 of everything before it. Used for the symbol cache and for
// `selectivbench generate`. Little-endian only.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace sb {

inline constexpr char kContainerMagic[8] = {'S', 'E', 'L', 'B', 'E', 'N', 'C', 'H'};
inline constexpr std::uint32_t kContainerVersion = 1;

// Element types; the codes are part of the format.
enum class DType : std::uint8_t {
  kU8 = 1, kI8 = 2, kU16 = 3, kI16 = 4, kU32 = 5, kI32 = 6, kU64 = 7, kI64 = 8, kF32 = 9,
  kF64 = 10, kText = 11,
};
std::size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);

struct Section {
  std::string name;  // at most 23 bytes
  DType dtype = DType::kU8;
  std::vector<std::int64_t> shape;
  std::vector<char> bytes;

  template <typename T>
  static Section of(std::string name, DType dtype, std::vector<std::int64_t> shape,
                    const T* data, std::size_t count) {
    Section s{std::move(name), dtype, std::move(shape), {}};
    s.bytes.resize(count * sizeof(T));
    if (count) std::memcpy(s.bytes.data(), data, s.bytes.size());
    return s;
  }
  static Section text(std::string name, const std::string& value);

  std::int64_t elements() const;
  std::string as_text() const { return {bytes.begin(), bytes.end()}; }
  template <typename T>
  const T* as() const {
    return reinterpret_cast<const T*>(bytes.data());
  }
};

struct FormatError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Writes the sections atomically (core/util/atomic_file.hpp).
void write_container(const std::string& path, const std::vector<Section>& sections);
// Reads and verifies a container; FormatError names the file and what is wrong.
std::vector<Section> read_container(const std::string& path);
// The same from bytes in memory; `path` names them in messages.
std::vector<Section> parse_container(const char* bytes, std::size_t size, const std::string& path);
// The section called `name`; FormatError if absent.
const Section& find_section(const std::vector<Section>& sections, const std::string& name,
                            const std::string& path);

}  // namespace sb
