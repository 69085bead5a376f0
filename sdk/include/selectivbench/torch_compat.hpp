// The one place for LibTorch version differences. The project builds against Debian's LibTorch 1.13
// (CPU, CI) and LibTorch 2.x (CUDA, from a PyTorch install); code elsewhere calls these helpers instead of
// version-specific APIs.
#pragma once

#include <torch/torch.h>
#include <torch/version.h>
#include <ATen/autocast_mode.h>
#if SELECTIVBENCH_TORCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <cstdint>
#include <string>

namespace sb::compat {

inline constexpr int kTorchMajor = TORCH_VERSION_MAJOR;
inline constexpr int kTorchMinor = TORCH_VERSION_MINOR;

// "1.13.0", "2.11.0".
inline std::string torch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

// Causal softmax attention: softmax(q kᵀ · scale + causal mask) v.
// q, k, v: [B, H, T, K] (v: [B, H, T, V]) -> [B, H, T, V]. LibTorch ≥ 2.0 uses the fused
// scaled_dot_product_attention; 1.13 has none, so it materialises the [B, H, T, T] scores.
inline torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                                      const torch::Tensor& v, double scale) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                          /*is_causal=*/true, scale);
#else
  const auto T = q.size(2);
  const auto S = k.size(2);
  auto scores = torch::matmul(q, k.transpose(-2, -1)) * scale;  // [B, H, T, S]
  // Query t (of the last T positions) sees keys 0 .. S - T + t.
  auto mask = torch::ones({T, S}, q.options().dtype(torch::kBool)).triu(S - T + 1);
  scores = scores.masked_fill(mask, -std::numeric_limits<float>::infinity());
  return torch::matmul(torch::softmax(scores, -1), v);
#endif
}

// Returns cached, unused device memory to the driver (after an out-of-memory error); a no-op on
// CPU-only builds.
inline void empty_device_cache() {
#if SELECTIVBENCH_TORCH_CUDA
  c10::cuda::CUDACachingAllocator::emptyCache();
#endif
}

// Peak bytes held by tensors on CUDA device `index` since the last reset; 0 on CPU-only builds.
inline std::int64_t peak_device_memory(int index) {
#if SELECTIVBENCH_TORCH_CUDA
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
  return stats.allocated_bytes[0].peak;  // [0]: the aggregate over pool types
#else
  (void)index;
  return 0;
#endif
}

inline void reset_peak_device_memory(int index) {
#if SELECTIVBENCH_TORCH_CUDA
  c10::cuda::CUDACachingAllocator::resetPeakStats(index);
#else
  (void)index;
#endif
}

// Autocast (automatic mixed precision) for one device type: LibTorch ≥ 2.4 has one call per
// device type, 1.13 one call per backend.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define SELECTIVBENCH_AUTOCAST_PER_DEVICE 1
#else
#define SELECTIVBENCH_AUTOCAST_PER_DEVICE 0
#endif
inline bool autocast_enabled(c10::DeviceType device) {
#if SELECTIVBENCH_AUTOCAST_PER_DEVICE
  return at::autocast::is_autocast_enabled(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::is_enabled()
                                         : at::autocast::is_cpu_enabled();
#endif
}

inline c10::ScalarType autocast_dtype(c10::DeviceType device) {
#if SELECTIVBENCH_AUTOCAST_PER_DEVICE
  return at::autocast::get_autocast_dtype(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                         : at::autocast::get_autocast_cpu_dtype();
#endif
}

inline void set_autocast(c10::DeviceType device, bool enabled, c10::ScalarType dtype) {
#if SELECTIVBENCH_AUTOCAST_PER_DEVICE
  at::autocast::set_autocast_dtype(device, dtype);
  at::autocast::set_autocast_enabled(device, enabled);
#else
  if (device == c10::DeviceType::CUDA) {
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(enabled);
  } else {
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(enabled);
  }
#endif
}

}  // namespace sb::compat
