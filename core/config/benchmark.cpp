#include "core/config/benchmark.hpp"

#include "core/train/settings.hpp"

#include <toml++/toml.h>

#include <filesystem>

namespace sb {

namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kRootKeys = {"benchmark", "hybrids",  "width_remap",
                                            "model",     "training", "plugins"};
const std::vector<std::string> kBenchmarkKeys = {
    "name",   "description", "tasks", "task_set",       "models",
    "widths", "layers",      "seeds", "learning_rates", "warmups"};
const std::vector<std::string> kModelKeys = {"norm_placement", "norm",    "mlp",
                                             "mlp_expansion",  "dropout", "heads"};
const std::vector<std::string> kTrainingKeys = {
    "batch_size", "optimizer",   "weight_decay",      "beta1",      "beta2",
    "eps",        "schedule",    "max_updates",       "clip_norm",  "grad_accumulation",
    "eval_every", "eval_batch_size", "reference_quirks", "device",   "dtype",
    "threads",    "cache_dir",   "cuda_graphs"};

// A non-empty array of one element type, read through `t` (the key is marked as used).
template <typename T>
std::vector<T> read_list(TableReader& t, const std::string& key, bool required,
                         double min = -1e300, double max = 1e300) {
  const toml::node* node = t.get_node(key);
  if (node == nullptr) {
    if (required) t.fail(key, "required: a list, e.g. " + key + " = [...]");
    return {};
  }
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    t.fail(key, "expected a list, got " + TableReader::describe(*node));
  }
  if (array->empty() && required) t.fail(key, "empty list");
  std::vector<T> out;
  for (const toml::node& item : *array) {
    if constexpr (std::is_same_v<T, std::string>) {
      if (!item.is_string()) t.fail(key, "expected strings, got " + TableReader::describe(item));
      out.push_back(item.as_string()->get());
    } else if constexpr (std::is_same_v<T, double>) {
      if (!item.is_number()) t.fail(key, "expected numbers, got " + TableReader::describe(item));
      const double v = item.is_integer() ? static_cast<double>(item.as_integer()->get())
                                         : item.as_floating_point()->get();
      if (!(v >= min && v <= max)) {
        t.fail(key, TableReader::value_text(item) + " is out of range [" + std::to_string(min) +
                        ", " + std::to_string(max) + "]");
      }
      out.push_back(v);
    } else {
      if (!item.is_integer()) t.fail(key, "expected integers, got " + TableReader::describe(item));
      const auto v = item.as_integer()->get();
      if (static_cast<double>(v) < min || static_cast<double>(v) > max) {
        t.fail(key, std::to_string(v) + " is out of range [" +
                        std::to_string(static_cast<long long>(min)) + ", " +
                        std::to_string(static_cast<long long>(max)) + "]");
      }
      out.push_back(static_cast<T>(v));
    }
  }
  return out;
}

std::string resolve_path(const std::string& base_file, const std::string& path) {
  if (path.empty() || fs::path(path).is_absolute()) return path;
  return (fs::path(base_file).parent_path() / path).lexically_normal().string();
}

}  // namespace

std::int64_t BenchmarkSpec::effective_width(const std::string& model, std::int64_t width) const {
  const auto m = width_remap.find(model);
  if (m == width_remap.end()) return width;
  const auto w = m->second.find(width);
  return w == m->second.end() ? width : w->second;
}

std::vector<std::string> BenchmarkSpec::layer_plugins(const std::string& model,
                                                      std::int64_t n_layers) const {
  auto it = hybrids.find(model);
  std::vector<std::string> out;
  for (std::int64_t l = 0; l < n_layers; ++l) {
    out.push_back(it == hybrids.end() ? model
                                      : it->second[static_cast<std::size_t>(l) % it->second.size()]);
  }
  return out;
}

BenchmarkSpec load_benchmark(const std::string& path, const std::vector<Override>& overrides) {
  const std::string text = read_config_file(path, "benchmark file");
  const toml::table doc = build_document(text, path, overrides);
  const auto origins = origins_of(overrides);
  TableReader root(&doc, "", path);
  root.set_origins(origins);

  BenchmarkSpec b;
  b.source = path;
  {
    TableReader t = root.get_table("benchmark");
    if (!root.has("benchmark")) root.fail("benchmark", "required: a [benchmark] table");
    b.name = t.get_string("name", fs::path(path).stem().string());
    if (!is_path_name(b.name)) {
      t.fail("name", "\"" + b.name.substr(0, 80) + "\" is not a valid benchmark name (" +
                         kPathNameRule + (t.has("name") ? "" : "; set [benchmark] name") + ")");
    }
    b.description = t.get_string("description", "");
    for (const auto& task : read_list<std::string>(t, "tasks", true)) {
      const std::string resolved = resolve_path(path, task);
      if (!fs::exists(resolved)) t.fail("tasks", "no task file " + resolved);
      b.task_files.push_back(resolved);
    }
    for (const auto& o : read_list<std::string>(t, "task_set", false)) {
      b.task_overrides.push_back(parse_override(o));
    }
    b.models = read_list<std::string>(t, "models", true);
    for (const auto& m : b.models) {
      if (!is_path_name(m)) {
        t.fail("models", "\"" + m.substr(0, 80) + "\" is not a model name (a plugin or hybrid name: " +
                             kPathNameRule + "; plugins in other folders: [plugins] paths)");
      }
    }
    b.widths = read_list<std::int64_t>(t, "widths", true, 1, 65536);
    b.layers = read_list<std::int64_t>(t, "layers", true, 1, 1024);
    b.seeds = read_list<std::int64_t>(t, "seeds", true, 0, 9.2e18);
    b.learning_rates = read_list<double>(t, "learning_rates", true, 1e-12, 10.0);
    b.warmups = read_list<std::int64_t>(t, "warmups", true, 0, 1e12);
    t.finish(kBenchmarkKeys);
    // The grid is planned in memory before anything runs: bound it like a task's sweep axes.
    const double grid = static_cast<double>(b.models.size()) * static_cast<double>(b.widths.size()) *
                        static_cast<double>(b.layers.size()) * static_cast<double>(b.seeds.size()) *
                        static_cast<double>(b.learning_rates.size()) *
                        static_cast<double>(b.warmups.size()) * static_cast<double>(b.task_files.size());
    if (grid > static_cast<double>(kMaxRuns)) {
      t.fail("models", "tasks x models x widths x layers x seeds x learning_rates x warmups make " +
                           std::to_string(static_cast<long long>(grid)) + " runs (at most " +
                           std::to_string(kMaxRuns) + "; split the study into several benchmarks)");
    }
  }
  {
    TableReader t = root.get_table("hybrids");
    if (const toml::node* node = doc.get("hybrids"); node != nullptr && node->is_table()) {
      std::vector<std::string> names;
      for (const auto& [key, value] : *node->as_table()) names.emplace_back(key.str());
      for (const auto& name : names) {
        if (!is_bare_key(name)) t.fail(name, "a hybrid name must be a bare key");
        b.hybrids[name] = read_list<std::string>(t, name, true);
        for (const auto& layer : b.hybrids[name]) {
          if (!is_path_name(layer)) {
            t.fail(name, "\"" + layer.substr(0, 80) + "\" is not a plugin name (" + kPathNameRule + ")");
          }
        }
      }
      t.finish(names);
    }
  }
  {
    // [width_remap.<model>] "<width>" = <width it runs at> (0: skipped), e.g. the reference's
    // transformer 648 -> 768 (models.md §2). The head count stays that of the original width.
    TableReader t = root.get_table("width_remap");
    if (const toml::node* node = doc.get("width_remap"); node != nullptr && node->is_table()) {
      std::vector<std::string> models;
      for (const auto& [key, value] : *node->as_table()) {
        const std::string model(key.str());
        models.push_back(model);
        TableReader m = t.get_table(model);
        const toml::table* table = value.as_table();
        if (table == nullptr) t.fail(model, "expected a table of width = width");
        std::vector<std::string> widths;
        for (const auto& [wkey, wvalue] : *table) {
          const std::string from(wkey.str());
          widths.push_back(from);
          std::int64_t w = 0;
          try {
            std::size_t used = 0;
            w = std::stoll(from, &used);
            if (used != from.size() || w < 1) throw std::invalid_argument(from);
          } catch (const std::exception&) {
            m.fail(from, "a key of width_remap is a width (a positive integer), got \"" + from +
                             "\"");
          }
          b.width_remap[model][w] = m.get_int(from, 0, 0, 65536);
        }
        m.finish(widths);
      }
      t.finish(models);
    }
  }
  {
    TableReader t = root.get_table("model");
    BlockSpec& m = b.block;
    m.placement = t.get_enum("norm_placement", "post", {"post", "pre"}) == "post"
                      ? NormPlacement::kPost
                      : NormPlacement::kPre;
    m.norm = t.get_enum("norm", "layernorm", {"layernorm", "rmsnorm"}) == "layernorm"
                 ? NormKind::kLayerNorm
                 : NormKind::kRMSNorm;
    m.mlp = t.get_bool("mlp", m.mlp);
    m.mlp_expansion = t.get_int("mlp_expansion", m.mlp_expansion, 1, 64);
    m.dropout = t.get_float("dropout", m.dropout, 0.0, 0.99);
    b.heads = t.get_int("heads", b.heads, 0, 4096);
    t.finish(kModelKeys);
  }
  {
    TableReader t = root.get_table("training");
    TrainingSpec& r = b.training;
    r.batch_size = t.get_int("batch_size", r.batch_size, 1, 1 << 20);
    r.optimizer = t.get_enum("optimizer", r.optimizer, {"adam", "adamw"});
    r.weight_decay = t.get_float("weight_decay", r.weight_decay, 0.0, 10.0);
    r.beta1 = t.get_float("beta1", r.beta1, 0.0, 0.999999);
    r.beta2 = t.get_float("beta2", r.beta2, 0.0, 0.999999);
    r.eps = t.get_float("eps", r.eps, 0.0, 1.0);
    r.schedule = t.get_enum("schedule", r.schedule, {"cosine", "constant"});
    r.max_updates = t.get_int("max_updates", r.max_updates, 0, std::int64_t{1} << 40);
    r.clip_norm = t.get_float("clip_norm", r.clip_norm, 0.0, 1e9);
    r.grad_accumulation = t.get_int("grad_accumulation", r.grad_accumulation, 0, 1 << 20);
    r.eval_every = t.get_int("eval_every", r.eval_every, 1, std::int64_t{1} << 40);
    r.eval_batch_size = t.get_int("eval_batch_size", r.eval_batch_size, 1, 1 << 20);
    r.reference_quirks = t.get_bool("reference_quirks", r.reference_quirks);
    r.device = t.get_string("device", r.device);
    if (r.device != "cpu" && r.device != "cuda" && r.device.rfind("cuda:", 0) != 0) {
      t.fail("device", "\"" + r.device + "\" is not a device (allowed: \"cpu\", \"cuda\", \"cuda:N\")");
    }
    r.dtype = t.get_enum("dtype", r.dtype, precision_choices());
    r.threads = t.get_int("threads", r.threads, 0, 4096);
    r.cuda_graphs = t.get_bool("cuda_graphs", r.cuda_graphs);
    r.cache_dir = resolve_path(path, t.get_string("cache_dir", r.cache_dir));
    if (r.batch_size % std::max<std::int64_t>(1, r.grad_accumulation) != 0) {
      t.fail("grad_accumulation", "batch_size " + std::to_string(r.batch_size) +
                                      " is not a multiple of " +
                                      std::to_string(r.grad_accumulation));
    }
    t.finish(kTrainingKeys);
  }
  {
    TableReader t = root.get_table("plugins");
    std::vector<std::string> allowed = {"paths"};
    for (const auto& p : read_list<std::string>(t, "paths", false)) {
      b.plugin_paths.push_back(resolve_path(path, p));
    }
    if (const toml::node* node = doc.get("plugins"); node != nullptr && node->is_table()) {
      for (const auto& [key, value] : *node->as_table()) {
        const std::string name(key.str());
        if (name == "paths") continue;
        allowed.push_back(name);
        TableReader options = t.get_table(name);
        const toml::table* table = value.as_table();
        std::vector<std::string> option_names;
        auto& list = b.plugin_options[name];
        for (const auto& [okey, ovalue] : *table) {
          const std::string oname(okey.str());
          option_names.push_back(oname);
          const toml::node* n = options.get_node(oname);
          if (n->is_integer()) {
            list.emplace_back(oname, OptionValue{n->as_integer()->get()});
          } else if (n->is_floating_point()) {
            list.emplace_back(oname, OptionValue{n->as_floating_point()->get()});
          } else if (n->is_boolean()) {
            list.emplace_back(oname, OptionValue{n->as_boolean()->get()});
          } else if (n->is_string()) {
            list.emplace_back(oname, OptionValue{n->as_string()->get()});
          } else {
            options.fail(oname, "a plugin option is an integer, float, bool or string; got " +
                                    TableReader::describe(*n));
          }
        }
        const auto line = value.source().begin.line;
        b.plugin_options_where[name] =
            path + (line ? ":" + std::to_string(line) : std::string()) + ": plugins." + name;
        options.finish(option_names);
      }
    }
    t.finish(allowed);
  }
  root.finish(kRootKeys);

  for (const auto& [name, layers] : b.hybrids) {
    if (std::find(layers.begin(), layers.end(), name) != layers.end()) {
      throw ConfigError(path + ": hybrids." + name + ": a hybrid cannot contain itself");
    }
  }
  return b;
}

}  // namespace sb
