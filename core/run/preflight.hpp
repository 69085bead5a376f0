// Checks a whole sweep before its first run, and before any folder is made: a problem found hours
// into a grid (a misspelt plugin option, a model whose plugin is missing, CUDA absent) costs the
// hours; found here it costs seconds.
#pragma once

#include <string>
#include <vector>

#include "core/config/benchmark.hpp"
#include "core/plugins/registry.hpp"
#include "core/run/plan.hpp"

namespace sb {

// Throws ConfigError (exit 3) naming the file, the key and what is allowed, for the first problem:
//   - a model whose plugin cannot be found or loaded;
//   - a [plugins.X] table of a plugin that no model of the grid uses;
//   - a plugin option the plugin's schema refuses (name, type, range, choice);
//   - a width its head count does not divide, or a mixer that its factory cannot build at a
//     width of the grid (each plugin is built once per width and head count, on the CPU);
//   - a device this build or machine does not have (cuda without CUDA, cuda:N past the last GPU);
//   - an `evaluates` task whose trained runs are neither in the grid nor in the output folder.
void preflight_sweep(const BenchmarkSpec& bench, const std::vector<RunPlan>& plans,
                     const std::vector<SearchFolder>& plugin_folders);

// The device check alone: "" when `device` is usable here, else why not.
std::string device_problem(const std::string& device);
// Its spelling part, wherever the device is: "" for cpu, cuda and cuda:N.
std::string device_spelling_problem(const std::string& device);

}  // namespace sb
