#define BOOST_DLL_USE_STD_FS 1
#include "core/plugins/registry.hpp"

#include <sys/stat.h>

#include <boost/dll/shared_library.hpp>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>

#include "core/config/strict_toml.hpp"
#include "core/plugins/manifest.hpp"
#include "core/util/install_dirs.hpp"

#ifndef SELECTIVBENCH_BUILD_PLUGIN_DIR
#define SELECTIVBENCH_BUILD_PLUGIN_DIR ""
#endif
#ifndef SELECTIVBENCH_INSTALL_PLUGIN_RELDIR
#define SELECTIVBENCH_INSTALL_PLUGIN_RELDIR "lib/selectivbench/plugins"
#endif

namespace sb {

namespace fs = std::filesystem;

namespace {

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

// A folder every user may write to (without the sticky bit) lets anyone place a library there that
// a later command loads and runs: said once per folder, on stderr.
void warn_if_world_writable(const std::string& folder) {
  static std::mutex mutex;
  static std::set<std::string> warned;
  struct stat st {};
  if (::stat(folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return;
  if ((st.st_mode & S_IWOTH) == 0 || (st.st_mode & S_ISVTX) != 0) return;
  std::lock_guard<std::mutex> lock(mutex);
  if (!warned.insert(folder).second) return;
  std::cerr << "warning: plugin folder " << folder
            << " is writable by every user: anyone could place code there that selectivbench "
               "loads and runs (chmod o-w it)\n";
}

std::string fingerprint_mismatch(const SbBuildFingerprint& plugin, const SbBuildFingerprint& host) {
  std::vector<std::string> diffs;
  if (std::string(plugin.torch_version) != host.torch_version) {
    diffs.push_back("LibTorch " + std::string(plugin.torch_version) + ", this binary uses " +
                    host.torch_version);
  }
  if (plugin.cxx11_abi != host.cxx11_abi) {
    diffs.push_back("_GLIBCXX_USE_CXX11_ABI=" + std::to_string(plugin.cxx11_abi) +
                    ", this binary uses " + std::to_string(host.cxx11_abi));
  }
  if (std::string(plugin.compiler) != host.compiler ||
      plugin.compiler_major != host.compiler_major) {
    diffs.push_back(std::string(plugin.compiler) + " " + std::to_string(plugin.compiler_major) +
                    ", this binary uses " + host.compiler + " " +
                    std::to_string(host.compiler_major));
  }
  if (plugin.cuda != host.cuda) {
    diffs.push_back(std::string(plugin.cuda ? "a CUDA" : "a CPU-only") +
                    " LibTorch, this binary uses " + (host.cuda ? "a CUDA" : "a CPU-only") +
                    " one");
  }
  std::string out;
  for (const auto& d : diffs) out += (out.empty() ? "" : "; ") + d;
  return out;
}

bool is_plugin_file_name(const std::string& name) {
  return name.rfind("libsb_", 0) == 0 && name.size() > 9 &&
         name.compare(name.size() - 3, 3, ".so") == 0;
}

std::string plugin_name_of_file(const std::string& path) {
  std::string stem = fs::path(path).filename().string();
  if (stem.rfind("libsb_", 0) == 0) stem = stem.substr(6);
  const auto dot = stem.find(".so");
  if (dot != std::string::npos) stem = stem.substr(0, dot);
  return stem;
}

namespace {

// A plugin found before one of the same name in a later folder replaces it for this process: a
// benchmark file's [plugins] paths can put its own `transformer` before the built-in one. Said
// once per name, naming both files.
void warn_if_shadowing(const std::string& name, const std::string& file, const SearchFolder& folder,
                       const std::vector<SearchFolder>& later) {
  static std::mutex mutex;
  static std::set<std::string> warned;
  for (const auto& other : later) {
    const fs::path hidden = fs::path(other.path) / ("libsb_" + name + ".so");
    std::error_code ec;
    if (other.path == folder.path || !fs::exists(hidden, ec)) continue;
    if (fs::equivalent(hidden, file, ec)) continue;
    std::lock_guard<std::mutex> lock(mutex);
    if (!warned.insert(name).second) return;
    std::cerr << "warning: plugin " << name << " is " << file << " (" << folder.origin
              << "), which hides " << hidden.string() << " (" << other.origin << ")\n";
    return;
  }
}

// Keeps the library alive as long as the mixer: the aliasing shared_ptr owns both.
struct MixerHolder {
  std::shared_ptr<boost::dll::shared_library> library;  // destroyed last
  std::shared_ptr<Mixer> mixer;
};

}  // namespace

std::shared_ptr<Mixer> LoadedPlugin::create(const MixerContext& context) const {
  std::shared_ptr<Mixer> mixer;
  try {
    mixer = descriptor.factory(context);
  } catch (const std::exception& e) {
    throw PluginError("plugin " + descriptor.name + " (" + path + "): creating layer " +
                      std::to_string(context.layer_index) + " (d_model " +
                      std::to_string(context.d_model) + ", " + std::to_string(context.n_heads) +
                      " heads) failed: " + e.what());
  }
  if (!mixer) {
    throw PluginError("plugin " + descriptor.name + " (" + path + "): the factory returned null");
  }
  auto holder = std::make_shared<MixerHolder>(MixerHolder{library, mixer});
  return std::shared_ptr<Mixer>(holder, holder->mixer.get());
}

std::vector<SearchFolder> plugin_search_path(const std::vector<std::string>& command_line,
                                             const std::vector<std::string>& from_config) {
  std::vector<SearchFolder> out;
  for (const auto& p : command_line) out.push_back({p, "--plugin-path"});
  for (const auto& p : from_config) out.push_back({p, "[plugins] paths"});
  if (const char* env = std::getenv("SELECTIVBENCH_PLUGIN_PATH")) {
    std::stringstream ss(env);
    std::string item;
    while (std::getline(ss, item, ':')) {
      if (!item.empty()) out.push_back({item, "SELECTIVBENCH_PLUGIN_PATH"});
    }
  }
  // The installed folder, relative to the executable so that an install prefix can move. A
  // binary that has one is installed and never looks into the build tree it came from (which may
  // hold other, newer plugins); one run from its build tree has none.
  const std::string installed = under_install_prefix(SELECTIVBENCH_INSTALL_PLUGIN_RELDIR);
  std::error_code ec;
  if (!installed.empty()) out.push_back({installed, "installed"});
  const bool is_installed = !installed.empty() && fs::is_directory(installed, ec);
  if (!is_installed && std::string(SELECTIVBENCH_BUILD_PLUGIN_DIR).size()) {
    out.push_back({SELECTIVBENCH_BUILD_PLUGIN_DIR, "build tree"});
  }
  return out;
}

PluginRegistry& PluginRegistry::instance() {
  static auto* registry = new PluginRegistry();  // intentionally leaked: never unload
  return *registry;
}

std::shared_ptr<const LoadedPlugin> PluginRegistry::load_file(const std::string& path_in) {
  std::error_code ec;
  const fs::path canonical = fs::weakly_canonical(path_in, ec);
  const std::string path = ec ? path_in : canonical.string();
  std::lock_guard<std::mutex> lock(registry_mutex());
  for (const auto& p : loaded_) {
    if (p->path == path) return p;
  }
  // Regular files only: dlopen on a FIFO blocks, a symlink loop must be an error of this file, not
  // of the whole listing.
  const fs::file_status status = fs::status(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) throw PluginError(path + ": " + ec.message());
  if (!fs::exists(status)) throw PluginError(path + ": no such file");
  if (!fs::is_regular_file(status)) {
    throw PluginError(path + ": not a regular file (a plugin is a shared library)");
  }
  // What the manifest knows is checked before the library is opened: opening runs its code. A
  // damaged or out-of-date manifest proves nothing; the checks below read the library itself.
  std::optional<PluginManifest> manifest;
  try {
    manifest = read_manifest(path);
  } catch (const PluginError&) {
  }
  if (manifest) {
    if (const std::string why = manifest_refusal(*manifest); !why.empty()) throw PluginError(why);
  }

  auto library = std::make_shared<boost::dll::shared_library>();
  try {
    library->load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    throw PluginError(path + ": not a loadable shared library: " + e.what());
  }
  if (!library->has(kPluginEntrySymbol)) {
    throw PluginError(path + ": not a selectivbench plugin (no '" +
                      std::string(kPluginEntrySymbol) +
                      "' entry point; define it with SELECTIVBENCH_PLUGIN)");
  }
  const auto entry_fn = library->get<const SbPluginEntry*()>(kPluginEntrySymbol);
  const SbPluginEntry* entry = entry_fn();
  if (entry == nullptr) throw PluginError(path + ": the entry point returned null");
  if (entry->abi_version != SELECTIVBENCH_SDK_ABI_VERSION) {
    throw PluginError(path + ": plugin built against SDK ABI version " +
                      std::to_string(entry->abi_version) + ", this binary uses version " +
                      std::to_string(SELECTIVBENCH_SDK_ABI_VERSION) + ": rebuild the plugin");
  }
  if (entry->struct_size != sizeof(SbPluginEntry)) {
    throw PluginError(path + ": entry struct of " + std::to_string(entry->struct_size) +
                      " bytes, expected " + std::to_string(sizeof(SbPluginEntry)) +
                      ": rebuild the plugin");
  }
  // A copy whose strings end within their fields: a plugin that fills a field to its end
  // without a terminator must not make us read past it.
  SbPluginEntry e = *entry;
  e.name[sizeof(e.name) - 1] = '\0';
  e.fingerprint.torch_version[sizeof(e.fingerprint.torch_version) - 1] = '\0';
  e.fingerprint.compiler[sizeof(e.fingerprint.compiler) - 1] = '\0';
  const SbBuildFingerprint host = this_build_fingerprint();
  if (const std::string diff = fingerprint_mismatch(e.fingerprint, host); !diff.empty()) {
    throw PluginError(path + ": plugin " + std::string(e.name) + " was built against " +
                      diff + ": rebuild the plugin");
  }
  auto plugin = std::make_shared<LoadedPlugin>();
  plugin->path = path;
  plugin->fingerprint = e.fingerprint;
  plugin->library = library;
  char error[1024] = {0};
  const int described = e.describe(&plugin->descriptor, error, sizeof(error));
  error[sizeof(error) - 1] = '\0';
  if (described != 0) {
    throw PluginError(path + ": describing the plugin failed: " + error);
  }
  const PluginDescriptor& d = plugin->descriptor;
  if (d.name != e.name) {
    throw PluginError(path + ": descriptor name '" + d.name + "' differs from the entry's '" +
                      e.name + "'");
  }
  if (const std::string stem = plugin_name_of_file(path); stem != d.name) {
    throw PluginError(path + ": plugin '" + d.name + "' must be in a file named libsb_" + d.name +
                      ".so");
  }
  if (!d.factory) throw PluginError(path + ": plugin '" + d.name + "' has no factory");
  for (const auto& p : loaded_) {
    if (p->descriptor.name == d.name) {
      throw PluginError(path + ": duplicate plugin name '" + d.name + "', already loaded from " +
                        p->path);
    }
  }
  loaded_.push_back(plugin);
  return plugin;
}

std::shared_ptr<const LoadedPlugin> PluginRegistry::find(const std::string& name,
                                                         const std::vector<SearchFolder>& folders) {
  std::string searched;
  for (std::size_t i = 0; i < folders.size(); ++i) {
    const std::string file = plugin_file(name, {folders[i]});
    searched += "\n  " + folders[i].path + " (" + folders[i].origin + ")";
    if (file.empty()) continue;
    warn_if_world_writable(folders[i].path);
    warn_if_shadowing(name, file, folders[i], {folders.begin() + i + 1, folders.end()});
    return load_file(file);
  }
  // The names on the path come from the file names: nothing is loaded to suggest one.
  std::vector<std::string> names;
  std::string known;
  for (const auto& folder : folders) {
    std::error_code ec;
    if (!fs::is_directory(folder.path, ec)) continue;
    for (const auto& e : fs::directory_iterator(folder.path, ec)) {
      const std::string file = e.path().filename().string();
      if (!is_plugin_file_name(file)) continue;
      const std::string n = plugin_name_of_file(file);
      if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
    }
  }
  std::sort(names.begin(), names.end());
  for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
  const std::string guess = closest_match(name, names);
  throw PluginError("no plugin '" + name + "' (libsb_" + name + ".so)" +
                    (guess.empty() ? "" : "; did you mean '" + guess + "'?") +
                    (known.empty() ? "" : " Available: " + known + ".") + " Searched:" +
                    searched);
}

std::string plugin_file(const std::string& name_or_path, const std::vector<SearchFolder>& folders) {
  const bool is_path = name_or_path.find('/') != std::string::npos ||
                       (name_or_path.size() > 3 &&
                        name_or_path.compare(name_or_path.size() - 3, 3, ".so") == 0);
  if (is_path) return name_or_path;
  for (const auto& folder : folders) {
    const fs::path file = fs::path(folder.path) / ("libsb_" + name_or_path + ".so");
    std::error_code ec;
    // A dangling or looping symlink is found too: loading it then says what is wrong with it.
    if (fs::exists(fs::symlink_status(file, ec))) return file.string();
  }
  return "";
}

std::shared_ptr<const LoadedPlugin> PluginRegistry::resolve(
    const std::string& name_or_path, const std::vector<SearchFolder>& folders) {
  const std::string file = plugin_file(name_or_path, folders);
  return file == name_or_path ? load_file(file) : find(name_or_path, folders);
}

Options resolve_options(const PluginDescriptor& d,
                        const std::vector<std::pair<std::string, OptionValue>>& given,
                        const std::string& where) {
  Options options(d.options);
  std::vector<std::string> names;
  for (const auto& s : d.options) names.push_back(s.name);
  for (const auto& [name, value] : given) {
    const OptionSpec* spec = nullptr;
    for (const auto& s : d.options) {
      if (s.name == name) spec = &s;
    }
    auto fail = [&](const std::string& why) {
      throw PluginError(where + "." + name + ": " + why);
    };
    if (spec == nullptr) {
      std::string allowed;
      for (const auto& n : names) allowed += (allowed.empty() ? "" : ", ") + n;
      const std::string guess = closest_match(name, names);
      fail("plugin " + d.name + " has no option '" + name + "'" +
           (guess.empty() ? "" : "; did you mean '" + guess + "'?") +
           " (options: " + (allowed.empty() ? "none" : allowed) + ")");
    }
    OptionValue v = value;
    // An integer is accepted for a float option.
    if (spec->type == OptionType::kFloat && std::holds_alternative<std::int64_t>(v)) {
      v = static_cast<double>(std::get<std::int64_t>(v));
    }
    const bool type_ok =
        (spec->type == OptionType::kInt && std::holds_alternative<std::int64_t>(v)) ||
        (spec->type == OptionType::kFloat && std::holds_alternative<double>(v)) ||
        (spec->type == OptionType::kBool && std::holds_alternative<bool>(v)) ||
        (spec->type == OptionType::kString && std::holds_alternative<std::string>(v));
    if (!type_ok) {
      fail(std::string("expected ") + option_type_name(spec->type) + ", got " +
           option_to_string(value));
    }
    if (spec->type == OptionType::kInt || spec->type == OptionType::kFloat) {
      const double x = spec->type == OptionType::kInt
                           ? static_cast<double>(std::get<std::int64_t>(v))
                           : std::get<double>(v);
      if (!(x >= spec->min && x <= spec->max)) {
        std::ostringstream range;
        range << "[" << spec->min << ", " << spec->max << "]";
        fail(option_to_string(v) + " is out of range " + range.str());
      }
    }
    if (spec->type == OptionType::kString && !spec->choices.empty()) {
      const std::string& s = std::get<std::string>(v);
      if (std::find(spec->choices.begin(), spec->choices.end(), s) == spec->choices.end()) {
        std::string allowed;
        for (const auto& c : spec->choices) allowed += (allowed.empty() ? "\"" : ", \"") + c + "\"";
        fail("\"" + s + "\" is not one of " + allowed);
      }
    }
    options.set(name, v);
  }
  return options;
}

std::string describe_taxonomy(const Taxonomy& t) {
  return std::string("recurrence ") + to_string(t.recurrence) + "; gate " + to_string(t.gate) +
         "; transition " + to_string(t.transition) + "; state " + to_string(t.state_expansion) +
         "; memory " + to_string(t.memory) + "; short conv " + (t.short_conv ? "yes" : "no");
}

nlohmann::json taxonomy_json(const Taxonomy& t) {
  return {{"recurrence", to_string(t.recurrence)}, {"gate", to_string(t.gate)},
          {"transition", to_string(t.transition)}, {"state", to_string(t.state_expansion)},
          {"memory", to_string(t.memory)},         {"short_conv", t.short_conv}};
}

}  // namespace sb
