// Sweep-packing benchmark: how much sweep throughput K workers
// sharing one GPU give. For each width, dtype and K it writes a benchmark of K task-1 runs (the
// paper's 8-layer network, batch 64, 200-symbol samples), runs `selectivbench run --gpus G
// --runs-per-gpu K` on it, and reads the run summaries:
//   sweep tok/s   training tokens of all K runs / wall time of the whole sweep (start-up,
//                 data, evaluation included: what a grid gets)
//   train tok/s   the sum of the runs' own training rates (summary tokens_per_s)
//   speed-up      sweep tok/s over that of K = 1
//   peak GiB      the largest per-run peak of device memory
// Figures go to bench/RESULTS.md with the command and the machine.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace fs = std::filesystem;

namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"selectivbench sweep-packing benchmark: K runs sharing one GPU"};
  std::string selectivbench = "build/selectivbench", tasks = "tasks", model = "transformer";
  std::string widths = "256,1024", dtypes = "float32,bfloat16", ks = "1,2,4,8", gpu = "0";
  std::string work = "out/bench_packing";
  int updates = 60;
  app.add_option("--selectivbench", selectivbench, "The binary")->capture_default_str();
  app.add_option("--tasks", tasks, "The tasks/ folder")->capture_default_str();
  app.add_option("--model", model, "Model (plugin) of the runs")->capture_default_str();
  app.add_option("--widths", widths, "Comma-separated widths")->capture_default_str();
  app.add_option("--dtypes", dtypes, "Comma-separated dtypes")->capture_default_str();
  app.add_option("--k", ks, "Comma-separated workers per GPU")->capture_default_str();
  app.add_option("--gpu", gpu, "The GPU index")->capture_default_str();
  app.add_option("--updates", updates, "Updates per run (batch 64)")->capture_default_str();
  app.add_option("--work", work, "Scratch folder")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::printf("%-6s %-9s %3s %14s %14s %9s %9s\n", "width", "dtype", "K", "sweep tok/s",
              "train tok/s", "speed-up", "peak GiB");
  for (const auto& width : split(widths)) {
    for (const auto& dtype : split(dtypes)) {
      double base = 0;
      for (const auto& k_text : split(ks)) {
        const int K = std::stoi(k_text);
        const fs::path dir = fs::absolute(work) / (width + "_" + dtype + "_k" + k_text);
        fs::remove_all(dir);
        fs::create_directories(dir);
        // K seeds make K runs; the training set is just large enough for the updates.
        std::string seeds;
        for (int s = 1; s <= K; ++s) seeds += (s > 1 ? ", " : "") + std::to_string(s);
        std::ofstream(dir / "bench.toml")
            << "[benchmark]\nname = \"packing\"\n"
            << "tasks = [\"" << fs::absolute(tasks).string() << "/task1_model_size.toml\"]\n"
            << "task_set = [\"train.size=" << 64 * updates << "\", \"test.size=500\"]\n"
            << "models = [\"" << model << "\"]\nwidths = [" << width << "]\nlayers = [8]\n"
            << "seeds = [" << seeds << "]\nlearning_rates = [1e-3]\nwarmups = [10]\n"
            << "[training]\nbatch_size = 64\nmax_updates = " << updates
            << "\neval_every = " << updates << "\neval_batch_size = 250\n";
        const std::string command = selectivbench + " run " + (dir / "bench.toml").string() +
                                    " --out " + (dir / "out").string() + " --gpus " + gpu +
                                    " --runs-per-gpu " + k_text + " --dtype " + dtype + " > " +
                                    (dir / "log.txt").string() + " 2>&1";
        const auto t0 = std::chrono::steady_clock::now();
        const int rc = std::system(command.c_str());
        const double wall =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        double tokens = 0, train_rate = 0, peak = 0;
        int runs = 0;
        for (const auto& task : fs::directory_iterator(dir / "out")) {
          if (!task.is_directory()) continue;
          for (const auto& run : fs::directory_iterator(task.path())) {
            std::ifstream in(run.path() / "summary.json");
            if (!in) continue;
            const auto s = nlohmann::json::parse(in);
            if (s.value("status", std::string()) != "finished") continue;
            ++runs;
            tokens += s.at("tokens_per_s").get<double>() * s.at("train_seconds").get<double>();
            train_rate += s.at("tokens_per_s").get<double>();
            peak = std::max(peak, s.value("peak_device_memory_bytes", 0.0) / (1u << 30));
          }
        }
        if (rc != 0 || runs != K) {
          std::printf("%-6s %-9s %3d  failed: exit %d, %d of %d runs finished (see %s)\n",
                      width.c_str(), dtype.c_str(), K, rc, runs, K, (dir / "log.txt").c_str());
          continue;
        }
        const double rate = tokens / wall;
        if (K == 1) base = rate;
        std::printf("%-6s %-9s %3d %14.0f %14.0f %9s %9.1f\n", width.c_str(), dtype.c_str(), K,
                    rate, train_rate,
                    base > 0 ? (std::to_string(rate / base).substr(0, 4) + "x").c_str() : "-",
                    peak);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
