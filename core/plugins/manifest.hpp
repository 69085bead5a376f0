// A plugin's manifest: libsb_<name>.json beside libsb_<name>.so, written when the plugin is built
// (selectivbench_add_plugin runs `selectivbench plugins manifest` on it).
//
// Loading a library runs its static constructors, which is running its code. The manifest holds
// what listing and choosing plugins needs — the SDK ABI version, the build fingerprint and the
// descriptor without its factory — together with the size and CRC-32 of the library it
// describes, so that `plugins` lists and checks every plugin on the path without loading one, and
// the loader refuses a plugin built for another ABI or LibTorch before any of its code runs.
// A manifest whose library changed since it was written is out of date and not used.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/plugins/registry.hpp"

namespace sb {

inline constexpr int kManifestFormat = 1;

struct PluginManifest {
  std::string path;     // the manifest file
  std::string library;  // the library it describes
  std::uint32_t abi_version = 0;
  SbBuildFingerprint fingerprint{};
  PluginDescriptor descriptor;  // no factory
};

// libsb_gla.so → libsb_gla.json, in the same folder.
std::string manifest_path_of(const std::string& library);

// The manifest of a loaded plugin, with its library's size and checksum.
nlohmann::json manifest_json(const LoadedPlugin& plugin);

// Reads the manifest beside `library` and checks it against the library and itself. Returns
// nothing when there is no manifest; throws PluginError naming the manifest (and the key) when it
// is damaged, of another format, or out of date.
std::optional<PluginManifest> read_manifest(const std::string& library);

// Why this binary cannot load the plugin the manifest describes (another SDK ABI, another build
// fingerprint, a name that differs from the file's), or "" when it can.
std::string manifest_refusal(const PluginManifest& manifest);

// A libsb_*.so found on the search path, described by its manifest: nothing is loaded.
struct ListedPlugin {
  std::string path;
  std::string folder_origin;
  std::string name;                       // from the file name
  std::optional<PluginManifest> manifest;  // present, current and loadable here
  std::string error;                      // why not, when it is not
  std::string shadowed_by;                // a plugin of the same name found earlier
};

// Every libsb_*.so in the folders, in search order.
std::vector<ListedPlugin> list_plugins(const std::vector<SearchFolder>& folders);

}  // namespace sb
