// What a run folder records about its run (config.json): the task with every effective value, the
// network and the training settings, and back again to rebuild the network for evaluation.
#pragma once

#include <torch/torch.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config/task.hpp"
#include "core/data/dataset.hpp"
#include "core/model/network.hpp"
#include "core/plugins/registry.hpp"
#include "core/train/settings.hpp"

namespace sb {

// The network of a run as config.json stores it; enough to rebuild it for evaluation.
struct ModelConfig {
  std::string name;
  std::vector<std::string> layer_plugins;
  std::int64_t width = 0;
  std::int64_t heads = 0;
  BlockSpec block;
  std::map<std::string, Options> options;  // per plugin name
  std::uint64_t seed = 1;
};

nlohmann::json task_json(const TaskSpec& task);
nlohmann::json model_json(const ModelConfig& model);
ModelConfig model_from_json(const nlohmann::json& j);
nlohmann::json training_json(const TrainingSpec& training);
std::string dtype_name(torch::ScalarType dtype);

// The network's spec for `model` on `data`'s grammar, its plugins resolved on `folders`; the
// plugins used (name, version, file, fingerprint) go to `plugins_out`.
NetworkSpec network_spec(const ModelConfig& model, const Dataset& data,
                         const std::vector<SearchFolder>& folders,
                         const LogFn& log, nlohmann::json* plugins_out);

}  // namespace sb
