// NumPy .npy export (format version 1.0), so generated data can be used outside this tool.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sb {

// Writes a C-order array atomically. `descr` is the NumPy type string: "|u1", "|i1", "<u2", "<i2",
// "<i4", "<i8", "<f4", ...; `element_size` must match it.
void write_npy(const std::string& path, const std::string& descr, std::size_t element_size,
               const std::vector<std::int64_t>& shape, const void* data);

template <typename T>
const char* npy_descr();
template <> inline const char* npy_descr<std::uint8_t>() { return "|u1"; }
template <> inline const char* npy_descr<std::int8_t>() { return "|i1"; }
template <> inline const char* npy_descr<std::uint16_t>() { return "<u2"; }
template <> inline const char* npy_descr<std::int16_t>() { return "<i2"; }
template <> inline const char* npy_descr<std::int32_t>() { return "<i4"; }
template <> inline const char* npy_descr<std::uint32_t>() { return "<u4"; }
template <> inline const char* npy_descr<std::int64_t>() { return "<i8"; }
template <> inline const char* npy_descr<float>() { return "<f4"; }

template <typename T>
void write_npy(const std::string& path, const std::vector<std::int64_t>& shape,
               const std::vector<T>& data) {
  write_npy(path, npy_descr<T>(), sizeof(T), shape, data.data());
}

}  // namespace sb
