// Data engine benchmark:
//   1. generation of the task-1 training set: 200 000 samples at amb = 40;
//   2. realisation of the task-2 test set (1000 samples, 10 blanks after every symbol, noise 0.2)
//      into padded input tensors, in batches of 50 as the evaluation does.
// Prints samples/s; figures go to bench/RESULTS.md with the command and the machine.
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "core/config/task.hpp"
#include "core/tensor/batch.hpp"
#include "core/util/parallel.hpp"

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"selectivbench data engine benchmark"};
  std::string tasks_dir = "tasks";
  int threads = 0;
  int repeat = 3;
  app.add_option("--tasks", tasks_dir, "Folder of the task presets")->capture_default_str();
  app.add_option("--threads", threads, "Threads (0: all cores)")->capture_default_str();
  app.add_option("--repeat", repeat, "Repetitions (the median is reported)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (threads <= 0) threads = sb::hardware_threads();
  at::set_num_threads(threads);
  std::printf("machine: %u hardware threads; using %d\n", std::thread::hardware_concurrency(),
              threads);

  // 1. Task-1 training set.
  {
    const sb::TaskSpec task = sb::load_task(tasks_dir + "/task1_model_size.toml");
    const auto t_grammar = std::chrono::steady_clock::now();
    const sb::Grammar g = sb::make_grammar(task.data.grammar, task.data.seed);
    const double grammar_s = seconds_since(t_grammar);
    std::vector<double> times;
    std::int64_t n = task.data.train.size;
    for (int r = 0; r < repeat; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      const sb::SymbolSet set =
          sb::generate_symbols(g, task.data, sb::Split::kTrain, 0, n, threads);
      times.push_back(seconds_since(t0));
      if (set.count() != n) return 1;
    }
    const double s = median(times);
    std::printf(
        "task-1 training set generation: %lld samples (amb = %d, %d states) in %.3f s = %.0f "
        "samples/s (median of %d; grammar %.3f s)\n",
        static_cast<long long>(n), task.data.grammar.ambiguities, g.num_states(), s, n / s, repeat,
        grammar_s);
  }

  // 2. Task-2 test set realisation.
  {
    const sb::TaskSpec task = sb::load_task(tasks_dir + "/task2.toml");
    auto g = std::make_shared<const sb::Grammar>(
        sb::make_grammar(task.data.grammar, task.data.seed));
    const sb::Dataset test = sb::Dataset::create(g, task.data, sb::Split::kTest);
    std::vector<double> times;
    std::int64_t steps = 0;
    for (int r = 0; r < repeat; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      steps = 0;
      for (std::int64_t b = 0; b < test.size(); b += 50) {
        std::vector<std::int64_t> idx;
        for (std::int64_t i = b; i < std::min(test.size(), b + 50); ++i) idx.push_back(i);
        const sb::Batch batch = sb::make_batch(test, idx, static_cast<std::uint64_t>(r));
        steps += batch.lengths.sum().item<std::int64_t>();
      }
      times.push_back(seconds_since(t0));
    }
    const double s = median(times);
    std::printf(
        "task-2 test set realisation: %lld samples, %lld steps, inputs [50, T, %d] + noise, in "
        "%.3f s = %.0f samples/s (%.1f M steps/s; median of %d)\n",
        static_cast<long long>(test.size()), static_cast<long long>(steps), g->vocab(), s,
        test.size() / s, steps / s / 1e6, repeat);
  }
  return 0;
}
