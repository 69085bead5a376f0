#include "core/util/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace sb {

void write_file_atomically(const std::string& path,
                           const std::function<void(std::ostream&)>& write) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  if (ec) {
    throw std::runtime_error("cannot create folder " + target.parent_path().string() + ": " +
                             ec.message());
  }
  // Unique per host, process and call: workers on several hosts share folders over NFS, and two
  // threads of one process may write the same file.
  static std::atomic<unsigned> counter{0};
  char host[64] = {};
  ::gethostname(host, sizeof(host) - 1);
  const std::string tmp = path + ".tmp." + host + "." + std::to_string(::getpid()) + "." +
                          std::to_string(counter.fetch_add(1));
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) throw std::runtime_error("cannot open " + tmp + " for writing: " + std::strerror(errno));
      write(out);
      out.flush();
      if (!out) throw std::runtime_error("write to " + tmp + " failed: " + std::strerror(errno));
    }
    // fsync so that a crash after the rename cannot leave an empty file behind.
    const int fd = ::open(tmp.c_str(), O_RDONLY);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
    fs::rename(tmp, target, ec);
    if (ec) throw std::runtime_error("cannot rename " + tmp + " to " + path + ": " + ec.message());
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
}

}  // namespace sb
