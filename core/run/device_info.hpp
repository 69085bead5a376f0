// What a run records about the device it ran on.
#pragma once

#include <string>

namespace sb {

// The device's model: "NVIDIA H200" for cuda:N, the CPU's model name for "cpu"; "" when unknown.
std::string device_model(const std::string& device);

// The number of CUDA devices this build and machine have (0 without CUDA).
int cuda_device_count();

// Why CUDA cannot be used here ("this build has no CUDA: a CPU-only LibTorch", or "this build has
// CUDA but the machine has no usable GPU"); "" when a GPU is usable.
std::string cuda_unavailable_reason();

}  // namespace sb
