// The plugin entry point's C side (spec sdk.md §3): what the loader reads and checks before any C++
// object crosses the library boundary. Light on purpose (no LibTorch beyond its version header), so
// that the loader and tests can build entry points without the heavy headers.
#pragma once

#include <torch/version.h>

#include <cstdint>
#include <cstdio>
#include <string>

// Bumped whenever Mixer, MixerContext, Options, PluginDescriptor or the entry struct change.
#define SELECTIVBENCH_SDK_ABI_VERSION 2  // 2: MixerContext without reference_quirks

#ifndef SELECTIVBENCH_TORCH_CUDA
#define SELECTIVBENCH_TORCH_CUDA 0  // set by selectivbench_add_plugin from LibTorch's CMake config
#endif

extern "C" {

struct SbBuildFingerprint {
  char torch_version[24];  // "1.13.0"
  std::int32_t cxx11_abi;  // _GLIBCXX_USE_CXX11_ABI
  char compiler[16];       // "gcc" or "clang"
  std::int32_t compiler_major;
  std::int32_t cuda;  // LibTorch built with CUDA
};

struct SbPluginEntry {
  std::uint32_t abi_version;  // SELECTIVBENCH_SDK_ABI_VERSION of the plugin's build
  std::uint32_t struct_size;  // sizeof(SbPluginEntry) of the plugin's build
  SbBuildFingerprint fingerprint;
  char name[64];
  // Fills *(sb::PluginDescriptor*)out. Returns 0, or non-zero with a message in `error`. Never
  // throws.
  int (*describe)(void* out, char* error, std::uint64_t error_size);
};

typedef const SbPluginEntry* (*SbPluginEntryFn)();
}

namespace sb {

inline constexpr const char* kPluginEntrySymbol = "selectivbench_plugin_entry";

// The fingerprint of the code that includes this header.
inline SbBuildFingerprint this_build_fingerprint() {
  SbBuildFingerprint f{};
  std::snprintf(f.torch_version, sizeof(f.torch_version), "%d.%d.%d", TORCH_VERSION_MAJOR,
                TORCH_VERSION_MINOR, TORCH_VERSION_PATCH);
#ifdef _GLIBCXX_USE_CXX11_ABI
  f.cxx11_abi = _GLIBCXX_USE_CXX11_ABI;
#else
  f.cxx11_abi = -1;
#endif
#if defined(__clang__)
  std::snprintf(f.compiler, sizeof(f.compiler), "clang");
  f.compiler_major = __clang_major__;
#elif defined(__GNUC__)
  std::snprintf(f.compiler, sizeof(f.compiler), "gcc");
  f.compiler_major = __GNUC__;
#else
  std::snprintf(f.compiler, sizeof(f.compiler), "other");
  f.compiler_major = 0;
#endif
  f.cuda = SELECTIVBENCH_TORCH_CUDA;
  return f;
}

inline std::string describe_fingerprint(const SbBuildFingerprint& f) {
  return "LibTorch " + std::string(f.torch_version) + ", " + f.compiler + " " +
         std::to_string(f.compiler_major) + ", CXX11 ABI " + std::to_string(f.cxx11_abi) + ", " +
         (f.cuda ? "CUDA" : "CPU-only");
}

}  // namespace sb
