// Batches made ahead of time on a background thread, so that the training loop never waits for
// the host to build the next one.
//
// The queue is a producer thread calling make(key) for the keys first, first + 1, … < end, at most
// `depth` ahead of the consumer. On CUDA each batch is copied into page-locked memory and its copy
// to the device is issued from the producer thread (asynchronous, on the device's current stream,
// so it is ordered before any kernel the consumer issues after take() returns). take(key) returns
// the batches of `key`, waiting only when the producer is behind; keys must be taken in order. An
// exception thrown by make() is rethrown by the take() of its key.
//
// Batches are a pure function of their key (update index or evaluation batch), so reading them
// ahead changes nothing in the results.
#pragma once

#include <ATen/core/Tensor.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "core/tensor/batch.hpp"

namespace sb {

class BatchQueue {
 public:
  using Make = std::function<std::vector<Batch>(std::int64_t key)>;

  BatchQueue(Make make, std::int64_t first, std::int64_t end, const at::Device& device,
             int depth = 2);
  ~BatchQueue();
  BatchQueue(const BatchQueue&) = delete;
  BatchQueue& operator=(const BatchQueue&) = delete;

  // The batches of `key`, on the device. `key` must be the next key of the queue.
  std::vector<Batch> take(std::int64_t key);

 private:
  struct Slot {
    std::int64_t key = 0;
    std::vector<Batch> batches;
    std::exception_ptr error;
  };

  void produce();

  const Make make_;
  const std::int64_t end_;
  const at::Device device_;
  const std::size_t depth_;
  std::int64_t next_take_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Slot> ready_;
  bool stop_ = false;
  std::int64_t next_make_;
  std::thread thread_;
};

}  // namespace sb
