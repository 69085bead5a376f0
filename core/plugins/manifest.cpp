#include "core/plugins/manifest.hpp"

#include <boost/crc.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

namespace sb {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A manifest is a few KiB; anything much larger is not one.
constexpr std::uintmax_t kMaxManifestBytes = 1 << 20;

// Enum values as the manifest spells them: stable machine names, not the display text.
template <typename E>
using Names = std::vector<std::pair<E, const char*>>;

const Names<Recurrence> kRecurrence = {
    {Recurrence::kNone, "none"}, {Recurrence::kLinear, "linear"}, {Recurrence::kNonlinear, "nonlinear"}};
const Names<Gate> kGate = {{Gate::kNone, "none"},
                           {Gate::kFixedDecay, "fixed_decay"},
                           {Gate::kScalarPerHead, "scalar_per_head"},
                           {Gate::kVectorPerChannel, "vector_per_channel"}};
const Names<Transition> kTransition = {{Transition::kNotApplicable, "not_applicable"},
                                       {Transition::kDiagonal, "diagonal"},
                                       {Transition::kDiagonalPlusLowRank, "diagonal_plus_low_rank"},
                                       {Transition::kDense, "dense"}};
const Names<StateExpansion> kState = {{StateExpansion::kNotApplicable, "not_applicable"},
                                      {StateExpansion::kVectorPerChannel, "vector_per_channel"},
                                      {StateExpansion::kMatrixPerHead, "matrix_per_head"}};
const Names<Memory> kMemory = {{Memory::kConstant, "constant"},
                               {Memory::kGrowsWithLength, "grows_with_length"}};
const Names<OptionType> kOptionType = {{OptionType::kInt, "int"},
                                       {OptionType::kFloat, "float"},
                                       {OptionType::kBool, "bool"},
                                       {OptionType::kString, "string"}};

template <typename E>
const char* name_of(const Names<E>& names, E value) {
  for (const auto& [v, n] : names) {
    if (v == value) return n;
  }
  return "?";
}

struct LibraryStamp {
  std::uintmax_t bytes = 0;
  std::uint32_t crc32 = 0;
};

LibraryStamp stamp_of(const std::string& library) {
  std::ifstream in(library, std::ios::binary);
  if (!in) throw PluginError(library + ": cannot open");
  boost::crc_32_type crc;
  LibraryStamp stamp;
  std::vector<char> buffer(1 << 16);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    crc.process_bytes(buffer.data(), static_cast<std::size_t>(in.gcount()));
    stamp.bytes += static_cast<std::uintmax_t>(in.gcount());
  }
  stamp.crc32 = crc.checksum();
  return stamp;
}

std::string hex32(std::uint32_t v) {
  char text[9];
  std::snprintf(text, sizeof(text), "%08x", v);
  return text;
}

// Reads the manifest's values with errors that name the file and the key.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& why) const {
    throw PluginError(file_ + ": " + (key.empty() ? "" : "key '" + key + "': ") + why +
                      "; `selectivbench plugins manifest LIBRARY` rewrites it");
  }

  const json& object(const json& parent, const std::string& key, const std::string& where,
                     const std::set<std::string>& allowed) const {
    const json& v = at(parent, key, where);
    if (!v.is_object()) fail(path(where, key), "expected a table");
    only(v, path(where, key), allowed);
    return v;
  }
  void only(const json& object, const std::string& where, const std::set<std::string>& allowed) const {
    for (const auto& [k, unused] : object.items()) {
      if (!allowed.count(k)) fail(path(where, k), "unknown key");
    }
  }
  std::string text(const json& parent, const std::string& key, const std::string& where,
                   std::size_t max_size = 4096) const {
    const json& v = at(parent, key, where);
    if (!v.is_string()) fail(path(where, key), "expected a string");
    const auto& s = v.get_ref<const std::string&>();
    if (s.size() > max_size) fail(path(where, key), "longer than " + std::to_string(max_size));
    return s;
  }
  bool flag(const json& parent, const std::string& key, const std::string& where) const {
    const json& v = at(parent, key, where);
    if (!v.is_boolean()) fail(path(where, key), "expected true or false");
    return v.get<bool>();
  }
  std::int64_t integer(const json& parent, const std::string& key, const std::string& where) const {
    const json& v = at(parent, key, where);
    if (!v.is_number_integer()) fail(path(where, key), "expected an integer");
    return v.get<std::int64_t>();
  }
  template <typename E>
  E choice(const json& parent, const std::string& key, const std::string& where,
           const Names<E>& names) const {
    const std::string s = text(parent, key, where);
    std::string allowed;
    for (const auto& [v, n] : names) {
      if (s == n) return v;
      allowed += (allowed.empty() ? "" : ", ") + std::string(n);
    }
    fail(path(where, key), "'" + s + "' is not one of " + allowed);
  }

  static std::string path(const std::string& where, const std::string& key) {
    return where.empty() ? key : where + "." + key;
  }

 private:
  const json& at(const json& parent, const std::string& key, const std::string& where) const {
    const auto it = parent.find(key);
    if (it == parent.end()) fail(path(where, key), "missing");
    return *it;
  }
  std::string file_;
};

// A bound of an option's range: JSON has no infinity, so an open end is null.
json bound_json(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json option_value_json(const OptionValue& v) {
  return std::visit([](const auto& x) { return json(x); }, v);
}

OptionSpec read_option(const Reader& r, const json& o, const std::string& where) {
  r.only(o, where, {"name", "type", "default", "min", "max", "choices", "doc"});
  OptionSpec spec;
  spec.name = r.text(o, "name", where, 256);
  spec.type = r.choice(o, "type", where, kOptionType);
  spec.doc = r.text(o, "doc", where);
  const json& d = o.contains("default") ? o["default"] : json();
  const std::string key = Reader::path(where, "default");
  switch (spec.type) {
    case OptionType::kInt:
      if (!d.is_number_integer()) r.fail(key, "expected an integer");
      spec.default_value = d.get<std::int64_t>();
      break;
    case OptionType::kFloat:
      if (!d.is_number()) r.fail(key, "expected a number");
      spec.default_value = d.get<double>();
      break;
    case OptionType::kBool:
      if (!d.is_boolean()) r.fail(key, "expected true or false");
      spec.default_value = d.get<bool>();
      break;
    case OptionType::kString:
      if (!d.is_string()) r.fail(key, "expected a string");
      spec.default_value = d.get<std::string>();
      break;
  }
  const auto read_bound = [&](const char* name, double open) {
    if (!o.contains(name) || o[name].is_null()) return open;
    if (!o[name].is_number()) r.fail(Reader::path(where, name), "expected a number or null");
    return o[name].get<double>();
  };
  spec.min = read_bound("min", -std::numeric_limits<double>::infinity());
  spec.max = read_bound("max", std::numeric_limits<double>::infinity());
  if (o.contains("choices")) {
    if (!o["choices"].is_array()) r.fail(Reader::path(where, "choices"), "expected a list");
    for (const auto& c : o["choices"]) {
      if (!c.is_string()) r.fail(Reader::path(where, "choices"), "expected strings");
      spec.choices.push_back(c.get<std::string>());
    }
  }
  return spec;
}

PluginManifest parse_manifest(const std::string& file, const json& m) {
  const Reader r(file);
  if (!m.is_object()) r.fail("", "expected a JSON object");
  const auto format = r.integer(m, "selectivbench_plugin_manifest", "");
  if (format != kManifestFormat) {
    r.fail("selectivbench_plugin_manifest",
           "format " + std::to_string(format) + ", this binary reads format " +
               std::to_string(kManifestFormat));
  }
  r.only(m, "", {"selectivbench_plugin_manifest", "library", "abi_version", "fingerprint", "name",
                 "version", "summary", "source", "taxonomy", "capabilities", "cuda_dtype",
                 "options"});
  PluginManifest out;
  out.path = file;
  const auto abi = r.integer(m, "abi_version", "");
  if (abi < 0 || abi > UINT32_MAX) r.fail("abi_version", "out of range");
  out.abi_version = static_cast<std::uint32_t>(abi);

  const json& f = r.object(m, "fingerprint", "",
                           {"torch_version", "cxx11_abi", "compiler", "compiler_major", "cuda"});
  const std::string torch_version =
      r.text(f, "torch_version", "fingerprint", sizeof(out.fingerprint.torch_version) - 1);
  const std::string compiler =
      r.text(f, "compiler", "fingerprint", sizeof(out.fingerprint.compiler) - 1);
  std::snprintf(out.fingerprint.torch_version, sizeof(out.fingerprint.torch_version), "%s",
                torch_version.c_str());
  std::snprintf(out.fingerprint.compiler, sizeof(out.fingerprint.compiler), "%s", compiler.c_str());
  out.fingerprint.cxx11_abi = static_cast<std::int32_t>(r.integer(f, "cxx11_abi", "fingerprint"));
  out.fingerprint.compiler_major =
      static_cast<std::int32_t>(r.integer(f, "compiler_major", "fingerprint"));
  out.fingerprint.cuda = r.flag(f, "cuda", "fingerprint") ? 1 : 0;

  PluginDescriptor& d = out.descriptor;
  d.name = r.text(m, "name", "", 63);
  d.version = r.text(m, "version", "", 256);
  d.summary = r.text(m, "summary", "");
  d.source = r.text(m, "source", "");
  const json& t = r.object(m, "taxonomy", "",
                           {"recurrence", "gate", "transition", "state", "memory", "short_conv"});
  d.taxonomy.recurrence = r.choice(t, "recurrence", "taxonomy", kRecurrence);
  d.taxonomy.gate = r.choice(t, "gate", "taxonomy", kGate);
  d.taxonomy.transition = r.choice(t, "transition", "taxonomy", kTransition);
  d.taxonomy.state_expansion = r.choice(t, "state", "taxonomy", kState);
  d.taxonomy.memory = r.choice(t, "memory", "taxonomy", kMemory);
  d.taxonomy.short_conv = r.flag(t, "short_conv", "taxonomy");
  const json& c = r.object(m, "capabilities", "", {"recurrent_step", "cuda", "bf16", "reference_only"});
  d.capabilities.recurrent_step = r.flag(c, "recurrent_step", "capabilities");
  d.capabilities.cuda = r.flag(c, "cuda", "capabilities");
  d.capabilities.bf16 = r.flag(c, "bf16", "capabilities");
  d.capabilities.reference_only = r.flag(c, "reference_only", "capabilities");
  d.cuda_dtype = r.choice(m, "cuda_dtype", "",
                          Names<torch::ScalarType>{{torch::kFloat32, "float32"},
                                                   {torch::kBFloat16, "bfloat16"}});
  if (!m.contains("options") || !m["options"].is_array()) r.fail("options", "expected a list");
  for (std::size_t i = 0; i < m["options"].size(); ++i) {
    const std::string where = "options[" + std::to_string(i) + "]";
    if (!m["options"][i].is_object()) r.fail(where, "expected a table");
    d.options.push_back(read_option(r, m["options"][i], where));
  }
  return out;
}

}  // namespace

std::string manifest_path_of(const std::string& library) {
  fs::path p(library);
  return p.replace_extension(".json").string();
}

json manifest_json(const LoadedPlugin& plugin) {
  const PluginDescriptor& d = plugin.descriptor;
  const LibraryStamp stamp = stamp_of(plugin.path);
  json options = json::array();
  for (const auto& s : d.options) {
    json o = {{"name", s.name},
              {"type", name_of(kOptionType, s.type)},
              {"default", option_value_json(s.default_value)},
              {"min", bound_json(s.min)},
              {"max", bound_json(s.max)},
              {"doc", s.doc}};
    if (!s.choices.empty()) o["choices"] = s.choices;
    options.push_back(std::move(o));
  }
  const SbBuildFingerprint& f = plugin.fingerprint;
  return {
      {"selectivbench_plugin_manifest", kManifestFormat},
      {"library",
       {{"file", fs::path(plugin.path).filename().string()},
        {"bytes", stamp.bytes},
        {"crc32", hex32(stamp.crc32)}}},
      {"abi_version", SELECTIVBENCH_SDK_ABI_VERSION},
      {"fingerprint",
       {{"torch_version", f.torch_version},
        {"cxx11_abi", f.cxx11_abi},
        {"compiler", f.compiler},
        {"compiler_major", f.compiler_major},
        {"cuda", f.cuda != 0}}},
      {"name", d.name},
      {"version", d.version},
      {"summary", d.summary},
      {"source", d.source},
      {"taxonomy",
       {{"recurrence", name_of(kRecurrence, d.taxonomy.recurrence)},
        {"gate", name_of(kGate, d.taxonomy.gate)},
        {"transition", name_of(kTransition, d.taxonomy.transition)},
        {"state", name_of(kState, d.taxonomy.state_expansion)},
        {"memory", name_of(kMemory, d.taxonomy.memory)},
        {"short_conv", d.taxonomy.short_conv}}},
      {"capabilities",
       {{"recurrent_step", d.capabilities.recurrent_step},
        {"cuda", d.capabilities.cuda},
        {"bf16", d.capabilities.bf16},
        {"reference_only", d.capabilities.reference_only}}},
      {"cuda_dtype", d.cuda_dtype == torch::kBFloat16 ? "bfloat16" : "float32"},
      {"options", options}};
}

std::optional<PluginManifest> read_manifest(const std::string& library) {
  const std::string file = manifest_path_of(library);
  std::error_code ec;
  const fs::file_status status = fs::status(file, ec);
  if (!fs::exists(status)) return std::nullopt;
  // Regular files of a manifest's size only: a FIFO must not block a listing.
  if (!fs::is_regular_file(status)) throw PluginError(file + ": not a regular file");
  if (fs::file_size(file, ec) > kMaxManifestBytes) {
    throw PluginError(file + ": larger than " + std::to_string(kMaxManifestBytes) +
                      " bytes: not a plugin manifest");
  }
  std::ifstream in(file);
  if (!in) throw PluginError(file + ": cannot open");
  json m;
  try {
    m = json::parse(in);
  } catch (const json::exception& e) {
    throw PluginError(file + ": damaged JSON (" + std::string(e.what()) +
                      "); `selectivbench plugins manifest LIBRARY` rewrites it");
  }
  PluginManifest out = parse_manifest(file, m);
  out.library = library;
  const Reader r(file);
  const json& l = r.object(m, "library", "", {"file", "bytes", "crc32"});
  if (r.text(l, "file", "library") != fs::path(library).filename().string()) {
    r.fail("library.file", "describes " + r.text(l, "file", "library") + ", not " +
                               fs::path(library).filename().string());
  }
  const LibraryStamp stamp = stamp_of(library);
  if (r.integer(l, "bytes", "library") != static_cast<std::int64_t>(stamp.bytes) ||
      r.text(l, "crc32", "library") != hex32(stamp.crc32)) {
    throw PluginError(file + ": out of date: " + library +
                      " changed since it was written; `selectivbench plugins manifest " + library +
                      "` rewrites it (that loads the library)");
  }
  return out;
}

std::string manifest_refusal(const PluginManifest& m) {
  const std::string where = m.library + ": ";
  if (m.abi_version != SELECTIVBENCH_SDK_ABI_VERSION) {
    return where + "plugin built against SDK ABI version " + std::to_string(m.abi_version) +
           ", this binary uses version " + std::to_string(SELECTIVBENCH_SDK_ABI_VERSION) +
           " (its manifest says so; nothing was loaded): rebuild the plugin";
  }
  if (const std::string diff = fingerprint_mismatch(m.fingerprint, this_build_fingerprint());
      !diff.empty()) {
    return where + "plugin " + m.descriptor.name + " was built against " + diff +
           " (its manifest says so; nothing was loaded): rebuild the plugin";
  }
  if (const std::string stem = plugin_name_of_file(m.library); stem != m.descriptor.name) {
    return where + "its manifest names plugin '" + m.descriptor.name +
           "', which must be in a file named libsb_" + m.descriptor.name + ".so";
  }
  return "";
}

std::vector<ListedPlugin> list_plugins(const std::vector<SearchFolder>& folders) {
  std::vector<ListedPlugin> out;
  std::vector<std::pair<std::string, std::string>> seen;  // name, path
  for (const auto& folder : folders) {
    std::error_code ec;
    if (!fs::is_directory(folder.path, ec)) continue;
    warn_if_world_writable(folder.path);
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(folder.path, ec)) {
      if (is_plugin_file_name(e.path().filename().string())) files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      ListedPlugin entry;
      entry.path = file;
      entry.folder_origin = folder.origin;
      entry.name = plugin_name_of_file(file);
      for (const auto& [n, p] : seen) {
        if (n == entry.name) entry.shadowed_by = p;
      }
      if (entry.shadowed_by.empty()) {
        seen.emplace_back(entry.name, file);
        try {
          if (!fs::is_regular_file(fs::status(file, ec))) {
            throw PluginError(file + ": not a regular file (a plugin is a shared library)");
          }
          entry.manifest = read_manifest(file);
          if (!entry.manifest) {
            throw PluginError(file + ": no manifest (" + manifest_path_of(file) +
                              "); plugins built with selectivbench_add_plugin have one, "
                              "`selectivbench plugins manifest " + file +
                              "` writes it (that loads the library)");
          }
          if (std::string why = manifest_refusal(*entry.manifest); !why.empty()) {
            throw PluginError(why);
          }
        } catch (const PluginError& e) {
          entry.manifest.reset();
          entry.error = e.what();
        }
      }
      out.push_back(std::move(entry));
    }
  }
  return out;
}

}  // namespace sb
