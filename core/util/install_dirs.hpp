// Where an installed selectivbench keeps its files, found from the executable's own path so that
// an install prefix can move: <prefix>/bin/selectivbench, <prefix>/lib/selectivbench/plugins,
// <prefix>/share/selectivbench/{tasks,configs}.
#pragma once

#include <string>

namespace sb {

// The running executable's absolute path (/proc/self/exe); "" when it cannot be read.
std::string executable_path();

// <prefix>/<relative>: `relative` under the prefix of the running executable (its folder's
// parent); "" when the executable's path is unknown.
std::string under_install_prefix(const std::string& relative);

// The installed presets' folder (<prefix>/share/selectivbench) when it exists, else "" (a binary
// run from its build tree).
std::string installed_data_dir();

// A task or benchmark file named on the command line: `path` itself when it exists; else, for a
// relative path, the installed presets' copy of it (`configs/quickstart.toml` from any folder)
// when that exists; else `path` unchanged, for the caller's "no such file" error.
std::string resolve_preset_path(const std::string& path);

}  // namespace sb
