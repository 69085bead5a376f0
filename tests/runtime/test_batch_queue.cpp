// Batches made ahead on a background thread (core/train/batch_queue.hpp) and the precision modes
// (core/train/precision.hpp).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <stdexcept>

#include "core/config/task.hpp"
#include "core/data/grammar.hpp"
#include "core/tensor/batch.hpp"
#include "core/train/batch_queue.hpp"
#include "core/train/precision.hpp"

namespace {

const std::string kSource = SELECTIVBENCH_SOURCE_DIR;

sb::Dataset small_dataset() {
  const auto task = sb::load_task(kSource + "/tasks/quickstart.toml",
                                  {sb::parse_override("train.size=64"),
                                   sb::parse_override("test.size=16"),
                                   sb::parse_override("sequence.length=12"),
                                   sb::parse_override("sequence.max_string_length=12")});
  auto grammar =
      std::make_shared<const sb::Grammar>(sb::make_grammar(task.data.grammar, task.data.seed));
  return sb::Dataset::create(grammar, task.data, sb::Split::kTrain);
}

std::vector<std::int64_t> indices_of(std::int64_t key) {
  return {key * 4, key * 4 + 1, key * 4 + 2, key * 4 + 3};
}

TEST(BatchQueue, GivesTheBatchesOfEachKeyInOrder) {
  const sb::Dataset data = small_dataset();
  std::atomic<int> made{0};
  sb::BatchQueue queue(
      [&](std::int64_t key) {
        ++made;
        return std::vector<sb::Batch>{sb::make_batch(data, indices_of(key), 1),
                                      sb::make_batch(data, {key}, 1)};
      },
      3, 10, torch::kCPU, 2);
  for (std::int64_t key = 3; key < 10; ++key) {
    const auto got = queue.take(key);
    ASSERT_EQ(got.size(), 2u);
    const sb::Batch want = sb::make_batch(data, indices_of(key), 1);
    EXPECT_TRUE(torch::equal(got[0].inputs, want.inputs)) << key;
    EXPECT_TRUE(torch::equal(got[0].labels, want.labels)) << key;
    EXPECT_TRUE(torch::equal(got[0].step_element, want.step_element)) << key;
    EXPECT_EQ(got[0].steps_total, want.lengths.sum().item<std::int64_t>());
    EXPECT_TRUE(torch::equal(got[1].inputs, sb::make_batch(data, {key}, 1).inputs)) << key;
  }
  EXPECT_EQ(made.load(), 7);  // nothing past the end
  EXPECT_THROW(queue.take(10), std::logic_error);
}

TEST(BatchQueue, KeysOutOfOrderAreRefused) {
  const sb::Dataset data = small_dataset();
  sb::BatchQueue queue(
      [&](std::int64_t key) { return std::vector<sb::Batch>{sb::make_batch(data, {key}, 0)}; }, 0,
      5, torch::kCPU);
  EXPECT_NO_THROW(queue.take(0));
  EXPECT_THROW(queue.take(2), std::logic_error);
}

TEST(BatchQueue, AnErrorReachesTheTakeOfItsKey) {
  const sb::Dataset data = small_dataset();
  sb::BatchQueue queue(
      [&](std::int64_t key) {
        if (key == 2) throw std::runtime_error("no batch 2");
        return std::vector<sb::Batch>{sb::make_batch(data, {key}, 0)};
      },
      0, 100, torch::kCPU);
  EXPECT_NO_THROW(queue.take(0));
  EXPECT_NO_THROW(queue.take(1));
  try {
    queue.take(2);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "no batch 2");
  }
}

TEST(BatchQueue, StopsCleanlyWithBatchesNotTaken) {
  const sb::Dataset data = small_dataset();
  for (int i = 0; i < 20; ++i) {
    sb::BatchQueue queue(
        [&](std::int64_t key) { return std::vector<sb::Batch>{sb::make_batch(data, {key}, 0)}; },
        0, 1000, torch::kCPU, 3);
    if (i % 2 == 0) queue.take(0);
  }  // the destructors join their threads; a hang here fails the test by its timeout
  SUCCEED();
}

TEST(Precision, ResolvesEveryModeAndAuto) {
  const c10::Device cpu(c10::kCPU), cuda(c10::kCUDA, 0);
  EXPECT_EQ(sb::resolve_precision("float32", c10::kBFloat16, cuda).name(), "float32");
  EXPECT_EQ(sb::resolve_precision("tf32", c10::kFloat, cuda).name(), "tf32");
  EXPECT_EQ(sb::resolve_precision("bfloat16", c10::kFloat, cpu).parameter_dtype(), c10::kBFloat16);
  const auto mixed = sb::resolve_precision("bf16-mixed", c10::kFloat, cuda);
  EXPECT_EQ(mixed.parameter_dtype(), c10::kFloat);
  EXPECT_TRUE(mixed.autocast());
  EXPECT_EQ(sb::resolve_precision("auto", c10::kBFloat16, cuda).name(), "bfloat16");
  EXPECT_EQ(sb::resolve_precision("auto", c10::kBFloat16, cpu).name(), "float32");
  EXPECT_EQ(sb::resolve_precision("auto", c10::kFloat, cuda).name(), "float32");
  try {
    sb::resolve_precision("fp16", c10::kFloat, cpu);
    FAIL() << "fp16 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("allowed: auto, float32, tf32, bfloat16, bf16-mixed"),
              std::string::npos);
  }
  EXPECT_EQ(sb::precision_choices().size(), 5u);
}

TEST(Precision, AutocastScopeComputesMatmulsInBFloat16AndRestores) {
  const auto a = torch::randn({4, 8}), b = torch::randn({8, 3});
  const c10::Device cpu(c10::kCPU);
  {
    const sb::AutocastScope scope(sb::Precision{sb::PrecisionMode::kBF16Mixed}, cpu);
    const auto y = torch::matmul(a, b);
    EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
    // Elementwise ops with an fp32 operand stay fp32 (the recurrent state's update).
    EXPECT_EQ((a.narrow(1, 0, 3).narrow(0, 0, 4) + y).scalar_type(), torch::kFloat32);
    EXPECT_NEAR(y.to(torch::kFloat32).sub(torch::matmul(a, b)).abs().max().item<float>(), 0.0,
                0.1);
  }
  EXPECT_EQ(torch::matmul(a, b).scalar_type(), torch::kFloat32);
  {
    const sb::AutocastScope off(sb::Precision{sb::PrecisionMode::kFloat32}, cpu);
    EXPECT_EQ(torch::matmul(a, b).scalar_type(), torch::kFloat32);
  }
}

}  // namespace
