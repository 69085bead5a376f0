#include "core/plugins/conformance.hpp"

#include "core/train/precision.hpp"
#include "core/util/text.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <iomanip>
#include <sstream>

namespace sb {
namespace {

std::string format_number(double v) {
  std::ostringstream s;
  s << std::setprecision(3) << v;
  return s.str();
}

// max |a − b| / max |b|, in float64 on the CPU; a shape mismatch is infinite.
double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.sizes() != b.sizes()) return std::numeric_limits<double>::infinity();
  const auto a64 = a.detach().to(torch::kCPU, torch::kFloat64);
  const auto b64 = b.detach().to(torch::kCPU, torch::kFloat64);
  const double scale = std::max(b64.abs().max().item<double>(), 1e-12);
  return (a64 - b64).abs().max().item<double>() / scale;
}

std::string shape_string(const torch::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

// The bounds of the checks for one dtype (see conformance.hpp).
struct Tolerances {
  double exact;  // outputs that must not depend on something (causality, batch rows)
  double step;   // step vs forward
  double move;   // another device or dtype vs float32 on the CPU
};

Tolerances tolerances_for(torch::ScalarType dtype) {
  if (dtype == torch::kBFloat16) return {1e-2, 5e-2, 5e-2};
  // float64: what a chunked form and its sequential reference may differ by in exact arithmetic's
  // neighbourhood (the plugins' own tests held them to these before the contract suite did).
  if (dtype == torch::kFloat64) return {1e-12, 1e-9, 1e-9};
  return {1e-5, 1e-4, 1e-3};
}

// "cuda" means "cuda:0": tensors report their device with its index.
torch::Device with_index(const torch::Device& device) {
  return device.is_cuda() && !device.has_index() ? torch::Device(torch::kCUDA, 0) : device;
}

torch::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32") return torch::kFloat32;
  if (name == "bfloat16") return torch::kBFloat16;
  if (name == "float64") return torch::kFloat64;
  throw PluginError("check-plugin: --dtype '" + name +
                    "' is not allowed (float32, bfloat16, float64)");
}

class Checker {
 public:
  Checker(const LoadedPlugin& plugin, const ConformanceOptions& options)
      : plugin_(plugin),
        options_(options),
        device_(with_index(torch::Device(options.device))),
        dtype_(parse_dtype(options.dtype)),
        tol_(tolerances_for(dtype_)) {
    context_.d_model = options.d_model;
    context_.n_heads = options.n_heads;
    context_.layer_index = 0;
    context_.n_layers = 1;
    context_.seed = options.seed;
    context_.options = resolve_options(plugin.descriptor, options.plugin_options,
                                       "check-plugin " + plugin.descriptor.name);
    context_.log = [](LogLevel, const std::string&) {};
  }

  ConformanceReport run() {
    report_.plugin = plugin_.descriptor.name;
    report_.path = plugin_.path;
    report_.device = device_.str();
    report_.dtype = options_.dtype;
    const auto& caps = plugin_.descriptor.capabilities;
    if (device_.is_cuda() && !torch::cuda::is_available()) {
      add("device", "FAIL", "CUDA requested but not available in this build or machine");
      return report_;
    }
    if (device_.is_cuda() && !caps.cuda) {
      add("device", "skip", "the plugin does not declare CUDA support");
      return report_;
    }
    if (dtype_ == torch::kBFloat16 && !caps.bf16) {
      add("dtype", "skip", "the plugin does not declare bfloat16 support");
      return report_;
    }
    guarded("create", [&] {
      report_.mixer = make_mixer(options_.seed, device_, dtype_)->describe();
      return std::string();
    });
    if (!report_.checks.empty()) return report_;  // creation failed: nothing else can run

    guarded("shape and dtype", [&] { return check_shapes(); });
    guarded("causality", [&] { return check_causality(); });
    if (caps.recurrent_step) {
      guarded("step equals forward", [&] { return check_step(); });
    } else {
      add("step equals forward", "skip", "the plugin declares no recurrent step");
    }
    guarded("batch independence", [&] { return check_batch_independence(); });
    guarded("gradients", [&] { return check_gradients(); });
    guarded("determinism", [&] { return check_determinism(); });
    guarded("state dict round trip", [&] { return check_state_dict(); });
    guarded("device and dtype moves", [&] { return check_moves(); });
    if (caps.recurrent_step) {
      guarded("state elements", [&] { return check_state_elements(); });
    } else {
      guarded("state elements", [&] { return report_state_elements(); });
    }
    if (options_.throughput) {
      try {
        measure_throughput();
      } catch (const std::exception& e) {
        add("throughput", "FAIL", first_line(e.what()));
      }
    }
    return report_;
  }

 private:
  // A failed expectation inside a check; its message is the check's detail.
  struct Failure : std::runtime_error {
    using std::runtime_error::runtime_error;
  };

  void add(std::string name, std::string status, std::string detail) {
    report_.checks.push_back({std::move(name), std::move(status), std::move(detail)});
  }

  // Runs a check; its return value is the detail of a pass, a Failure or any exception a FAIL.
  void guarded(const std::string& name, const std::function<std::string()>& check) {
    try {
      const std::string detail = check();
      if (name != "create") add(name, "pass", detail);
    } catch (const Failure& f) {
      add(name, "FAIL", f.what());
    } catch (const std::exception& e) {
      add(name, "FAIL", "threw: " + first_line(e.what()));
    }
  }

  std::shared_ptr<Mixer> make_mixer(std::uint64_t seed, const torch::Device& device,
                                    torch::ScalarType dtype) {
    torch::manual_seed(seed);
    MixerContext ctx = context_;
    ctx.seed = seed;
    auto mixer = plugin_.create(ctx);
    mixer->to(device, dtype);
    mixer->eval();
    return mixer;
  }

  torch::Tensor input(std::int64_t batch, std::int64_t length, std::uint64_t seed,
                      const torch::Device& device, torch::ScalarType dtype) {
    torch::manual_seed(seed);
    return torch::randn({batch, length, options_.d_model}).to(device, dtype);  // [B, T, D]
  }

  torch::Tensor forward(Mixer& mixer, const torch::Tensor& x) {
    torch::NoGradGuard no_grad;
    return mixer.forward(x);
  }

  static void expect(bool ok, const std::string& message) {
    if (!ok) throw Failure(message);
  }

  std::string check_shapes() {
    auto mixer = make_mixer(options_.seed, device_, dtype_);
    const std::int64_t B = options_.batch;
    std::ostringstream detail;
    detail << "T =";
    for (const std::int64_t T : {1, 2, 13, 131}) {
      const auto x = input(B, T, 100 + T, device_, dtype_);  // [B, T, D]
      const auto y = forward(*mixer, x);                      // [B, T, D]
      expect(y.sizes() == x.sizes(),
             "input " + shape_string(x) + " gave output " + shape_string(y) + " (want the input's)");
      expect(y.scalar_type() == dtype_, std::string("output dtype ") +
                                            c10::toString(y.scalar_type()) + " for input " +
                                            c10::toString(dtype_));
      expect(y.device() == device_, "output on " + y.device().str() + ", input on " +
                                        device_.str());
      expect(torch::isfinite(y).all().item<bool>(),
             "non-finite output (NaN or Inf) for input " + shape_string(x));
      detail << " " << T;
    }
    detail << ": [B, T, D] → [B, T, D], finite";
    return detail.str();
  }

  std::string check_causality() {
    auto mixer = make_mixer(options_.seed, device_, dtype_);
    const std::int64_t T = 70, t0 = 41;
    const auto x = input(options_.batch, T, 7, device_, dtype_);
    auto x_changed = x.clone();
    x_changed.narrow(1, t0, T - t0).normal_();
    const auto y = forward(*mixer, x);
    const auto y_changed = forward(*mixer, x_changed);
    const double err = relative_error(y_changed.narrow(1, 0, t0), y.narrow(1, 0, t0));
    const double later = relative_error(y_changed.narrow(1, t0, T - t0), y.narrow(1, t0, T - t0));
    expect(err <= tol_.exact, "changing inputs at t ≥ " + std::to_string(t0) +
                                  " changed outputs before it (relative " + format_number(err) +
                                  ", allowed " + format_number(tol_.exact) + ")");
    expect(later > tol_.exact, "outputs at t ≥ " + std::to_string(t0) +
                                   " ignore the inputs there (the mixer does not mix)");
    return "T = 70, t0 = 41: earlier outputs change by " + format_number(err);
  }

  // For T = 1, 7 and 70: a sequence shorter than any chunk, one cut inside a chunk, and several
  // chunks with a partial last one.
  std::string check_step() {
    auto mixer = make_mixer(options_.seed, device_, dtype_);
    const std::int64_t B = options_.batch;
    double worst = 0;
    for (const std::int64_t T : {1, 7, 70}) {
      const auto x = input(B, T, 11 + T, device_, dtype_);
      const auto y = forward(*mixer, x);  // [B, T, D]
      torch::NoGradGuard no_grad;
      MixerState state = mixer->init_state(B, device_, dtype_);
      std::vector<torch::Tensor> steps;
      for (std::int64_t t = 0; t < T; ++t) {
        auto y_t = mixer->step(x.select(1, t), state);  // [B, D]
        expect(y_t.sizes() == x.select(1, t).sizes(),
               "step " + std::to_string(t) + " returned " + shape_string(y_t) + " for x_t " +
                   shape_string(x.select(1, t)));
        steps.push_back(y_t);
      }
      expect(state.position == T, "state.position is " + std::to_string(state.position) +
                                      " after " + std::to_string(T) + " steps");
      const double err = relative_error(torch::stack(steps, 1), y);
      expect(err <= tol_.step, "T = " + std::to_string(T) + ": step differs from forward by " +
                                   format_number(err) + " (relative, allowed " +
                                   format_number(tol_.step) + ")");
      worst = std::max(worst, err);
    }
    return "T = 1, 7, 70: relative error at most " + format_number(worst) + " (allowed " +
           format_number(tol_.step) + ")";
  }

  std::string check_batch_independence() {
    auto mixer = make_mixer(options_.seed, device_, dtype_);
    const std::int64_t T = 37;
    const auto x = input(3, T, 13, device_, dtype_);
    auto x_changed = x.clone();
    x_changed[1].normal_();
    const auto y = forward(*mixer, x);
    const auto y_changed = forward(*mixer, x_changed);
    for (const std::int64_t row : {0, 2}) {
      const double err = relative_error(y_changed[row], y[row]);
      expect(err <= tol_.exact, "changing row 1 changed row " + std::to_string(row) +
                                    " (relative " + format_number(err) + ")");
    }
    const auto alone = forward(*mixer, x.narrow(0, 2, 1));  // [1, T, D]
    const double err = relative_error(alone[0], y[2]);
    expect(err <= tol_.move, "row 2 run alone differs from row 2 in the batch by " +
                                 format_number(err));
    return "B = 3: rows unaffected by another; a row alone differs by " + format_number(err);
  }

  std::string check_gradients() {
    auto mixer = make_mixer(options_.seed, device_, dtype_);
    mixer->train();
    const auto params = mixer->named_parameters(/*recurse=*/true);
    expect(params.size() > 0, "the mixer has no parameters");
    std::map<std::string, bool> nonzero;
    for (int trial = 0; trial < 2; ++trial) {
      mixer->zero_grad();
      const auto x = input(options_.batch, 37, 17 + trial, device_, dtype_).requires_grad_(true);
      const auto weights = torch::randn_like(x);
      (mixer->forward(x) * weights).sum().backward();
      for (const auto& p : params) {
        const auto& g = p.value().grad();
        expect(g.defined(), "parameter " + p.key() + " received no gradient");
        expect(torch::isfinite(g).all().item<bool>(), "gradient of " + p.key() + " is not finite");
        nonzero[p.key()] = nonzero[p.key()] || g.abs().max().item<double>() > 0;
      }
      expect(x.grad().defined() && torch::isfinite(x.grad()).all().item<bool>(),
             "the input's gradient is missing or not finite");
    }
    for (const auto& [name, ok] : nonzero) {
      expect(ok, "gradient of " + name + " is zero in both trials");
    }
    return std::to_string(params.size()) + " parameters, finite and non-zero gradients";
  }

  std::string check_determinism() {
    auto a = make_mixer(options_.seed, device_, dtype_);
    auto b = make_mixer(options_.seed, device_, dtype_);
    const auto pa = a->named_parameters(true);
    const auto pb = b->named_parameters(true);
    expect(pa.size() == pb.size(), "two mixers from one seed have different parameter lists");
    for (std::size_t i = 0; i < pa.size(); ++i) {
      expect(torch::equal(pa[i].value(), pb[i].value()),
             "parameter " + pa[i].key() + " differs between two mixers created with one seed");
    }
    const auto x = input(options_.batch, 37, 19, device_, dtype_);
    const auto ya = forward(*a, x);
    const double err_twice = relative_error(forward(*a, x), ya);
    const double err_other = relative_error(forward(*b, x), ya);
    const double allowed = device_.is_cuda() ? 1e-6 : 0.0;
    expect(err_twice <= allowed, "two forwards of one input differ by " + format_number(err_twice));
    expect(err_other <= allowed,
           "two mixers from one seed give outputs differing by " + format_number(err_other));
    auto c = make_mixer(options_.seed + 1, device_, dtype_);
    const double err_seed = relative_error(forward(*c, x), ya);
    expect(err_seed > allowed, "another seed gives the same output (the seed is ignored)");
    return "same seed: identical parameters and outputs; another seed: different";
  }

  std::string check_state_dict() {
    auto a = make_mixer(options_.seed, device_, dtype_);
    std::stringstream buffer;
    {
      torch::serialize::OutputArchive out;
      a->save(out);
      out.save_to(buffer);
    }
    auto b = make_mixer(options_.seed + 7, device_, dtype_);
    {
      torch::serialize::InputArchive in;
      in.load_from(buffer, device_);
      b->load(in);
    }
    const auto x = input(options_.batch, 37, 23, device_, dtype_);
    const double err = relative_error(forward(*b, x), forward(*a, x));
    expect(err == 0.0, "after save → load the output differs by " + format_number(err));
    return std::to_string(a->named_parameters(true).size() + a->named_buffers(true).size()) +
           " tensors saved and loaded; output identical";
  }

  std::string check_moves() {
    const torch::Device cpu(torch::kCPU);
    const auto& caps = plugin_.descriptor.capabilities;
    auto reference = make_mixer(options_.seed, cpu, torch::kFloat32);
    const auto x = input(options_.batch, 70, 29, cpu, torch::kFloat32);
    const auto y = forward(*reference, x);
    // Each target: a device and a precision mode of the trainer (core/train/precision.hpp).
    std::vector<std::pair<torch::Device, Precision>> targets;
    const bool cuda = torch::cuda::is_available() && caps.cuda;
    const torch::Device accel = device_.is_cuda() ? device_ : torch::Device(torch::kCUDA, 0);
    if (cuda) targets.emplace_back(accel, Precision{PrecisionMode::kFloat32});
    if (cuda) targets.emplace_back(accel, Precision{PrecisionMode::kTF32});
    if (caps.bf16) {
      targets.emplace_back(cuda ? accel : cpu, Precision{PrecisionMode::kBFloat16});
      targets.emplace_back(cuda ? accel : cpu, Precision{PrecisionMode::kBF16Mixed});
    }
    if (targets.empty()) return "no CUDA and no bfloat16: nothing to move to";
    std::ostringstream detail;
    for (const auto& [device, precision] : targets) {
      const torch::ScalarType dtype = precision.parameter_dtype();
      // A moved copy of the reference (not a new mixer), as the trainer moves a network.
      auto moved = make_mixer(options_.seed, cpu, torch::kFloat32);
      moved->to(device, dtype);
      const MatmulPrecisionScope matmul_precision(precision, device);
      const std::string where = device.str() + " " + precision.name();
      torch::Tensor y_moved;
      {
        const AutocastScope autocast(precision, device);
        y_moved = forward(*moved, x.to(device, dtype));
      }
      // Under autocast the output may be bf16 (a last projection); otherwise the parameters' dtype.
      expect(y_moved.device() == device &&
                 (precision.autocast() || y_moved.scalar_type() == dtype),
             "on " + where + " the output is " + y_moved.device().str() + " " +
                 c10::toString(y_moved.scalar_type()));
      const double err = relative_error(y_moved, y);
      const double allowed = precision.autocast() ? tolerances_for(torch::kBFloat16).move
                             : precision.tf32()   ? 1e-2
                                                  : tolerances_for(dtype).move;
      expect(err <= allowed, "on " + where + " the output differs from cpu float32 by " +
                                 format_number(err) + " (allowed " + format_number(allowed) + ")");
      if (precision.autocast()) {
        // Mixed precision trains: every parameter gets a finite fp32 gradient (in training mode,
        // which some backward passes require, as cuDNN's RNN does).
        moved->train();
        torch::Tensor out;
        {
          const AutocastScope autocast(precision, device);
          out = moved->forward(x.to(device, dtype));
        }
        out.to(torch::kFloat32).square().mean().backward();
        for (const auto& p : moved->named_parameters()) {
          const auto& g = p.value().grad();
          if (!g.defined()) continue;
          expect(g.scalar_type() == torch::kFloat32 && torch::isfinite(g).all().item<bool>(),
                 "on " + where + " the gradient of " + p.key() + " is not a finite float32");
        }
      }
      if (detail.tellp() > 0) detail << "; ";
      detail << where << " " << format_number(err);
    }
    return detail.str();
  }

  std::string check_state_elements() {
    auto mixer = make_mixer(options_.seed, device_, dtype_);
    torch::NoGradGuard no_grad;
    const std::int64_t B = options_.batch;
    const auto x = input(B, 70, 31, device_, dtype_);
    MixerState state = mixer->init_state(B, device_, dtype_);
    std::ostringstream detail;
    for (std::int64_t t = 0; t < 70; ++t) {
      mixer->step(x.select(1, t), state);
      if (t + 1 == 1 || t + 1 == 70) {
        std::int64_t carried = 0;
        for (const auto& s : state.tensors) carried += s.defined() ? s.numel() : 0;
        const std::int64_t reported = mixer->state_elements(t + 1);
        expect(carried == reported * B,
               "after " + std::to_string(t + 1) + " steps the state holds " +
                   std::to_string(carried / std::max<std::int64_t>(B, 1)) +
                   " numbers per sequence, state_elements says " + std::to_string(reported));
      }
    }
    return report_state_elements() + "; equals the state carried";
  }

  std::string report_state_elements() {
    auto mixer = make_mixer(options_.seed, device_, dtype_);
    const std::int64_t at1 = mixer->state_elements(1);
    const std::int64_t at1k = mixer->state_elements(1024);
    const std::int64_t at64k = mixer->state_elements(65536);
    expect(at1 >= 0 && at1k >= at1 && at64k >= at1k,
           "state_elements decreases with T or is negative");
    if (plugin_.descriptor.taxonomy.memory == Memory::kConstant) {
      expect(at1 == at64k, "declared constant memory, but state_elements(1) = " +
                               std::to_string(at1) + " and state_elements(65536) = " +
                               std::to_string(at64k));
    }
    return "T = 1: " + std::to_string(at1) + ", T = 1024: " + std::to_string(at1k) +
           ", T = 65536: " + std::to_string(at64k);
  }

  void measure_throughput() {
    auto mixer = make_mixer(options_.seed, device_, dtype_);
    const std::int64_t B = 8, T = 256;
    const auto x = input(B, T, 37, device_, dtype_);
    using Clock = std::chrono::steady_clock;
    const auto sync = [](const torch::Tensor& t) { return t.sum().item<double>(); };
    sync(forward(*mixer, x));  // warm-up
    const int iters = 3;
    auto start = Clock::now();
    for (int i = 0; i < iters; ++i) sync(forward(*mixer, x));
    const double fwd_s = std::chrono::duration<double>(Clock::now() - start).count();
    mixer->train();
    const auto train_step = [&] {
      mixer->zero_grad();
      auto xg = x.detach().requires_grad_(true);
      auto loss = mixer->forward(xg).to(torch::kFloat32).square().mean();
      loss.backward();
      return sync(xg.grad());
    };
    train_step();
    start = Clock::now();
    for (int i = 0; i < iters; ++i) train_step();
    const double train_s = std::chrono::duration<double>(Clock::now() - start).count();
    report_.forward_tokens_per_s = iters * B * T / fwd_s;
    report_.train_tokens_per_s = iters * B * T / train_s;
  }

  const LoadedPlugin& plugin_;
  const ConformanceOptions& options_;
  torch::Device device_;
  torch::ScalarType dtype_;
  Tolerances tol_;
  MixerContext context_;
  ConformanceReport report_;
};

}  // namespace

bool ConformanceReport::passed() const {
  return std::none_of(checks.begin(), checks.end(),
                      [](const CheckResult& c) { return c.status == "FAIL"; });
}

ConformanceReport run_conformance(const LoadedPlugin& plugin, const ConformanceOptions& options) {
  Checker checker(plugin, options);
  return checker.run();
}

std::string format_report(const ConformanceReport& report) {
  std::ostringstream s;
  s << "check-plugin " << report.plugin << "  (" << report.path << ")\n";
  if (!report.mixer.empty()) s << "mixer   " << report.mixer << "\n";
  s << "on      " << report.device << ", " << report.dtype << "\n\n";
  std::size_t width = 5;
  for (const auto& c : report.checks) width = std::max(width, c.name.size());
  s << "  " << std::left << std::setw(static_cast<int>(width)) << "check"
    << "  result  detail\n";
  int failed = 0;
  for (const auto& c : report.checks) {
    s << "  " << std::left << std::setw(static_cast<int>(width)) << c.name << "  "
      << std::setw(6) << c.status << "  " << c.detail << "\n";
    failed += c.status == "FAIL";
  }
  if (report.forward_tokens_per_s > 0) {
    s << "\nthroughput (B = 8, T = 256): forward " << std::fixed << std::setprecision(0)
      << report.forward_tokens_per_s << " tokens/s, forward + backward "
      << report.train_tokens_per_s << " tokens/s\n";
  }
  s << "\n"
    << (failed == 0 ? "PASSED" : "FAILED: " + std::to_string(failed) + " of " +
                                     std::to_string(report.checks.size()) + " checks")
    << "\n";
  return s.str();
}

}  // namespace sb
