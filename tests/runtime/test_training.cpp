// The network around the plugins and the training loop: parameter counts of models.md §5, hybrids,
// the learning-rate schedule, resume with identical continuation, divergence and evaluation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "core/config/task.hpp"
#include "core/data/grammar.hpp"
#include "core/model/network.hpp"
#include "core/plugins/registry.hpp"
#include "core/tensor/batch.hpp"
#include "core/tensor/metrics.hpp"
#include "core/train/cuda_graph.hpp"
#include "core/train/trainer.hpp"

namespace fs = std::filesystem;

namespace {

const std::string kPlugins = SB_TEST_PLUGIN_DIR;
const std::string kBroken = SB_TEST_BROKEN_DIR;
const std::string kSource = SELECTIVBENCH_SOURCE_DIR;

std::shared_ptr<const sb::LoadedPlugin> plugin(const std::string& name) {
  return sb::PluginRegistry::instance().find(name, {{kPlugins, "build tree"}, {kBroken, "test"}});
}

sb::LayerSpec layer(const std::string& name) {
  auto p = plugin(name);
  return {p, sb::Options(p->descriptor.options)};
}

// The paper's network: V_in = 41, C = 1601, L = 8 (models.md §5).
sb::NetworkSpec paper_spec(std::int64_t d_model, const std::vector<std::string>& layers) {
  sb::NetworkSpec spec;
  spec.input_size = 41;
  spec.num_classes = 1601;
  spec.d_model = d_model;
  spec.n_heads = sb::reference_num_heads(d_model);
  for (const auto& name : layers) spec.layers.push_back(layer(name));
  return spec;
}

std::int64_t count_parameters(sb::Network& network) {
  std::int64_t n = 0;
  for (const auto& p : network->parameters()) n += p.numel();
  return n;
}

TEST(Network, ReferenceHeadRule) {
  EXPECT_EQ(sb::reference_num_heads(256), 4);
  EXPECT_EQ(sb::reference_num_heads(512), 4);
  EXPECT_EQ(sb::reference_num_heads(1024), 8);
  EXPECT_EQ(sb::reference_num_heads(1152), 16);  // 1152/8 = 144 > 128
}

TEST(Network, ParameterCountsEqualModelsSection5AtWidth256) {
  auto transformer = sb::Network(paper_spec(256, std::vector<std::string>(8, "transformer")));
  EXPECT_EQ(count_parameters(transformer), 8'844'617);
  auto gla = sb::Network(paper_spec(256, std::vector<std::string>(8, "gla")));
  EXPECT_EQ(count_parameters(gla), 4'721'985);
  auto mamba2 = sb::Network(paper_spec(256, std::vector<std::string>(8, "mamba2")));
  EXPECT_EQ(count_parameters(mamba2), 4'147'713);
  auto mamba = sb::Network(paper_spec(256, std::vector<std::string>(8, "mamba")));
  EXPECT_EQ(count_parameters(mamba), 5'304'641);
  auto delta_net = sb::Network(paper_spec(256, std::vector<std::string>(8, "delta_net")));
  EXPECT_EQ(count_parameters(delta_net), 3'614'017);
  auto gated_delta_net =
      sb::Network(paper_spec(256, std::vector<std::string>(8, "gated_delta_net")));
  EXPECT_EQ(count_parameters(gated_delta_net), 4'670'849);
  auto gated_delta_product =
      sb::Network(paper_spec(256, std::vector<std::string>(8, "gated_delta_product")));
  EXPECT_EQ(count_parameters(gated_delta_product), 9'487'745);
}

TEST(Network, HybridsMixPluginsPerLayer) {
  // I/O = (V_in + 1)·d + (d + 1)·C; each layer adds its mixer and 2d for its LayerNorm.
  const std::int64_t io = 42 * 256 + 257 * 1601;
  const std::int64_t per_transformer = (8'844'617 - io) / 8;
  const std::int64_t per_gla = (4'721'985 - io) / 8;
  auto hybrid = sb::Network(paper_spec(256, {"gla", "gla", "gla", "transformer"}));
  EXPECT_EQ(count_parameters(hybrid), io + 3 * per_gla + per_transformer);
  const auto y = hybrid->forward(torch::randn({2, 11, 41}));  // [B, T, V_in]
  EXPECT_EQ(y.sizes(), torch::IntArrayRef({2, 11, 1601}));    // [B, T, C]
}

TEST(Network, SameSeedSameParameters) {
  auto a = sb::Network(paper_spec(64, {"gla", "transformer"}));
  auto b = sb::Network(paper_spec(64, {"gla", "transformer"}));
  auto spec = paper_spec(64, {"gla", "transformer"});
  spec.seed = 2;
  auto c = sb::Network(spec);
  const auto pa = a->parameters(), pb = b->parameters(), pc = c->parameters();
  bool any_differs = false;
  for (std::size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(torch::equal(pa[i], pb[i]));
    any_differs |= !torch::equal(pa[i], pc[i]);
  }
  EXPECT_TRUE(any_differs);
}

TEST(Training, WarmupCosineSchedule) {
  sb::TrainingSpec s;
  s.warmup_steps = 10;
  EXPECT_DOUBLE_EQ(sb::lr_factor(s, 0, 110), 0.0);
  EXPECT_DOUBLE_EQ(sb::lr_factor(s, 5, 110), 0.5);
  EXPECT_DOUBLE_EQ(sb::lr_factor(s, 10, 110), 1.0);
  EXPECT_NEAR(sb::lr_factor(s, 60, 110), 0.5, 1e-12);  // half way through the cosine
  EXPECT_NEAR(sb::lr_factor(s, 110, 110), 0.0, 1e-12);
  s.schedule = "constant";
  EXPECT_DOUBLE_EQ(sb::lr_factor(s, 60, 110), 1.0);
}

struct TinyTask {
  sb::Dataset train;
  sb::Dataset test;
};

TinyTask tiny_task() {
  const auto task =
      sb::load_task(kSource + "/tasks/quickstart.toml",
                    {sb::parse_override("train.size=96"), sb::parse_override("test.size=16"),
                     sb::parse_override("sequence.length=12"),
                     sb::parse_override("sequence.max_string_length=12")});
  auto grammar =
      std::make_shared<const sb::Grammar>(sb::make_grammar(task.data.grammar, task.data.seed));
  return {sb::Dataset::create(grammar, task.data, sb::Split::kTrain),
          sb::Dataset::create(grammar, task.data, sb::Split::kTest)};
}

// The tiny task with gaps of 1-5 blanks: batch lengths vary (42-55 steps per item). That the
// reference protocol's counts do not change with padding is ElementAccuracy's test.
TinyTask varying_task() {
  const auto task = sb::load_task(
      kSource + "/tasks/quickstart.toml",
      {sb::parse_override("train.size=96"), sb::parse_override("test.size=16"),
       sb::parse_override("sequence.length=12"),
       sb::parse_override("sequence.max_string_length=12"),
       sb::parse_override("train.gap.duration={ dist = \"uniform\", low = 0.1, high = 0.5 }"),
       sb::parse_override("test.gap.duration=0.3")});
  auto grammar =
      std::make_shared<const sb::Grammar>(sb::make_grammar(task.data.grammar, task.data.seed));
  return {sb::Dataset::create(grammar, task.data, sb::Split::kTrain),
          sb::Dataset::create(grammar, task.data, sb::Split::kTest)};
}

sb::NetworkSpec tiny_spec(const TinyTask& data, const std::vector<sb::LayerSpec>& layers) {
  sb::NetworkSpec spec;
  spec.input_size = data.test.grammar().vocab();
  spec.num_classes = 25;
  spec.d_model = 16;
  spec.n_heads = 2;
  spec.layers = layers;
  spec.block.dropout = 0.2;  // dropout on: resuming must reproduce its masks too
  return spec;
}

// The spec with every dropout off: the blocks' and a layer's own (the transformer's feed-forward).
sb::NetworkSpec without_dropout(sb::NetworkSpec spec) {
  spec.block.dropout = 0.0;
  for (sb::LayerSpec& l : spec.layers) {
    for (const auto& option : l.plugin->descriptor.options) {
      if (option.name == "dropout") l.options.set("dropout", 0.0);
    }
  }
  return spec;
}

sb::TrainingSpec tiny_training() {
  sb::TrainingSpec t;
  t.batch_size = 8;
  t.lr = 1e-2;
  t.warmup_steps = 3;
  t.max_updates = 12;  // one pass
  t.eval_every = 4;
  t.eval_batch_size = 8;
  return t;
}

// A new empty folder per call (mkdtemp: nothing to remove first; std::filesystem::remove_all
// crashed in a LibTorch 2.11 build, which ships its own copy of it).
std::string fresh_dir(const std::string& name) {
  std::string path = (fs::temp_directory_path() / ("sb_train_" + name + "_XXXXXX")).string();
  if (::mkdtemp(path.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + path);
  return path;
}

std::vector<nlohmann::json> metrics_of(const std::string& dir) {
  std::vector<nlohmann::json> out;
  std::ifstream in(dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    j.erase("train_seconds");  // timing differs between runs
    j.erase("tokens_per_s");
    out.push_back(j);
  }
  return out;
}

TEST(Training, LearnsAndResumesIdentically) {
  const TinyTask data = tiny_task();
  const auto spec = tiny_spec(data, {layer("gla"), layer("transformer")});

  // Uninterrupted.
  const std::string straight_dir = fresh_dir("straight");
  auto straight = sb::Network(spec);
  const auto done = sb::train(straight, data.train, data.test, tiny_training(), straight_dir);
  EXPECT_EQ(done.status, "finished");
  EXPECT_EQ(done.updates, 12);
  const auto metrics = metrics_of(straight_dir);
  ASSERT_EQ(metrics.size(), 3u);  // updates 4, 8, 12
  EXPECT_LT(metrics.back()["train_loss"].get<double>(),
            metrics.front()["train_loss"].get<double>());
  EXPECT_TRUE(fs::exists(straight_dir + "/checkpoints"));

  // Interrupted after update 6 (last checkpoint at 4), then resumed by a fresh process-like call.
  const std::string resumed_dir = fresh_dir("resumed");
  {
    auto first = sb::Network(spec);
    sb::TrainCallbacks cb;
    cb.progress = [](std::int64_t update, std::int64_t) {
      if (update == 6) throw std::runtime_error("interrupted");
    };
    EXPECT_THROW(sb::train(first, data.train, data.test, tiny_training(), resumed_dir, cb),
                 std::runtime_error);
  }
  auto second = sb::Network(spec);
  const auto resumed = sb::train(second, data.train, data.test, tiny_training(), resumed_dir);
  EXPECT_TRUE(resumed.resumed);
  EXPECT_EQ(resumed.resumed_from, 4);
  EXPECT_EQ(resumed.status, "finished");
  EXPECT_EQ(metrics_of(resumed_dir), metrics);
  const auto p1 = straight->parameters(), p2 = second->parameters();
  ASSERT_EQ(p1.size(), p2.size());
  for (std::size_t i = 0; i < p1.size(); ++i) EXPECT_TRUE(torch::equal(p1[i], p2[i])) << i;
  EXPECT_EQ(resumed.final_eval.accuracy, done.final_eval.accuracy);

  // A finished run's checkpoint evaluates to the same accuracy.
  auto reloaded = sb::Network(spec);
  sb::load_model_checkpoint(reloaded, straight_dir + "/checkpoints/last.pt");
  const auto ev = sb::evaluate(reloaded, data.test, 2, 8, torch::kCPU, sb::Precision{});
  EXPECT_EQ(ev.accuracy, done.final_eval.accuracy);
}

TEST(Training, NonFiniteLossStopsTheRun) {
  const TinyTask data = tiny_task();
  auto nan_plugin = plugin("misbehaving");
  const auto spec = tiny_spec(
      data,
      {layer("gla"),
       {nan_plugin, sb::resolve_options(nan_plugin->descriptor, {{"behaviour", "nan"}}, "t")}});
  auto network = sb::Network(spec);
  const auto out = sb::train(network, data.train, data.test, tiny_training(), fresh_dir("nan"));
  EXPECT_EQ(out.status, "diverged");
  EXPECT_NE(out.message.find("at update 1"), std::string::npos) << out.message;
  EXPECT_EQ(out.updates, 0);
}

// The loop reads the divergence flag only every few updates and at evaluations: a loss that turns
// NaN at update 6 still stops the run at update 6, and nothing after it (the evaluation due at
// update 8) is written.
TEST(Training, DivergenceSeenLateIsReportedAtItsUpdateAndWritesNothingAfter) {
  const TinyTask data = tiny_task();
  auto nan_plugin = plugin("misbehaving");
  const auto spec = tiny_spec(
      data, {layer("gla"),
             {nan_plugin, sb::resolve_options(nan_plugin->descriptor,
                                              {{"behaviour", "nan_from_update_6"}}, "t")}});
  auto network = sb::Network(spec);
  const std::string dir = fresh_dir("nan_late");
  const auto out = sb::train(network, data.train, data.test, tiny_training(), dir);
  EXPECT_EQ(out.status, "diverged");
  EXPECT_NE(out.message.find("at update 6;"), std::string::npos) << out.message;
  EXPECT_NE(out.message.find("(update 4) is kept"), std::string::npos) << out.message;
  EXPECT_EQ(out.updates, 5);
  const auto metrics = metrics_of(dir);
  ASSERT_EQ(metrics.size(), 1u);  // the evaluation at update 4 only
  EXPECT_EQ(metrics[0]["update"], 4);
  EXPECT_TRUE(fs::exists(dir + "/checkpoints/last.pt"));
}

// A run that diverges right after a resume, before this call evaluates, reports the last logged
// evaluation (as an uninterrupted run does), not an empty 0.0 accuracy and 0.0 loss.
TEST(Training, DivergingRightAfterAResumeReportsTheLastEvaluation) {
  const TinyTask data = tiny_task();
  auto mis = plugin("misbehaving");
  const auto with = [&](const std::string& behaviour) {
    return tiny_spec(data, {layer("gla"),
                            {mis, sb::resolve_options(mis->descriptor, {{"behaviour", behaviour}}, "t")}});
  };
  const std::string dir = fresh_dir("nan_after_resume");
  {
    auto first = sb::Network(with("fine"));
    sb::TrainCallbacks cb;
    cb.progress = [](std::int64_t update, std::int64_t) {
      if (update == 6) throw std::runtime_error("interrupted");
    };
    EXPECT_THROW(sb::train(first, data.train, data.test, tiny_training(), dir, cb), std::runtime_error);
  }
  const auto logged = metrics_of(dir);
  ASSERT_EQ(logged.size(), 1u);  // the evaluation at update 4, also the last checkpoint
  auto second = sb::Network(with("nan"));
  const auto out = sb::train(second, data.train, data.test, tiny_training(), dir);
  EXPECT_TRUE(out.resumed);
  EXPECT_EQ(out.status, "diverged");
  EXPECT_NE(out.message.find("at update 5;"), std::string::npos) << out.message;
  EXPECT_GT(out.final_eval.samples, 0);
  EXPECT_EQ(out.final_eval.accuracy, logged[0]["test_acc"].get<double>());
  EXPECT_EQ(out.final_eval.loss, logged[0]["test_loss"].get<double>());
  EXPECT_GT(out.final_eval.loss, 0.0);
}

// Every checkpoint carries a checksum: flipped bytes or a cut file are refused by name, on resume
// and on evaluation, instead of training on or reporting damaged weights.
TEST(Training, ADamagedCheckpointIsRefusedByName) {
  const TinyTask data = tiny_task();
  const auto spec = tiny_spec(data, {layer("gla")});
  const std::string dir = fresh_dir("damaged_ckpt");
  {
    auto first = sb::Network(spec);
    sb::TrainCallbacks cb;
    cb.progress = [](std::int64_t update, std::int64_t) {
      if (update == 6) throw std::runtime_error("interrupted");
    };
    EXPECT_THROW(sb::train(first, data.train, data.test, tiny_training(), dir, cb), std::runtime_error);
  }
  const std::string last = dir + "/checkpoints/last.pt";
  std::string bytes;
  {
    std::ifstream in(last, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_GT(bytes.size(), 1000u);
  const auto expect_refused = [&](const std::string& damaged, const std::string& why) {
    std::ofstream(last, std::ios::binary | std::ios::trunc) << damaged;
    auto network = sb::Network(spec);
    try {
      sb::load_model_checkpoint(network, last);
      ADD_FAILURE() << why << ": loaded";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(last + ": damaged checkpoint (" + why), std::string::npos)
          << e.what();
    }
    auto resumed = sb::Network(spec);
    EXPECT_THROW(sb::train(resumed, data.train, data.test, tiny_training(), dir), std::runtime_error)
        << why;
  };
  std::string flipped = bytes;
  for (std::size_t i = 0; i < 16; ++i) flipped[bytes.size() / 2 + i] ^= 0x5a;
  expect_refused(flipped, "checksum mismatch");
  expect_refused(bytes.substr(0, bytes.size() - 100), "no checksum trailer");
  expect_refused(bytes.substr(0, 10), "too short");
  // The intact file still resumes.
  std::ofstream(last, std::ios::binary | std::ios::trunc) << bytes;
  auto network = sb::Network(spec);
  EXPECT_EQ(sb::train(network, data.train, data.test, tiny_training(), dir).status, "finished");
}

// The checkpoint holds the metrics history: a metrics.jsonl cut mid-line or deleted while the run
// was stopped is rewritten whole on resume (it lost 2 of 12 lines, or 5 of 12, before), and the
// log says what was repaired.
TEST(Training, AResumeRestoresADamagedMetricsHistory) {
  const TinyTask data = tiny_task();
  const auto spec = tiny_spec(data, {layer("gla")});
  sb::TrainingSpec training = tiny_training();
  training.eval_every = 2;  // evaluations at 2, 4, ..., 12
  const std::string straight_dir = fresh_dir("metrics_straight");
  auto straight = sb::Network(spec);
  sb::train(straight, data.train, data.test, training, straight_dir);
  const auto all = metrics_of(straight_dir);
  ASSERT_EQ(all.size(), 6u);
  for (const std::string damage : {"cut", "deleted"}) {
    const std::string dir = fresh_dir("metrics_" + damage);
    {
      auto first = sb::Network(spec);
      sb::TrainCallbacks cb;
      cb.progress = [](std::int64_t update, std::int64_t) {
        if (update == 9) throw std::runtime_error("interrupted");
      };
      EXPECT_THROW(sb::train(first, data.train, data.test, training, dir, cb), std::runtime_error);
    }
    const std::string path = dir + "/metrics.jsonl";
    if (damage == "cut") {
      fs::resize_file(path, fs::file_size(path) / 2);  // mid-line: the lines after it are gone
    } else {
      fs::remove(path);
    }
    std::vector<std::string> logged;
    sb::TrainCallbacks cb;
    cb.log = [&](const std::string& m) { logged.push_back(m); };
    auto second = sb::Network(spec);
    const auto out = sb::train(second, data.train, data.test, training, dir, cb);
    EXPECT_EQ(out.status, "finished");
    EXPECT_EQ(metrics_of(dir), all) << damage;
    bool noted = false;
    for (const auto& m : logged) noted |= m.find("up to update 8; rewritten from the checkpoint") != std::string::npos;
    EXPECT_TRUE(noted) << damage;
  }
}

// bf16-mixed keeps fp32 parameters and computes the matmuls in bf16 (autocast, also on the CPU):
// it learns, and its parameters differ from a float32 run's from the first update on.
TEST(Training, Bf16MixedKeepsFloat32ParametersAndComputesInBFloat16) {
  const TinyTask data = tiny_task();
  const auto spec = tiny_spec(data, {layer("gla"), layer("transformer")});
  auto training = tiny_training();
  training.max_updates = 4;
  training.eval_every = 4;
  auto fp32 = sb::Network(spec);
  const auto a = sb::train(fp32, data.train, data.test, training, fresh_dir("fp32"));
  training.dtype = "bf16-mixed";
  auto mixed = sb::Network(spec);
  const std::string mixed_dir = fresh_dir("mixed");
  const auto b = sb::train(mixed, data.train, data.test, training, mixed_dir);
  ASSERT_EQ(a.status, "finished");
  ASSERT_EQ(b.status, "finished") << b.message;
  EXPECT_TRUE(std::isfinite(b.final_eval.loss));
  bool any_differs = false;
  const auto pa = fp32->parameters(), pb = mixed->parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (std::size_t i = 0; i < pa.size(); ++i) {
    EXPECT_EQ(pb[i].scalar_type(), torch::kFloat32) << i;
    any_differs = any_differs || !torch::equal(pa[i], pb[i]);
    // Same start (seeded init), a few bf16 updates: close, not equal.
    EXPECT_LT((pa[i] - pb[i]).abs().max().item<double>(), 0.05) << i;
  }
  EXPECT_TRUE(any_differs);
  // Autocast is off again after the run.
  EXPECT_EQ(torch::matmul(torch::ones({2, 2}), torch::ones({2, 2})).scalar_type(), torch::kFloat32);
}

// On CUDA the updates replay a captured graph (task shapes repeat here: every tiny sample has the
// same length): the run finishes with one graph, and its parameters and metrics match a run
// without graphs up to the optimiser's rounding (the graph's Adam does its scalar arithmetic on
// the device). Also the case where the network stays in eval mode after the first evaluation.
TEST(Training, CudaGraphsTrainLikeEagerUpdates) {
  if (!torch::cuda::is_available() || !sb::cuda_graphs_available()) {
    GTEST_SKIP() << "needs CUDA and a LibTorch that captures graphs";
  }
  const TinyTask data = tiny_task();
  const auto spec = tiny_spec(data, {layer("gla"), layer("transformer")});
  for (const bool quirks : {false, true}) {
    auto training = tiny_training();
    training.device = "cuda";
    training.reference_quirks = quirks;
    training.cuda_graphs = false;
    auto eager = sb::Network(spec);
    const std::string eager_dir = fresh_dir("eager");
    const auto a = sb::train(eager, data.train, data.test, training, eager_dir);
    training.cuda_graphs = true;
    auto graphed = sb::Network(spec);
    const std::string graph_dir = fresh_dir("graphed");
    const auto b = sb::train(graphed, data.train, data.test, training, graph_dir);
    ASSERT_EQ(a.status, "finished") << a.message;
    ASSERT_EQ(b.status, "finished") << b.message;
    EXPECT_EQ(a.cuda_graphs, 0);
    EXPECT_GE(b.cuda_graphs, 1) << "quirks " << quirks;
    const auto pa = eager->parameters(), pb = graphed->parameters();
    for (std::size_t i = 0; i < pa.size(); ++i) {
      EXPECT_TRUE(torch::allclose(pa[i], pb[i], 1e-3, 1e-5))
          << i << ": max difference " << (pa[i] - pb[i]).abs().max().item<double>();
    }
    const auto ma = metrics_of(eager_dir), mb = metrics_of(graph_dir);
    ASSERT_EQ(ma.size(), mb.size());
    for (std::size_t i = 0; i < ma.size(); ++i) {
      EXPECT_NEAR(ma[i]["train_loss"].get<double>(), mb[i]["train_loss"].get<double>(), 1e-3);
      EXPECT_NEAR(ma[i]["test_loss"].get<double>(), mb[i]["test_loss"].get<double>(), 1e-3);
    }
    // A graphed run resumes from its checkpoint like any other (the step count is in it).
    auto resumed = sb::Network(spec);
    training.max_updates = 16;
    const auto c = sb::train(resumed, data.train, data.test, training, graph_dir);
    EXPECT_TRUE(c.resumed);
    EXPECT_EQ(c.status, "finished") << c.message;
  }
}

// What lets graphs serve batches of varying length: for the causal models, a batch padded with
// more steps and elements gives the same loss and the same gradients as the batch itself (up to
// the order of summation), on every device the build has.
TEST(Training, PaddingABatchChangesNoGradient) {
  const TinyTask data = varying_task();
  std::vector<torch::Device> devices{torch::kCPU};
  if (torch::cuda::is_available()) devices.emplace_back(torch::kCUDA);
  const sb::Batch batch = sb::make_batch(data.train, {0, 1, 2, 3, 4, 5, 6, 7});
  const std::int64_t T = batch.mask.size(1), E = batch.element_mask.size(1);
  for (const std::string name : {"gla", "transformer", "mamba2", "delta_net"}) {
    for (const torch::Device& device : devices) {
      const auto spec = without_dropout(tiny_spec(data, {layer(name)}));
      torch::manual_seed(3);
      auto network = sb::Network(spec);
      network->to(device);
      const auto gradients_of = [&](const sb::Batch& b) {
        network->zero_grad();
        const torch::Tensor loss = sb::masked_cross_entropy(network->forward(b.inputs), b);
        loss.backward();
        std::vector<torch::Tensor> grads;
        for (const auto& p : network->parameters()) grads.push_back(p.grad().clone());
        return std::make_pair(loss.item<double>(), grads);
      };
      const auto [loss, grads] = gradients_of(sb::to_device(batch, device));
      const auto [padded_loss, padded_grads] =
          gradients_of(sb::pad_batch(sb::to_device(batch, device), T + 21, E + 3));
      EXPECT_NEAR(loss, padded_loss, 1e-6 * std::abs(loss)) << name << " " << device;
      for (std::size_t i = 0; i < grads.size(); ++i) {
        const double scale = grads[i].abs().max().item<double>();
        EXPECT_LE((grads[i] - padded_grads[i]).abs().max().item<double>(), 1e-4 * scale + 1e-9)
            << name << " " << device << " parameter " << i << " of " << grads.size();
      }
    }
  }
}

// Batches whose lengths vary (a gap of 1-5 blanks after each symbol): graphs serve them padded
// to a few bucket lengths, and the run still trains like the eager one.
TEST(Training, CudaGraphsServeBatchesOfVaryingLengthPadded) {
  if (!torch::cuda::is_available() || !sb::cuda_graphs_available()) {
    GTEST_SKIP() << "needs CUDA and a LibTorch that captures graphs";
  }
  const TinyTask data = varying_task();
  // Without dropout: padded batches draw their dropout masks over the padded shape, so with it a
  // graphed run trains on other masks than an eager one (resuming is checked with dropout below).
  const auto spec = without_dropout(tiny_spec(data, {layer("gla"), layer("transformer")}));
  auto training = tiny_training();
  training.device = "cuda";
  training.max_updates = 24;
  training.cuda_graphs = false;
  auto eager = sb::Network(spec);
  const std::string eager_dir = fresh_dir("eager_varying");
  const auto a = sb::train(eager, data.train, data.test, training, eager_dir);
  training.cuda_graphs = true;
  auto graphed = sb::Network(spec);
  const std::string graph_dir = fresh_dir("graphed_varying");
  const auto b = sb::train(graphed, data.train, data.test, training, graph_dir);
  ASSERT_EQ(a.status, "finished") << a.message;
  ASSERT_EQ(b.status, "finished") << b.message;
  EXPECT_GE(b.cuda_graphs, 1);
  EXPECT_LE(b.cuda_graphs, 6);
  const auto pa = eager->parameters(), pb = graphed->parameters();
  for (std::size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(torch::allclose(pa[i], pb[i], 1e-3, 1e-4))
        << i << ": max difference " << (pa[i] - pb[i]).abs().max().item<double>();
  }
  const auto ma = metrics_of(eager_dir), mb = metrics_of(graph_dir);
  ASSERT_EQ(ma.size(), mb.size());
  for (std::size_t i = 0; i < ma.size(); ++i) {
    EXPECT_NEAR(ma[i]["train_loss"].get<double>(), mb[i]["train_loss"].get<double>(), 1e-3);
    EXPECT_NEAR(ma[i]["train_acc"].get<double>(), mb[i]["train_acc"].get<double>(), 0.02);
    EXPECT_NEAR(ma[i]["test_loss"].get<double>(), mb[i]["test_loss"].get<double>(), 1e-3);
  }

  // With dropout, a graphed run stopped after update 10 and resumed (from 8) ends where an
  // uninterrupted one does: which padded shape serves a batch does not depend on the history.
  const auto dropout_spec = tiny_spec(data, {layer("gla"), layer("transformer")});
  auto straight = sb::Network(dropout_spec);
  const std::string straight_dir = fresh_dir("graphed_straight");
  ASSERT_EQ(sb::train(straight, data.train, data.test, training, straight_dir).status, "finished");
  const std::string resumed_dir = fresh_dir("graphed_resumed");
  {
    auto first = sb::Network(dropout_spec);
    sb::TrainCallbacks cb;
    cb.progress = [](std::int64_t update, std::int64_t) {
      if (update == 10) throw std::runtime_error("interrupted");
    };
    EXPECT_THROW(sb::train(first, data.train, data.test, training, resumed_dir, cb),
                 std::runtime_error);
  }
  auto second = sb::Network(dropout_spec);
  const auto resumed = sb::train(second, data.train, data.test, training, resumed_dir);
  ASSERT_EQ(resumed.status, "finished") << resumed.message;
  EXPECT_TRUE(resumed.resumed);
  const auto ps = straight->parameters(), pr = second->parameters();
  for (std::size_t i = 0; i < ps.size(); ++i) {
    EXPECT_TRUE(torch::allclose(ps[i], pr[i], 1e-4, 1e-6))
        << i << ": max difference " << (ps[i] - pr[i]).abs().max().item<double>();
  }
}

}  // namespace
