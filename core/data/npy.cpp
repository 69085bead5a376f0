#include "core/data/npy.hpp"

#include <stdexcept>

#include "core/util/atomic_file.hpp"

namespace sb {

void write_npy(const std::string& path, const std::string& descr, std::size_t element_size,
               const std::vector<std::int64_t>& shape, const void* data) {
  std::string dims;
  std::size_t count = 1;
  for (auto d : shape) {
    dims += std::to_string(d) + ",";
    count *= static_cast<std::size_t>(d);
  }
  if (shape.size() > 1) dims.pop_back();  // (n,) for one dimension, (a,b) otherwise
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims +
                       "), }";
  // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of 64
  // and ended by a newline.
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  if (header.size() > 65535) throw std::runtime_error(path + ": npy header too long");
  write_file_atomically(path, [&](std::ostream& out) {
    out.write("\x93NUMPY\x01\x00", 8);
    const auto len = static_cast<std::uint16_t>(header.size());
    const char len_bytes[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
    out.write(len_bytes, 2);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(count * element_size));
  });
}

}  // namespace sb
