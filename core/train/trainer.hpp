// Training and evaluation (models.md §6, data.md §9–§10).
//
// One run trains a Network on a task's training set for one pass (or max_updates updates) with Adam
// or AdamW, linear warmup then cosine decay, gradient clipping and optional gradient accumulation,
// evaluating on the test set every `eval_every` updates and at the end. Each evaluation appends a
// line to metrics.jsonl and writes the last checkpoint (and the best one when the accuracy
// improved), atomically. A run directory with a last checkpoint and no summary resumes from it and
// continues exactly as if it had not stopped: batches are a function of the update index and
// dropout is seeded per update.
//
// `reference_quirks = true` reproduces the reference's training quirks, named one by one in
// TrainingQuirks (core/train/settings.hpp; models.md §3.3, §6.4–6.6): the model stays in eval mode
// (no dropout) after the first evaluation, accumulated micro-batch gradients are summed rather
// than averaged, update k uses lr·f(k−1) so the first update has lr 0, and there is no evaluation
// after the last multiple of eval_every.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/data/dataset.hpp"
#include "core/model/network.hpp"
#include "core/tensor/metrics.hpp"
#include "core/train/precision.hpp"
#include "core/train/settings.hpp"

namespace sb {


// Learning-rate factor f(s) of update s (0-based): s/W during warmup, then cosine to 0 at S.
double lr_factor(const TrainingSpec& spec, std::int64_t s, std::int64_t total_updates);

struct EvalResult {
  double loss = 0;
  double accuracy = 0;
  double kl = -1;  // next-symbol mode only
  std::int64_t samples = 0;
  double seconds = 0;
};

// Evaluates on the whole split at `epoch`, in batches; eval mode and no_grad inside, the module's
// previous mode is restored. Accuracy counts padded elements as correct under the reference
// protocol (B17).
// The losses and counts are summed on the device and read once, at the end; batches are made
// ahead on a background thread.
EvalResult evaluate(Network& network, const Dataset& data, std::uint64_t epoch,
                    std::int64_t batch_size, const torch::Device& device,
                    const Precision& precision,
                    const std::function<void(std::int64_t, std::int64_t)>& progress = {});

// The network's logits for a batch in `precision` (under autocast for bf16-mixed), as float32.
// [B, T, C]
torch::Tensor forward_logits(Network& network, const Batch& batch, const Precision& precision,
                             const torch::Device& device);

struct RunOutcome {
  // "finished" | "diverged" | "interrupted" (checkpointed on request, resumable) | "abandoned"
  // (stopped without writing anything: another worker owns the run now)
  std::string status;
  std::string message;
  std::int64_t updates = 0;
  EvalResult final_eval;
  double best_accuracy = 0;
  std::int64_t best_update = 0;
  double train_seconds = 0;
  double eval_seconds = 0;
  double tokens_per_second = 0;  // training steps (time steps, not samples) per second
  double seconds_to_first_update = -1;  // from the call to the end of its first update; -1: none
  std::int64_t grad_accumulation = 1;
  std::int64_t cuda_graphs = 0;  // update graphs captured in this call (0: updates ran eagerly)
  bool resumed = false;
  std::int64_t resumed_from = 0;
};

// Asked after every update: go on, or stop.
enum class StopRequest {
  kNone,
  kCheckpoint,  // write the last checkpoint at this update, then return "interrupted"
  kAbandon,     // return "abandoned" at once and write nothing
};

struct TrainCallbacks {
  std::function<void(std::int64_t update, std::int64_t total)> progress;
  std::function<void(const std::string&)> log;
  // After each evaluation: the metrics line as written to metrics.jsonl.
  std::function<void(std::int64_t update, std::int64_t total, const nlohmann::json& metrics)>
      evaluated;
  std::function<StopRequest()> should_stop;
};

// The device and precision a run uses: "auto" is the first layer plugin's CUDA dtype on CUDA,
// float32 on the CPU (core/train/precision.hpp).
torch::Device parse_device(const std::string& device);
Precision resolve_precision(const TrainingSpec& spec, const NetworkSpec& network,
                            const torch::Device& device);

// Trains `network` in `run_dir` (checkpoints/, metrics.jsonl), resuming from run_dir's last
// checkpoint when there is one.
RunOutcome train(Network& network, const Dataset& train_set, const Dataset& test_set,
                 const TrainingSpec& spec, const std::string& run_dir,
                 const TrainCallbacks& callbacks = {});

// Loads a checkpoint's model parameters into `network` (for evaluation of finished runs).
void load_model_checkpoint(Network& network, const std::string& path);

}  // namespace sb
