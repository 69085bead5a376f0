// libFuzzer target: the benchmark-file reader (core/config/benchmark.hpp). The input is written to
// <work>/configs/paper/fuzz.toml, beside the project's tasks/ (linked into <work> and
// <work>/configs), so the relative task paths of the seed corpus resolve as in the repository.
// Every input must give a benchmark or a ConfigError.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/config/benchmark.hpp"

namespace fs = std::filesystem;

namespace {

std::string g_input;  // the file the benchmark reader reads

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* tasks = std::getenv("SB_FUZZ_TASKS");  // the project's tasks/ folder
  char work_template[] = "/tmp/sb_fuzz_benchmark.XXXXXX";
  const char* work = ::mkdtemp(work_template);
  if (tasks == nullptr || work == nullptr) {
    std::fprintf(stderr, "fuzz_benchmark_file: set SB_FUZZ_TASKS to the project's tasks/ folder\n");
    std::exit(2);
  }
  const fs::path root(work);
  fs::create_directories(root / "configs" / "paper");
  fs::create_directory_symlink(tasks, root / "tasks");
  fs::create_directory_symlink(tasks, root / "configs" / "tasks");
  g_input = (root / "configs" / "paper" / "fuzz.toml").string();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  {
    std::ofstream out(g_input, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    const sb::BenchmarkSpec b = sb::load_benchmark(g_input);
    for (const auto& model : b.models) (void)b.layer_plugins(model, 2);
  } catch (const sb::ConfigError&) {
  }
  return 0;
}
