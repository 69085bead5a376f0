#include "core/results/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/results/figures.hpp"
#include "core/util/atomic_file.hpp"

namespace sb {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// ---- the document: blocks rendered both as Markdown and as HTML -------------------------------

struct TableCell {
  std::string text;
  bool numeric = false;
  const Stat* stat = nullptr;  // a mean ± sd cell: its exact numbers go into the HTML
};
struct DocTable {
  std::vector<std::string> header;
  std::vector<std::vector<TableCell>> rows;
};
struct Block {
  enum class Kind { kHeading, kParagraph, kList, kTable, kFigure } kind = Kind::kParagraph;
  int level = 2;
  std::string text;  // heading, paragraph, figure caption; `code` and **bold** marks allowed
  std::vector<std::string> items;
  DocTable table;
  std::string figure;  // file stem under figures/
};

std::string fixed(double v, int digits) {
  if (!std::isfinite(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string stat_text(const Stat& s) {
  if (s.n == 0) return "—";
  return fixed(s.mean, 4) + " ± " + fixed(s.sd, 4) + " (" + std::to_string(s.n) + ")";
}

std::string count_text(double v) {
  if (v < 0) return "?";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.0f", v);
  return buf;
}

std::string plural(std::size_t n, const std::string& word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

std::string markdown_escape_cell(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

std::string render_markdown(const std::vector<Block>& blocks) {
  std::ostringstream md;
  for (const auto& b : blocks) {
    switch (b.kind) {
      case Block::Kind::kHeading: md << std::string(b.level, '#') << " " << b.text << "\n\n"; break;
      case Block::Kind::kParagraph: md << b.text << "\n\n"; break;
      case Block::Kind::kList:
        for (const auto& i : b.items) md << "- " << i << "\n";
        md << "\n";
        break;
      case Block::Kind::kTable: {
        md << "|";
        for (const auto& h : b.table.header) md << " " << markdown_escape_cell(h) << " |";
        md << "\n|";
        for (std::size_t i = 0; i < b.table.header.size(); ++i) md << "---|";
        md << "\n";
        for (const auto& row : b.table.rows) {
          md << "|";
          for (const auto& c : row) md << " " << markdown_escape_cell(c.text) << " |";
          md << "\n";
        }
        md << "\n";
        break;
      }
      case Block::Kind::kFigure:
        md << "![" << b.text << "](figures/" << b.figure << ".svg)\n\n*" << b.text
           << "* ([PNG](figures/" << b.figure << ".png), [data](figures/" << b.figure
           << ".dat), [gnuplot script](figures/" << b.figure << ".gp))\n\n";
        break;
    }
  }
  return md.str();
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// Text with `code` and **bold** marks as HTML.
std::string html_inline(const std::string& s) {
  std::string out;
  bool code = false, bold = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '`') {
      out += code ? "</code>" : "<code>";
      code = !code;
    } else if (!code && s.compare(i, 2, "**") == 0) {
      out += bold ? "</strong>" : "<strong>";
      bold = !bold;
      ++i;
    } else {
      out += html_escape(std::string(1, s[i]));
    }
  }
  if (code) out += "</code>";
  if (bold) out += "</strong>";
  return out;
}

// gnuplot's SVG without its XML prologue, to sit inside the HTML.
std::string inline_svg(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  const auto start = text.find("<svg");
  return start == std::string::npos ? std::string() : text.substr(start);
}

std::string json_number(double v) { return std::isfinite(v) ? json(v).dump() : "NaN"; }

std::string render_html(const std::vector<Block>& blocks, const fs::path& figures_dir) {
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n"
    << "<meta charset=\"utf-8\"/>\n<title>selectivbench report</title>\n<style>\n"
    << "body{font-family:system-ui,sans-serif;max-width:80em;margin:2em auto;padding:0 1em;"
       "color:#222;line-height:1.45}\n"
    << "div.wide{overflow-x:auto}\ntable{border-collapse:collapse;margin:1em 0;font-size:0.85em}\n"
    << "th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:left}\n"
    << "th{background:#f3f3f3}\ntd.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    << "figure{margin:1.5em 0}\nfigure svg{max-width:100%;height:auto}\n"
    << "figcaption{font-style:italic;color:#555}\ncode{background:#f3f3f3;padding:0 0.2em}\n"
    << "</style>\n</head>\n<body>\n";
  for (const auto& b : blocks) {
    switch (b.kind) {
      case Block::Kind::kHeading:
        h << "<h" << b.level << ">" << html_inline(b.text) << "</h" << b.level << ">\n";
        break;
      case Block::Kind::kParagraph: h << "<p>" << html_inline(b.text) << "</p>\n"; break;
      case Block::Kind::kList:
        h << "<ul>\n";
        for (const auto& i : b.items) h << "<li>" << html_inline(i) << "</li>\n";
        h << "</ul>\n";
        break;
      case Block::Kind::kTable:
        h << "<div class=\"wide\">\n<table>\n<thead><tr>";
        for (const auto& c : b.table.header) h << "<th>" << html_escape(c) << "</th>";
        h << "</tr></thead>\n<tbody>\n";
        for (const auto& row : b.table.rows) {
          h << "<tr>";
          for (const auto& c : row) {
            h << "<td" << (c.numeric ? " class=\"num\"" : "");
            if (c.stat) {
              h << " data-mean=\"" << json_number(c.stat->mean) << "\" data-sd=\""
                << json_number(c.stat->sd) << "\" data-n=\"" << c.stat->n << "\"";
            }
            h << ">" << html_escape(c.text) << "</td>";
          }
          h << "</tr>\n";
        }
        h << "</tbody>\n</table>\n</div>\n";
        break;
      case Block::Kind::kFigure:
        h << "<figure id=\"" << html_escape(b.figure) << "\">\n"
          << inline_svg(figures_dir / (b.figure + ".svg")) << "\n<figcaption>"
          << html_inline(b.text) << " (<a href=\"figures/" << html_escape(b.figure)
          << ".png\">PNG</a>, <a href=\"figures/" << html_escape(b.figure)
          << ".dat\">data</a>)</figcaption>\n</figure>\n";
        break;
    }
  }
  h << "</body>\n</html>\n";
  return h.str();
}

// ---- views -------------------------------------------------------------------------------------

// A file name for any text: letters, digits, '-' and '.' kept, every other run of characters one
// '_' ("test.gap.duration={ dist = ... }" -> "test.gap.duration_dist_uniform_...").
std::string file_stem(const std::string& text) {
  std::string out;
  for (char c : text) {
    const bool keep = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
    if (keep) {
      out += c;
    } else if (!out.empty() && out.back() != '_') {
      out += '_';
    }
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out.substr(0, 160);
}

bool is_gap_duration(const std::string& axis) {
  return axis.size() >= 12 && axis.compare(axis.size() - 12, 12, "gap.duration") == 0;
}

// An axis drawn along x: numbers only; a gap duration as its length in steps (ten per unit, the
// data engine's rounding: 1.0 -> 10 blanks).
std::optional<double> x_of(const std::string& axis, const json& value) {
  if (!value.is_number()) return std::nullopt;
  const double v = value.get<double>();
  return is_gap_duration(axis) ? std::round(v * 10) : v;
}

std::string x_label(const std::string& axis) {
  return is_gap_duration(axis) ? "gap after each symbol, steps (" + axis + " × 10)" : axis;
}

// The first axis of a task with two numeric values or more: the x of its main figure (cells
// whose value is not a number, such as a uniform-duration table, are in the table only).
std::string numeric_axis(const TaskResults& t) {
  for (const auto& axis : t.axes) {
    std::set<double> values;
    for (const auto& c : t.cells) {
      if (c.axes.contains(axis) && c.axes[axis].is_number()) values.insert(c.axes[axis].get<double>());
    }
    if (values.size() >= 2) return axis;
  }
  return "";
}

json without(const json& axes, const std::string& axis) {
  json out = axes;
  out.erase(axis);
  return out;
}

std::string layers_note(const std::vector<Cell>& cells) {
  std::set<std::int64_t> layers;
  for (const auto& c : cells) layers.insert(c.layers);
  if (layers.size() != 1) return "";
  return ", " + plural(static_cast<std::size_t>(*layers.begin()), "layer");
}

FigureSeries series_for(const Aggregate& agg, const std::string& model, std::int64_t layers,
                        bool several_depths) {
  FigureSeries s;
  s.title = model + (several_depths ? " (L" + std::to_string(layers) + ")" : "");
  s.color = agg.models.at(model).color;
  return s;
}

// Accuracy against the task's numeric axis: one figure per width (and per value of other axes).
std::vector<Figure> axis_figures(const Aggregate& agg, const TaskResults& t, const std::string& axis) {
  std::map<std::pair<std::string, std::int64_t>, Figure> figures;  // (other axes, width)
  std::set<std::int64_t> depths;
  for (const auto& c : t.cells) depths.insert(c.layers);
  for (const auto& c : t.cells) {
    const std::string rest = axes_label(without(c.axes, axis));
    Figure& f = figures[{rest, c.width}];
    if (f.name.empty()) {
      f.kind = Figure::Kind::kLines;
      f.name = file_stem(t.task + "_vs_" + axis + "_d" + std::to_string(c.width) +
                         (rest.empty() ? "" : "_" + rest));
      f.title = t.task + ": test accuracy vs " + axis + ", width " + std::to_string(c.width) +
                (rest.empty() ? "" : " (" + rest + ")");
      f.xlabel = x_label(axis);
    }
    const std::string title = c.model + (depths.size() > 1 ? " (L" + std::to_string(c.layers) + ")" : "");
    auto it = std::find_if(f.series.begin(), f.series.end(),
                           [&](const FigureSeries& s) { return s.title == title; });
    if (it == f.series.end()) {
      f.series.push_back(series_for(agg, c.model, c.layers, depths.size() > 1));
      it = f.series.end() - 1;
    }
    if (auto x = x_of(axis, c.axes[axis])) {
      it->points.push_back({*x, c.best.mean, c.best.sd});
      if (std::find(f.xtics.begin(), f.xtics.end(), *x) == f.xtics.end()) f.xtics.push_back(*x);
    }
  }
  std::vector<Figure> out;
  for (auto& [key, f] : figures) {
    for (auto& s : f.series) {
      std::sort(s.points.begin(), s.points.end(),
                [](const FigurePoint& a, const FigurePoint& b) { return a.x < b.x; });
    }
    std::sort(f.xtics.begin(), f.xtics.end());
    out.push_back(std::move(f));
  }
  return out;
}

// Accuracy against width, one line per model (a task without axes, at two widths or more).
Figure width_figure(const Aggregate& agg, const TaskResults& t) {
  Figure f;
  f.kind = Figure::Kind::kLines;
  f.name = file_stem(t.task + "_vs_width");
  f.title = t.task + ": test accuracy vs width" + layers_note(t.cells);
  f.xlabel = "width (model dimension)";
  f.log2_x = true;
  for (auto w : t.widths) f.xtics.push_back(static_cast<double>(w));
  std::set<std::int64_t> depths;
  for (const auto& c : t.cells) depths.insert(c.layers);
  for (const auto& model : agg.model_order) {
    for (auto depth : depths) {
      FigureSeries s = series_for(agg, model, depth, depths.size() > 1);
      for (const auto& c : t.cells) {
        if (c.model == model && c.layers == depth) {
          s.points.push_back({static_cast<double>(c.width), c.best.mean, c.best.sd});
        }
      }
      if (!s.points.empty()) f.series.push_back(std::move(s));
    }
  }
  return f;
}

// Accuracy per model, clustered by width (bars in the models' colours).
Figure bar_figure(const Aggregate& agg, const TaskResults& t) {
  Figure f;
  f.kind = Figure::Kind::kBars;
  f.name = file_stem(t.task + "_by_model_and_width");
  f.title = t.task + ": test accuracy per model and width" + layers_note(t.cells);
  f.xlabel = "width";
  for (auto w : t.widths) f.bar_groups.push_back("d=" + std::to_string(w));
  for (const auto& model : agg.model_order) {
    FigureSeries s = series_for(agg, model, 0, false);
    for (const auto& c : t.cells) {
      if (c.model != model) continue;
      const auto g = std::find(t.widths.begin(), t.widths.end(), c.width) - t.widths.begin();
      s.points.push_back({static_cast<double>(g), c.best.mean, c.best.sd});
    }
    if (!s.points.empty()) f.series.push_back(std::move(s));
  }
  return f;
}

// Test accuracy against the update, one line per model: for each seed the run chosen by the best
// rule, averaged over seeds at the updates they share.
std::vector<Figure> curve_figures(const Aggregate& agg, const TaskResults& t, std::size_t cap,
                                  std::size_t* left_out) {
  std::map<std::pair<std::string, std::int64_t>, Figure> figures;  // (condition, width)
  std::vector<std::pair<std::string, std::int64_t>> order;
  for (const auto& c : t.cells) {
    if (c.evaluated) continue;
    const std::string cond = axes_label(c.axes);
    const auto key = std::make_pair(cond, c.width);
    if (!figures.count(key)) {
      if (figures.size() >= cap) {
        ++*left_out;
        figures[key];  // counted once
        continue;
      }
      order.push_back(key);
      Figure& f = figures[key];
      f.kind = Figure::Kind::kCurves;
      f.name = file_stem("curves_" + t.task + (cond.empty() ? "" : "_" + cond) + "_d" +
                         std::to_string(c.width));
      f.title = t.task + (cond.empty() ? "" : " (" + cond + ")") + ": test accuracy during " +
                "training, width " + std::to_string(c.width);
      f.xlabel = "update";
    }
    Figure& f = figures[key];
    if (f.name.empty()) continue;
    std::map<std::int64_t, std::vector<double>> by_update;
    std::size_t curves = 0;
    for (const auto& [seed, dir] : c.best_run) {
      std::ifstream in(fs::path(dir) / "metrics.jsonl");
      std::string line;
      bool any = false;
      while (std::getline(in, line)) {
        const json m = json::parse(line, nullptr, false);
        if (m.is_discarded() || !m.contains("update") || !m.contains("test_acc")) continue;
        if (!m["test_acc"].is_number()) continue;
        by_update[m["update"].get<std::int64_t>()].push_back(m["test_acc"].get<double>());
        any = true;
      }
      curves += any ? 1 : 0;
    }
    FigureSeries s = series_for(agg, c.model, c.layers, false);
    if (layers_note(t.cells).empty()) s.title += " (L" + std::to_string(c.layers) + ")";
    for (const auto& [update, values] : by_update) {
      if (values.size() != curves) continue;  // an update not every seed reached
      const Stat st = stat_of(values);
      s.points.push_back({static_cast<double>(update), st.mean, st.sd});
    }
    if (!s.points.empty()) f.series.push_back(std::move(s));
  }
  std::vector<Figure> out;
  for (const auto& key : order) {
    if (!figures[key].series.empty()) out.push_back(std::move(figures[key]));
  }
  return out;
}

DocTable task_table(const Aggregate& agg, const TaskResults& t) {
  DocTable table;
  table.header = {"model", "group", "recurrence", "gate", "transition", "memory"};
  for (const auto& a : t.axes) table.header.push_back(a);
  for (const char* h : {"width", "layers", "parameters", "state per layer",
                        "best over lr × warmup: mean ± sd (seeds)", "mean over the grid: mean ± sd (seeds)",
                        "runs"}) {
    table.header.push_back(h);
  }
  for (const auto& c : t.cells) {
    const ModelInfo& m = agg.models.at(c.model);
    std::vector<TableCell> row = {{c.model}, {m.group}, {m.recurrence}, {m.gate}, {m.transition}, {m.memory}};
    for (const auto& a : t.axes) {
      const json v = c.axes.value(a, json());
      row.push_back({v.is_string() ? v.get<std::string>() : v.is_null() ? "" : v.dump(), v.is_number()});
    }
    row.push_back({std::to_string(c.width), true});
    row.push_back({std::to_string(c.layers), true});
    row.push_back({count_text(c.parameters), true});
    row.push_back({count_text(c.state_elements), true});
    row.push_back({stat_text(c.best), true, &c.best});
    row.push_back({stat_text(c.grid), true, &c.grid});
    row.push_back({std::to_string(c.runs), true});
    table.rows.push_back(std::move(row));
  }
  return table;
}

// ---- findings ------------------------------------------------------------------------------------

struct Score {
  std::string model;
  double value = 0;
  int seeds = 0;
};

struct TaskScores {
  std::int64_t width = 0, layers = 0;
  std::size_t conditions = 0;
  std::vector<Score> scores;  // best first
};

// Each model's score on a task: the mean over the task's conditions of the best-over-grid
// accuracy (mean over seeds), at the width and depth where most models have results.
TaskScores task_scores(const TaskResults& t) {
  std::map<std::pair<std::int64_t, std::int64_t>, std::set<std::string>> models_at;
  for (const auto& c : t.cells) models_at[{c.width, c.layers}].insert(c.model);
  TaskScores out;
  std::size_t most = 0;
  for (const auto& [wl, models] : models_at) {
    if (models.size() >= most) {  // ties: the larger width (the map is in increasing order)
      most = models.size();
      out.width = wl.first;
      out.layers = wl.second;
    }
  }
  std::map<std::string, std::vector<double>> values;
  std::map<std::string, int> seeds;
  std::set<std::string> conditions;
  for (const auto& c : t.cells) {
    if (c.width != out.width || c.layers != out.layers) continue;
    values[c.model].push_back(c.best.mean);
    seeds[c.model] = seeds.count(c.model) ? std::min(seeds[c.model], c.best.n) : c.best.n;
    conditions.insert(c.axes.dump());
  }
  out.conditions = conditions.size();
  for (const auto& [model, v] : values) out.scores.push_back({model, stat_of(v).mean, seeds[model]});
  std::sort(out.scores.begin(), out.scores.end(), [](const Score& a, const Score& b) {
    return a.value != b.value ? a.value > b.value : a.model < b.model;
  });
  return out;
}

std::string where(const TaskResults& t, const TaskScores& s) {
  return "**" + t.task + "** (width " + std::to_string(s.width) + ", " +
         plural(static_cast<std::size_t>(s.layers), "layer") + (s.conditions > 1 ? ", mean over " + std::to_string(s.conditions) + " conditions" : "") +
         ")";
}

std::string compare(const Aggregate& agg, const TaskResults& t, const TaskScores& s,
                    const std::function<bool(const ModelInfo&)>& a_side, const std::string& a_name,
                    const std::function<bool(const ModelInfo&)>& b_side, const std::string& b_name) {
  const Score* a = nullptr;
  const Score* b = nullptr;
  for (const auto& sc : s.scores) {  // best first: the first of each side is its best
    const ModelInfo& m = agg.models.at(sc.model);
    if (!a && a_side(m)) a = &sc;
    if (!b && b_side(m)) b = &sc;
  }
  const std::string head = where(t, s) + ", " + a_name + " vs " + b_name + ": ";
  if (!a || !b) {
    return head + "not enough data (no " + (!a ? a_name : b_name) + " model has results here).";
  }
  const double points = 100 * (a->value - b->value);
  return head + "the best " + a_name + " model, " + a->model + " (" + fixed(a->value, 4) +
         "), is " + (points >= 0 ? "ahead of" : "behind") + " the best " + b_name + " one, " +
         b->model + " (" + fixed(b->value, 4) + "), by " + fixed(std::abs(points), 1) + " points.";
}

}  // namespace

std::vector<std::string> report_findings(const Aggregate& agg) {
  std::vector<std::string> out;
  const auto attention = [](const ModelInfo& m) { return m.attention(); };
  const auto recurrent = [](const ModelInfo& m) { return !m.attention() && m.group_order < 4; };
  for (const auto& t : agg.tasks) {
    const TaskScores s = task_scores(t);
    if (s.scores.empty()) continue;
    if (s.scores.size() == 1) {
      out.push_back(where(t, s) + ": only " + s.scores[0].model + " has results (" +
                    fixed(s.scores[0].value, 4) + "); no ranking.");
    } else {
      std::string ranking = where(t, s) + " ranking: ";
      int min_seeds = s.scores.front().seeds;
      for (std::size_t i = 0; i < s.scores.size(); ++i) {
        ranking += (i ? " > " : "") + s.scores[i].model + " " + fixed(s.scores[i].value, 4);
        min_seeds = std::min(min_seeds, s.scores[i].seeds);
      }
      out.push_back(ranking + " (best over lr × warmup, mean over " +
                    (min_seeds == 1 ? "1 seed" : "at least " + std::to_string(min_seeds) + " seeds") + ").");
    }
    out.push_back(compare(agg, t, s, [](const ModelInfo& m) { return m.gated(); }, "gated",
                          [](const ModelInfo& m) { return m.ungated(); }, "ungated"));
    out.push_back(compare(agg, t, s, [](const ModelInfo& m) { return m.delta_rule(); }, "delta-rule",
                          [](const ModelInfo& m) { return m.diagonal(); }, "diagonal"));
    out.push_back(compare(agg, t, s, attention, "softmax-attention", recurrent, "recurrent"));
  }
  // The paper's tasks that have no results at all.
  for (const char* task : {"task1_complexity", "task1_model_size", "task2", "task3", "task4"}) {
    const bool present = std::any_of(agg.tasks.begin(), agg.tasks.end(),
                                     [&](const TaskResults& t) { return t.task == task; });
    if (!present) out.push_back(std::string("**") + task + "**: not enough data (no results).");
  }
  return out;
}

ReportFiles write_report(const ResultTable& table, const ReportOptions& options) {
  const fs::path out(options.out_dir);
  const fs::path figures_dir = out / "figures";
  fs::create_directories(figures_dir);
  ReportFiles files;
  const Aggregate agg = aggregate_results(table);

  // 1. The table itself.
  write_file_atomically((out / "runs.csv").string(), [&](std::ostream& o) { o << format_csv(table); });
  write_file_atomically((out / "runs.jsonl").string(), [&](std::ostream& o) { o << format_jsonl(table); });
  files.written = {"runs.csv", "runs.jsonl"};

  // 2. The views of each task, drawn.
  std::vector<Block> blocks;
  std::vector<Figure> figures;
  bool any_curve = false;
  std::set<std::string> drawn_axes;
  std::vector<std::string> header_items;
  const auto heading = [&](int level, const std::string& text) {
    Block b;
    b.kind = Block::Kind::kHeading;
    b.level = level;
    b.text = text;
    blocks.push_back(b);
  };
  const auto paragraph = [&](const std::string& text) {
    Block b;
    b.kind = Block::Kind::kParagraph;
    b.text = text;
    blocks.push_back(b);
  };
  const auto list = [&](const std::vector<std::string>& items) {
    Block b;
    b.kind = Block::Kind::kList;
    b.items = items;
    blocks.push_back(b);
  };
  const auto figure = [&](Figure f) {
    f.series.erase(std::remove_if(f.series.begin(), f.series.end(),
                                  [](const FigureSeries& s) { return s.points.empty(); }),
                   f.series.end());
    if (f.series.empty()) return;
    Block b;
    b.kind = Block::Kind::kFigure;
    b.text = f.title + ". Mean ± sd over seeds; per seed the best final test accuracy over lr × warmup.";
    if (f.kind == Figure::Kind::kCurves) {
      b.text = f.title + ". Per seed the run chosen by the best rule; mean ± sd over seeds at each "
                         "evaluation.";
    }
    b.figure = f.name;
    blocks.push_back(b);
    figures.push_back(std::move(f));
  };

  std::time_t now = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  std::set<std::string> gpus, benchmarks;
  for (const auto& r : table.rows) {
    if (r.value("gpu", json()).is_string() && !r["gpu"].get<std::string>().empty()) gpus.insert(r["gpu"]);
    if (r.value("benchmark", json()).is_string()) benchmarks.insert(r["benchmark"]);
  }
  std::string sources;
  for (const auto& s : options.sources) sources += (sources.empty() ? "`" : ", `") + s + "`";
  std::string bench_list, gpu_list;
  for (const auto& b : benchmarks) bench_list += (bench_list.empty() ? "" : ", ") + b;
  for (const auto& g : gpus) gpu_list += (gpu_list.empty() ? "" : ", ") + g;

  heading(1, "selectivbench report");
  paragraph("Made on " + std::string(date) + " by `" + options.command_line + "` from " +
            plural(agg.rows, "row") + " collected in " + (sources.empty() ? "?" : sources) + ": " +
            std::to_string(agg.results) + " with a result, " + std::to_string(agg.failed) +
            " failed, " + std::to_string(agg.unfinished) + " not finished. Benchmarks: " +
            (bench_list.empty() ? "?" : bench_list) + ". " +
            (gpu_list.empty() ? "Trained on the CPU." : "GPUs: " + gpu_list + "."));
  heading(2, "Findings");
  paragraph("Computed from the numbers below each time the report is made.");
  files.findings = report_findings(agg);
  list(files.findings);
  heading(2, "How the numbers are read");
  paragraph("A run's result is its final test accuracy (the last evaluation of training; for a "
            "task that evaluates trained models, the evaluation's). Runs that failed or have not "
            "finished give none. Within a (task, test condition, model, width, layers) the runs of "
            "one seed differ by learning rate and warmup. **Best over lr × warmup**: per seed the "
            "grid point with the highest final test accuracy (the reference's way of reading a "
            "sweep: it selects on the test set), then mean ± sample sd over seeds. **Mean over the "
            "grid**: per seed the mean over all grid points, then mean ± sd over seeds. Figures "
            "show the first. The number in brackets is the count of seeds. Findings compare each "
            "model's mean over a task's conditions at the width and depth where most models have "
            "results. Groups: softmax attention; diagonal recurrences without an input-dependent "
            "gate (none or a fixed decay); gated diagonal recurrences; the delta rule (diagonal "
            "plus low rank).");

  for (const auto& t : agg.tasks) {
    heading(2, "Task " + t.task);
    std::size_t seeds = 0;
    for (const auto& c : t.cells) seeds = std::max(seeds, c.best_per_seed.size());
    paragraph(std::string(t.evaluated ? "Evaluations of trained models" : "Trained runs") + ": " +
              plural(t.cells.size(), "cell") + " (condition × model × width × layers), widths " +
              [&] {
                std::string w;
                for (auto x : t.widths) w += (w.empty() ? "" : ", ") + std::to_string(x);
                return w;
              }() + ", up to " + plural(seeds, "seed") + ".");
    const std::string axis = numeric_axis(t);
    if (!axis.empty()) {
      drawn_axes.insert(axis);
      for (auto& f : axis_figures(agg, t, axis)) figure(std::move(f));
    } else {
      if (t.widths.size() >= 2) figure(width_figure(agg, t));
      figure(bar_figure(agg, t));
    }
    if (!t.evaluated) {
      std::size_t left_out = 0;
      const auto curves = curve_figures(agg, t, options.max_curve_figures_per_task, &left_out);
      any_curve = any_curve || !curves.empty();
      for (auto f : curves) figure(std::move(f));
      if (left_out > 0) {
        files.missing.push_back("training curves of " + t.task + ": " + plural(left_out, "figure") +
                                " beyond the first " +
                                std::to_string(options.max_curve_figures_per_task) + " not drawn");
      }
    }
    Block b;
    b.kind = Block::Kind::kTable;
    b.table = task_table(agg, t);
    blocks.push_back(std::move(b));
  }

  // 3. The paper's views that the data cannot draw, and why.
  const auto task_of = [&](const std::string& name) -> const TaskResults* {
    for (const auto& t : agg.tasks) {
      if (t.task == name) return &t;
    }
    return nullptr;
  };
  if (!drawn_axes.count("grammar.ambiguities")) {
    files.missing.push_back("task 1 complexity (accuracy vs ambiguities): no task with a "
                            "`grammar.ambiguities` sweep has results (configs/paper*/task1_complexity.toml)");
  }
  if (const auto* t = task_of("task1_model_size"); !t || t->widths.size() < 2) {
    files.missing.push_back(std::string("task 1 width (accuracy vs width): ") +
                            (t ? "task1_model_size has results at one width only"
                               : "no results of task1_model_size"));
  }
  for (const char* name : {"task2", "task3"}) {
    if (!task_of(name)) {
      files.missing.push_back(std::string(name) + " (accuracy per model and width): no results");
    }
  }
  if (!std::any_of(drawn_axes.begin(), drawn_axes.end(), is_gap_duration)) {
    files.missing.push_back("task 4 (accuracy vs test gap length): no task with a "
                            "`test.gap.duration` sweep has results");
  }
  if (!any_curve) files.missing.push_back("training curves: no trained run with metrics.jsonl");
  heading(2, "Views not drawn");
  if (files.missing.empty()) {
    paragraph("Every view has data.");
  } else {
    list(files.missing);
  }

  // 4. Runs without a result.
  std::vector<std::string> failed;
  for (const auto& r : table.rows) {
    if (r.value("status", std::string()) != "failed") continue;
    failed.push_back("`" + r.value("dir", std::string("?")) + "`: " +
                     (r.value("error", json()).is_string() ? r["error"].get<std::string>() : "?"));
  }
  heading(2, "Failed runs");
  if (failed.empty()) {
    paragraph("None.");
  } else {
    if (failed.size() > 100) {
      const std::size_t more = failed.size() - 100;
      failed.resize(100);
      failed.push_back(std::to_string(more) + " more in runs.csv");
    }
    list(failed);
  }
  heading(2, "Files");
  paragraph("`runs.csv` (RFC 4180) and `runs.jsonl` hold every collected row at full precision; "
            "`figures/` holds each figure as SVG and PNG with its data and gnuplot script.");

  // 5. Draw, then write the documents (the HTML inlines the SVGs).
  draw_figures(figures_dir.string(), figures, options.gnuplot);
  for (const auto& f : figures) {
    for (const char* ext : {".svg", ".png", ".dat", ".gp"}) {
      files.written.push_back("figures/" + f.name + ext);
    }
  }
  write_file_atomically((out / "report.md").string(),
                        [&](std::ostream& o) { o << render_markdown(blocks); });
  write_file_atomically((out / "report.html").string(),
                        [&](std::ostream& o) { o << render_html(blocks, figures_dir); });
  files.written.push_back("report.md");
  files.written.push_back("report.html");
  return files;
}

}  // namespace sb
