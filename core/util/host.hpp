// Facts about this process and its machine that run records and work claims need: the host name,
// the boot, a process's identity, the CPUs this process may use, wall-clock times.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sb {

std::string host_name();  // the short host name ("node17"), "unknown" when it cannot be read

// The kernel's id of the current boot (/proc/sys/kernel/random/boot_id); "" where there is none.
// A claim made on this host before a reboot is dead whatever its pid.
std::string boot_id();

// The start time of process `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat), or -1
// when there is no such process. With the pid it names a process uniquely across pid reuse.
long long process_start_ticks(int pid);

// Whether the process `pid` that started at `start_ticks` is still running on this host.
bool process_alive(int pid, long long start_ticks);

// The CPUs this process may run on (sched_getaffinity), e.g. {0, 1} or {8..15} under Slurm.
std::vector<int> allowed_cpus();

// The default thread count: the CPUs this process may run on, capped by SLURM_CPUS_PER_TASK when
// Slurm says so; at least 1.
int default_thread_count();

double unix_seconds();                      // wall clock, seconds since 1970 (with fractions)
std::string iso_time(double unix_seconds);  // "2026-12-03T08:21:09Z" (UTC)

}  // namespace sb
