// Finding, checking and loading plugins (spec sdk.md §3).
//
// A plugin file is checked in this order before any C++ object crosses the boundary: it loads as a
// shared library; it exports `selectivbench_plugin_entry`; the entry's ABI version and struct size
// equal ours; its build fingerprint (LibTorch version, C++11 ABI, compiler, CUDA) equals ours. Only
// then is its descriptor read, and its name must match the file name libsb_<name>.so.
//
// Libraries are never unloaded (LibTorch's static registrations crash on unload, pytorch#46171):
// the registry keeps every handle for the life of the process, and every mixer a plugin creates
// holds a reference to its library too.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "selectivbench/plugin.hpp"

namespace boost::dll {
class shared_library;
}

namespace sb {

// A plugin that cannot be loaded or used; the message names the file and the cause.
struct PluginError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct LoadedPlugin {
  std::string path;
  PluginDescriptor descriptor;
  SbBuildFingerprint fingerprint{};
  std::shared_ptr<boost::dll::shared_library> library;

  // Creates a mixer; the result keeps the library alive. Exceptions from the plugin's factory
  // become PluginError naming the plugin and the layer.
  std::shared_ptr<Mixer> create(const MixerContext& context) const;
};

// One folder of the search path and where it came from ("--plugin-path", "[plugins] paths",
// "SELECTIVBENCH_PLUGIN_PATH", "installed", "build tree").
struct SearchFolder {
  std::string path;
  std::string origin;
};

// The search path in its documented order: command line, TOML, environment variable, installed
// folder, build-tree folder. Folders that do not exist are kept (listed as missing).
std::vector<SearchFolder> plugin_search_path(const std::vector<std::string>& command_line,
                                             const std::vector<std::string>& from_config);

// "gla" for .../libsb_gla.so.
std::string plugin_name_of_file(const std::string& path);

// A file name a plugin may have: libsb_<name>.so.
bool is_plugin_file_name(const std::string& file_name);

// The file NAME|PATH means: a path (it contains '/' or ends in .so) as given, a name as the first
// folder holding libsb_<name>.so has it; "" when no folder does.
std::string plugin_file(const std::string& name_or_path, const std::vector<SearchFolder>& folders);

// How a plugin's build differs from this binary's ("LibTorch 2.1.0, this binary uses 1.13.0; ..."),
// or "" when it does not.
std::string fingerprint_mismatch(const SbBuildFingerprint& plugin, const SbBuildFingerprint& host);

// Says once per folder, on stderr, when every user may write to a plugin folder: anyone could
// place a library there that a later command loads and runs.
void warn_if_world_writable(const std::string& folder);

class PluginRegistry {
 public:
  // The process-wide registry (never destroyed, so libraries are never unloaded).
  static PluginRegistry& instance();

  // Loads and checks one plugin file; loading the same file twice returns the same plugin. A
  // different file declaring an already loaded name is a PluginError (duplicate name). When the
  // file has a current manifest (core/plugins/manifest.hpp), a plugin it shows to be built for
  // another ABI or LibTorch is refused before the library is opened.
  std::shared_ptr<const LoadedPlugin> load_file(const std::string& path);

  // The first plugin called `name` in the folders; no other plugin is loaded. PluginError lists
  // the folders searched, or the reason the file that should have held it failed. A plugin that
  // shadows one of the same name in a later folder is said once on stderr.
  std::shared_ptr<const LoadedPlugin> find(const std::string& name,
                                           const std::vector<SearchFolder>& folders);

  // NAME (searched) or PATH (a file: contains '/' or ends in .so).
  std::shared_ptr<const LoadedPlugin> resolve(const std::string& name_or_path,
                                              const std::vector<SearchFolder>& folders);

 private:
  PluginRegistry() = default;
  std::vector<std::shared_ptr<const LoadedPlugin>> loaded_;
};

// Checks option values against a plugin's schema: unknown names (with "did you mean"), types,
// ranges and choices. Returns the full option map (defaults for what is not given), or throws
// PluginError whose message starts with `where` (e.g. "configs/x.toml: plugins.gla").
Options resolve_options(const PluginDescriptor& descriptor,
                        const std::vector<std::pair<std::string, OptionValue>>& given,
                        const std::string& where);

// "linear, vector per channel gate, diagonal, matrix per head, constant memory, short conv"
std::string describe_taxonomy(const Taxonomy& taxonomy);

// The same as JSON, as run summaries record it and reports group models by it:
// {"recurrence", "gate", "transition", "state", "memory", "short_conv"}.
nlohmann::json taxonomy_json(const Taxonomy& taxonomy);

}  // namespace sb
