#include "core/train/trainer.hpp"

#include <chrono>
#include <cmath>
#include <numbers>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/tensor/batch.hpp"
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

torch::ScalarType resolve_dtype(const TrainingSpec& spec, const NetworkSpec& network,
                                const torch::Device& device) {
  if (spec.dtype == "float32") return torch::kFloat32;
  if (spec.dtype == "bfloat16") return torch::kBFloat16;
  if (device.is_cuda() && !network.layers.empty()) {
    return network.layers[0].plugin->descriptor.cuda_dtype;
  }
  return torch::kFloat32;
}

EvalResult evaluate(Network& network, const Dataset& data, std::uint64_t epoch,
                    std::int64_t batch_size, const torch::Device& device, torch::ScalarType dtype,
                    const std::function<void(std::int64_t, std::int64_t)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool was_training = network->is_training();
  network->eval();
  torch::NoGradGuard no_grad;
  const bool count_padded = data.spec().protocol == Protocol::kReference;
  const bool next_symbol = data.spec().labels == LabelMode::kNextSymbol;
  EvalResult r;
  AccuracyCounts acc;
  double loss_sum = 0, kl_sum = 0;
  const std::int64_t n = data.size();
  for (std::int64_t begin = 0; begin < n; begin += batch_size) {
    std::vector<std::int64_t> idx;
    for (std::int64_t i = begin; i < std::min(n, begin + batch_size); ++i) idx.push_back(i);
    const Batch batch = to_device(make_batch(data, idx, epoch), device);
    const torch::Tensor logits = network->forward(batch.inputs.to(dtype)).to(torch::kFloat32);
    const auto B = static_cast<double>(idx.size());
    loss_sum += masked_cross_entropy(logits, batch).item<double>() * B;
    if (next_symbol) kl_sum += masked_kl_divergence(logits, batch).item<double>() * B;
    acc += element_accuracy(logits, batch, count_padded);
    if (progress) progress(begin + static_cast<std::int64_t>(idx.size()), n);
  }
  r.samples = n;
  r.loss = n ? loss_sum / static_cast<double>(n) : 0.0;
  r.kl = next_symbol && n ? kl_sum / static_cast<double>(n) : -1.0;
  r.accuracy = acc.value();
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
  bool eval_mode = false;  // reference quirk: stuck in eval mode
};

torch::Tensor scalar(double v) { return torch::tensor(v, torch::kFloat64); }

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
  std::ostringstream bytes;
  archive.save_to(bytes);
  const std::string data = bytes.str();
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
  archive.load_from(path);
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
  return m;
}

// Keeps only the metrics lines of updates ≤ `update` (lines written after the checkpoint that a
// resumed run will write again).
void truncate_metrics(const std::string& path, std::int64_t update) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      if (nlohmann::json::parse(line).value("update", std::int64_t{0}) <= update) {
        kept += line + "\n";
      }
    } catch (const std::exception&) {
      // A torn last line from a crash: drop it.
    }
  }
  write_file_atomically(path, [&](std::ostream& out) { out << kept; });
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

RunOutcome train(Network& network, const Dataset& train_set, const Dataset& test_set,
                 const TrainingSpec& spec, const std::string& run_dir,
                 const TrainCallbacks& cb) {
  auto log = [&](const std::string& m) {
    if (cb.log) cb.log(m);
  };
  const torch::Device device = parse_device(spec.device);
  const torch::ScalarType dtype = resolve_dtype(spec, network->spec(), device);
  network->to(device, dtype);

  const std::int64_t B = spec.batch_size;
  if (train_set.size() < B) {
    throw std::runtime_error("the training set has " + std::to_string(train_set.size()) +
                             " samples, fewer than one batch of " + std::to_string(B));
  }
  const std::int64_t per_pass = train_set.size() / B;
  const std::int64_t total = spec.max_updates > 0 ? spec.max_updates : per_pass;

  std::unique_ptr<torch::optim::Optimizer> optimizer;
  if (spec.optimizer == "adamw") {
    optimizer = std::make_unique<torch::optim::AdamW>(
        network->parameters(), torch::optim::AdamWOptions(spec.lr)
                                   .betas({spec.beta1, spec.beta2})
                                   .eps(spec.eps)
                                   .weight_decay(spec.weight_decay));
  } else {
    optimizer = std::make_unique<torch::optim::Adam>(
        network->parameters(), torch::optim::AdamOptions(spec.lr)
                                   .betas({spec.beta1, spec.beta2})
                                   .eps(spec.eps)
                                   .weight_decay(spec.weight_decay));
  }
  auto set_lr = [&](double lr) {
    for (auto& group : optimizer->param_groups()) {
      if (spec.optimizer == "adamw") {
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      } else {
        static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
      }
    }
  };

  fs::create_directories(fs::path(run_dir) / "checkpoints");
  const std::string last_path = (fs::path(run_dir) / "checkpoints" / "last.pt").string();
  const std::string best_path = (fs::path(run_dir) / "checkpoints" / "best.pt").string();
  const std::string metrics_path = (fs::path(run_dir) / "metrics.jsonl").string();

  CheckpointMeta meta;
  meta.grad_accumulation = spec.grad_accumulation > 0 ? spec.grad_accumulation : 1;
  RunOutcome out;
  if (fs::exists(last_path)) {
    meta = load_checkpoint(last_path, network, optimizer.get());
    network->to(device, dtype);
    truncate_metrics(metrics_path, meta.update);
    out.resumed = true;
    out.resumed_from = meta.update;
    log("resuming from " + last_path + " at update " + std::to_string(meta.update));
  } else if (fs::exists(metrics_path)) {
    fs::remove(metrics_path);
  }
  network->train();
  if (meta.eval_mode) network->eval();

  double window_loss = 0, window_acc = 0;
  std::int64_t window_updates = 0;
  auto train_start = std::chrono::steady_clock::now();
  double train_seconds = meta.train_seconds;
  std::int64_t tokens = meta.tokens;
  const bool count_padded = train_set.spec().protocol == Protocol::kReference;

  for (std::int64_t k = meta.update; k < total; ++k) {
    // Dropout draws are a function of (seed, update): a resumed run continues identically.
    torch::manual_seed(mix64(spec.seed * kGolden + static_cast<std::uint64_t>(k)));
    const double f = spec.reference_quirks ? lr_factor(spec, k, total) : lr_factor(spec, k + 1, total);
    set_lr(spec.lr * f);
    const std::int64_t first = (k * B);
    const std::uint64_t epoch = static_cast<std::uint64_t>(first / (per_pass * B));

    double last_loss = 0, last_acc = 0;
    while (true) {
      try {
        const auto parts = split_indices(first % (per_pass * B), B, meta.grad_accumulation,
                                         train_set.size());
        optimizer->zero_grad();
        for (std::size_t p = 0; p < parts.size(); ++p) {
          const Batch batch = to_device(make_batch(train_set, parts[p], epoch), device);
          const torch::Tensor logits =
              network->forward(batch.inputs.to(dtype)).to(torch::kFloat32);  // [B, T, C]
          const torch::Tensor loss = masked_cross_entropy(logits, batch);
          const double value = loss.item<double>();
          if (!std::isfinite(value)) {
            out.status = "diverged";
            out.message = "loss is " + std::to_string(value) + " at update " +
                          std::to_string(k + 1) + "; the last checkpoint (update " +
                          std::to_string(meta.update) + ") is kept";
            log(out.message);
            out.updates = k;
            out.best_accuracy = meta.best_accuracy;
            out.best_update = meta.best_update;
            out.grad_accumulation = meta.grad_accumulation;
            return out;
          }
          const torch::Tensor scaled =
              spec.reference_quirks ? loss : loss / static_cast<double>(parts.size());
          scaled.backward();
          tokens += batch.lengths.sum().item<std::int64_t>();
          if (p + 1 == parts.size()) {
            last_loss = value;
            last_acc = element_accuracy(logits.detach(), batch, count_padded).value();
          }
        }
        break;
      } catch (const std::exception& e) {
        if (spec.grad_accumulation != 0 || !device.is_cuda() || !is_out_of_memory(e) ||
            B / (meta.grad_accumulation * 2) < 1) {
          throw;
        }
        optimizer->zero_grad();
        compat::empty_device_cache();
        meta.grad_accumulation *= 2;
        log("out of memory: gradient accumulation raised to " +
            std::to_string(meta.grad_accumulation) + " micro-batches of " +
            std::to_string(B / meta.grad_accumulation));
      }
    }
    if (spec.clip_norm > 0) torch::nn::utils::clip_grad_norm_(network->parameters(), spec.clip_norm);
    optimizer->step();
    window_loss += last_loss;
    window_acc += last_acc;
    ++window_updates;
    if (cb.progress) cb.progress(k + 1, total);

    const bool periodic = (k + 1) % spec.eval_every == 0;
    const bool final = k + 1 == total && !spec.reference_quirks;
    if (periodic || final) {
      train_seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - train_start).count();
      const EvalResult ev = evaluate(network, test_set, static_cast<std::uint64_t>(meta.evaluations),
                                     spec.eval_batch_size, device, dtype);
      meta.evaluations += 1;
      meta.eval_seconds += ev.seconds;
      if (spec.reference_quirks) {
        network->eval();  // quirk: never put back into training mode (models.md §3.3.3)
        meta.eval_mode = true;
      }
      nlohmann::json line = {
          {"update", k + 1},
          {"lr", spec.lr * f},
          {"train_loss", window_loss / static_cast<double>(window_updates)},
          {"train_acc", window_acc / static_cast<double>(window_updates)},
          {"test_loss", ev.loss},
          {"test_acc", ev.accuracy},
          {"train_seconds", train_seconds},
          {"tokens_per_s", train_seconds > 0 ? static_cast<double>(tokens) / train_seconds : 0.0},
      };
      if (ev.kl >= 0) line["test_kl"] = ev.kl;
      append_line(metrics_path, line.dump());
      window_loss = window_acc = 0;
      window_updates = 0;
      meta.update = k + 1;
      meta.train_seconds = train_seconds;
      meta.tokens = tokens;
      out.final_eval = ev;
      if (ev.accuracy > meta.best_accuracy) {
        meta.best_accuracy = ev.accuracy;
        meta.best_update = k + 1;
        save_checkpoint(best_path, network, nullptr, meta);
      }
      save_checkpoint(last_path, network, optimizer.get(), meta);
      if (cb.log) {
        std::ostringstream m;
        m.precision(4);
        m << "update " << k + 1 << "/" << total << ": test_acc " << ev.accuracy << ", test_loss "
          << ev.loss << ", train_loss " << line["train_loss"].get<double>();
        log(m.str());
      }
      train_start = std::chrono::steady_clock::now();
    }
  }
  if (out.final_eval.samples == 0) {
    // Nothing evaluated in this call: a run resumed after its last evaluation, or one shorter than
    // eval_every. The summary reports the last logged evaluation, as the reference's last logged
    // test_acc; without one, the model as it is now.
    std::ifstream in(metrics_path);
    std::string line, last;
    while (std::getline(in, line)) {
      if (!line.empty()) last = line;
    }
    if (!last.empty()) {
      const auto j = nlohmann::json::parse(last);
      out.final_eval.loss = j.at("test_loss").get<double>();
      out.final_eval.accuracy = j.at("test_acc").get<double>();
      out.final_eval.kl = j.value("test_kl", -1.0);
      out.final_eval.samples = test_set.size();
    } else {
      out.final_eval = evaluate(network, test_set, static_cast<std::uint64_t>(meta.evaluations),
                                spec.eval_batch_size, device, dtype);
      meta.best_accuracy = std::max(meta.best_accuracy, out.final_eval.accuracy);
    }
  }
  out.status = "finished";
  out.updates = total;
  out.best_accuracy = meta.best_accuracy;
  out.best_update = meta.best_update;
  out.train_seconds = meta.train_seconds;
  out.eval_seconds = meta.eval_seconds;
  out.tokens_per_second = meta.train_seconds > 0 ? static_cast<double>(meta.tokens) / meta.train_seconds : 0;
  out.grad_accumulation = meta.grad_accumulation;
  return out;
}

}  // namespace sb
