// Training-speed benchmark (issues "Plugin SDK…" and "The full model zoo…"): for each plugin, the
// paper's network (V_in = 41, C = 1601, post-LayerNorm blocks) at the given widths and depth, on
// random one-hot inputs [B, T, V_in] with random labels, timing
//   forward            network forward without gradients (evaluation)
//   train update       forward + cross-entropy + backward + Adam step (one training update)
// in tokens/s (B·T per call), the median over --iters calls after one warm-up call, plus the peak
// CUDA memory of the update. Figures go to bench/RESULTS.md with the command and the machine.
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <sstream>
#include <thread>

#include "core/model/network.hpp"
#include "core/plugins/registry.hpp"
#include "core/util/parallel.hpp"
#include "selectivbench/torch_compat.hpp"

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"selectivbench training-speed benchmark"};
  std::string plugins = "transformer,gla";
  std::string widths = "256,1024";
  std::int64_t layers = 8, batch = 64, steps = 400;
  int iters = 3, threads = 0;
  std::string device_name = "cpu", dtype_name = "float32";
  std::vector<std::string> plugin_paths;
  app.add_option("--plugins", plugins, "Comma-separated plugin names")->capture_default_str();
  app.add_option("--widths", widths, "Comma-separated widths d")->capture_default_str();
  app.add_option("--layers", layers, "Layers")->capture_default_str();
  app.add_option("--batch", batch, "Batch size B")->capture_default_str();
  app.add_option("--steps", steps, "Time steps T per sequence")->capture_default_str();
  app.add_option("--iters", iters, "Timed calls (median reported)")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (0: all cores)")->capture_default_str();
  app.add_option("--device", device_name, "cpu, cuda, cuda:N")->capture_default_str();
  app.add_option("--dtype", dtype_name, "float32 or bfloat16")
      ->check(CLI::IsMember({"float32", "bfloat16"}))
      ->capture_default_str();
  app.add_option("--plugin-path", plugin_paths, "Folder searched for plugins first");
  CLI11_PARSE(app, argc, argv);

  torch::set_num_threads(threads > 0 ? threads
                                     : sb::hardware_threads());
  const torch::Device device(device_name);
  const auto dtype = dtype_name == "bfloat16" ? torch::kBFloat16 : torch::kFloat32;
  const auto folders = sb::plugin_search_path(plugin_paths, {});
  const std::int64_t V_in = 41, C = 1601;

  std::printf(
      "device %s, %s, %d CPU threads, LibTorch %s; L = %lld, B = %lld, T = %lld, "
      "median of %d\n",
      device.str().c_str(), dtype_name.c_str(), torch::get_num_threads(),
      sb::compat::torch_version().c_str(), static_cast<long long>(layers),
      static_cast<long long>(batch), static_cast<long long>(steps), iters);
  std::printf("%-14s %6s %12s %14s %16s %14s\n", "plugin", "width", "params", "forward tok/s",
              "train tok/s", "peak MiB");
  for (const auto& name : split(plugins)) {
    const auto plugin = sb::PluginRegistry::instance().find(name, folders);
    for (const auto& w : split(widths)) {
      try {
        sb::NetworkSpec spec;
        spec.input_size = V_in;
        spec.num_classes = C;
        spec.d_model = std::stoll(w);
        spec.n_heads = sb::reference_num_heads(spec.d_model);
        spec.layers.assign(static_cast<std::size_t>(layers),
                           {plugin, sb::Options(plugin->descriptor.options)});
        spec.block.dropout = 0.2;
        sb::Network network(spec);
        network->to(device, dtype);
        std::int64_t params = 0;
        for (const auto& p : network->parameters()) params += p.numel();
        torch::optim::Adam optimizer(network->parameters(), torch::optim::AdamOptions(1e-4));

        torch::manual_seed(1);
        const auto symbols = torch::randint(V_in, {batch, steps}, torch::kLong);
        const auto inputs = torch::one_hot(symbols, V_in).to(device, dtype);  // [B, T, V_in]
        const auto labels = torch::randint(C, {batch * steps}, torch::kLong).to(device);  // [B·T]

        const auto forward_once = [&] {
          torch::NoGradGuard no_grad;
          network->eval();
          auto logits = network->forward(inputs);
          sync(device);
          return logits;
        };
        const auto update_once = [&] {
          network->train();
          optimizer.zero_grad();
          auto logits = network->forward(inputs).to(torch::kFloat32).view({batch * steps, C});
          torch::nn::functional::cross_entropy(logits, labels).backward();
          optimizer.step();
          sync(device);
        };
        const auto time_it = [&](const std::function<void()>& f) {
          f();  // warm-up
          std::vector<double> seconds;
          for (int i = 0; i < iters; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            f();
            seconds.push_back(
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
          }
          return static_cast<double>(batch * steps) / median(seconds);
        };
        const double fwd = time_it([&] { forward_once(); });
        if (device.is_cuda())
          sb::compat::reset_peak_device_memory(device.index() < 0 ? 0 : device.index());
        const double train = time_it(update_once);
        const double peak_mib = device.is_cuda()
                                    ? static_cast<double>(sb::compat::peak_device_memory(
                                          device.index() < 0 ? 0 : device.index())) /
                                          (1024.0 * 1024.0)
                                    : 0.0;
        std::printf("%-14s %6s %12lld %14.0f %16.0f %14.0f\n", name.c_str(), w.c_str(),
                    static_cast<long long>(params), fwd, train, peak_mib);
        std::fflush(stdout);
      } catch (const std::exception& e) {
        // One configuration that does not fit (CUDA out of memory) must not end the table.
        const std::string what = e.what();
        std::printf("%-14s %6s  failed: %s\n", name.c_str(), w.c_str(),
                    what.substr(0, std::min(what.find('\n'), std::size_t{160})).c_str());
        std::fflush(stdout);
        sb::compat::empty_device_cache();
      }
    }
  }
  return 0;
}
