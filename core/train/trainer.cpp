#include "core/train/trainer.hpp"

#include <boost/crc.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <deque>
#include <nlohmann/json.hpp>
#include <numbers>
#include <sstream>

#include "core/tensor/batch.hpp"
#include "core/train/batch_queue.hpp"
#include "core/train/cuda_graph.hpp"
#include "core/train/device_adam.hpp"
#include "core/util/atomic_file.hpp"
#include "core/util/random.hpp"
#include "selectivbench/torch_compat.hpp"

namespace sb {

namespace fs = std::filesystem;

double lr_factor(const TrainingSpec& spec, std::int64_t s, std::int64_t total) {
  const auto W = static_cast<double>(spec.warmup_steps);
  if (static_cast<double>(s) < W) return static_cast<double>(s) / W;
  if (spec.schedule == "constant") return 1.0;
  const double span = std::max(1.0, static_cast<double>(total) - W);
  const double progress = std::min(1.0, (static_cast<double>(s) - W) / span);
  return 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

torch::Device parse_device(const std::string& device) {
  try {
    torch::Device d(device);
    if (d.is_cuda() && !torch::cuda::is_available()) {
      throw std::runtime_error("device '" + device + "': CUDA is not available in this build or machine");
    }
    return d;
  } catch (const c10::Error& e) {
    throw std::runtime_error("device '" + device + "': not a device (allowed: cpu, cuda, cuda:N)");
  }
}

Precision resolve_precision(const TrainingSpec& spec, const NetworkSpec& network,
                            const torch::Device& device) {
  const auto plugin_dtype =
      network.layers.empty() ? torch::kFloat32 : network.layers[0].plugin->descriptor.cuda_dtype;
  return resolve_precision(spec.dtype, plugin_dtype, device);
}

torch::Tensor forward_logits(Network& network, const Batch& batch, const Precision& precision,
                             const torch::Device& device) {
  const AutocastScope autocast(precision, device);
  return network->forward(batch.inputs.to(precision.parameter_dtype()))
      .to(torch::kFloat32);  // [B, T, C]
}

EvalResult evaluate(Network& network, const Dataset& data, std::uint64_t epoch,
                    std::int64_t batch_size, const torch::Device& device,
                    const Precision& precision,
                    const std::function<void(std::int64_t, std::int64_t)>& progress) {
  if (batch_size < 1) {
    throw std::invalid_argument("evaluation batch size is " + std::to_string(batch_size) +
                                "; it must be at least 1");
  }
  const auto t0 = std::chrono::steady_clock::now();
  const bool was_training = network->is_training();
  network->eval();
  torch::NoGradGuard no_grad;
  const bool count_padded = data.spec().protocol == Protocol::kReference;
  const bool next_symbol = data.spec().labels == LabelMode::kNextSymbol;
  const std::int64_t n = data.size();
  const std::int64_t batches = (n + batch_size - 1) / batch_size;
  // Sums on the device, read once at the end: the host runs ahead building batches.
  const auto f64 = torch::TensorOptions().device(device).dtype(torch::kFloat64);
  torch::Tensor loss_sum = torch::zeros({}, f64), kl_sum = torch::zeros({}, f64);
  torch::Tensor counts = torch::zeros({2}, f64);  // (correct, total)
  BatchQueue queue(
      [&](std::int64_t i) {
        std::vector<std::int64_t> idx;
        for (std::int64_t j = i * batch_size; j < std::min(n, (i + 1) * batch_size); ++j) {
          idx.push_back(j);
        }
        return std::vector<Batch>{make_batch(data, idx, epoch)};
      },
      0, batches, device);
  for (std::int64_t i = 0; i < batches; ++i) {
    const Batch batch = queue.take(i).front();
    const torch::Tensor logits = forward_logits(network, batch, precision, device);
    const auto B = static_cast<double>(batch.labels.size(0));
    loss_sum += masked_cross_entropy(logits, batch).to(torch::kFloat64) * B;
    if (next_symbol) kl_sum += masked_kl_divergence(logits, batch).to(torch::kFloat64) * B;
    counts += element_accuracy_counts(logits, batch, count_padded);
    if (progress) progress(std::min(n, (i + 1) * batch_size), n);
  }
  const torch::Tensor host = torch::stack({loss_sum, kl_sum, counts[0], counts[1]}).cpu();
  const auto* v = host.data_ptr<double>();
  EvalResult r;
  r.samples = n;
  r.loss = n ? v[0] / static_cast<double>(n) : 0.0;
  r.kl = next_symbol && n ? v[1] / static_cast<double>(n) : -1.0;
  r.accuracy = AccuracyCounts{v[2], v[3]}.value();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (was_training) network->train();
  return r;
}

namespace {

struct CheckpointMeta {
  std::int64_t update = 0;
  std::int64_t evaluations = 0;
  double best_accuracy = -1;
  std::int64_t best_update = 0;
  std::int64_t grad_accumulation = 1;
  double train_seconds = 0;
  double eval_seconds = 0;
  std::int64_t tokens = 0;
  std::string metrics;  // metrics.jsonl up to `update`: a resume rewrites the file from it
  bool eval_mode = false;  // reference quirk: stuck in eval mode
};

torch::Tensor scalar(double v) { return torch::tensor(v, torch::kFloat64); }

// A checkpoint is LibTorch's archive followed by a trailer: 8 bytes "SBCKPT01", the archive's size
// (8 bytes, little-endian) and its CRC-32 (4 bytes). A flipped byte anywhere is refused by name
// instead of resuming from, or evaluating, damaged weights.
constexpr char kCheckpointMagic[8] = {'S', 'B', 'C', 'K', 'P', 'T', '0', '1'};
constexpr std::size_t kTrailerBytes = 8 + 8 + 4;

std::string checkpoint_trailer(const std::string& archive) {
  boost::crc_32_type crc;
  crc.process_bytes(archive.data(), archive.size());
  std::string t(kCheckpointMagic, 8);
  const std::uint64_t size = archive.size();
  for (int i = 0; i < 8; ++i) t += static_cast<char>((size >> (8 * i)) & 0xff);
  const std::uint32_t sum = crc.checksum();
  for (int i = 0; i < 4; ++i) t += static_cast<char>((sum >> (8 * i)) & 0xff);
  return t;
}

// The archive part of a checkpoint file, its trailer checked.
std::string read_checked_checkpoint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open checkpoint");
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto damaged = [&](const std::string& why) {
    return std::runtime_error(path + ": damaged checkpoint (" + why +
                              "); restore it, or delete the run folder to start the run again");
  };
  if (data.size() < kTrailerBytes) throw damaged("too short for a checkpoint");
  const std::size_t end = data.size() - kTrailerBytes;
  if (data.compare(end, 8, kCheckpointMagic, 8) != 0) {
    throw damaged("no checksum trailer: cut short, or not written by this selectivbench");
  }
  std::uint64_t size = 0;
  std::uint32_t stored = 0;
  for (int i = 0; i < 8; ++i) size |= std::uint64_t{static_cast<unsigned char>(data[end + 8 + i])} << (8 * i);
  for (int i = 0; i < 4; ++i) stored |= std::uint32_t{static_cast<unsigned char>(data[end + 16 + i])} << (8 * i);
  if (size != end) throw damaged("size mismatch");
  data.resize(end);
  boost::crc_32_type crc;
  crc.process_bytes(data.data(), data.size());
  if (crc.checksum() != stored) throw damaged("checksum mismatch");
  return data;
}

void save_checkpoint(const std::string& path, Network& network, torch::optim::Optimizer* optimizer,
                     const CheckpointMeta& m) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model;
  network->save(model);
  archive.write("model", model);
  if (optimizer != nullptr) {
    torch::serialize::OutputArchive opt;
    optimizer->save(opt);
    archive.write("optimizer", opt);
  }
  archive.write("update", scalar(static_cast<double>(m.update)));
  archive.write("evaluations", scalar(static_cast<double>(m.evaluations)));
  archive.write("best_accuracy", scalar(m.best_accuracy));
  archive.write("best_update", scalar(static_cast<double>(m.best_update)));
  archive.write("grad_accumulation", scalar(static_cast<double>(m.grad_accumulation)));
  archive.write("train_seconds", scalar(m.train_seconds));
  archive.write("eval_seconds", scalar(m.eval_seconds));
  archive.write("tokens", scalar(static_cast<double>(m.tokens)));
  archive.write("eval_mode", scalar(m.eval_mode ? 1.0 : 0.0));
  // [bytes] the metrics lines as text
  archive.write("metrics", torch::from_blob(const_cast<char*>(m.metrics.data()),
                                            {static_cast<std::int64_t>(m.metrics.size())}, torch::kUInt8)
                               .clone());
  std::ostringstream bytes;
  archive.save_to(bytes);
  std::string data = bytes.str();
  data += checkpoint_trailer(data);
  write_file_atomically(path, [&](std::ostream& out) { out.write(data.data(), static_cast<std::streamsize>(data.size())); });
}

double read_scalar(torch::serialize::InputArchive& a, const char* key) {
  torch::Tensor t;
  a.read(key, t);
  return t.item<double>();
}

CheckpointMeta load_checkpoint(const std::string& path, Network& network,
                               torch::optim::Optimizer* optimizer) {
  torch::serialize::InputArchive archive;
  std::istringstream bytes(read_checked_checkpoint(path));
  archive.load_from(bytes);
  torch::serialize::InputArchive model;
  archive.read("model", model);
  network->load(model);
  if (optimizer != nullptr) {
    torch::serialize::InputArchive opt;
    archive.read("optimizer", opt);
    optimizer->load(opt);
  }
  CheckpointMeta m;
  m.update = static_cast<std::int64_t>(read_scalar(archive, "update"));
  m.evaluations = static_cast<std::int64_t>(read_scalar(archive, "evaluations"));
  m.best_accuracy = read_scalar(archive, "best_accuracy");
  m.best_update = static_cast<std::int64_t>(read_scalar(archive, "best_update"));
  m.grad_accumulation = static_cast<std::int64_t>(read_scalar(archive, "grad_accumulation"));
  m.train_seconds = read_scalar(archive, "train_seconds");
  m.eval_seconds = read_scalar(archive, "eval_seconds");
  m.tokens = static_cast<std::int64_t>(read_scalar(archive, "tokens"));
  m.eval_mode = read_scalar(archive, "eval_mode") > 0.5;
  torch::Tensor metrics;  // [bytes]
  archive.read("metrics", metrics);
  metrics = metrics.contiguous();
  m.metrics.assign(static_cast<const char*>(metrics.data_ptr()), static_cast<std::size_t>(metrics.numel()));
  return m;
}

// Rewrites metrics.jsonl from the checkpoint's copy (every line up to its update; lines written
// after it are done again by the resumed run). Returns a note when the file on disk had lost or
// damaged lines of that history (a cut or edited file), "" when it only held later lines.
std::string restore_metrics(const std::string& path, const std::string& history, std::int64_t update) {
  std::string kept, line;
  {
    std::ifstream in(path);
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      try {
        if (nlohmann::json::parse(line).value("update", std::int64_t{0}) <= update) kept += line + "\n";
      } catch (const std::exception&) {
        // A torn line: compared below.
      }
    }
  }
  write_file_atomically(path, [&](std::ostream& out) { out << history; });
  if (kept == history) return "";
  const auto lines = [](const std::string& s) { return std::count(s.begin(), s.end(), '\n'); };
  return path + " held " + std::to_string(lines(kept)) + " intact line(s) of the " +
         std::to_string(lines(history)) + " up to update " + std::to_string(update) +
         "; rewritten from the checkpoint";
}

void append_line(const std::string& path, const std::string& line) {
  std::ofstream out(path, std::ios::app);
  out << line << "\n";
  out.flush();
  if (!out) throw std::runtime_error("cannot append to " + path);
}

bool is_out_of_memory(const std::exception& e) {
  const std::string what = e.what();
  return what.find("out of memory") != std::string::npos ||
         what.find("CUBLAS_STATUS_ALLOC_FAILED") != std::string::npos;
}

std::vector<std::vector<std::int64_t>> split_indices(std::int64_t first, std::int64_t count,
                                                     std::int64_t parts, std::int64_t size) {
  std::vector<std::vector<std::int64_t>> out;
  for (std::int64_t p = 0; p < parts; ++p) {
    const std::int64_t b = first + count * p / parts;
    const std::int64_t e = first + count * (p + 1) / parts;
    std::vector<std::int64_t> idx;
    for (std::int64_t i = b; i < e; ++i) idx.push_back(i % size);
    if (!idx.empty()) out.push_back(std::move(idx));
  }
  return out;
}

}  // namespace

void load_model_checkpoint(Network& network, const std::string& path) {
  load_checkpoint(path, network, nullptr);
}

namespace {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(Network& network, const TrainingSpec& spec) {
  if (spec.optimizer == "adamw") {
    return std::make_unique<torch::optim::AdamW>(
        network->parameters(), torch::optim::AdamWOptions(spec.lr)
                                   .betas({spec.beta1, spec.beta2})
                                   .eps(spec.eps)
                                   .weight_decay(spec.weight_decay));
  }
  return std::make_unique<torch::optim::Adam>(
      network->parameters(), torch::optim::AdamOptions(spec.lr)
                                 .betas({spec.beta1, spec.beta2})
                                 .eps(spec.eps)
                                 .weight_decay(spec.weight_decay));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, const TrainingSpec& spec, double lr) {
  for (auto& group : optimizer.param_groups()) {
    if (spec.optimizer == "adamw") {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    } else {
      static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
    }
  }
}

// Updates between two reads of the divergence flag: a diverged run wastes at most this many
// updates, and the host waits for the device once per this many.
constexpr std::int64_t kDivergenceCheckEvery = 16;

// Scales the gradients so that their global 2-norm is at most max_norm, as
// torch::nn::utils::clip_grad_norm_ does, without reading the norm back: that function returns it
// as a double, a host sync every update.
void clip_gradients(const std::vector<torch::Tensor>& parameters, double max_norm) {
  std::vector<torch::Tensor> grads, norms;
  for (const auto& p : parameters) {
    if (!p.grad().defined()) continue;
    grads.push_back(p.grad());
    norms.push_back(p.grad().norm(2).to(torch::kFloat32));
  }
  if (grads.empty()) return;
  const torch::Tensor total = torch::stack(norms).norm(2);
  const torch::Tensor scale = (max_norm / (total + 1e-6)).clamp_max(1.0);
  for (auto& g : grads) g.mul_(scale.to(g.scalar_type()));
}

// Zeroes the gradients where they are (a captured graph keeps writing into these tensors; the
// optimiser's zero_grad may drop them instead).
void zero_gradients_in_place(const std::vector<torch::Tensor>& parameters) {
  for (const auto& p : parameters) {
    if (p.grad().defined()) p.mutable_grad().zero_();
  }
}

// The length a batch axis of length n is padded to for a CUDA graph: the next multiple of the
// largest power of two ≤ n/16 (at least 8), so padding costs at most 1/16 of the work and a task
// whose lengths vary by a few percent (tasks 2-4) needs a handful of graphs. Task 1's T = 400 is
// a multiple of its quantum 16: it is not padded.
std::int64_t bucket_length(std::int64_t n) {
  std::int64_t quantum = 8;
  while (quantum * 2 * 16 <= n) quantum *= 2;
  return (n + quantum - 1) / quantum * quantum;
}

// What a captured update's shapes are: per micro-batch, its rows, steps and elements. Every other
// host value the captured work reads (vocabulary, classes, which tensors exist) is fixed per run.
struct PartShape {
  std::int64_t rows = 0, steps = 0, elements = 0;
  bool operator==(const PartShape&) const = default;
};
using UpdateShape = std::vector<PartShape>;

UpdateShape shape_of(const std::vector<Batch>& parts) {
  UpdateShape shape;
  for (const Batch& b : parts) {
    shape.push_back({b.mask.size(0), b.mask.size(1), b.element_mask.size(1)});
  }
  return shape;
}

UpdateShape bucketed(UpdateShape shape) {
  for (PartShape& p : shape) {
    p.steps = bucket_length(p.steps);
    p.elements = bucket_length(p.elements);
  }
  return shape;
}

// Eager updates of a batch shape before its capture: the first allocates the gradients and
// initialises libraries lazily, outside the graph's memory.
constexpr int kWarmupsBeforeCapture = 2;
// Graphs kept per run (each holds its batch buffers; intermediates are shared): enough for the
// few bucket lengths of a task, not one per odd batch shape.
constexpr std::size_t kMaxGraphs = 6;

// One CUDA graph of a run's update and the batch buffers it reads.
struct GraphSlot {
  std::unique_ptr<CudaGraph> graph;
  bool training = true;       // the network's mode it was recorded in
  UpdateShape shape;          // its micro-batches' padded shapes
  int warmups = 0;
  bool captured = false;
  std::vector<Batch> inputs;  // the captured update reads its (padded) batch here
};

// One training run in a run folder: the steps of train() below, with the state they share.
class TrainLoop {
 public:
  TrainLoop(Network& network, const Dataset& train_set, const Dataset& test_set,
            const TrainingSpec& spec, const std::string& run_dir, const TrainCallbacks& cb)
      : network_(network),
        train_set_(train_set),
        test_set_(test_set),
        spec_(spec),
        quirks_(TrainingQuirks::of(spec)),
        cb_(cb),
        device_(parse_device(spec.device)),
        precision_(resolve_precision(spec, network->spec(), device_)),
        last_path_((fs::path(run_dir) / "checkpoints" / "last.pt").string()),
        best_path_((fs::path(run_dir) / "checkpoints" / "best.pt").string()),
        metrics_path_((fs::path(run_dir) / "metrics.jsonl").string()),
        call_start_(std::chrono::steady_clock::now()) {
    fs::create_directories(fs::path(run_dir) / "checkpoints");
  }

  // The host never waits for the device inside this loop except where it must read a value:
  // the divergence flag every kDivergenceCheckEvery updates, evaluations and checkpoints.
  RunOutcome run() {
    const MatmulPrecisionScope matmul_precision(precision_, device_);
    network_->to(device_, precision_.parameter_dtype());
    plan_updates();
    optimizer_ = make_optimizer(network_, spec_);
    resume_or_start();
    start_graphs();
    start_batches(meta_.update);
    for (std::int64_t k = meta_.update; k < total_; ++k) {
      update(k);
      if (cb_.progress) cb_.progress(k + 1, total_);
      const bool evaluate_now = due_for_evaluation(k);
      const StopRequest stop = cb_.should_stop ? cb_.should_stop() : StopRequest::kNone;
      const bool last = k + 1 == total_;
      if ((evaluate_now || stop == StopRequest::kCheckpoint || last ||
           (k + 1) % kDivergenceCheckEvery == 0) &&
          diverged_before(k + 1)) {
        return diverged();
      }
      if (evaluate_now) evaluate_and_checkpoint(k);
      switch (stop) {
        case StopRequest::kNone: break;
        case StopRequest::kCheckpoint: return interrupted(k);
        case StopRequest::kAbandon: return stopped("abandoned", k);
      }
    }
    return finished();
  }

 private:
  void log(const std::string& m) const {
    if (cb_.log) cb_.log(m);
  }

  void plan_updates() {
    const std::int64_t B = spec_.batch_size;
    if (train_set_.size() < B) {
      throw std::runtime_error("the training set has " + std::to_string(train_set_.size()) +
                               " samples, fewer than one batch of " + std::to_string(B));
    }
    per_pass_ = train_set_.size() / B;
    total_ = spec_.max_updates > 0 ? spec_.max_updates : per_pass_;
  }

  // From the last checkpoint when there is one (metrics lines after it are dropped: the resumed
  // run writes them again), else from scratch.
  void resume_or_start() {
    meta_.grad_accumulation = spec_.grad_accumulation > 0 ? spec_.grad_accumulation : 1;
    if (fs::exists(last_path_)) {
      meta_ = load_checkpoint(last_path_, network_, optimizer_.get());
      network_->to(device_, precision_.parameter_dtype());
      if (const std::string note = restore_metrics(metrics_path_, meta_.metrics, meta_.update);
          !note.empty()) {
        log(note);
      }
      out_.resumed = true;
      out_.resumed_from = meta_.update;
      log("resuming from " + last_path_ + " at update " + std::to_string(meta_.update));
    } else if (fs::exists(metrics_path_)) {
      fs::remove(metrics_path_);
    }
    network_->train();
    if (meta_.eval_mode) network_->eval();
    train_seconds_ = meta_.train_seconds;
    tokens_ = meta_.tokens;
    const auto f64 = torch::TensorOptions().device(device_).dtype(torch::kFloat64);
    window_loss_ = torch::zeros({}, f64);
    window_acc_ = torch::zeros({}, f64);
    first_nonfinite_ = torch::full({}, -1, f64.dtype(torch::kInt64));
    update_index_ = torch::zeros({}, f64.dtype(torch::kInt64));
    nonfinite_loss_ = torch::zeros({}, f64);
    interval_start_ = std::chrono::steady_clock::now();
  }

  // CUDA graphs where the build and the device allow them and the run wants them. The optimiser
  // steps through DeviceAdam then, on the torch::optim optimiser's own state.
  void start_graphs() {
    if (!(spec_.cuda_graphs && device_.is_cuda() && cuda_graphs_available())) return;
    device_adam_ = std::make_unique<DeviceAdam>(*optimizer_, network_->parameters(), spec_);
    device_index_ = device_.has_index() ? device_.index() : 0;
  }

  // The micro-batches of updates first … total_ − 1, made ahead on a background thread.
  void start_batches(std::int64_t first) {
    batches_.reset();  // its thread stops before a new one starts
    const std::int64_t parts = meta_.grad_accumulation;
    batches_ = std::make_unique<BatchQueue>(
        [this, parts](std::int64_t k) { return micro_batches(k, parts); }, first, total_,
        device_);
  }

  // Update k's batch of B samples, split into `parts` micro-batches.
  std::vector<Batch> micro_batches(std::int64_t k, std::int64_t parts) const {
    const std::int64_t B = spec_.batch_size;
    const std::int64_t first = k * B;
    const auto epoch = static_cast<std::uint64_t>(first / (per_pass_ * B));
    std::vector<Batch> out;
    for (const auto& idx : split_indices(first % (per_pass_ * B), B, parts, train_set_.size())) {
      out.push_back(make_batch(train_set_, idx, epoch));
    }
    return out;
  }

  // Update k (0-based): forward and backward over its micro-batches, clipping, the optimiser
  // step. On CUDA with grad_accumulation = 0, an out-of-memory error doubles the micro-batches and
  // retries the update. A non-finite loss is recorded on the device (diverged_before reads it).
  void update(std::int64_t k) {
    // Dropout draws are a function of (seed, update): a resumed run continues identically.
    torch::manual_seed(mix64(spec_.seed * kGolden + static_cast<std::uint64_t>(k)));
    lr_factor_ = quirks_.learning_rate_lags ? lr_factor(spec_, k, total_)
                                            : lr_factor(spec_, k + 1, total_);
    set_learning_rate(*optimizer_, spec_, spec_.lr * lr_factor_);
    if (device_adam_) device_adam_->set_learning_rate(spec_.lr * lr_factor_);
    update_index_.fill_(k);
    std::vector<Batch> parts = batches_->take(k);
    while (true) {
      try {
        if (device_adam_) {
          graph_update(k, parts);
        } else {
          eager_update(parts);
        }
        break;
      } catch (const std::exception& e) {
        if (!may_retry_smaller(e)) throw;
        zero_gradients_in_place(network_->parameters());
        compat::empty_device_cache();
        meta_.grad_accumulation *= 2;
        log("out of memory: gradient accumulation raised to " +
            std::to_string(meta_.grad_accumulation) + " micro-batches of " +
            std::to_string(spec_.batch_size / meta_.grad_accumulation));
        parts.clear();
        start_batches(k);
        parts = batches_->take(k);
      }
    }
    count_update(parts);
    if (out_.seconds_to_first_update < 0) {
      if (device_.is_cuda()) torch::cuda::synchronize();  // the update is done, not just queued
      out_.seconds_to_first_update =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - call_start_).count();
    }
  }

  bool may_retry_smaller(const std::exception& e) const {
    return spec_.grad_accumulation == 0 && device_.is_cuda() && is_out_of_memory(e) &&
           spec_.batch_size / (meta_.grad_accumulation * 2) >= 1;
  }

  // The update as LibTorch calls, each launched from the host.
  void eager_update(const std::vector<Batch>& parts) {
    optimizer_->zero_grad();
    forward_backward(parts);
    if (spec_.clip_norm > 0) clip_gradients(network_->parameters(), spec_.clip_norm);
    optimizer_->step();
  }

  // The update as a CUDA graph: a few eager warm-ups per padded batch shape on the capture
  // stream, then one capture, then replays with the batch copied (and padded) into the graph's
  // input tensors; batches of varying length share the graphs of a few bucket lengths. Everything
  // the update changes (parameters, gradients, moments, the window sums and the divergence flag)
  // lives outside the graph and is changed in place; the update index and the learning rate are
  // device tensors refilled before each update.
  void graph_update(std::int64_t k, const std::vector<Batch>& parts) {
    const auto device_work = [this](const std::vector<Batch>& batches) {
      zero_gradients_in_place(network_->parameters());
      forward_backward(batches);
      if (spec_.clip_norm > 0) clip_gradients(network_->parameters(), spec_.clip_norm);
      device_adam_->step();
    };
    const UpdateShape shape = bucketed(shape_of(parts));
    GraphSlot* slot = graph_for(shape);
    if (slot == nullptr) {
      // Too many shapes: this one runs eagerly, on the same optimiser, but padded all the same,
      // so that which batches a graph serves never depends on the order shapes were seen in (a
      // resumed run draws the same dropout masks as an uninterrupted one).
      std::vector<Batch> padded;
      for (std::size_t i = 0; i < parts.size(); ++i) {
        padded.push_back(pad_batch(parts[i], shape[i].steps, shape[i].elements));
      }
      device_work(padded);
      return;
    }
    if (slot->inputs.empty()) {  // the graph's own input buffers, at its padded shapes
      for (std::size_t i = 0; i < parts.size(); ++i) {
        slot->inputs.push_back(pad_batch(parts[i], slot->shape[i].steps, slot->shape[i].elements));
      }
    } else {
      for (std::size_t i = 0; i < parts.size(); ++i) copy_padded(slot->inputs[i], parts[i]);
    }
    if (slot->warmups < kWarmupsBeforeCapture) {
      slot->graph->run_on_capture_stream([&] { device_work(slot->inputs); });
      ++slot->warmups;
      return;
    }
    if (!slot->captured) {
      compat::empty_device_cache();  // the warm-ups' cached blocks, for the graph's own pool
      try {
        slot->graph->capture([&] { device_work(slot->inputs); }, first_graph_);
      } catch (const std::exception& e) {
        throw std::runtime_error(
            "update " + std::to_string(k + 1) + ": capturing the update as a CUDA graph failed (" +
            e.what() + "). A layer that reads device values on the host or changes shapes "
            "between calls cannot be captured; set [training] cuda_graphs = false");
      }
      slot->captured = true;
      if (first_graph_ == nullptr) first_graph_ = slot->graph.get();
      ++out_.cuda_graphs;
    }
    slot->graph->replay();
  }

  // The graph of the padded update shape `shape` in the network's present mode (dropout is
  // recorded in a graph; the reference quirk leaves the network in eval mode after the first
  // evaluation), made if there is room; nullptr when there is none.
  GraphSlot* graph_for(const UpdateShape& shape) {
    const bool training = network_->is_training();
    for (GraphSlot& slot : graphs_) {
      if (slot.training == training && slot.shape == shape) return &slot;
    }
    if (graphs_.size() >= kMaxGraphs) return nullptr;
    GraphSlot& slot = graphs_.emplace_back();
    slot.graph = std::make_unique<CudaGraph>(device_index_);
    slot.training = training;
    slot.shape = shape;
    return &slot;
  }

  // Forward and backward over the micro-batches; the loss and accuracy of the last one go to the
  // window sums. Device work only, in place: also the body of a captured update.
  void forward_backward(const std::vector<Batch>& parts) {
    const bool count_padded = train_set_.spec().protocol == Protocol::kReference;
    for (std::size_t p = 0; p < parts.size(); ++p) {
      const Batch& batch = parts[p];
      const torch::Tensor logits = forward_logits(network_, batch, precision_, device_);
      const torch::Tensor loss = masked_cross_entropy(logits, batch);
      note_if_nonfinite(loss.detach());
      // The reference sums micro-batch gradients; the sane way averages them.
      const torch::Tensor scaled =
          quirks_.summed_micro_batches ? loss : loss / static_cast<double>(parts.size());
      scaled.backward();
      if (p + 1 == parts.size()) {
        window_loss_ += loss.detach().to(torch::kFloat64);
        const torch::Tensor counts = element_accuracy_counts(logits.detach(), batch, count_padded);
        window_acc_ += counts[0] / counts[1].clamp_min(1.0);
      }
    }
  }

  // The host's share of an update's bookkeeping (a replayed graph does no host work).
  void count_update(const std::vector<Batch>& parts) {
    for (const Batch& b : parts) tokens_ += b.steps_total;
    ++window_updates_;
  }

  // Records, on the device, the first update whose loss is not finite and that loss.
  void note_if_nonfinite(const torch::Tensor& loss) {
    const torch::Tensor first = torch::isfinite(loss).logical_not().logical_and(first_nonfinite_ < 0);
    first_nonfinite_.copy_(torch::where(first, update_index_, first_nonfinite_));
    nonfinite_loss_.copy_(torch::where(first, loss.to(torch::kFloat64), nonfinite_loss_));
  }

  // Reads the divergence flag (a host sync). True when an update before `end` had a non-finite
  // loss: the run stops there, and nothing computed after it is written.
  bool diverged_before(std::int64_t end) {
    const torch::Tensor host = torch::stack({first_nonfinite_.to(torch::kFloat64), nonfinite_loss_}).cpu();
    const double at = host[0].item<double>();
    if (at < 0 || at >= static_cast<double>(end)) return false;
    diverged_at_ = static_cast<std::int64_t>(at);
    diverged_loss_ = host[1].item<double>();
    return true;
  }

  bool due_for_evaluation(std::int64_t k) const {
    const bool periodic = (k + 1) % spec_.eval_every == 0;
    const bool final = k + 1 == total_ && !quirks_.no_final_evaluation;
    return periodic || final;
  }

  // Evaluates on the test set, appends the metrics line, then writes the best checkpoint (when the
  // accuracy improved) and the last one. The metrics line comes first: a run killed between the two
  // resumes from the previous checkpoint, drops the line and writes it again, never twice.
  void evaluate_and_checkpoint(std::int64_t k) {
    close_interval();
    const EvalResult ev = evaluate(network_, test_set_, static_cast<std::uint64_t>(meta_.evaluations),
                                   spec_.eval_batch_size, device_, precision_);
    meta_.evaluations += 1;
    meta_.eval_seconds += ev.seconds;
    if (quirks_.eval_mode_sticks) {
      network_->eval();  // quirk: never put back into training mode (models.md §3.3, item 3)
      meta_.eval_mode = true;
    }
    const torch::Tensor window = torch::stack({window_loss_, window_acc_}).cpu();
    const double n = window_updates_ ? static_cast<double>(window_updates_) : 1.0;
    nlohmann::json line = {
        {"update", k + 1},
        {"lr", spec_.lr * lr_factor_},
        {"train_loss", window[0].item<double>() / n},
        {"train_acc", window[1].item<double>() / n},
        {"test_loss", ev.loss},
        {"test_acc", ev.accuracy},
        {"train_seconds", train_seconds_},
        {"tokens_per_s", train_seconds_ > 0 ? static_cast<double>(tokens_) / train_seconds_ : 0.0},
    };
    if (ev.kl >= 0) line["test_kl"] = ev.kl;
    const std::string text = line.dump();
    append_line(metrics_path_, text);
    meta_.metrics += text + "\n";
    window_loss_.zero_();
    window_acc_.zero_();
    window_updates_ = 0;
    out_.final_eval = ev;
    if (ev.accuracy > meta_.best_accuracy) {
      meta_.best_accuracy = ev.accuracy;
      meta_.best_update = k + 1;
      save_checkpoint(best_path_, network_, nullptr, checkpoint_meta(k));
    }
    save_checkpoint(last_path_, network_, optimizer_.get(), checkpoint_meta(k));
    std::ostringstream m;
    m.precision(4);
    m << "update " << k + 1 << "/" << total_ << ": test_acc " << ev.accuracy << ", test_loss "
      << ev.loss << ", train_loss " << line["train_loss"].get<double>();
    log(m.str());
    if (cb_.evaluated) cb_.evaluated(k + 1, total_, line);
    interval_start_ = std::chrono::steady_clock::now();
  }

  // Adds the training time since the last evaluation (or start) to the run's total.
  void close_interval() {
    train_seconds_ +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - interval_start_).count();
    interval_start_ = std::chrono::steady_clock::now();
  }

  CheckpointMeta checkpoint_meta(std::int64_t k) {
    if (device_adam_) device_adam_->sync_step_count(k + 1);  // one optimiser step per update
    meta_.update = k + 1;
    meta_.train_seconds = train_seconds_;
    meta_.tokens = tokens_;
    return meta_;
  }

  RunOutcome diverged() {
    out_.status = "diverged";
    out_.message = "loss is " + std::to_string(diverged_loss_) + " at update " +
                   std::to_string(diverged_at_ + 1) + "; the last checkpoint (update " +
                   std::to_string(meta_.update) + ") is kept";
    log(out_.message);
    // Diverged before this call evaluated (e.g. right after a resume): report the last logged
    // evaluation, as an uninterrupted run does, never an empty 0.0 accuracy and 0.0 loss.
    if (out_.final_eval.samples == 0) report_last_logged_evaluation();
    return stopped("diverged", diverged_at_);
  }

  // Stopped on request after update k: the last checkpoint is written at k + 1 (unless an
  // evaluation just wrote it), so that the run resumes exactly there.
  RunOutcome interrupted(std::int64_t k) {
    if (meta_.update != k + 1) {
      close_interval();
      save_checkpoint(last_path_, network_, optimizer_.get(), checkpoint_meta(k));
    }
    out_.message = "stopped after update " + std::to_string(k + 1) + " of " +
                   std::to_string(total_) + "; checkpointed, resumes there";
    log(out_.message);
    return stopped("interrupted", k + 1);
  }

  RunOutcome stopped(const std::string& status, std::int64_t updates) {
    out_.status = status;
    out_.updates = updates;
    out_.best_accuracy = meta_.best_accuracy;
    out_.best_update = meta_.best_update;
    out_.grad_accumulation = meta_.grad_accumulation;
    return out_;
  }

  RunOutcome finished() {
    if (out_.final_eval.samples == 0) report_last_logged_evaluation();
    out_.status = "finished";
    out_.updates = total_;
    out_.best_accuracy = meta_.best_accuracy;
    out_.best_update = meta_.best_update;
    out_.train_seconds = meta_.train_seconds;
    out_.eval_seconds = meta_.eval_seconds;
    out_.tokens_per_second =
        meta_.train_seconds > 0 ? static_cast<double>(meta_.tokens) / meta_.train_seconds : 0;
    out_.grad_accumulation = meta_.grad_accumulation;
    return out_;
  }

  // Nothing evaluated in this call: a run resumed after its last evaluation, or one shorter than
  // eval_every. The summary reports the last logged evaluation, as the reference's last logged
  // test_acc; without one, the model as it is now.
  void report_last_logged_evaluation() {
    std::istringstream in(meta_.metrics);  // the history as the checkpoint holds it
    std::string line, last;
    while (std::getline(in, line)) {
      if (!line.empty()) last = line;
    }
    if (!last.empty()) {
      const auto j = nlohmann::json::parse(last);
      out_.final_eval.loss = j.at("test_loss").get<double>();
      out_.final_eval.accuracy = j.at("test_acc").get<double>();
      out_.final_eval.kl = j.value("test_kl", -1.0);
      out_.final_eval.samples = test_set_.size();
    } else {
      out_.final_eval = evaluate(network_, test_set_, static_cast<std::uint64_t>(meta_.evaluations),
                                 spec_.eval_batch_size, device_, precision_);
      meta_.best_accuracy = std::max(meta_.best_accuracy, out_.final_eval.accuracy);
    }
  }

  Network& network_;
  const Dataset& train_set_;
  const Dataset& test_set_;
  const TrainingSpec& spec_;
  const TrainingQuirks quirks_;
  const TrainCallbacks& cb_;
  const torch::Device device_;
  const Precision precision_;
  const std::string last_path_, best_path_, metrics_path_;
  const std::chrono::steady_clock::time_point call_start_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::int64_t per_pass_ = 0, total_ = 0;
  CheckpointMeta meta_;
  RunOutcome out_;
  double lr_factor_ = 0;
  std::unique_ptr<BatchQueue> batches_;
  // CUDA graphs (start_graphs): the graph-safe optimiser, one graph per batch shape.
  std::unique_ptr<DeviceAdam> device_adam_;
  std::deque<GraphSlot> graphs_;  // a deque: slots keep their addresses as graphs are added
  const CudaGraph* first_graph_ = nullptr;  // whose memory pool the later graphs share
  int device_index_ = 0;
  torch::Tensor update_index_;  // [] int64 on the device: the update being made (0-based)
  // On the device, read at evaluations: Σ train loss and Σ train accuracy since the last one.
  torch::Tensor window_loss_, window_acc_;
  std::int64_t window_updates_ = 0;
  double train_seconds_ = 0;
  std::int64_t tokens_ = 0;
  // On the device: the first update with a non-finite loss (−1: none) and that loss.
  torch::Tensor first_nonfinite_, nonfinite_loss_;
  std::int64_t diverged_at_ = 0;
  double diverged_loss_ = 0;
  std::chrono::steady_clock::time_point interval_start_;
};

}  // namespace

RunOutcome train(Network& network, const Dataset& train_set, const Dataset& test_set,
                 const TrainingSpec& spec, const std::string& run_dir, const TrainCallbacks& cb) {
  return TrainLoop(network, train_set, test_set, spec, run_dir, cb).run();
}

}  // namespace sb
