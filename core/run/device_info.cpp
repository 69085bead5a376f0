#include "core/run/device_info.hpp"

#include <torch/torch.h>

#include <fstream>

#if SELECTIVBENCH_TORCH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace sb {

std::string device_model(const std::string& device) {
  if (device.rfind("cuda", 0) == 0) {
#if SELECTIVBENCH_TORCH_CUDA
    if (!torch::cuda::is_available()) return "";
    const torch::Device d(device);
    const int index = d.has_index() ? d.index() : 0;
    return at::cuda::getDeviceProperties(index)->name;
#else
    return "";
#endif
  }
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "";
}

int cuda_device_count() {
  return torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
}

std::string cuda_unavailable_reason() {
  if (cuda_device_count() > 0) return "";
  return SELECTIVBENCH_TORCH_CUDA ? "this build has CUDA but the machine has no usable GPU"
                                  : "this build has no CUDA: a CPU-only LibTorch";
}

}  // namespace sb
