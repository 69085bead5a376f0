#include "core/results/figures.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/util/atomic_file.hpp"

extern char** environ;

namespace sb {

namespace fs = std::filesystem;

namespace {

// A gnuplot string literal (double quotes: backslash and quote escaped).
std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string number(double v) {
  if (!std::isfinite(v)) return "NaN";
  std::ostringstream out;
  out.precision(10);
  out << v;
  return out.str();
}

// Lines and curves: one block per series ("x y error"), separated by two blank lines so that
// `index i` picks series i. Bars: one row per group, two columns (mean, error) per series.
std::string data_file(const Figure& f) {
  std::ostringstream out;
  if (f.kind == Figure::Kind::kBars) {
    out << "# group";
    for (const auto& s : f.series) out << "\t" << s.title << "\t" << s.title << "_error";
    out << "\n";
    for (std::size_t g = 0; g < f.bar_groups.size(); ++g) {
      out << f.bar_groups[g];  // no tabs in a group name
      for (const auto& s : f.series) {
        double y = std::nan(""), e = 0;
        for (const auto& p : s.points) {
          if (static_cast<std::size_t>(p.x) == g) y = p.y, e = p.error;
        }
        out << "\t" << number(y) << "\t" << number(e);
      }
      out << "\n";
    }
    return out.str();
  }
  for (std::size_t i = 0; i < f.series.size(); ++i) {
    out << "# " << f.series[i].title << "\n";
    for (const auto& p : f.series[i].points) {
      out << number(p.x) << "\t" << number(p.y) << "\t" << number(p.error) << "\n";
    }
    out << "\n\n";
  }
  return out.str();
}

void run_gnuplot(const std::string& gnuplot, const fs::path& dir, const std::string& script) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // The log's path is opened after the chdir: make it absolute.
  const std::string log = (fs::absolute(dir) / (fs::path(script).stem().string() + ".log")).string();
  posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> args = {gnuplot, script};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int err = posix_spawnp(&pid, gnuplot.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) {
    throw std::runtime_error("cannot run " + gnuplot + " (" + std::strerror(err) +
                             "): reports draw their figures with gnuplot; install Debian's "
                             "gnuplot-nox (scripts/install-deps.sh)");
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::ifstream in(log);
  std::stringstream messages;
  messages << in.rdbuf();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error("gnuplot failed on " + (dir / script).string() + ": " +
                             messages.str().substr(0, 2000));
  }
  std::error_code ec;
  if (messages.str().empty()) fs::remove(log, ec);
}

}  // namespace

std::string gnuplot_script(const Figure& f) {
  std::ostringstream g;
  const std::string data = quoted(f.name + ".dat");
  g << "# " << f.title << " (drawn by selectivbench report; run `gnuplot " << f.name
    << ".gp` here to draw it again)\n";
  g << "set terminal svg size 760,460 dynamic font \"sans,12\" noenhanced background rgb \"white\"\n"
    << "set output " << quoted(f.name + ".svg") << "\n"
    << "set title " << quoted(f.title) << "\n"
    << "set xlabel " << quoted(f.xlabel) << "\n"
    << "set ylabel " << quoted(f.ylabel) << "\n"
    << "set key outside right top vertical Left reverse noautotitle\n"
    << "set grid ytics lc rgb \"#dddddd\"\n"
    << "set border 3\nset tics nomirror\n"
    << "set datafile missing \"NaN\"\n"
    << "set datafile separator \"\\t\"\n";
  if (f.kind == Figure::Kind::kBars) {
    g << "set style data histograms\n"
      << "set style histogram errorbars gap 2 lw 1\n"
      << "set style fill solid 0.85 border -1\n"
      << "set boxwidth 0.9\n"
      << "set yrange [0:*]\n"
      << "set xtics scale 0\n"
      << "plot ";
    for (std::size_t i = 0; i < f.series.size(); ++i) {
      g << (i ? ", \\\n     " : "") << (i ? "''" : data) << " using " << 2 + 2 * i << ":"
        << 3 + 2 * i << (i ? "" : ":xtic(1)") << " lc rgb " << quoted(f.series[i].color)
        << " title " << quoted(f.series[i].title);
    }
    g << "\n";
  } else {
    if (f.log2_x) g << "set logscale x 2\n";
    if (!f.xtics.empty()) {
      g << "set xtics (";
      for (std::size_t i = 0; i < f.xtics.size(); ++i) {
        g << (i ? ", " : "") << quoted(number(f.xtics[i])) << " " << number(f.xtics[i]);
      }
      g << ")\n";
    }
    if (f.kind == Figure::Kind::kCurves) {
      g << "set xrange [0:*]\nset yrange [0:*]\n";  // from the start of training; accuracy ≥ 0
    } else {
      g << "set offsets graph 0.03, graph 0.03, graph 0.05, graph 0.05\n";
    }
    g << "plot ";
    for (std::size_t i = 0; i < f.series.size(); ++i) {
      g << (i ? ", \\\n     " : "") << data << " index " << i;
      if (f.kind == Figure::Kind::kCurves) {
        g << " using 1:2 with lines lw 2";
      } else {
        g << " using 1:2:3 with yerrorlines lw 2 pt 7 ps 0.7";
      }
      g << " lc rgb " << quoted(f.series[i].color) << " title " << quoted(f.series[i].title);
    }
    g << "\n";
  }
  g << "set terminal pngcairo size 1140,690 font \"sans,14\" noenhanced background rgb \"white\"\n"
    << "set output " << quoted(f.name + ".png") << "\n"
    << "replot\n"
    << "unset output\n";
  return g.str();
}

void draw_figures(const std::string& dir, const std::vector<Figure>& figures,
                  const std::string& gnuplot) {
  fs::create_directories(dir);
  for (const auto& f : figures) {
    if (f.series.empty()) continue;
    write_file_atomically((fs::path(dir) / (f.name + ".dat")).string(),
                          [&](std::ostream& o) { o << data_file(f); });
    write_file_atomically((fs::path(dir) / (f.name + ".gp")).string(),
                          [&](std::ostream& o) { o << gnuplot_script(f); });
    run_gnuplot(gnuplot, dir, f.name + ".gp");
  }
}

}  // namespace sb
