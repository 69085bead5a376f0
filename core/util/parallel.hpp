// A small parallel-for over index ranges, with progress reporting from the calling thread.
#pragma once

#include <cstdint>
#include <functional>

namespace sb {

// The default thread count: the CPUs this process may run on (sched_getaffinity), capped by
// SLURM_CPUS_PER_TASK; at least 1 (core/util/host.hpp).
int hardware_threads();

// Calls body(begin, end) on disjoint ranges covering [0, count), from `threads` threads (0 = all
// cores), in chunks of `chunk` indices. The first exception thrown by a body stops the remaining
// work and is rethrown here. `progress(done, count)`, if given, is called from this thread about
// every 100 ms and once at the end.
void parallel_for(std::int64_t count, int threads, std::int64_t chunk,
                  const std::function<void(std::int64_t, std::int64_t)>& body,
                  const std::function<void(std::int64_t, std::int64_t)>& progress = {});

}  // namespace sb
