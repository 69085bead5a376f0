// `selectivbench grammar`, `show` and `generate`: the data engine from the command line.
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <chrono>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sstream>

#include "core/cli/commands.hpp"
#include "core/cli/progress.hpp"
#include "core/config/task.hpp"
#include "core/data/container.hpp"
#include "core/data/npy.hpp"
#include "core/data/statistics.hpp"
#include "core/tensor/batch.hpp"
#include "core/util/atomic_file.hpp"
#include "core/util/install_dirs.hpp"
#include "core/util/parallel.hpp"

namespace sb::cli {

CLI::Validator preset_file() {
  return CLI::Validator(
      [](std::string& path) {
        path = resolve_preset_path(path);
        return CLI::ExistingFile(path);
      },
      "FILE");
}

void add_task_options(CLI::App& command, TaskOptions& o) {
  command.add_option("task", o.task_file,
                     "Task file (TOML), e.g. tasks/quickstart.toml (also found among the "
                     "installed presets)")
      ->required()
      ->transform(preset_file());
  command.add_option("--set", o.overrides,
                     "Override a task key, e.g. --set grammar.ambiguities=20 (repeatable)")
      ->type_name("KEY=VALUE");
  command.add_option("--seed", o.seed, "Data seed (same as --set task.seed=N)")
      ->check(whole_number(0, INT64_MAX));  // task.seed's range
  command.add_option("--threads", o.threads, "Worker threads (default: all cores)")
      ->check(whole_number(0, kMaxThreads));
}

namespace {

TaskSpec load(const TaskOptions& o) {
  std::vector<Override> overrides;
  for (const auto& text : o.overrides) overrides.push_back(parse_override(text));
  if (o.seed >= 0) overrides.push_back({"task.seed", std::to_string(o.seed)});
  return load_task(o.task_file, overrides);
}

Split parse_split(const std::string& name) { return name == "test" ? Split::kTest : Split::kTrain; }

nlohmann::json statistics_json(const TaskSpec& task, const GrammarStatistics& s) {
  return {
      {"task", task.display_name()},
      {"seed", task.data.seed},
      {"vocab", task.data.grammar.vocab},
      {"ambiguities", task.data.grammar.ambiguities},
      {"ambiguity_depth", task.data.grammar.ambiguity_depth},
      {"states", s.states},
      {"transitions", s.transitions},
      {"out_degree_mean", s.out_degree_mean},
      {"out_degree_min", s.out_degree_min},
      {"out_degree_max", s.out_degree_max},
      {"states_with_end_edge", s.states_with_end_edge},
      {"attempts", s.attempts},
      {"start_states", s.start_states},
      {"start_letter_collision", s.start_letter_collision},
      {"samples", s.samples},
      {"strings_drawn", s.strings_drawn},
      {"string_accept_rate", s.string_accept_rate},
      {"accepted_string_length_mean", s.accepted_string_length_mean},
      {"strings_per_sample_mean", s.strings_per_sample_mean},
      {"end_elements_per_sample_mean", s.end_elements_per_sample_mean},
  };
}

}  // namespace

void add_grammar_command(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand("grammar", "Statistics of a task's grammar");
  auto o = std::make_shared<TaskOptions>();
  auto json = std::make_shared<bool>(false);
  auto dot = std::make_shared<std::string>();
  auto samples = std::make_shared<std::int64_t>(1000);
  add_task_options(*cmd, *o);
  cmd->add_flag("--json", *json, "Print the statistics as JSON");
  cmd->add_option("--dot", *dot, "Write the automaton for Graphviz to this file");
  cmd->add_option("--samples", *samples,
                  "Training samples over which string statistics are estimated")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{10000000}));
  cmd->callback([=, &action] {
    action = [=] {
      const TaskSpec task = load(*o);
      const Grammar g = make_grammar(task.data.grammar, task.data.seed);
      const GrammarStatistics s = grammar_statistics(g, task.data, *samples, o->threads);
      if (!dot->empty()) {
        const std::string text = grammar_to_dot(g);
        write_file_atomically(*dot, [&](std::ostream& out) { out << text; });
      }
      if (*json) {
        std::cout << statistics_json(task, s).dump(2) << "\n";
        return kExitOk;
      }
      std::cout << "task            " << task.display_name() << "  (" << task.source << ")\n"
                << "grammar         V = " << task.data.grammar.vocab
                << ", ambiguities = " << task.data.grammar.ambiguities
                << ", depth = " << task.data.grammar.ambiguity_depth
                << ", seed = " << task.data.seed << "  (valid after " << s.attempts
                << " attempt" << (s.attempts == 1 ? "" : "s") << ")\n"
                << "states          " << s.states << "  (= classes)\n"
                << "transitions     " << s.transitions << "\n"
                << "out-degree      mean " << s.out_degree_mean << ", min " << s.out_degree_min
                << ", max " << s.out_degree_max << "\n"
                << "edges into #    " << s.states_with_end_edge << " states\n"
                << "start states   ";
      for (const auto& name : s.start_states) std::cout << " " << name;
      std::cout << (s.start_letter_collision
                        ? "  (two share a letter: the first element of a string is ambiguous)"
                        : "")
                << "\n"
                << "strings         over " << s.samples << " training samples ("
                << s.strings_drawn << " strings drawn, max length "
                << task.data.sequence.max_string_length << "):\n"
                << "  accept rate            " << s.string_accept_rate << "\n"
                << "  accepted length mean   " << s.accepted_string_length_mean << "\n"
                << "  strings per sample     " << s.strings_per_sample_mean << "\n"
                << "  # elements per sample  " << s.end_elements_per_sample_mean << "\n";
      if (!dot->empty()) std::cout << "automaton       written to " << *dot << "\n";
      return kExitOk;
    };
  });
}

namespace {

// Renders steps as the worked example of data.md §12.3: one column per time step, windows
// separated by '|', wrapped at element boundaries.
void render_sample(std::ostream& out, const Grammar& g, const std::uint16_t* states,
                   const Item& item, int elements, int width) {
  struct Column {
    std::string t, input, label, state, elem;
  };
  std::vector<std::vector<Column>> windows;
  for (int e = 0; e < elements; ++e) {
    std::vector<Column> w;
    const int state = states[e];
    for (std::uint32_t t = item.element_start[e]; t < item.element_start[e + 1]; ++t) {
      Column c;
      c.t = std::to_string(t);
      const int sym = item.step_symbol[t];
      if (t == item.element_start[e]) {
        c.input = Grammar::symbol_name(sym);
        c.state = g.state_name(state);
        c.elem = std::to_string(e);
      } else {
        c.input = sym < 0 ? "·" : Grammar::symbol_name(sym) + "*";
      }
      c.label = std::to_string(state);
      w.push_back(c);
    }
    windows.push_back(std::move(w));
  }
  auto visible = [](const std::string& s) {
    // "·" is two bytes but one column.
    return s == "·" ? std::size_t{1} : s.size();
  };
  auto pad = [&](const std::string& s, std::size_t w) {
    return s + std::string(w - visible(s), ' ');
  };
  std::size_t e = 0;
  while (e < windows.size()) {
    std::string rows[5] = {"t      ", "input  ", "label  ", "state  ", "elem   "};
    std::size_t used = rows[0].size();
    const std::size_t first = e;
    while (e < windows.size()) {
      std::size_t w_width = 2;
      for (const auto& c : windows[e]) {
        w_width += std::max({c.t.size(), visible(c.input), c.label.size(), c.state.size(),
                             c.elem.size()}) + 1;
      }
      if (e > first && used + w_width > static_cast<std::size_t>(width)) break;
      used += w_width;
      for (const auto& c : windows[e]) {
        const std::size_t cw = std::max({c.t.size(), visible(c.input), c.label.size(),
                                         c.state.size(), c.elem.size()}) + 1;
        rows[0] += pad(c.t, cw);
        rows[1] += pad(c.input, cw);
        rows[2] += pad(c.label, cw);
        rows[3] += pad(c.state, cw);
        rows[4] += pad(c.elem, cw);
      }
      for (auto& r : rows) r += "| ";
      ++e;
    }
    for (auto& r : rows) {
      while (!r.empty() && r.back() == ' ') r.pop_back();
      out << r << "\n";
    }
    out << "\n";
  }
}

}  // namespace

void add_show_command(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand("show", "Show one sample as a person reads it");
  auto o = std::make_shared<TaskOptions>();
  auto split = std::make_shared<std::string>("train");
  auto index = std::make_shared<std::int64_t>(0);
  auto epoch = std::make_shared<std::uint64_t>(0);
  auto elements = std::make_shared<int>(0);
  auto width = std::make_shared<int>(120);
  add_task_options(*cmd, *o);
  cmd->add_option("--split", *split, "Which split")
      ->capture_default_str()
      ->check(CLI::IsMember({"train", "test"}));
  cmd->add_option("--index", *index, "Sample index")->capture_default_str()->check(
      whole_number(0, INT64_MAX));
  cmd->add_option("--epoch", *epoch,
                  "Epoch (training pass or evaluation) whose gap draws are shown")
      ->capture_default_str()
      ->check(whole_number(0, UINT64_MAX));
  cmd->add_option("--elements", *elements, "Show only the first N elements (0: all)")
      ->check(whole_number(0, INT32_MAX));
  cmd->add_option("--width", *width, "Line width")->capture_default_str()->check(
      CLI::Range(40, 100000));
  cmd->callback([=, &action] {
    action = [=] {
      const TaskSpec task = load(*o);
      const Split s = parse_split(*split);
      const SplitSpec& sp = task.data.split(s);
      if (*index >= sp.size) {
        throw ConfigError("--index " + std::to_string(*index) + " is out of range: " +
                          split_name(s) + ".size = " + std::to_string(sp.size));
      }
      auto g = std::make_shared<const Grammar>(make_grammar(task.data.grammar, task.data.seed));
      // Generate only the requested sample: samples are independent streams.
      const DataSpec& spec = task.data;
      const SymbolSet set = generate_symbols(*g, spec, s, *index, 1, 1);
      const Item item = realize(*g, sp.gap, set.states(0), set.length(),
                                gap_stream_key(spec, s, *index, *epoch));
      const int shown = *elements > 0 ? std::min(*elements, item.elements()) : item.elements();

      std::cout << "task      " << task.display_name() << "  (" << task.source << ", protocol "
                << protocol_name(spec.protocol) << ")\n"
                << "sample    " << split_name(s) << " #" << *index << ", epoch " << *epoch
                << (realization_epoch(spec, s, *epoch) != *epoch ? " (frozen test set: epoch 0)" : "")
                << "\n"
                << "size      " << item.elements() << " elements, " << item.steps()
                << " steps; " << g->num_states() << " classes\n"
                << "gap       " << sp.gap.describe() << "\n"
                << "noise     "
                << (sp.noise > 0 ? "U[0, " + std::to_string(sp.noise) +
                                       ") on every input entry (drawn per batch; not shown)"
                                 : std::string("none"))
                << "\n"
                << "legend    input: a symbol step, · a blank step, X* a distractor; label: "
                   "the class (state id) of every step; windows are separated by |\n\n";
      render_sample(std::cout, *g, set.states(0), item, shown, *width);
      if (shown < item.elements()) {
        std::cout << "(" << item.elements() - shown << " more elements not shown)\n";
      }
      return kExitOk;
    };
  });
}

void add_generate_command(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand(
      "generate", "Write a split's samples (symbols, states, realised steps) to a file");
  auto o = std::make_shared<TaskOptions>();
  auto split = std::make_shared<std::string>();
  auto count = std::make_shared<std::int64_t>(-1);
  auto epoch = std::make_shared<std::uint64_t>(0);
  auto out_file = std::make_shared<std::string>();
  auto no_npy = std::make_shared<bool>(false);
  auto inputs = std::make_shared<bool>(false);
  add_task_options(*cmd, *o);
  cmd->add_option("--split", *split, "Which split")->required()->check(
      CLI::IsMember({"train", "test"}));
  cmd->add_option("--count", *count, "Samples to write: the first N (default: the split's size)")
      ->check(whole_number(0, INT64_MAX));
  cmd->add_option("--epoch", *epoch, "Epoch whose gap and noise draws are written")
      ->capture_default_str()
      ->check(whole_number(0, UINT64_MAX));
  cmd->add_option("--out", *out_file, "Output file (.sbd); NumPy files are written next to it")
      ->required();
  cmd->add_flag("--no-npy", *no_npy, "Do not write the .npy exports");
  cmd->add_flag("--inputs", *inputs,
                "Also export the model inputs [N, T, V] float32 with noise (large)");
  cmd->callback([=, &action] {
    action = [=] {
      const TaskSpec task = load(*o);
      const Split s = parse_split(*split);
      const SplitSpec& sp = task.data.split(s);
      const std::int64_t n = *count < 0 ? sp.size : *count;
      if (n > sp.size) {
        throw ConfigError("--count " + std::to_string(n) + " exceeds " + split_name(s) +
                          ".size = " + std::to_string(sp.size) + " (raise it with --set " +
                          split_name(s) + ".size=" + std::to_string(n) + ")");
      }
      auto g = std::make_shared<const Grammar>(make_grammar(task.data.grammar, task.data.seed));
      DataSpec spec = task.data;
      ProgressBar bar(std::string("generating ") + split_name(s));
      const auto t0 = std::chrono::steady_clock::now();
      SymbolSet set = generate_symbols(*g, spec, s, 0, n, o->threads,
                                       [&](std::int64_t d, std::int64_t t) { bar.update(d, t); });
      bar.finish();
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      spdlog::info("generated {} {} samples in {:.2f} s ({:.0f} samples/s)", n, split_name(s), secs,
                   secs > 0 ? static_cast<double>(n) / secs : 0.0);
      Dataset data(g, spec, s, std::move(set));
      const int L = spec.sequence.length;

      std::vector<Item> items(static_cast<size_t>(n));
      parallel_for(n, o->threads, 64, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = b; i < e; ++i) items[i] = data.item(i, *epoch);
      });
      std::vector<std::uint8_t> symbols(static_cast<size_t>(n) * L);
      std::vector<std::uint32_t> element_start(static_cast<size_t>(n) * (L + 1));
      std::vector<std::int64_t> step_offset(static_cast<size_t>(n) + 1, 0);
      std::int64_t max_steps = 0;
      for (std::int64_t i = 0; i < n; ++i) {
        const std::uint16_t* st = data.states(i);
        for (int e = 0; e < L; ++e) symbols[i * L + e] = static_cast<std::uint8_t>(g->symbol_of(st[e]));
        std::copy(items[i].element_start.begin(), items[i].element_start.end(),
                  element_start.begin() + i * (L + 1));
        step_offset[i + 1] = step_offset[i] + items[i].steps();
        max_steps = std::max<std::int64_t>(max_steps, items[i].steps());
      }
      std::vector<std::int8_t> step_symbol(static_cast<size_t>(step_offset[n]));
      for (std::int64_t i = 0; i < n; ++i) {
        std::copy(items[i].step_symbol.begin(), items[i].step_symbol.end(),
                  step_symbol.begin() + step_offset[i]);
      }

      nlohmann::json grammar_json = {{"states", nlohmann::json::array()},
                                     {"start_states", g->start_states()},
                                     {"transitions", nlohmann::json::array()}};
      for (int st = 0; st < g->num_states(); ++st) {
        grammar_json["states"].push_back(g->state_name(st));
        for (int k = 0; k < g->out_degree(st); ++k) {
          grammar_json["transitions"].push_back({st, g->successors_begin(st)[k]});
        }
      }
      const nlohmann::json meta = {
          {"format", "selectivbench samples"},
          {"selectivbench_version", SELECTIVBENCH_VERSION},
          {"task", task.display_name()},
          {"task_file", task.source},
          {"protocol", protocol_name(spec.protocol)},
          {"seed", spec.seed},
          {"split", split_name(s)},
          {"count", n},
          {"length", L},
          {"epoch", *epoch},
          {"realization_epoch", data.realization_epoch(*epoch)},
          {"vocab", g->vocab()},
          {"classes", g->num_states()},
          {"noise", sp.noise},
          {"gap", sp.gap.describe()},
          {"labels", label_mode_name(spec.labels)},
      };
      const auto& states = data.symbols().data();
      write_container(*out_file,
                      {Section::text("meta", meta.dump(2)),
                       Section::text("grammar", grammar_json.dump()),
                       Section::of("states", DType::kU16, {n, L}, states.data(), states.size()),
                       Section::of("symbols", DType::kU8, {n, L}, symbols.data(), symbols.size()),
                       Section::of("element_start", DType::kU32, {n, L + 1},
                                   element_start.data(), element_start.size()),
                       Section::of("step_offset", DType::kI64, {n + 1}, step_offset.data(),
                                   step_offset.size()),
                       Section::of("step_symbol", DType::kI8, {step_offset[n]},
                                   step_symbol.data(), step_symbol.size())});
      std::cout << "wrote " << *out_file << ": " << n << " " << split_name(s) << " samples, "
                << step_offset[n] << " steps\n";

      if (!*no_npy) {
        namespace fs = std::filesystem;
        const fs::path base = fs::path(*out_file).replace_extension("");
        auto name = [&](const char* what) { return base.string() + "." + what + ".npy"; };
        write_npy(name("states"), {n, L}, std::vector<std::int16_t>(states.begin(), states.end()));
        write_npy(name("symbols"), {n, L}, symbols);
        std::vector<std::int32_t> windows(element_start.begin(), element_start.end());
        write_npy(name("element_start"), {n, L + 1}, windows);
        std::vector<std::int32_t> lengths(static_cast<size_t>(n));
        std::vector<std::int8_t> steps(static_cast<size_t>(n * max_steps), std::int8_t{-2});
        std::vector<std::int16_t> labels(static_cast<size_t>(n * max_steps), std::int16_t{-1});
        for (std::int64_t i = 0; i < n; ++i) {
          lengths[i] = items[i].steps();
          std::copy(items[i].step_symbol.begin(), items[i].step_symbol.end(),
                    steps.begin() + i * max_steps);
          for (int e = 0; e < L; ++e) {
            for (auto t = items[i].element_start[e]; t < items[i].element_start[e + 1]; ++t) {
              labels[i * max_steps + t] = static_cast<std::int16_t>(data.states(i)[e]);
            }
          }
        }
        write_npy(name("lengths"), {n}, lengths);
        write_npy(name("steps"), {n, max_steps}, steps);
        write_npy(name("labels"), {n, max_steps}, labels);
        std::vector<std::string> written = {"states", "symbols", "element_start", "lengths",
                                            "steps", "labels"};
        if (*inputs) {
          std::vector<float> x(static_cast<size_t>(n * max_steps * g->vocab()), 0.0F);
          constexpr std::int64_t kChunk = 64;
          for (std::int64_t b = 0; b < n; b += kChunk) {
            std::vector<std::int64_t> idx;
            for (std::int64_t i = b; i < std::min(n, b + kChunk); ++i) idx.push_back(i);
            const Batch batch = make_batch(data, idx, *epoch);
            const at::Tensor in = batch.inputs.contiguous();
            const std::int64_t T = in.size(1);
            const float* src = in.data_ptr<float>();
            for (std::size_t j = 0; j < idx.size(); ++j) {
              std::copy(src + j * T * g->vocab(), src + (j + 1) * T * g->vocab(),
                        x.begin() + (b + static_cast<std::int64_t>(j)) * max_steps * g->vocab());
            }
          }
          write_npy(name("inputs"), {n, max_steps, g->vocab()}, x);
          written.push_back("inputs");
        }
        std::cout << "NumPy exports: " << base.string() << ".{";
        for (std::size_t i = 0; i < written.size(); ++i) {
          std::cout << (i ? "," : "") << written[i];
        }
        std::cout << "}.npy\n";
      }
      return kExitOk;
    };
  });
}

}  // namespace sb::cli
