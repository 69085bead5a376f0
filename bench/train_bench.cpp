// Training-speed benchmark: for each plugin, the paper's network (V_in = 41, C = 1601,
// post-LayerNorm blocks) at the given widths and depth, on random one-hot inputs [B, T, V_in] with
// random labels, timing
//   forward            network forward without gradients (evaluation)
//   train update       forward + cross-entropy + backward + Adam step (one training update)
// in tokens/s (B·T per call), the median over --iters calls after one warm-up call, plus the peak
// CUDA memory of the update. With --loop TASK it also runs the real training loop (sb::train: the
// task's data made on the host, batches, clipping, schedule, divergence checks) for --updates
// updates and reports
//   loop tok/s         tokens trained per second over updates 4 … --updates (data included)
//   loop / update      how much of the bare update's speed the loop keeps
//   first s            seconds from the call to the end of the first update
//   loop MiB           the loop's peak CUDA memory
// so the two are compared in one program. Figures go to bench/RESULTS.md with the command and
// the machine.
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <sstream>
#include <thread>

#include <dlfcn.h>
#include <ftw.h>
#include <execinfo.h>
#include <ucontext.h>
#include <unistd.h>

#include <csignal>

#include "core/config/task.hpp"
#include "core/data/grammar.hpp"
#include "core/model/network.hpp"
#include "core/plugins/registry.hpp"
#include "core/tensor/batch.hpp"
#include "core/train/precision.hpp"
#include "core/train/trainer.hpp"
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

// A crash prints where it happened before dying: the benchmark runs on machines without a
// debugger. The faulting address and the return address on top of the stack (the caller, when
// the crash is a call through a bad pointer) are named with dladdr, then the unwound stack.
void print_address(const char* what, void* address) {
  Dl_info info{};
  char line[512];
  const char* symbol = dladdr(address, &info) && info.dli_sname ? info.dli_sname : "?";
  const char* object = info.dli_fname ? info.dli_fname : "?";
  const int n = std::snprintf(line, sizeof line, "%s %p: %s in %s (+0x%lx)\n", what, address,
                              symbol, object,
                              static_cast<unsigned long>(static_cast<char*>(address) -
                                                         static_cast<char*>(info.dli_fbase)));
  (void)!write(STDERR_FILENO, line, static_cast<std::size_t>(std::max(0, n)));
}

void print_stack_and_die(int signal, siginfo_t* info, void* context) {
  const char msg[] = "bench_train: fatal signal\n";
  (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
  const auto* uc = static_cast<ucontext_t*>(context);
  print_address("fault pc", reinterpret_cast<void*>(uc->uc_mcontext.gregs[REG_RIP]));
  print_address("top of stack", *reinterpret_cast<void**>(uc->uc_mcontext.gregs[REG_RSP]));
  print_address("address", info->si_addr);
  void* frames[64];
  backtrace_symbols_fd(frames, backtrace(frames, 64), STDERR_FILENO);
  std::signal(signal, SIG_DFL);
  std::raise(signal);
}

void install_crash_handler() {
  struct sigaction action {};
  action.sa_sigaction = print_stack_and_die;
  action.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &action, nullptr);
  sigaction(SIGBUS, &action, nullptr);
}

// Removes a folder tree with nftw. (std::filesystem::remove_all crashed on the CUDA machine: the
// call bound to a copy inside LibTorch 2.11's libtorch.so that jumps to a null pointer.)
void remove_tree(const std::string& path) {
  nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }, 16,
      FTW_DEPTH | FTW_PHYS);
}

int device_index(const torch::Device& device) { return device.index() < 0 ? 0 : device.index(); }

struct LoopFigures {
  double tokens_per_second = 0;
  double first_update_seconds = 0;
  double peak_mib = 0;
};

// The real training loop on `task`'s data: `updates` updates of batch `batch`, timed from the end
// of update kWarm to the end of the last one (the final evaluation is outside the window).
LoopFigures time_training_loop(const std::string& task_file, sb::NetworkSpec spec,
                               std::int64_t batch, std::int64_t updates,
                               const std::string& device_name, const std::string& dtype,
                               bool cuda_graphs) {
  constexpr std::int64_t kWarm = 3;
  const sb::TaskSpec task =
      sb::load_task(task_file, {sb::parse_override("train.size=" + std::to_string(updates * batch)),
                                sb::parse_override("test.size=" + std::to_string(batch))});
  auto grammar =
      std::make_shared<const sb::Grammar>(sb::make_grammar(task.data.grammar, task.data.seed));
  const auto train_set = sb::Dataset::create(grammar, task.data, sb::Split::kTrain);
  const auto test_set = sb::Dataset::create(grammar, task.data, sb::Split::kTest);
  spec.input_size = grammar->vocab();
  spec.num_classes = sb::num_classes(test_set);
  sb::Network network(spec);

  sb::TrainingSpec ts;
  ts.batch_size = batch;
  ts.max_updates = updates;
  ts.eval_every = updates + 1;  // only the final evaluation
  ts.warmup_steps = 10;
  ts.lr = 1e-4;
  ts.device = device_name;
  ts.dtype = dtype;
  ts.cuda_graphs = cuda_graphs;
  std::int64_t window_tokens = 0;  // the steps of updates kWarm + 1 … updates (0-based kWarm …)
  for (std::int64_t i = kWarm * batch; i < updates * batch; ++i) {
    window_tokens += train_set.item(i, 0).steps();
  }
  const torch::Device device(device_name);
  std::string dir_template = "/tmp/sb_bench_loop_XXXXXX";
  if (mkdtemp(dir_template.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  const std::string dir = dir_template;
  if (device.is_cuda()) sb::compat::reset_peak_device_memory(device_index(device));
  std::chrono::steady_clock::time_point t0, t1;
  sb::TrainCallbacks cb;
  cb.progress = [&](std::int64_t update, std::int64_t total) {
    if (update == kWarm || update == total) {
      sync(device);
      (update == kWarm ? t0 : t1) = std::chrono::steady_clock::now();
    }
  };
  const sb::RunOutcome out = sb::train(network, train_set, test_set, ts, dir, cb);
  remove_tree(dir);
  if (out.status != "finished") throw std::runtime_error("loop " + out.status + ": " + out.message);
  LoopFigures f;
  f.tokens_per_second =
      static_cast<double>(window_tokens) / std::chrono::duration<double>(t1 - t0).count();
  f.first_update_seconds = out.seconds_to_first_update;
  if (device.is_cuda()) {
    f.peak_mib =
        static_cast<double>(sb::compat::peak_device_memory(device_index(device))) / (1024.0 * 1024.0);
  }
  return f;
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
  std::string loop_task;
  std::int64_t loop_updates = 40;
  app.add_option("--plugins", plugins, "Comma-separated plugin names")->capture_default_str();
  app.add_option("--widths", widths, "Comma-separated widths d")->capture_default_str();
  app.add_option("--layers", layers, "Layers")->capture_default_str();
  app.add_option("--batch", batch, "Batch size B")->capture_default_str();
  app.add_option("--steps", steps, "Time steps T per sequence")->capture_default_str();
  app.add_option("--iters", iters, "Timed calls (median reported)")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (0: all cores)")->capture_default_str();
  app.add_option("--device", device_name, "cpu, cuda, cuda:N")->capture_default_str();
  app.add_option("--dtype", dtype_name, "float32, tf32, bfloat16 or bf16-mixed")
      ->check(CLI::IsMember({"float32", "tf32", "bfloat16", "bf16-mixed"}))
      ->capture_default_str();
  app.add_option("--loop", loop_task,
                 "Also time the real training loop on this task file's data (e.g. "
                 "tasks/task1_model_size.toml: T = 400)")
      ->check(CLI::ExistingFile);
  app.add_option("--updates", loop_updates, "Updates of the --loop run")
      ->capture_default_str()
      ->check(CLI::Range(8, 100000));
  app.add_option("--plugin-path", plugin_paths, "Folder searched for plugins first");
  bool no_graphs = false;
  app.add_flag("--no-graphs", no_graphs,
               "The --loop run without CUDA graphs ([training] cuda_graphs = false)");
  CLI11_PARSE(app, argc, argv);
  install_crash_handler();

  torch::set_num_threads(threads > 0 ? threads
                                     : sb::hardware_threads());
  const torch::Device device(device_name);
  const sb::Precision precision = sb::resolve_precision(dtype_name, torch::kFloat32, device);
  const auto dtype = precision.parameter_dtype();
  const sb::MatmulPrecisionScope matmul_precision(precision, device);
  const auto folders = sb::plugin_search_path(plugin_paths, {});
  const std::int64_t V_in = 41, C = 1601;

  std::printf(
      "device %s, %s, %d CPU threads, LibTorch %s; L = %lld, B = %lld, T = %lld, "
      "median of %d\n",
      device.str().c_str(), dtype_name.c_str(), torch::get_num_threads(),
      sb::compat::torch_version().c_str(), static_cast<long long>(layers),
      static_cast<long long>(batch), static_cast<long long>(steps), iters);
  std::printf("%-14s %6s %12s %14s %16s %14s", "plugin", "width", "params", "forward tok/s",
              "train tok/s", "peak MiB");
  if (!loop_task.empty()) {
    std::printf(" %14s %14s %10s %10s", "loop tok/s", "loop / update", "first s", "loop MiB");
  }
  std::printf("\n");
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
        std::int64_t params = 0;
        double fwd = 0, train = 0, peak_mib = 0;
        {  // the bare update; its network and optimiser are gone before the loop starts
        sb::Network network(spec);
        network->to(device, dtype);
        for (const auto& p : network->parameters()) params += p.numel();
        torch::optim::Adam optimizer(network->parameters(), torch::optim::AdamOptions(1e-4));

        torch::manual_seed(1);
        const auto symbols = torch::randint(V_in, {batch, steps}, torch::kLong);
        const auto inputs = torch::one_hot(symbols, V_in).to(device, dtype);  // [B, T, V_in]
        const auto labels = torch::randint(C, {batch * steps}, torch::kLong).to(device);  // [B·T]

        const auto forward_once = [&] {
          torch::NoGradGuard no_grad;
          network->eval();
          const sb::AutocastScope autocast(precision, device);
          auto logits = network->forward(inputs);
          sync(device);
          return logits;
        };
        const auto update_once = [&] {
          network->train();
          optimizer.zero_grad();
          torch::Tensor logits;
          {
            const sb::AutocastScope autocast(precision, device);
            logits = network->forward(inputs).to(torch::kFloat32).view({batch * steps, C});
          }
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
        fwd = time_it([&] { forward_once(); });
        if (device.is_cuda())
          sb::compat::reset_peak_device_memory(device.index() < 0 ? 0 : device.index());
        train = time_it(update_once);
        peak_mib = device.is_cuda()
                                    ? static_cast<double>(sb::compat::peak_device_memory(
                                          device.index() < 0 ? 0 : device.index())) /
                                          (1024.0 * 1024.0)
                                    : 0.0;
        }
        std::printf("%-14s %6s %12lld %14.0f %16.0f %14.0f", name.c_str(), w.c_str(),
                    static_cast<long long>(params), fwd, train, peak_mib);
        if (!loop_task.empty()) {
          std::fflush(stdout);
          sb::compat::empty_device_cache();
          const LoopFigures loop =
              time_training_loop(loop_task, spec, batch, loop_updates, device_name, dtype_name,
                                 !no_graphs);
          std::printf(" %14.0f %14.2f %10.2f %10.0f", loop.tokens_per_second,
                      loop.tokens_per_second / train, loop.first_update_seconds, loop.peak_mib);
        }
        std::printf("\n");
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
