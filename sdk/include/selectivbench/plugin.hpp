// A plugin's descriptor and its C entry point (spec sdk.md §2–§3).
//
// A plugin is a shared library `libsb_<name>.so` that exports one C function,
// `selectivbench_plugin_entry`, defined by SELECTIVBENCH_PLUGIN below. It returns a plain C struct
// with the SDK ABI version, the struct's size and the build fingerprint, which the loader checks
// before any C++ object crosses the library boundary. Only then does it call `describe` to get
// the PluginDescriptor (name, taxonomy, capabilities, options, factory).
//
//   sb::PluginDescriptor describe_my_gate() { ... }
//   SELECTIVBENCH_PLUGIN(my_gate, describe_my_gate)
#pragma once


#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "selectivbench/entry.h"
#include "selectivbench/mixer.hpp"
#include "selectivbench/options.hpp"

namespace sb {

// ---- taxonomy: the paper's axes, used to group results ------------------------------------------
enum class Recurrence { kNone, kLinear, kNonlinear };  // none: attention
enum class Gate { kNone, kFixedDecay, kScalarPerHead, kVectorPerChannel };
enum class Transition { kNotApplicable, kDiagonal, kDiagonalPlusLowRank, kDense };
enum class StateExpansion { kNotApplicable, kVectorPerChannel, kMatrixPerHead };
enum class Memory { kConstant, kGrowsWithLength };

struct Taxonomy {
  Recurrence recurrence = Recurrence::kLinear;
  Gate gate = Gate::kNone;
  Transition transition = Transition::kDiagonal;
  StateExpansion state_expansion = StateExpansion::kMatrixPerHead;
  Memory memory = Memory::kConstant;
  bool short_conv = false;
};

inline const char* to_string(Recurrence v) {
  switch (v) {
    case Recurrence::kNone: return "none (attention)";
    case Recurrence::kLinear: return "linear";
    case Recurrence::kNonlinear: return "nonlinear";
  }
  return "?";
}
inline const char* to_string(Gate v) {
  switch (v) {
    case Gate::kNone: return "none";
    case Gate::kFixedDecay: return "fixed decay";
    case Gate::kScalarPerHead: return "input-dependent scalar per head";
    case Gate::kVectorPerChannel: return "input-dependent vector per channel";
  }
  return "?";
}
inline const char* to_string(Transition v) {
  switch (v) {
    case Transition::kNotApplicable: return "n/a";
    case Transition::kDiagonal: return "diagonal";
    case Transition::kDiagonalPlusLowRank: return "diagonal plus low rank";
    case Transition::kDense: return "dense";
  }
  return "?";
}
inline const char* to_string(StateExpansion v) {
  switch (v) {
    case StateExpansion::kNotApplicable: return "n/a";
    case StateExpansion::kVectorPerChannel: return "vector per channel";
    case StateExpansion::kMatrixPerHead: return "matrix per head";
  }
  return "?";
}
inline const char* to_string(Memory v) {
  return v == Memory::kConstant ? "constant" : "grows with length";
}

struct Capabilities {
  bool recurrent_step = true;   // step() is implemented
  bool cuda = true;             // runs on CUDA
  bool bf16 = true;             // runs in bfloat16
  bool reference_only = false;  // forward is a slow reference path (the loader warns)
};

using MixerFactory = std::function<std::shared_ptr<Mixer>(const MixerContext&)>;

struct PluginDescriptor {
  std::string name;     // lower_snake_case; the library is libsb_<name>.so
  std::string version;  // the plugin's own version, e.g. "1.0.0"
  std::string summary;  // one line
  std::string source;   // the paper or code the architecture comes from
  Taxonomy taxonomy;
  Capabilities capabilities;
  std::vector<OptionSpec> options;  // defaults equal the reference's settings
  // The dtype the reference trains this mixer in on CUDA (bf16 for the delta-rule family).
  torch::ScalarType cuda_dtype = torch::kFloat32;
  MixerFactory factory;
};

}  // namespace sb

namespace sb {

namespace detail {
inline int describe_safely(const std::function<PluginDescriptor()>& describe, void* out,
                           char* error, std::uint64_t error_size) {
  try {
    *static_cast<PluginDescriptor*>(out) = describe();
    return 0;
  } catch (const std::exception& e) {
    std::snprintf(error, error_size, "%s", e.what());
  } catch (...) {
    std::snprintf(error, error_size, "unknown exception");
  }
  return 1;
}
}  // namespace detail

}  // namespace sb

// Defines the plugin's entry point. NAME must equal the descriptor's name and the library name
// libsb_NAME.so; DESCRIBE is a function returning sb::PluginDescriptor.
#define SELECTIVBENCH_PLUGIN(NAME, DESCRIBE)                                                  \
  extern "C" __attribute__((visibility("default"))) const SbPluginEntry*                    \
  selectivbench_plugin_entry() {                                                            \
    static const SbPluginEntry entry = [] {                                                 \
      SbPluginEntry e{};                                                                    \
      e.abi_version = SELECTIVBENCH_SDK_ABI_VERSION;                                        \
      e.struct_size = sizeof(SbPluginEntry);                                                \
      e.fingerprint = sb::this_build_fingerprint();                                         \
      std::snprintf(e.name, sizeof(e.name), "%s", #NAME);                                   \
      e.describe = [](void* out, char* error, std::uint64_t size) {                         \
        return sb::detail::describe_safely(DESCRIBE, out, error, size);                     \
      };                                                                                    \
      return e;                                                                             \
    }();                                                                                    \
    return &entry;                                                                          \
  }
