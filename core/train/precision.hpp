// Precision modes of a run ([training] dtype, `run --dtype`, `evaluate --dtype`).
//
//   float32     every tensor in fp32 and TF32 off for matmuls and convolutions: the reference's
//               fp32 (PyTorch's default for matmuls; strict for cuDNN convolutions too)
//   tf32        fp32 tensors, TF32 tensor cores for matmuls and convolutions (CUDA; on the CPU it
//               computes as float32)
//   bfloat16    the whole model in bf16: parameters, activations, optimiser state (the reference's
//               mode for the delta-rule family)
//   bf16-mixed  fp32 parameters and optimiser state (master weights); the forward pass runs under
//               autocast, so matmuls and convolutions compute in bf16 while reductions, norms,
//               softmax, exp/log and the loss stay in fp32, and elementwise ops with an fp32 operand
//               (the recurrent state: decay · S + kᵀv) promote back to fp32
//   auto        the first layer plugin's CUDA dtype on CUDA (float32 or bfloat16), float32 on the
//               CPU; recorded as the mode it resolved to
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>
#include <vector>

#include "core/train/settings.hpp"  // precision_choices()

namespace sb {

enum class PrecisionMode { kFloat32, kTF32, kBFloat16, kBF16Mixed };

struct Precision {
  PrecisionMode mode = PrecisionMode::kFloat32;

  // The dtype of the parameters and of the network's input.
  c10::ScalarType parameter_dtype() const {
    return mode == PrecisionMode::kBFloat16 ? c10::kBFloat16 : c10::kFloat;
  }
  bool autocast() const { return mode == PrecisionMode::kBF16Mixed; }
  bool tf32() const { return mode == PrecisionMode::kTF32; }
  // "float32" | "tf32" | "bfloat16" | "bf16-mixed": what summaries and tables record.
  std::string name() const;
};

// `dtype` is one of precision_choices(); `plugin_cuda_dtype` is what "auto" means on CUDA.
Precision resolve_precision(const std::string& dtype, c10::ScalarType plugin_cuda_dtype,
                            const c10::Device& device);

// For the lifetime of a run: the TF32 switches of cuBLAS and cuDNN as the mode wants them; the
// previous switches come back on destruction. A no-op for the CPU.
class MatmulPrecisionScope {
 public:
  MatmulPrecisionScope(const Precision& precision, const c10::Device& device);
  ~MatmulPrecisionScope();
  MatmulPrecisionScope(const MatmulPrecisionScope&) = delete;
  MatmulPrecisionScope& operator=(const MatmulPrecisionScope&) = delete;

 private:
  bool active_ = false;
  bool cublas_ = false, cudnn_ = false;
};

// Around one forward pass: autocast to bf16 on `device` when the mode is bf16-mixed, else
// nothing. On destruction autocast is restored and its cache of cast weights dropped (the weights
// change at the next optimiser step).
class AutocastScope {
 public:
  AutocastScope(const Precision& precision, const c10::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool cuda_ = false;
  bool was_enabled_ = false;
  c10::ScalarType was_dtype_ = c10::kBFloat16;
};

}  // namespace sb
