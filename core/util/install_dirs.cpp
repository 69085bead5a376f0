#include "core/util/install_dirs.hpp"

#include <filesystem>
#include <system_error>

#ifndef SELECTIVBENCH_INSTALL_DATA_RELDIR
#define SELECTIVBENCH_INSTALL_DATA_RELDIR "share/selectivbench"
#endif

namespace sb {

namespace fs = std::filesystem;

std::string executable_path() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.string();
}

std::string under_install_prefix(const std::string& relative) {
  const std::string exe = executable_path();
  if (exe.empty()) return "";
  return (fs::path(exe).parent_path().parent_path() / relative).lexically_normal().string();
}

std::string installed_data_dir() {
  const std::string dir = under_install_prefix(SELECTIVBENCH_INSTALL_DATA_RELDIR);
  std::error_code ec;
  return !dir.empty() && fs::is_directory(dir, ec) ? dir : std::string();
}

std::string resolve_preset_path(const std::string& path) {
  std::error_code ec;
  if (path.empty() || fs::exists(path, ec) || fs::path(path).is_absolute()) return path;
  const std::string data = installed_data_dir();
  if (data.empty()) return path;
  const fs::path installed = fs::path(data) / path;
  return fs::is_regular_file(installed, ec) ? installed.lexically_normal().string() : path;
}

}  // namespace sb
