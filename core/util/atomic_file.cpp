#include "core/util/atomic_file.hpp"

#include <fcntl.h>
#include <signal.h>
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
  // The rename would replace whatever `path` is: a symlink (and not its target) or a device node.
  // Only a regular file, or nothing, is replaced.
  const fs::file_status existing = fs::symlink_status(target, ec);
  if (!ec && fs::exists(existing) && !fs::is_regular_file(existing)) {
    const char* kind = fs::is_symlink(existing)     ? "a symbolic link"
                       : fs::is_directory(existing) ? "a directory"
                                                    : "not a regular file (a device, FIFO or socket)";
    throw std::runtime_error("cannot write " + path + ": it is " + kind +
                             ", which would be replaced; name a regular file or a new one");
  }
  ec.clear();
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

int remove_stale_temporaries(const std::string& folder) {
  namespace fs = std::filesystem;
  char host[64] = {};
  ::gethostname(host, sizeof(host) - 1);
  const std::string mark = std::string(".tmp.") + host + ".";
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    const auto at = name.rfind(mark);
    if (at == std::string::npos) continue;
    // PID.N after the mark.
    const std::string rest = name.substr(at + mark.size());
    const auto dot = rest.find('.');
    if (dot == std::string::npos || dot == 0) continue;
    const std::string pid_text = rest.substr(0, dot);
    if (pid_text.find_first_not_of("0123456789") != std::string::npos || pid_text.size() > 9) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
    if (pid == ::getpid()) continue;  // this process may be writing it now
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to ask about)
    std::error_code rm;
    if (entry.is_regular_file(rm) && fs::remove(entry.path(), rm)) ++removed;
  }
  return removed;
}

}  // namespace sb
