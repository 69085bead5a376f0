// Figures drawn with gnuplot: for each figure a data file, a script that a reader can edit and run
// again, and the SVG and PNG it draws.
#pragma once

#include <string>
#include <vector>

namespace sb {

struct FigurePoint {
  double x = 0, y = 0, error = 0;  // error: the ± bar (0: none)
};

struct FigureSeries {
  std::string title;  // the model
  std::string color;  // "#rrggbb"
  std::vector<FigurePoint> points;
};

struct Figure {
  enum class Kind { kLines, kCurves, kBars };
  Kind kind = Kind::kLines;
  std::string name;   // file stem: figures/<name>.svg
  std::string title;
  std::string xlabel, ylabel = "test accuracy";
  bool log2_x = false;
  std::vector<double> xtics;             // lines: tick positions (empty: gnuplot's)
  std::vector<std::string> bar_groups;   // bars: the clusters along x (a point's x indexes them)
  std::vector<FigureSeries> series;
};

// Writes <dir>/<name>.dat, .gp, .svg and .png for each figure by running `gnuplot` once per
// figure. Throws std::runtime_error with gnuplot's message (and the script's path) if it fails or
// is not installed.
void draw_figures(const std::string& dir, const std::vector<Figure>& figures,
                  const std::string& gnuplot = "gnuplot");

// The gnuplot script of a figure (the data file is <name>.dat beside it).
std::string gnuplot_script(const Figure& figure);

}  // namespace sb
