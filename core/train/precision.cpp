#include "core/train/precision.hpp"

#include <ATen/Context.h>

#include <stdexcept>

#include "selectivbench/torch_compat.hpp"

namespace sb {

std::string Precision::name() const {
  switch (mode) {
    case PrecisionMode::kFloat32: return "float32";
    case PrecisionMode::kTF32: return "tf32";
    case PrecisionMode::kBFloat16: return "bfloat16";
    case PrecisionMode::kBF16Mixed: return "bf16-mixed";
  }
  return "float32";
}

Precision resolve_precision(const std::string& dtype, c10::ScalarType plugin_cuda_dtype,
                            const c10::Device& device) {
  if (dtype == "float32") return {PrecisionMode::kFloat32};
  if (dtype == "tf32") return {PrecisionMode::kTF32};
  if (dtype == "bfloat16") return {PrecisionMode::kBFloat16};
  if (dtype == "bf16-mixed") return {PrecisionMode::kBF16Mixed};
  if (dtype == "auto" || dtype.empty()) {
    const bool bf16 = device.is_cuda() && plugin_cuda_dtype == c10::kBFloat16;
    return {bf16 ? PrecisionMode::kBFloat16 : PrecisionMode::kFloat32};
  }
  throw std::invalid_argument("dtype '" + dtype +
                              "': not a precision mode (allowed: auto, float32, tf32, bfloat16, "
                              "bf16-mixed)");
}

MatmulPrecisionScope::MatmulPrecisionScope(const Precision& precision, const c10::Device& device) {
  if (!device.is_cuda()) return;
  auto& context = at::globalContext();
  active_ = true;
  cublas_ = context.allowTF32CuBLAS();
  cudnn_ = context.allowTF32CuDNN();
  context.setAllowTF32CuBLAS(precision.tf32());
  context.setAllowTF32CuDNN(precision.tf32());
}

MatmulPrecisionScope::~MatmulPrecisionScope() {
  if (!active_) return;
  auto& context = at::globalContext();
  context.setAllowTF32CuBLAS(cublas_);
  context.setAllowTF32CuDNN(cudnn_);
}

AutocastScope::AutocastScope(const Precision& precision, const c10::Device& device) {
  if (!precision.autocast()) return;
  active_ = true;
  cuda_ = device.is_cuda();
  const auto type = cuda_ ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
  was_enabled_ = compat::autocast_enabled(type);
  was_dtype_ = compat::autocast_dtype(type);
  compat::set_autocast(type, true, c10::kBFloat16);
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  compat::set_autocast(cuda_ ? c10::DeviceType::CUDA : c10::DeviceType::CPU, was_enabled_,
                       was_dtype_);
  at::autocast::clear_cache();
}

}  // namespace sb
