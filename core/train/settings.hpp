// The settings of a run's network block and training, as plain values. The benchmark reader fills
// them directly from [model] and [training]; a run takes a copy and sets its own grid values
// (learning rate, warmup, seed). No LibTorch here: the config library includes it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sb {

enum class NormPlacement { kPost, kPre };
enum class NormKind { kLayerNorm, kRMSNorm };

// One layer of the network around its mixer ([model] of a benchmark file).
struct BlockSpec {
  NormPlacement placement = NormPlacement::kPost;
  NormKind norm = NormKind::kLayerNorm;
  bool mlp = false;                // a SwiGLU MLP block after each mixer
  std::int64_t mlp_expansion = 4;  // hidden width = expansion · D
  double dropout = 0.2;
};

// [training] of a benchmark file; lr, warmup_steps and seed are set per run from the grid.
struct TrainingSpec {
  std::int64_t batch_size = 64;
  std::string optimizer = "adam";  // adam | adamw
  double lr = 1e-3;
  double weight_decay = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  std::string schedule = "cosine";  // cosine (linear warmup, cosine to 0) | constant (after warmup)
  std::int64_t warmup_steps = 476;
  std::int64_t max_updates = 0;        // 0: one pass over the training set
  double clip_norm = 1.0;              // 0: no clipping
  std::int64_t grad_accumulation = 1;  // micro-batches per update; 0: start at 1, double on CUDA OOM
  std::int64_t eval_every = 78;        // updates between evaluations
  std::int64_t eval_batch_size = 50;
  bool reference_quirks = false;  // all of TrainingQuirks below
  std::string device = "cpu";  // cpu | cuda | cuda:N
  std::string dtype = "auto";  // auto | float32 | tf32 | bfloat16 | bf16-mixed (core/train/precision.hpp)
  bool cuda_graphs = true;     // on CUDA: replay each update as a CUDA graph where batch shapes repeat
  std::uint64_t seed = 1;      // parameter init and dropout
  std::int64_t threads = 0;    // CPU threads; 0: the CPUs this process may use
  std::string cache_dir;       // data cache folder; empty: none
};

// The reference's training quirks (models.md §3.3 item 3, §6.4–§6.6), each named once.
// [training] reference_quirks = true turns on all of them, false (the default) none. (The
// transformer's double residual is a model matter: its option `double_residual`.)
struct TrainingQuirks {
  bool eval_mode_sticks = false;           // the network stays in eval mode (no dropout) after the
                                           // first evaluation
  bool summed_micro_batches = false;       // accumulated micro-batch gradients are summed, not
                                           // averaged
  bool learning_rate_lags = false;         // update k uses lr·f(k), so the first one has lr 0
  bool no_final_evaluation = false;        // none after the last multiple of eval_every

  static TrainingQuirks of(const TrainingSpec& spec) {
    const bool on = spec.reference_quirks;
    return {on, on, on, on};
  }
};

// Every value [training] dtype accepts, "auto" first (core/train/precision.hpp says what each
// means). Here, without LibTorch, so that the benchmark-file reader needs none.
inline const std::vector<std::string>& precision_choices() {
  static const std::vector<std::string> choices = {"auto", "float32", "tf32", "bfloat16",
                                                   "bf16-mixed"};
  return choices;
}

}  // namespace sb
