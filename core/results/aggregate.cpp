#include "core/results/aggregate.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <tuple>

namespace sb {

using json = nlohmann::json;

namespace {

// Colours: the paper's models keep theirs in every report; other models take the rest in turn.
const std::map<std::string, std::string> kModelColors = {
    {"transformer", "#000000"},        {"mamba", "#1f77b4"},     {"mamba2", "#17becf"},
    {"gla", "#2ca02c"},                {"delta_net", "#d62728"}, {"gated_delta_net", "#ff7f0e"},
    {"gated_delta_product", "#9467bd"}, {"retnet", "#8c564b"},   {"linear_attention", "#7f7f7f"},
    {"mesa_net", "#e377c2"},           {"hgrn2", "#bcbd22"},     {"rwkv7", "#aec7e8"}};
const std::vector<std::string> kSpareColors = {"#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
                                                "#f7b6d2", "#dbdb8d", "#9edae5", "#393b79",
                                                "#637939", "#8c6d31", "#843c39", "#7b4173"};

std::string text_of(const json& v) { return v.is_string() ? v.get<std::string>() : "?"; }

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

void classify(ModelInfo& m) {
  if (starts_with(m.recurrence, "none")) {
    m.group = "softmax attention";
    m.group_order = 0;
  } else if (m.transition == "diagonal plus low rank") {
    m.group = "delta rule (diagonal plus low rank)";
    m.group_order = 3;
  } else if (starts_with(m.gate, "input-dependent")) {
    m.group = "gated, diagonal";
    m.group_order = 2;
  } else if (m.gate == "none" || m.gate == "fixed decay") {
    m.group = "ungated or fixed decay, diagonal";
    m.group_order = 1;
  } else {
    m.group = "taxonomy unknown";
    m.group_order = 4;
  }
}

double number_or(const json& v, double fallback) { return v.is_number() ? v.get<double>() : fallback; }

std::int64_t int_or(const json& v, std::int64_t fallback) {
  return v.is_number() ? static_cast<std::int64_t>(v.get<double>()) : fallback;
}

}  // namespace

bool ModelInfo::gated() const { return !attention() && starts_with(gate, "input-dependent"); }
bool ModelInfo::ungated() const {
  return !attention() && (gate == "none" || gate == "fixed decay");
}
bool ModelInfo::delta_rule() const { return transition == "diagonal plus low rank"; }
bool ModelInfo::diagonal() const { return !attention() && transition == "diagonal"; }

Stat stat_of(const std::vector<double>& values) {
  Stat s;
  s.n = static_cast<int>(values.size());
  if (s.n == 0) {
    s.mean = std::nan("");
    return s;
  }
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / s.n;
  if (s.n > 1) {
    double sq = 0;
    for (double v : values) sq += (v - s.mean) * (v - s.mean);
    s.sd = std::sqrt(sq / (s.n - 1));
  }
  return s;
}

bool counts_as_result(const json& row) {
  const std::string status = row.value("status", std::string());
  if (status != "finished" && status != "diverged" && status != "evaluated") return false;
  return row.contains("test_acc") && row["test_acc"].is_number() &&
         std::isfinite(row["test_acc"].get<double>());
}

std::string axes_label(const json& axes) {
  std::string out;
  if (!axes.is_object()) return out;
  for (const auto& [k, v] : axes.items()) {
    out += (out.empty() ? "" : ", ") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  }
  return out;
}

Aggregate aggregate_results(const ResultTable& table) {
  Aggregate agg;
  agg.rows = table.rows.size();

  // 1. The models, their taxonomy, group and colour.
  for (const auto& row : table.rows) {
    const std::string model = text_of(row.value("model", json()));
    if (agg.models.count(model)) continue;
    ModelInfo m;
    m.name = model;
    m.recurrence = text_of(row.value("recurrence", json()));
    m.gate = text_of(row.value("gate", json()));
    m.transition = text_of(row.value("transition", json()));
    m.memory = text_of(row.value("memory", json()));
    classify(m);
    agg.models[model] = m;
  }
  for (const auto& [name, m] : agg.models) agg.model_order.push_back(name);
  std::sort(agg.model_order.begin(), agg.model_order.end(), [&](const auto& a, const auto& b) {
    return std::make_tuple(agg.models[a].group_order, a) <
           std::make_tuple(agg.models[b].group_order, b);
  });
  std::size_t spare = 0;
  for (const auto& name : agg.model_order) {
    auto known = kModelColors.find(name);
    agg.models[name].color = known != kModelColors.end()
                                 ? known->second
                                 : kSpareColors[spare++ % kSpareColors.size()];
  }
  std::map<std::string, int> rank;
  for (std::size_t i = 0; i < agg.model_order.size(); ++i) rank[agg.model_order[i]] = static_cast<int>(i);

  // 2. Cells: group the results by (task, condition, model, width, layers); within a cell, the
  //    runs of one seed differ only by lr and warmup.
  struct Runs {
    std::map<std::int64_t, std::vector<std::pair<double, std::string>>> by_seed;
    double parameters = -1, state = -1;
  };
  std::map<std::string, TaskResults> tasks;
  std::vector<std::string> task_order;
  std::map<std::string, std::size_t> trained_rows;
  std::map<std::tuple<std::string, std::string, int, std::int64_t, std::int64_t>, std::pair<Cell, Runs>>
      cells;
  for (const auto& row : table.rows) {
    const std::string status = row.value("status", std::string());
    if (status == "failed") ++agg.failed;
    if (status == "incomplete" || status == "not run") ++agg.unfinished;
    if (!counts_as_result(row)) continue;
    ++agg.results;
    const std::string task = text_of(row.value("task", json()));
    if (!tasks.count(task)) {
      tasks[task].task = task;
      task_order.push_back(task);
    }
    TaskResults& t = tasks[task];
    const json axes = row.value("axes", json::object());
    for (const auto& [k, v] : axes.items()) {
      if (std::find(t.axes.begin(), t.axes.end(), k) == t.axes.end()) t.axes.push_back(k);
    }
    const bool evaluated = row.value("kind", std::string()) == "evaluated";
    trained_rows[task] += evaluated ? 0 : 1;
    const std::string model = text_of(row.value("model", json()));
    const std::int64_t width = int_or(row.value("width", json()), 0);
    const std::int64_t layers = int_or(row.value("layers", json()), 0);
    if (std::find(t.widths.begin(), t.widths.end(), width) == t.widths.end()) t.widths.push_back(width);
    auto& [cell, runs] = cells[{task, axes.dump() + (evaluated ? " evaluated" : ""), rank[model], width, layers}];
    cell.evaluated = evaluated;
    cell.task = task;
    cell.axes = axes;
    cell.model = model;
    cell.width = width;
    cell.layers = layers;
    ++cell.runs;
    const std::string run_dir = row.value("kind", std::string()) == "evaluated" &&
                                        row.value("trained_run", json()).is_string()
                                    ? row["trained_run"].get<std::string>()
                                    : text_of(row.value("dir", json()));
    runs.by_seed[int_or(row.value("seed", json()), 0)].emplace_back(row["test_acc"].get<double>(),
                                                                    run_dir);
    runs.parameters = number_or(row.value("parameters", json()), runs.parameters);
    runs.state = number_or(row.value("state_elements_per_layer", json()), runs.state);
  }

  // 3. Per seed, the best of the grid and the mean of the grid; then both over seeds.
  for (auto& [key, entry] : cells) {
    auto& [cell, runs] = entry;
    std::vector<double> best, grid;
    for (const auto& [seed, results] : runs.by_seed) {
      double sum = 0;
      auto top = results.front();
      for (const auto& r : results) {
        sum += r.first;
        if (r.first > top.first) top = r;
      }
      cell.best_per_seed[seed] = top.first;
      cell.best_run[seed] = top.second;
      cell.grid_mean_per_seed[seed] = sum / static_cast<double>(results.size());
      best.push_back(top.first);
      grid.push_back(cell.grid_mean_per_seed[seed]);
    }
    cell.best = stat_of(best);
    cell.grid = stat_of(grid);
    cell.parameters = runs.parameters;
    cell.state_elements = runs.state;
    tasks[cell.task].cells.push_back(cell);  // std::map order: task, condition, model rank, ...
  }
  for (const auto& name : task_order) {
    TaskResults t = tasks[name];
    t.evaluated = trained_rows[name] == 0;
    std::sort(t.widths.begin(), t.widths.end());
    // Conditions in the order of their values (numbers as numbers), not of their JSON text.
    std::stable_sort(t.cells.begin(), t.cells.end(), [&](const Cell& a, const Cell& b) {
      for (const auto& axis : t.axes) {
        const json va = a.axes.value(axis, json()), vb = b.axes.value(axis, json());
        if (va == vb) continue;
        if (va.is_number() && vb.is_number()) return va.get<double>() < vb.get<double>();
        return va.dump() < vb.dump();
      }
      return std::make_tuple(rank[a.model], a.width, a.layers) <
             std::make_tuple(rank[b.model], b.width, b.layers);
    });
    agg.tasks.push_back(std::move(t));
  }
  std::sort(agg.tasks.begin(), agg.tasks.end(),
            [](const TaskResults& a, const TaskResults& b) { return a.task < b.task; });
  return agg;
}

}  // namespace sb
