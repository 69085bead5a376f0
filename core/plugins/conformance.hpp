// The conformance kit (spec sdk.md §5): `selectivbench check-plugin NAME|PATH`. Every plugin, ours
// and third parties', must pass it.
//
// Checks, each on a freshly created mixer with the plugin's default options:
//   shape and dtype      [B, T, D] in, [B, T, D] out of the same dtype, finite, for T = 1, 2, a
//                        prime, and one longer than any usual chunk size and not a multiple of it
//   causality            changing inputs at t ≥ t0 leaves outputs before t0 unchanged
//   step equals forward  the recurrent form reproduces forward (relative error ≤ 1e-4 in float32,
//                        ≤ 5e-2 in bfloat16: one bf16 rounding per op compounds over T steps,
//                        ≤ 1e-9 in float64, where outputs that must not change may move ≤ 1e-12)
//   batch independence   each row depends only on its own inputs, and equals the row run alone
//   gradients            every parameter gets a finite gradient that is not always zero
//   determinism          same seed → same parameters and output; state dict save → load → same output
//   device and dtype     moving to CUDA (when present: float32 and tf32) and to bfloat16 and
//                        bf16-mixed (when declared; autocast, fp32 parameters, finite fp32
//                        gradients) gives the float32 CPU output within tolerance
//   state elements       what state_elements(T) reports equals what the state carries after T steps,
//                        and is constant in T when the plugin declares constant memory
// plus an information line: tokens/s forward and forward + backward.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/plugins/registry.hpp"

namespace sb {

struct ConformanceOptions {
  std::string device = "cpu";    // cpu | cuda | cuda:N
  std::string dtype = "float32";  // float32 | bfloat16 | float64 (the contract suite's precise run)
  std::int64_t d_model = 64;
  std::int64_t n_heads = 4;
  std::int64_t batch = 2;
  std::uint64_t seed = 1;
  bool throughput = true;  // the information line (tokens/s)
  // Plugin options (validated against the plugin's schema); defaults for the rest.
  std::vector<std::pair<std::string, OptionValue>> plugin_options;
};

struct CheckResult {
  std::string name;    // "shape and dtype", "causality", "step equals forward", ...
  std::string status;  // "pass" | "FAIL" | "skip"
  std::string detail;  // numbers, or why it failed / was skipped
};

struct ConformanceReport {
  std::string plugin;
  std::string path;
  std::string mixer;  // the mixer's describe()
  std::string device;
  std::string dtype;
  std::vector<CheckResult> checks;
  double forward_tokens_per_s = 0;
  double train_tokens_per_s = 0;  // forward + backward
  bool passed() const;
};

// Runs every check; never throws for a failing plugin (a throwing plugin is a failed check whose
// detail names the exception). Throws PluginError only when the options themselves are invalid.
ConformanceReport run_conformance(const LoadedPlugin& plugin, const ConformanceOptions& options);

// The report as a table, one line per check, and a verdict.
std::string format_report(const ConformanceReport& report);

}  // namespace sb
