#include "core/train/batch_queue.hpp"

#include <stdexcept>
#include <string>

namespace sb {

BatchQueue::BatchQueue(Make make, std::int64_t first, std::int64_t end, const at::Device& device,
                       int depth)
    : make_(std::move(make)),
      end_(end),
      device_(device),
      depth_(static_cast<std::size_t>(std::max(1, depth))),
      next_take_(first),
      next_make_(first) {
  thread_ = std::thread([this] { produce(); });
}

BatchQueue::~BatchQueue() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void BatchQueue::produce() {
  while (true) {
    std::int64_t key = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stop_ || (ready_.size() < depth_ && next_make_ < end_); });
      if (stop_) return;
      key = next_make_++;
    }
    Slot slot;
    slot.key = key;
    try {
      for (Batch& b : make_(key)) {
        // Page-locked host memory makes the copy asynchronous; the allocator keeps the pinned
        // block until the copy is done even after the host tensor is gone.
        slot.batches.push_back(device_.is_cuda() ? to_device(pin_memory(b), device_)
                                                 : std::move(b));
      }
    } catch (...) {
      slot.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.push_back(std::move(slot));
      if (ready_.back().error) next_make_ = end_;  // nothing after a failure
    }
    changed_.notify_all();
  }
}

std::vector<Batch> BatchQueue::take(std::int64_t key) {
  if (key != next_take_) {
    throw std::logic_error("BatchQueue::take: asked for key " + std::to_string(key) +
                           ", the next one is " + std::to_string(next_take_));
  }
  if (key >= end_) {
    throw std::logic_error("BatchQueue::take: key " + std::to_string(key) +
                           " is past the end (" + std::to_string(end_) + ")");
  }
  Slot slot;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return !ready_.empty(); });
    slot = std::move(ready_.front());
    ready_.pop_front();
  }
  changed_.notify_all();
  ++next_take_;
  if (slot.error) std::rethrow_exception(slot.error);
  return std::move(slot.batches);
}

}  // namespace sb
