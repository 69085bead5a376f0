// Batches: shapes, padding, one-hot placement, labels per window, noise, next-symbol targets.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "core/data/dataset.hpp"
#include "core/data/grammar.hpp"
#include "core/tensor/batch.hpp"
#include "core/util/random.hpp"

namespace sb {
namespace {

GrammarParams small_grammar() {
  GrammarParams p;
  p.vocab = 6;
  p.ambiguities = 2;
  p.ambiguity_depth = 2;
  p.transition_density = 0.4;
  p.initial_states = 4;
  return p;
}

DataSpec small_spec(LabelMode labels, double noise) {
  DataSpec spec;
  spec.seed = 11;
  spec.grammar = small_grammar();
  spec.sequence.length = 10;
  spec.sequence.min_string_length = 1;
  spec.sequence.max_string_length = 10;
  for (SplitSpec* s : {&spec.train, &spec.test}) {
    s->size = 8;
    s->gap.fill = GapFill::kBlank;
    s->gap.duration.kind = Duration::Kind::kUniform;
    s->gap.duration.low = 0.1;
    s->gap.duration.high = 0.3;
    s->noise = noise;
  }
  spec.labels = labels;
  return spec;
}

Dataset small_dataset(LabelMode labels, double noise, Split split = Split::kTrain) {
  const DataSpec spec = small_spec(labels, noise);
  EXPECT_EQ(validate(spec), "");
  auto grammar = std::make_shared<const Grammar>(make_grammar(spec.grammar, 7));
  return Dataset::create(grammar, spec, split);
}

// The noise of sample `index`'s real steps: inputs minus the one-hot encoding.
std::vector<float> noise_of(const Batch& batch, std::int64_t b, const Item& item, int vocab) {
  auto x = batch.inputs[b].contiguous();
  const float* data = x.data_ptr<float>();
  std::vector<float> out(static_cast<size_t>(item.steps()) * vocab);
  for (int t = 0; t < item.steps(); ++t) {
    for (int v = 0; v < vocab; ++v) {
      const float onehot = item.step_symbol[t] == v ? 1.0F : 0.0F;
      out[static_cast<size_t>(t) * vocab + v] = data[t * vocab + v] - onehot;
    }
  }
  return out;
}

TEST(Batch, StateModeShapesPaddingOneHotAndLabels) {
  const Dataset ds = small_dataset(LabelMode::kState, 0.0);
  const Grammar& g = ds.grammar();
  const std::vector<std::int64_t> indices = {3, 0, 5, 1, 6};
  const std::uint64_t epoch = 2;
  const Batch batch = make_batch(ds, indices, epoch);
  const auto B = static_cast<std::int64_t>(indices.size());
  const int V = g.vocab();

  std::vector<Item> items;
  std::int64_t T = 0;
  std::int64_t shortest = 1 << 30;
  for (std::int64_t i : indices) {
    items.push_back(ds.item(i, epoch));
    T = std::max<std::int64_t>(T, items.back().steps());
    shortest = std::min<std::int64_t>(shortest, items.back().steps());
  }
  ASSERT_LT(shortest, T) << "the items should differ in length so that padding is exercised";
  const std::int64_t E = 10;

  EXPECT_EQ(batch.num_classes, g.num_states());
  EXPECT_EQ(batch.num_classes, 8);
  EXPECT_EQ(num_classes(ds), 8);
  // Every item has all E elements (step_element numbers them 0 … E − 1).
  EXPECT_EQ(batch.step_element.amax(1).add(1).eq(E).all().item<bool>(), true);
  EXPECT_EQ(batch.inputs.sizes(), (std::vector<std::int64_t>{B, T, V}));
  EXPECT_EQ(batch.labels.sizes(), (std::vector<std::int64_t>{B, T}));
  EXPECT_EQ(batch.mask.sizes(), (std::vector<std::int64_t>{B, T}));
  EXPECT_EQ(batch.step_element.sizes(), (std::vector<std::int64_t>{B, T}));
  EXPECT_EQ(batch.element_labels.sizes(), (std::vector<std::int64_t>{B, E}));
  EXPECT_EQ(batch.element_mask.sizes(), (std::vector<std::int64_t>{B, E}));
  EXPECT_EQ(batch.lengths.sizes(), (std::vector<std::int64_t>{B}));
  EXPECT_EQ(batch.inputs.scalar_type(), torch::kFloat32);
  EXPECT_EQ(batch.labels.scalar_type(), torch::kInt64);
  EXPECT_EQ(batch.mask.scalar_type(), torch::kFloat32);
  EXPECT_EQ(batch.step_element.scalar_type(), torch::kInt64);
  EXPECT_EQ(batch.element_labels.scalar_type(), torch::kInt64);
  EXPECT_EQ(batch.element_mask.scalar_type(), torch::kBool);
  EXPECT_FALSE(batch.target_probs.defined());

  auto inputs = batch.inputs.accessor<float, 3>();
  auto labels = batch.labels.accessor<std::int64_t, 2>();
  auto mask = batch.mask.accessor<float, 2>();
  auto step_element = batch.step_element.accessor<std::int64_t, 2>();
  auto element_labels = batch.element_labels.accessor<std::int64_t, 2>();
  auto element_mask = batch.element_mask.accessor<bool, 2>();
  auto lengths = batch.lengths.accessor<std::int64_t, 1>();
  for (std::int64_t b = 0; b < B; ++b) {
    const Item& item = items[b];
    const std::uint16_t* states = ds.states(indices[b]);
    ASSERT_EQ(item.elements(), E);
    EXPECT_EQ(lengths[b], item.steps());
    for (int e = 0; e < E; ++e) {
      EXPECT_EQ(element_labels[b][e], states[e]);
      EXPECT_TRUE(element_mask[b][e]);
      for (auto t = item.element_start[e]; t < item.element_start[e + 1]; ++t) {
        EXPECT_EQ(labels[b][t], states[e]) << "b=" << b << " t=" << t;
        EXPECT_EQ(step_element[b][t], e);
        EXPECT_EQ(mask[b][t], 1.0F);
      }
      // The element's first step carries its symbol; the rest of its window is blank.
      const auto first = item.element_start[e];
      for (int v = 0; v < V; ++v) {
        EXPECT_EQ(inputs[b][first][v], v == g.symbol_of(states[e]) ? 1.0F : 0.0F);
      }
    }
    for (int t = 0; t < item.steps(); ++t) {
      for (int v = 0; v < V; ++v) {
        EXPECT_EQ(inputs[b][t][v], item.step_symbol[t] == v ? 1.0F : 0.0F);
      }
    }
    for (std::int64_t t = item.steps(); t < T; ++t) {
      EXPECT_EQ(labels[b][t], 0);
      EXPECT_EQ(mask[b][t], 0.0F);
      EXPECT_EQ(step_element[b][t], -1);
      for (int v = 0; v < V; ++v) EXPECT_EQ(inputs[b][t][v], 0.0F);
    }
  }
  // Blanks exist (the gap is 1..3 steps after every element).
  EXPECT_GT(batch.mask.sum().item<float>(), static_cast<float>(B * E));
  EXPECT_EQ(batch.mask.sum().item<float>(),
            static_cast<float>(batch.lengths.sum().item<std::int64_t>()));
}

TEST(Batch, NoiseIsPerSampleOnRealStepsOnly) {
  const double noise = 0.5;
  const Dataset ds = small_dataset(LabelMode::kState, noise);
  const int V = ds.grammar().vocab();
  const std::uint64_t epoch = 1;
  const Batch one = make_batch(ds, {0, 1, 2}, epoch);
  const Batch two = make_batch(ds, {4, 2}, epoch);
  const Item item = ds.item(2, epoch);

  // The same sample has the same noise in two different batch compositions.
  const std::vector<float> a = noise_of(one, 2, item, V);
  const std::vector<float> b = noise_of(two, 1, item, V);
  EXPECT_EQ(a, b);

  // It is the sample's own stream, drawn in (t, v) order, in [0, noise).
  CounterRng rng(ds.noise_key(2, epoch));
  float lo = 1.0F;
  float hi = 0.0F;
  for (size_t i = 0; i < a.size(); ++i) {
    const float expected = static_cast<float>(noise) * rng.uniform_float();
    const float onehot = item.step_symbol[i / V] == static_cast<int>(i % V) ? 1.0F : 0.0F;
    EXPECT_EQ(one.inputs[2].reshape({-1})[static_cast<std::int64_t>(i)].item<float>(),
              onehot + expected);
    EXPECT_GE(a[i], 0.0F);
    EXPECT_LE(a[i], static_cast<float>(noise));
    lo = std::min(lo, a[i]);
    hi = std::max(hi, a[i]);
  }
  EXPECT_LT(lo, 0.1F);
  EXPECT_GT(hi, 0.4F);

  // Padding stays exactly zero.
  for (std::int64_t bi = 0; bi < one.inputs.size(0); ++bi) {
    const std::int64_t len = one.lengths[bi].item<std::int64_t>();
    const std::int64_t T = one.inputs.size(1);
    if (len < T) {
      EXPECT_EQ(one.inputs[bi].narrow(0, len, T - len).abs().max().item<float>(), 0.0F);
    }
  }

  // Training noise is re-drawn at another epoch.
  const Batch later = make_batch(ds, {2}, epoch + 1);
  const std::vector<float> c = noise_of(later, 0, ds.item(2, epoch + 1), V);
  const size_t n = std::min(a.size(), c.size());
  EXPECT_FALSE(std::equal(a.begin(), a.begin() + n, c.begin()));
}

TEST(Batch, CleanTestSplitNoiseIsFrozen) {
  const Dataset ds = small_dataset(LabelMode::kState, 0.25, Split::kTest);
  const Batch a = make_batch(ds, {1, 3}, 0);
  const Batch b = make_batch(ds, {1, 3}, 5);
  EXPECT_TRUE(torch::equal(a.inputs, b.inputs));
  EXPECT_GT(a.inputs.sum().item<float>(), 0.0F);
}

TEST(Batch, NextSymbolModeLabelsAndTargets) {
  const Dataset ds = small_dataset(LabelMode::kNextSymbol, 0.0);
  const Grammar& g = ds.grammar();
  const int V = g.vocab();
  std::vector<std::int64_t> indices(ds.size());
  std::iota(indices.begin(), indices.end(), 0);
  const Batch batch = make_batch(ds, indices, 0);
  const auto B = static_cast<std::int64_t>(indices.size());
  const std::int64_t E = 10;

  EXPECT_EQ(batch.num_classes, V);
  EXPECT_EQ(num_classes(ds), V);
  ASSERT_TRUE(batch.target_probs.defined());
  EXPECT_EQ(batch.target_probs.sizes(), (std::vector<std::int64_t>{B, E, V}));

  // `#` target: the uniform mixture over the start states' symbols.
  std::vector<float> start_mix(V, 0.0F);
  for (int s : g.start_states()) {
    start_mix[g.symbol_of(s)] += 1.0F / static_cast<float>(g.start_states().size());
  }

  auto inputs = batch.inputs.accessor<float, 3>();
  auto labels = batch.labels.accessor<std::int64_t, 2>();
  auto mask = batch.mask.accessor<float, 2>();
  auto element_labels = batch.element_labels.accessor<std::int64_t, 2>();
  auto element_mask = batch.element_mask.accessor<bool, 2>();
  auto target = batch.target_probs.accessor<float, 3>();
  int ends_followed = 0;
  for (std::int64_t b = 0; b < B; ++b) {
    const Item item = ds.item(indices[b], 0);
    const std::uint16_t* states = ds.states(indices[b]);
    for (int e = 0; e < E; ++e) {
      const bool last = e == E - 1;
      const std::int64_t expected = last ? 0 : g.symbol_of(states[e + 1]);
      EXPECT_EQ(element_labels[b][e], expected);
      EXPECT_EQ(element_mask[b][e], !last);
      for (auto t = item.element_start[e]; t < item.element_start[e + 1]; ++t) {
        EXPECT_EQ(labels[b][t], expected);
        EXPECT_EQ(mask[b][t], last ? 0.0F : 1.0F);
      }
      // Inputs are never altered (B22): the symbol after a `#` is shown as itself.
      EXPECT_EQ(inputs[b][item.element_start[e]][g.symbol_of(states[e])], 1.0F);
      if (e > 0 && states[e - 1] == Grammar::kEnd) {
        ++ends_followed;
        EXPECT_NE(g.symbol_of(states[e]), 0);
      }

      float sum = 0.0F;
      for (int v = 0; v < V; ++v) sum += target[b][e][v];
      EXPECT_NEAR(sum, 1.0F, 1e-6F);
      if (states[e] == Grammar::kEnd) {
        for (int v = 0; v < V; ++v) EXPECT_FLOAT_EQ(target[b][e][v], start_mix[v]);
      } else {
        const std::vector<double> p = g.next_symbol_probs(states[e]);
        for (int v = 0; v < V; ++v) EXPECT_FLOAT_EQ(target[b][e][v], static_cast<float>(p[v]));
      }
      // The symbol that does come next is possible under the target.
      if (!last) {
        EXPECT_GT(target[b][e][expected], 0.0F);
      }
    }
  }
  EXPECT_GT(ends_followed, 0) << "no `#` followed by an element: the # target is not exercised";
}

TEST(Batch, ToDeviceKeepsValuesAndUndefinedTensors) {
  const Dataset ds = small_dataset(LabelMode::kState, 0.5);
  const Batch batch = make_batch(ds, {0, 1}, 0);
  const Batch moved = to_device(batch, torch::Device(torch::kCPU));
  EXPECT_TRUE(torch::equal(moved.inputs, batch.inputs));
  EXPECT_TRUE(torch::equal(moved.labels, batch.labels));
  EXPECT_TRUE(torch::equal(moved.step_element, batch.step_element));
  EXPECT_TRUE(torch::equal(moved.element_mask, batch.element_mask));
  EXPECT_FALSE(moved.target_probs.defined());
  EXPECT_EQ(moved.num_classes, batch.num_classes);
}

TEST(Batch, RejectsIndicesOutsideTheDataset) {
  const Dataset ds = small_dataset(LabelMode::kState, 0.0);
  EXPECT_THROW(make_batch(ds, {0, ds.size()}, 0), std::out_of_range);
  EXPECT_THROW(make_batch(ds, {-1}, 0), std::out_of_range);
}

}  // namespace
}  // namespace sb
