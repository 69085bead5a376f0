// Loss and metrics on hand-built batches.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <random>
#include <vector>

#include "core/tensor/batch.hpp"
#include "core/tensor/metrics.hpp"

namespace sb {
namespace {

// A batch from per-item element window lengths and element classes; every real step supervised.
Batch hand_batch(const std::vector<std::vector<int>>& windows,
                 const std::vector<std::vector<std::int64_t>>& classes, std::int64_t num_classes) {
  const auto B = static_cast<std::int64_t>(windows.size());
  std::int64_t T = 0;
  std::int64_t E = 0;
  for (const auto& w : windows) {
    std::int64_t steps = 0;
    for (int n : w) steps += n;
    T = std::max(T, steps);
    E = std::max<std::int64_t>(E, static_cast<std::int64_t>(w.size()));
  }
  Batch batch;
  batch.num_classes = num_classes;
  batch.labels = torch::zeros({B, T}, torch::kInt64);
  batch.mask = torch::zeros({B, T}, torch::kFloat32);
  batch.step_element = torch::full({B, T}, -1, torch::kInt64);
  batch.element_labels = torch::zeros({B, E}, torch::kInt64);
  batch.element_mask = torch::zeros({B, E}, torch::kBool);
  batch.lengths = torch::zeros({B}, torch::kInt64);
  for (std::int64_t b = 0; b < B; ++b) {
    std::int64_t t = 0;
    for (size_t e = 0; e < windows[b].size(); ++e) {
      batch.element_labels[b][static_cast<std::int64_t>(e)] = classes[b][e];
      batch.element_mask[b][static_cast<std::int64_t>(e)] = true;
      for (int i = 0; i < windows[b][e]; ++i, ++t) {
        batch.labels[b][t] = classes[b][e];
        batch.mask[b][t] = 1.0F;
        batch.step_element[b][t] = static_cast<std::int64_t>(e);
      }
    }
    batch.lengths[b] = t;
  }
  return batch;
}

at::Tensor log_of(const std::vector<std::vector<float>>& probs) {
  std::vector<float> flat;
  for (const auto& row : probs) flat.insert(flat.end(), row.begin(), row.end());
  const auto rows = static_cast<std::int64_t>(probs.size());
  const auto cols = static_cast<std::int64_t>(probs[0].size());
  return torch::tensor(flat).reshape({1, rows, cols}).log();
}

// --- element accuracy ---------------------------------------------------------------------------

TEST(ElementAccuracy, SumsSoftmaxOverTheWindow) {
  // Element 0 (steps 0-1): step 0 picks class 0, step 1 picks class 2, but the summed softmax
  // [0.501, 0.849, 0.65] picks class 1, which no single step picks.
  // Element 1 (steps 2-3): summed softmax [0.9001, 0.5999, 0.5] picks class 0; summing log-probs
  // instead would pick class 1 (the tiny probabilities dominate a sum of logits).
  const at::Tensor logits = log_of({{0.5F, 0.4F, 0.1F},
                                    {0.001F, 0.449F, 0.55F},
                                    {0.9F, 0.0999F, 0.0001F},
                                    {0.0001F, 0.5F, 0.4999F}});
  Batch right = hand_batch({{2, 2}}, {{1, 0}}, 3);
  AccuracyCounts c = element_accuracy(logits, right);
  EXPECT_EQ(c.correct, 2);
  EXPECT_EQ(c.total, 2);
  EXPECT_DOUBLE_EQ(c.value(), 1.0);

  Batch wrong = hand_batch({{2, 2}}, {{2, 1}}, 3);
  c = element_accuracy(logits, wrong);
  EXPECT_EQ(c.correct, 0);
  EXPECT_EQ(c.total, 2);
}

TEST(ElementAccuracy, TiesGoToTheFirstClass) {
  // Element 0: all classes tie -> 0. Element 1: classes 1 and 2 tie -> 1.
  const at::Tensor logits =
      torch::tensor({0.F, 0.F, 0.F, 0.F, 0.F, 0.F, 0.F, 1.F, 1.F, 0.F, 1.F, 1.F})
          .reshape({1, 4, 3});
  EXPECT_EQ(element_accuracy(logits, hand_batch({{2, 2}}, {{0, 1}}, 3)).correct, 2);
  EXPECT_EQ(element_accuracy(logits, hand_batch({{2, 2}}, {{1, 2}}, 3)).correct, 0);
}

TEST(ElementAccuracy, PaddedElementsAndPaddingSteps) {
  // Item 0: three elements over steps [0,1) [1,3) [3,4); item 1: one element over [0,2).
  const Batch batch = hand_batch({{1, 2, 1}, {2}}, {{0, 1, 2}, {1}}, 3);
  at::Tensor logits = torch::zeros({2, 4, 3});
  logits[0][0][0] = 5.0F;  // element 0 -> 0, correct
  logits[0][1][1] = 5.0F;  // element 1 -> 1, correct
  logits[0][2][1] = 5.0F;
  logits[0][3][0] = 5.0F;  // element 2 -> 0, wrong (class 2)
  logits[1][0][2] = 5.0F;  // item 1 element 0 -> 2, wrong (class 1)
  logits[1][1][2] = 5.0F;
  // Padding steps of item 1 must not count anywhere, even when the model emits NaN there.
  logits[1][2].fill_(std::numeric_limits<float>::quiet_NaN());
  logits[1][3].fill_(std::numeric_limits<float>::quiet_NaN());

  const AccuracyCounts real = element_accuracy(logits, batch, false);
  EXPECT_EQ(real.correct, 2);
  EXPECT_EQ(real.total, 4);
  const AccuracyCounts b17 = element_accuracy(logits, batch, true);
  EXPECT_EQ(b17.correct, 4);  // the two padded elements count as correct
  EXPECT_EQ(b17.total, 6);    // B * E_max

  // Masked-out real elements do not count.
  Batch partial = batch;
  partial.element_mask = batch.element_mask.clone();
  partial.element_mask[0][0] = false;
  const AccuracyCounts p = element_accuracy(logits, partial, false);
  EXPECT_EQ(p.correct, 1);
  EXPECT_EQ(p.total, 3);
}

TEST(ElementAccuracy, PaddingABatchFurtherChangesNoMetric) {
  // A CUDA graph serves batches padded to its bucket lengths: 3 more steps and 2 more elements
  // than the batch's own must change neither the loss nor either protocol's counts.
  const Batch batch = hand_batch({{1, 2, 1}, {2}}, {{0, 1, 2}, {1}}, 3);
  torch::manual_seed(7);
  const at::Tensor logits = torch::randn({2, 4, 3}, torch::TensorOptions().dtype(torch::kFloat64))
                                .to(torch::kFloat32);
  const Batch padded = pad_batch(batch, 7, 5);
  ASSERT_EQ(padded.mask.size(1), 7);
  ASSERT_EQ(padded.element_mask.size(1), 5);
  // Whatever the model emits on the padding.
  const at::Tensor padded_logits =
      torch::cat({logits, torch::full({2, 3, 3}, std::numeric_limits<float>::quiet_NaN())}, 1);
  for (const bool reference : {false, true}) {
    const AccuracyCounts a = element_accuracy(logits, batch, reference);
    const AccuracyCounts b = element_accuracy(padded_logits, padded, reference);
    EXPECT_EQ(a.correct, b.correct) << "reference protocol " << reference;
    EXPECT_EQ(a.total, b.total) << "reference protocol " << reference;
  }
  // The loss is the same sum over more (zero) terms: equal up to the order of the summation.
  EXPECT_FLOAT_EQ(masked_cross_entropy(logits, batch).item<float>(),
                  masked_cross_entropy(padded_logits, padded).item<float>());
}

TEST(ElementAccuracy, CopyPaddedRefusesABatchLongerThanItsTarget) {
  const Batch small = hand_batch({{1, 1}}, {{0, 1}}, 2);
  const Batch large = hand_batch({{2, 2, 2}}, {{0, 1, 0}}, 2);
  Batch target = pad_batch(small, 4, 2);
  EXPECT_THROW(copy_padded(target, large), std::invalid_argument);
  Batch roomy = pad_batch(small, 8, 4);
  copy_padded(roomy, large);  // fits; the old content past it becomes padding
  EXPECT_EQ(roomy.step_element.index({0, torch::indexing::Slice(6, 8)}).eq(-1).all().item<bool>(),
            true);
  EXPECT_EQ(roomy.mask.sum().item<float>(), 6.0F);
}

TEST(ElementAccuracy, LongWindowsKeepPrecision) {
  // A 20000-step element followed by a one-step element whose classes differ by ~2.5e-4: a
  // cumulative sum would lose the difference (float spacing near 10000 is ~1e-3).
  const std::int64_t long_steps = 20000;
  at::Tensor logits = torch::zeros({1, long_steps + 1, 2});
  logits[0][long_steps][1] = 1e-3F;
  const Batch batch = hand_batch({{static_cast<int>(long_steps), 1}}, {{0, 1}}, 2);
  const AccuracyCounts c = element_accuracy(logits, batch);
  EXPECT_EQ(c.correct, 2);
  EXPECT_EQ(c.total, 2);
}

// Plain-loop reference of the window-summed accuracy.
AccuracyCounts reference_accuracy(const at::Tensor& logits, const Batch& batch, bool count_padded) {
  const std::int64_t B = logits.size(0);
  const std::int64_t T = logits.size(1);
  const std::int64_t C = logits.size(2);
  const std::int64_t E = batch.element_mask.size(1);
  auto l = logits.accessor<float, 3>();
  auto step_element = batch.step_element.accessor<std::int64_t, 2>();
  auto element_labels = batch.element_labels.accessor<std::int64_t, 2>();
  auto element_mask = batch.element_mask.accessor<bool, 2>();
  std::vector<double> scores(static_cast<size_t>(B * E * C), 0.0);
  for (std::int64_t b = 0; b < B; ++b) {
    for (std::int64_t t = 0; t < T; ++t) {
      const std::int64_t e = step_element[b][t];
      if (e < 0) continue;
      double max = -1e300;
      for (std::int64_t k = 0; k < C; ++k) max = std::max(max, static_cast<double>(l[b][t][k]));
      double z = 0.0;
      for (std::int64_t k = 0; k < C; ++k) z += std::exp(l[b][t][k] - max);
      for (std::int64_t k = 0; k < C; ++k) {
        scores[static_cast<size_t>((b * E + e) * C + k)] += std::exp(l[b][t][k] - max) / z;
      }
    }
  }
  AccuracyCounts counts;
  std::int64_t real = 0;
  for (std::int64_t b = 0; b < B; ++b) {
    for (std::int64_t e = 0; e < E; ++e) {
      const bool padded = batch.step_element[b].eq(e).sum().item<std::int64_t>() == 0;
      real += !padded;
      if (!element_mask[b][e]) continue;
      std::int64_t best = 0;
      for (std::int64_t k = 1; k < C; ++k) {
        if (scores[static_cast<size_t>((b * E + e) * C + k)] >
            scores[static_cast<size_t>((b * E + e) * C + best)]) {
          best = k;
        }
      }
      counts.correct += best == element_labels[b][e];
      counts.total += 1;
    }
  }
  if (count_padded) {
    counts.correct += static_cast<double>(B * E - real);
    counts.total = static_cast<double>(B * E);
  }
  return counts;
}

TEST(ElementAccuracy, MatchesPlainLoopReference) {
  for (unsigned seed = 0; seed < 8; ++seed) {
    std::mt19937 rng(seed);
    auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    const int B = uniform(1, 4);
    const int C = uniform(2, 6);
    std::vector<std::vector<int>> windows(B);
    std::vector<std::vector<std::int64_t>> classes(B);
    for (int b = 0; b < B; ++b) {
      const int E = uniform(1, 7);
      for (int e = 0; e < E; ++e) {
        windows[b].push_back(uniform(1, 6));
        classes[b].push_back(uniform(0, C - 1));
      }
    }
    Batch batch = hand_batch(windows, classes, C);
    // Leave a few real elements unsupervised.
    for (int b = 0; b < B; ++b) {
      for (size_t e = 0; e < windows[b].size(); ++e) {
        if (uniform(0, 4) == 0) batch.element_mask[b][static_cast<std::int64_t>(e)] = false;
      }
    }
    std::normal_distribution<float> normal(0.0F, 2.0F);
    std::vector<float> values(static_cast<size_t>(B * batch.mask.size(1) * C));
    for (float& v : values) v = normal(rng);
    const at::Tensor logits = torch::tensor(values).reshape({B, batch.mask.size(1), C});
    for (bool padded : {false, true}) {
      const AccuracyCounts want = reference_accuracy(logits, batch, padded);
      const AccuracyCounts got = element_accuracy(logits, batch, padded);
      EXPECT_EQ(got.correct, want.correct) << "seed " << seed << " padded " << padded;
      EXPECT_EQ(got.total, want.total) << "seed " << seed << " padded " << padded;
    }
  }
}

// --- cross-entropy ------------------------------------------------------------------------------

double manual_ce(const std::vector<float>& row, std::int64_t label) {
  double max = -1e300;
  for (float v : row) max = std::max(max, static_cast<double>(v));
  double z = 0.0;
  for (float v : row) z += std::exp(v - max);
  return -(row[label] - max - std::log(z));
}

TEST(MaskedCrossEntropy, MatchesHandComputedValueAndIgnoresMaskedSteps) {
  const std::vector<std::vector<float>> rows = {
      {1.0F, -0.5F, 2.0F}, {0.3F, 0.2F, -1.0F}, {-2.0F, 0.0F, 0.5F}, {4.0F, 1.0F, 1.0F}};
  Batch batch = hand_batch({{2, 2}}, {{2, 1}}, 3);
  batch.labels = torch::tensor(std::vector<std::int64_t>{2, 0, 1, 0}).reshape({1, 4});
  batch.mask = torch::tensor(std::vector<float>{1, 0, 1, 1}).reshape({1, 4});
  std::vector<float> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  const at::Tensor logits = torch::tensor(flat).reshape({1, 4, 3});
  const double expected =
      (manual_ce(rows[0], 2) + manual_ce(rows[2], 1) + manual_ce(rows[3], 0)) / 3.0;
  const at::Tensor loss = masked_cross_entropy(logits, batch);
  EXPECT_EQ(loss.dim(), 0);
  EXPECT_NEAR(loss.item<double>(), expected, 1e-6);

  // The masked step can hold anything, NaN included.
  at::Tensor poisoned = logits.clone();
  poisoned[0][1].fill_(std::numeric_limits<float>::quiet_NaN());
  EXPECT_NEAR(masked_cross_entropy(poisoned, batch).item<double>(), expected, 1e-6);

  // Unmasking it changes the value.
  batch.mask = torch::ones({1, 4});
  const double all = (3.0 * expected + manual_ce(rows[1], 0)) / 4.0;
  EXPECT_NEAR(masked_cross_entropy(logits, batch).item<double>(), all, 1e-6);
}

TEST(MaskedCrossEntropy, GradientFlowsToSupervisedStepsOnly) {
  const Batch batch = hand_batch({{1, 2}, {1}}, {{1, 2}, {0}}, 3);
  at::Tensor logits = torch::randn({2, 3, 3}, torch::TensorOptions().requires_grad(true));
  const at::Tensor loss = masked_cross_entropy(logits, batch);
  loss.backward();
  const at::Tensor grad = logits.grad();
  ASSERT_TRUE(grad.defined());
  EXPECT_TRUE(torch::isfinite(grad).all().item<bool>());
  EXPECT_GT(grad[0].abs().sum().item<float>(), 0.0F);
  EXPECT_GT(grad[1][0].abs().sum().item<float>(), 0.0F);
  EXPECT_EQ(grad[1][1].abs().sum().item<float>(), 0.0F);  // padding
  EXPECT_EQ(grad[1][2].abs().sum().item<float>(), 0.0F);
  // d loss / d logits = (softmax - onehot) / supervised steps.
  const at::Tensor p = torch::softmax(logits.detach()[0][0], -1);
  EXPECT_NEAR(grad[0][0][1].item<float>(), (p[1].item<float>() - 1.0F) / 4.0F, 1e-6);
  EXPECT_NEAR(grad[0][0][0].item<float>(), p[0].item<float>() / 4.0F, 1e-6);
}

// NaN on an unsupervised step must not reach the gradient of the supervised ones either (a
// softmax over the poisoned row would turn its zero gradient into NaN).
TEST(MaskedCrossEntropy, NaNOnAMaskedStepLeavesTheGradientFinite) {
  const Batch batch = hand_batch({{1, 2}, {1}}, {{1, 2}, {0}}, 3);
  at::Tensor base = torch::randn({2, 3, 3});
  base[1][2].fill_(std::numeric_limits<float>::quiet_NaN());  // padding of item 1
  const at::Tensor logits = base.clone().requires_grad_(true);
  masked_cross_entropy(logits, batch).backward();
  EXPECT_TRUE(torch::isfinite(logits.grad()).all().item<bool>());
  EXPECT_EQ(logits.grad()[1][2].abs().sum().item<float>(), 0.0F);
}

// The device-side counts are the host ones, in both protocols.
TEST(ElementAccuracy, DeviceCountsEqualHostCounts) {
  const Batch batch = hand_batch({{2, 1}, {1}}, {{1, 0}, {2}}, 3);
  const at::Tensor logits = torch::randn({2, 3, 3});
  for (bool padded : {false, true}) {
    const at::Tensor counts = element_accuracy_counts(logits, batch, padded);
    EXPECT_EQ(counts.scalar_type(), torch::kFloat64);
    const AccuracyCounts host = element_accuracy(logits, batch, padded);
    EXPECT_EQ(counts[0].item<double>(), host.correct);
    EXPECT_EQ(counts[1].item<double>(), host.total);
  }
  EXPECT_EQ(element_accuracy(logits, batch, true).total, 4.0);  // B·E = 2·2
}

TEST(MaskedCrossEntropy, ComputesInFloatForBFloat16Logits) {
  const Batch batch = hand_batch({{2, 1}}, {{1, 0}}, 4);
  const at::Tensor logits = torch::randn({1, 3, 4}).to(torch::kBFloat16);
  const at::Tensor loss = masked_cross_entropy(logits, batch);
  EXPECT_EQ(loss.scalar_type(), torch::kFloat32);
  EXPECT_NEAR(loss.item<float>(),
              masked_cross_entropy(logits.to(torch::kFloat32), batch).item<float>(), 1e-6);
}

// --- KL divergence ------------------------------------------------------------------------------

// One item, three steps: element 0 over steps 0-1 (supervised), element 1 over step 2 (not).
Batch kl_batch(const std::vector<float>& target0, const std::vector<float>& target1) {
  Batch batch = hand_batch({{2, 1}}, {{0, 0}}, 3);
  batch.mask[0][2] = 0.0F;
  batch.element_mask[0][1] = false;
  std::vector<float> t = target0;
  t.insert(t.end(), target1.begin(), target1.end());
  batch.target_probs = torch::tensor(t).reshape({1, 2, 3});
  return batch;
}

double manual_kl(const std::vector<double>& p, const std::vector<float>& logits) {
  double max = -1e300;
  for (float v : logits) max = std::max(max, static_cast<double>(v));
  double z = 0.0;
  for (float v : logits) z += std::exp(v - max);
  double kl = 0.0;
  for (size_t k = 0; k < p.size(); ++k) {
    if (p[k] > 0) kl += p[k] * (std::log(p[k]) - (logits[k] - max - std::log(z)));
  }
  return kl;
}

TEST(MaskedKlDivergence, ZeroWhenTheModelMatchesTheTarget) {
  const Batch batch = kl_batch({0.2F, 0.3F, 0.5F}, {1.0F, 0.0F, 0.0F});
  at::Tensor logits = torch::zeros({1, 3, 3});
  logits[0][0] = torch::tensor({0.2F, 0.3F, 0.5F}).log() + 3.0F;  // shift-invariant
  logits[0][1] = torch::tensor({0.2F, 0.3F, 0.5F}).log();
  logits[0][2].fill_(std::numeric_limits<float>::quiet_NaN());  // unsupervised step
  EXPECT_NEAR(masked_kl_divergence(logits, batch).item<float>(), 0.0F, 1e-6);
}

TEST(MaskedKlDivergence, MatchesHandComputedValueWithZeroTargets) {
  const Batch batch = kl_batch({0.5F, 0.5F, 0.0F}, {0.0F, 1.0F, 0.0F});
  const std::vector<float> l0 = {0.1F, -1.0F, 2.0F};
  const std::vector<float> l1 = {1.5F, 0.5F, -0.3F};
  std::vector<float> flat = l0;
  flat.insert(flat.end(), l1.begin(), l1.end());
  flat.insert(flat.end(), {9.0F, 9.0F, 9.0F});
  at::Tensor logits = torch::tensor(flat).reshape({1, 3, 3}).requires_grad_(true);
  const double expected = (manual_kl({0.5, 0.5, 0.0}, l0) + manual_kl({0.5, 0.5, 0.0}, l1)) / 2.0;
  const at::Tensor kl = masked_kl_divergence(logits, batch);
  EXPECT_NEAR(kl.item<double>(), expected, 1e-5);
  kl.backward();
  EXPECT_TRUE(torch::isfinite(logits.grad()).all().item<bool>());
  EXPECT_GT(logits.grad()[0][0].abs().sum().item<float>(), 0.0F);
  EXPECT_EQ(logits.grad()[0][2].abs().sum().item<float>(), 0.0F);
}

TEST(MaskedKlDivergence, ZeroTargetWhereTheModelGivesZeroProbability) {
  // p = [0.5, 0.5, 0] and q = [0.5, 0.5, 0] exactly (a -inf logit): 0·log 0 = 0, no NaN.
  const Batch batch = kl_batch({0.5F, 0.5F, 0.0F}, {1.0F, 0.0F, 0.0F});
  const float inf = std::numeric_limits<float>::infinity();
  at::Tensor logits =
      torch::tensor({0.0F, 0.0F, -inf, 0.0F, 0.0F, -inf, 0.0F, 0.0F, 0.0F}).reshape({1, 3, 3});
  logits.requires_grad_(true);
  const at::Tensor kl = masked_kl_divergence(logits, batch);
  EXPECT_TRUE(std::isfinite(kl.item<float>()));
  EXPECT_NEAR(kl.item<float>(), 0.0F, 1e-7);
  kl.backward();
  EXPECT_TRUE(torch::isfinite(logits.grad()).all().item<bool>());
}

}  // namespace
}  // namespace sb
