// The plugin loader against plugins that are broken on purpose (fixtures/), and the options schema.
// Each failure must be refused or contained with a message naming the file (or plugin) and cause.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "core/model/network.hpp"
#include "core/plugins/conformance.hpp"
#include "core/plugins/manifest.hpp"
#include "core/plugins/registry.hpp"

namespace fs = std::filesystem;

namespace {

const std::string kBroken = SB_TEST_BROKEN_DIR;   // fixtures built by this suite
const std::string kPlugins = SB_TEST_PLUGIN_DIR;  // the built-in plugins

// The PluginError message of `f`, or a test failure when it does not throw one.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const sb::PluginError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a PluginError";
  return "";
}

fs::path temp_folder(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("sb_loader_" + name + "_" +
                                                    std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

sb::PluginRegistry& registry() { return sb::PluginRegistry::instance(); }

std::shared_ptr<const sb::LoadedPlugin> misbehaving() {
  return registry().load_file(kBroken + "/libsb_misbehaving.so");
}

sb::MixerContext context_with(const sb::LoadedPlugin& plugin, const std::string& behaviour) {
  sb::MixerContext ctx;
  ctx.d_model = 16;
  ctx.n_heads = 2;
  ctx.options = sb::resolve_options(plugin.descriptor, {{"behaviour", behaviour}}, "test");
  return ctx;
}

TEST(Loader, LoadsTheBuiltInPlugins) {
  for (const std::string name : {"transformer", "gla"}) {
    const auto p = registry().find(name, {{kPlugins, "build tree"}});
    EXPECT_EQ(p->descriptor.name, name);
    EXPECT_EQ(sb::describe_fingerprint(p->fingerprint),
              sb::describe_fingerprint(sb::this_build_fingerprint()));
    EXPECT_FALSE(p->descriptor.options.empty());
    // Loading the same file again returns the same plugin.
    EXPECT_EQ(registry().load_file(p->path).get(), p.get());
  }
}

TEST(Loader, RefusesAnotherAbiVersion) {
  const std::string file = kBroken + "/libsb_wrong_abi.so";
  const std::string msg = error_of([&] { registry().load_file(file); });
  EXPECT_NE(msg.find(file), std::string::npos) << msg;
  EXPECT_NE(msg.find("ABI version " + std::to_string(SELECTIVBENCH_SDK_ABI_VERSION + 100)),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("rebuild the plugin"), std::string::npos) << msg;
}

TEST(Loader, RefusesAnotherLibTorch) {
  const std::string file = kBroken + "/libsb_wrong_fingerprint.so";
  const std::string msg = error_of([&] { registry().load_file(file); });
  EXPECT_NE(msg.find(file), std::string::npos) << msg;
  // Both sides are named.
  EXPECT_NE(msg.find("LibTorch 0.0.1, this binary uses " +
                     std::string(sb::this_build_fingerprint().torch_version)),
            std::string::npos)
      << msg;
}

// Strings that fill their fields with no terminator are read only up to the field's end.
TEST(Loader, ReadsEntryStringsOnlyWithinTheirFields) {
  const std::string file = kBroken + "/libsb_unterminated.so";
  const std::string msg = error_of([&] { registry().load_file(file); });
  EXPECT_NE(msg.find("plugin " + std::string(63, 'x') + " was built against LibTorch " +
                     std::string(23, '9') + ", this binary uses"),
            std::string::npos)
      << msg;
}

// A FIFO or a symlink loop named like a plugin is an error of that file: the listing neither hangs
// nor fails as a whole.
TEST(Loader, AFifoOrSymlinkLoopNamedLikeAPluginIsThatFilesError) {
  const fs::path dir = temp_folder("special");
  ASSERT_EQ(::mkfifo((dir / "libsb_fifo.so").c_str(), 0600), 0);
  fs::create_symlink(dir / "libsb_loop.so", dir / "libsb_loop.so");
  EXPECT_NE(error_of([&] { registry().load_file((dir / "libsb_fifo.so").string()); })
                .find("not a regular file"),
            std::string::npos);
  const auto entries = sb::list_plugins({{dir.string(), "test"}});
  ASSERT_EQ(entries.size(), 2u);
  for (const auto& e : entries) {
    EXPECT_FALSE(e.manifest) << e.path;
    EXPECT_FALSE(e.error.empty()) << e.path;
  }
}

TEST(Loader, RefusesALibraryWithoutEntryPoint) {
  const std::string file = kBroken + "/libsb_no_entry.so";
  const std::string msg = error_of([&] { registry().load_file(file); });
  EXPECT_NE(msg.find(file), std::string::npos) << msg;
  EXPECT_NE(msg.find("selectivbench_plugin_entry"), std::string::npos) << msg;
}

TEST(Loader, RefusesAFileThatIsNotASharedLibrary) {
  const fs::path dir = temp_folder("junk");
  const std::string file = (dir / "libsb_junk.so").string();
  std::ofstream(file) << "this is not an ELF file\n";
  const std::string msg = error_of([&] { registry().load_file(file); });
  EXPECT_NE(msg.find(file), std::string::npos) << msg;
  EXPECT_NE(msg.find("not a loadable shared library"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { registry().load_file((dir / "libsb_absent.so").string()); })
                .find("no such file"),
            std::string::npos);
}

TEST(Loader, RefusesADuplicateNameAndAMisnamedFile) {
  const auto gla = registry().find("gla", {{kPlugins, "build tree"}});
  const fs::path dir = temp_folder("dup");
  fs::copy_file(gla->path, dir / "libsb_gla.so");
  const std::string msg = error_of([&] { registry().load_file((dir / "libsb_gla.so").string()); });
  EXPECT_NE(msg.find((dir / "libsb_gla.so").string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("duplicate plugin name 'gla'"), std::string::npos) << msg;
  EXPECT_NE(msg.find(gla->path), std::string::npos) << msg;

  fs::copy_file(gla->path, dir / "libsb_other.so");
  const std::string misnamed =
      error_of([&] { registry().load_file((dir / "libsb_other.so").string()); });
  EXPECT_NE(misnamed.find("must be in a file named libsb_gla.so"), std::string::npos) << misnamed;
}

TEST(Loader, ListingReportsBrokenFilesAndShadowing) {
  const fs::path dir = temp_folder("scan");
  std::ofstream(dir / "libsb_junk.so") << "junk";
  fs::copy_file(kPlugins + "/libsb_gla.so", dir / "libsb_gla.so");
  const auto entries = sb::list_plugins({{kPlugins, "build tree"}, {dir.string(), "second"}});
  bool junk = false, shadowed = false, wrong_abi_seen = false, gla_listed = false;
  for (const auto& e : entries) {
    if (e.path == (dir / "libsb_junk.so").string()) {
      junk = !e.manifest && e.error.find("no manifest") != std::string::npos;
    }
    if (e.path == (dir / "libsb_gla.so").string()) shadowed = !e.shadowed_by.empty();
    if (e.path == kPlugins + "/libsb_gla.so") {
      gla_listed = e.manifest && e.manifest->descriptor.name == "gla";
    }
    wrong_abi_seen |= e.path.find("wrong_abi") != std::string::npos;
  }
  EXPECT_TRUE(junk);
  EXPECT_TRUE(shadowed);
  EXPECT_TRUE(gla_listed);
  EXPECT_FALSE(wrong_abi_seen);  // only the folders given are searched
}

// --- manifests (core/plugins/manifest.hpp): listing and refusing without opening a library

// A copy of the misbehaving fixture, with or without its manifest, in a folder of its own: a new
// path, so opening it would run its static constructor again (it writes SB_TEST_LOAD_MARKER).
struct FixtureCopy {
  fs::path dir, library, manifest, marker;
};
FixtureCopy copy_of_misbehaving(const std::string& name, bool with_manifest) {
  FixtureCopy c;
  c.dir = temp_folder(name);
  c.library = c.dir / "libsb_misbehaving.so";
  c.manifest = c.dir / "libsb_misbehaving.json";
  c.marker = c.dir / "opened";
  fs::copy_file(kBroken + "/libsb_misbehaving.so", c.library);
  if (with_manifest) fs::copy_file(kBroken + "/libsb_misbehaving.json", c.manifest);
  ::setenv("SB_TEST_LOAD_MARKER", c.marker.c_str(), 1);
  return c;
}

nlohmann::json read_json(const fs::path& file) { return nlohmann::json::parse(std::ifstream(file)); }
void write_json(const fs::path& file, const nlohmann::json& j) { std::ofstream(file) << j.dump(2); }

TEST(Manifest, RoundTripsTheDescriptor) {
  const auto gla = registry().find("gla", {{kPlugins, "build tree"}});
  const auto m = sb::read_manifest(gla->path);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->path, kPlugins + "/libsb_gla.json");
  EXPECT_EQ(sb::manifest_refusal(*m), "");
  const auto& a = gla->descriptor;
  const auto& b = m->descriptor;
  EXPECT_EQ(b.name, a.name);
  EXPECT_EQ(b.version, a.version);
  EXPECT_EQ(b.summary, a.summary);
  EXPECT_EQ(sb::describe_taxonomy(b.taxonomy), sb::describe_taxonomy(a.taxonomy));
  EXPECT_EQ(b.capabilities.cuda, a.capabilities.cuda);
  EXPECT_EQ(b.capabilities.recurrent_step, a.capabilities.recurrent_step);
  EXPECT_EQ(b.cuda_dtype, a.cuda_dtype);
  EXPECT_FALSE(b.factory);
  ASSERT_EQ(b.options.size(), a.options.size());
  for (std::size_t i = 0; i < a.options.size(); ++i) {
    EXPECT_EQ(b.options[i].name, a.options[i].name);
    EXPECT_EQ(b.options[i].type, a.options[i].type);
    EXPECT_EQ(b.options[i].default_value, a.options[i].default_value) << a.options[i].name;
    EXPECT_EQ(b.options[i].min, a.options[i].min) << a.options[i].name;  // incl. -inf
    EXPECT_EQ(b.options[i].max, a.options[i].max) << a.options[i].name;
    EXPECT_EQ(b.options[i].choices, a.options[i].choices);
  }
  EXPECT_EQ(sb::describe_fingerprint(m->fingerprint), sb::describe_fingerprint(gla->fingerprint));
}

TEST(Manifest, ListingOpensNoLibrary) {
  const auto c = copy_of_misbehaving("list", true);
  const auto entries = sb::list_plugins({{c.dir.string(), "test"}});
  ASSERT_EQ(entries.size(), 1u);
  ASSERT_TRUE(entries[0].manifest) << entries[0].error;
  EXPECT_EQ(entries[0].manifest->descriptor.name, "misbehaving");
  EXPECT_FALSE(fs::exists(c.marker));
}

TEST(Manifest, ALibraryForAnotherLibTorchIsRefusedBeforeItIsOpened) {
  const auto c = copy_of_misbehaving("refuse", true);
  auto j = read_json(c.manifest);
  j["fingerprint"]["torch_version"] = "0.0.1";
  write_json(c.manifest, j);
  const std::string msg = error_of([&] { registry().load_file(c.library.string()); });
  EXPECT_NE(msg.find("LibTorch 0.0.1, this binary uses"), std::string::npos) << msg;
  EXPECT_NE(msg.find("nothing was loaded"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(c.marker));
  const auto entries = sb::list_plugins({{c.dir.string(), "test"}});
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_NE(entries[0].error.find("LibTorch 0.0.1"), std::string::npos) << entries[0].error;

  j["fingerprint"]["torch_version"] = sb::this_build_fingerprint().torch_version;
  j["abi_version"] = SELECTIVBENCH_SDK_ABI_VERSION + 7;
  write_json(c.manifest, j);
  EXPECT_NE(error_of([&] { registry().load_file(c.library.string()); })
                .find("SDK ABI version " + std::to_string(SELECTIVBENCH_SDK_ABI_VERSION + 7)),
            std::string::npos);
  EXPECT_FALSE(fs::exists(c.marker));
}

TEST(Manifest, OutOfDateDamagedOrMissingIsSaidByName) {
  const auto c = copy_of_misbehaving("stale", true);
  const auto listed = [&] {
    const auto entries = sb::list_plugins({{c.dir.string(), "test"}});
    EXPECT_EQ(entries.size(), 1u);
    // "" when it lists: then the manifest was read.
    return entries.empty() ? std::string("nothing listed") : entries[0].error;
  };
  // The library changed after its manifest was written.
  std::ofstream(c.library, std::ios::app) << '\0';
  EXPECT_NE(listed().find(c.manifest.string() + ": out of date"), std::string::npos) << listed();
  fs::copy_file(kBroken + "/libsb_misbehaving.so", c.library, fs::copy_options::overwrite_existing);
  EXPECT_EQ(listed(), "");  // restored, it lists again

  auto j = read_json(c.manifest);
  j["taxonomy"]["gate"] = "sometimes";
  write_json(c.manifest, j);
  EXPECT_NE(listed().find("key 'taxonomy.gate': 'sometimes' is not one of none, fixed_decay"),
            std::string::npos)
      << listed();
  j = read_json(kBroken + "/libsb_misbehaving.json");
  j["colour"] = "blue";
  write_json(c.manifest, j);
  EXPECT_NE(listed().find("key 'colour': unknown key"), std::string::npos) << listed();
  j.erase("colour");
  j["options"][0].erase("type");
  write_json(c.manifest, j);
  EXPECT_NE(listed().find("key 'options[0].type': missing"), std::string::npos) << listed();
  std::ofstream(c.manifest) << "{ not json";
  EXPECT_NE(listed().find(c.manifest.string() + ": damaged JSON"), std::string::npos) << listed();
  fs::remove(c.manifest);
  EXPECT_NE(listed().find("no manifest"), std::string::npos) << listed();
  EXPECT_FALSE(fs::exists(c.marker));
}

TEST(Loader, SearchPathOrder) {
  ::setenv("SELECTIVBENCH_PLUGIN_PATH", "/env/a:/env/b", 1);
  const auto path = sb::plugin_search_path({"/cli"}, {"/toml"});
  ::unsetenv("SELECTIVBENCH_PLUGIN_PATH");
  ASSERT_GE(path.size(), 5u);
  EXPECT_EQ(path[0].path, "/cli");
  EXPECT_EQ(path[0].origin, "--plugin-path");
  EXPECT_EQ(path[1].path, "/toml");
  EXPECT_EQ(path[2].path, "/env/a");
  EXPECT_EQ(path[3].path, "/env/b");
  EXPECT_EQ(path[2].origin, "SELECTIVBENCH_PLUGIN_PATH");
  EXPECT_EQ(path[4].origin, "installed");
  EXPECT_EQ(path.back().origin, "build tree");
}

TEST(Loader, FindListsTheFoldersSearched) {
  const std::string msg = error_of([&] { registry().find("no_such_gate", {{"/nowhere", "x"}}); });
  EXPECT_NE(msg.find("no_such_gate"), std::string::npos) << msg;
  EXPECT_NE(msg.find("/nowhere"), std::string::npos) << msg;
}

TEST(Loader, FactoryExceptionNamesPluginAndLayer) {
  const auto p = misbehaving();
  auto ctx = context_with(*p, "throw_in_factory");
  ctx.layer_index = 3;
  const std::string msg = error_of([&] { p->create(ctx); });
  EXPECT_NE(msg.find("plugin misbehaving"), std::string::npos) << msg;
  EXPECT_NE(msg.find("layer 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("refuses to be built"), std::string::npos) << msg;
}

TEST(Loader, MixerKeepsWorkingAndHoldsItsLibrary) {
  const auto p = misbehaving();
  const long before = p->library.use_count();
  auto mixer = p->create(context_with(*p, "fine"));
  EXPECT_GT(p->library.use_count(), before);
  const auto y = mixer->forward(torch::randn({2, 5, 16}));
  EXPECT_EQ(y.sizes(), torch::IntArrayRef({2, 5, 16}));
}

sb::Network network_of(const std::shared_ptr<const sb::LoadedPlugin>& p,
                       const std::string& behaviour) {
  sb::NetworkSpec spec;
  spec.input_size = 5;
  spec.num_classes = 7;
  spec.d_model = 16;
  spec.n_heads = 2;
  spec.layers = {{registry().find("gla", {{kPlugins, "build tree"}}),
                  sb::Options(registry().find("gla", {{kPlugins, "build tree"}})->descriptor.options)},
                 {p, sb::resolve_options(p->descriptor, {{"behaviour", behaviour}}, "test")}};
  return sb::Network(spec);
}

TEST(Loader, ForwardErrorsNamePluginLayerAndShapes) {
  const auto p = misbehaving();
  auto thrower = network_of(p, "throw_in_forward");
  std::string msg = error_of([&] { thrower->forward(torch::randn({2, 9, 5})); });
  EXPECT_NE(msg.find("plugin misbehaving failed in forward at layer 1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[2, 9, 16]"), std::string::npos) << msg;

  auto wrong = network_of(p, "wrong_shape");
  msg = error_of([&] { wrong->forward(torch::randn({2, 9, 5})); });
  EXPECT_NE(msg.find("plugin misbehaving at layer 1 returned [2, 9, 8]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[B, T, D]"), std::string::npos) << msg;
}

sb::ConformanceReport check(const std::shared_ptr<const sb::LoadedPlugin>& p,
                            const std::string& behaviour) {
  sb::ConformanceOptions o;
  o.d_model = 16;
  o.n_heads = 2;
  o.throughput = false;
  o.plugin_options = {{"behaviour", behaviour}};
  return sb::run_conformance(*p, o);
}

const sb::CheckResult* find_check(const sb::ConformanceReport& r, const std::string& name) {
  for (const auto& c : r.checks) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

TEST(Conformance, FlagsWrongShapeNaNAndThrowingPlugins) {
  const auto p = misbehaving();
  const auto wrong = check(p, "wrong_shape");
  EXPECT_FALSE(wrong.passed());
  ASSERT_NE(find_check(wrong, "shape and dtype"), nullptr);
  EXPECT_EQ(find_check(wrong, "shape and dtype")->status, "FAIL");
  EXPECT_NE(find_check(wrong, "shape and dtype")->detail.find("[2, 1, 8]"), std::string::npos);

  const auto nan = check(p, "nan");
  EXPECT_FALSE(nan.passed());
  EXPECT_NE(find_check(nan, "shape and dtype")->detail.find("non-finite"), std::string::npos);

  const auto thrower = check(p, "throw_in_factory");
  EXPECT_FALSE(thrower.passed());
  ASSERT_EQ(thrower.checks.size(), 1u);
  EXPECT_NE(thrower.checks[0].detail.find("refuses to be built"), std::string::npos);

  // A fine linear map passes causality and the rest, with 0 state elements.
  const auto fine = check(p, "fine");
  for (const auto& c : fine.checks) EXPECT_NE(c.status, "FAIL") << c.name << ": " << c.detail;
  EXPECT_NE(sb::format_report(fine).find("PASSED"), std::string::npos);
}

TEST(Conformance, PassesForTheBuiltInPlugins) {
  for (const std::string name : {"transformer", "gla"}) {
    sb::ConformanceOptions o;
    o.throughput = false;
    const auto r = sb::run_conformance(*registry().find(name, {{kPlugins, "build tree"}}), o);
    EXPECT_TRUE(r.passed()) << sb::format_report(r);
    EXPECT_GE(r.checks.size(), 9u);
  }
}

TEST(Options, SchemaIsEnforced) {
  const auto gla = registry().find("gla", {{kPlugins, "build tree"}});
  const auto& d = gla->descriptor;
  std::string msg = error_of([&] { sb::resolve_options(d, {{"chunk_sise", std::int64_t{8}}}, "f.toml: plugins.gla"); });
  EXPECT_NE(msg.find("f.toml: plugins.gla"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean"), std::string::npos) << msg;
  msg = error_of([&] { sb::resolve_options(d, {{"chunk_size", std::string("big")}}, "w"); });
  EXPECT_NE(msg.find("integer"), std::string::npos) << msg;
  msg = error_of([&] { sb::resolve_options(d, {{"chunk_size", std::int64_t{0}}}, "w"); });
  EXPECT_NE(msg.find("chunk_size"), std::string::npos) << msg;
  const auto ok = sb::resolve_options(d, {{"chunk_size", std::int64_t{32}}}, "w");
  EXPECT_EQ(ok.get_int("chunk_size"), 32);
  EXPECT_EQ(ok.values().size(), d.options.size());  // defaults for the rest
}

}  // namespace
