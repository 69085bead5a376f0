#include "core/util/parallel.hpp"

#include "core/util/host.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace sb {

// The CPUs this process may use (affinity, Slurm), not every core of the machine.
int hardware_threads() { return default_thread_count(); }

void parallel_for(std::int64_t count, int threads, std::int64_t chunk,
                  const std::function<void(std::int64_t, std::int64_t)>& body,
                  const std::function<void(std::int64_t, std::int64_t)>& progress) {
  if (count <= 0) {
    if (progress) progress(0, 0);
    return;
  }
  if (threads <= 0) threads = hardware_threads();
  chunk = std::max<std::int64_t>(1, chunk);
  const std::int64_t chunks = (count + chunk - 1) / chunk;
  threads = static_cast<int>(std::min<std::int64_t>(threads, chunks));

  std::atomic<std::int64_t> next{0};
  std::atomic<std::int64_t> done{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;

  auto worker = [&] {
    while (!failed.load(std::memory_order_relaxed)) {
      const std::int64_t c = next.fetch_add(1);
      if (c >= chunks) break;
      const std::int64_t begin = c * chunk;
      const std::int64_t end = std::min(count, begin + chunk);
      try {
        body(begin, end);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        failed = true;
      }
      done.fetch_add(end - begin, std::memory_order_relaxed);
    }
  };

  if (threads == 1 && !progress) {
    worker();
  } else {
    std::vector<std::thread> pool;
    pool.reserve(threads);
    std::atomic<int> running{threads};
    for (int i = 0; i < threads; ++i) {
      pool.emplace_back([&] {
        worker();
        running.fetch_sub(1);
      });
    }
    if (progress) {
      while (running.load() > 0) {
        progress(done.load(), count);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    for (auto& t : pool) t.join();
  }
  if (error) std::rethrow_exception(error);
  if (progress) progress(done.load(), count);
}

}  // namespace sb
