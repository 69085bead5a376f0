// Stopping on a signal without losing work. After install_stop_handlers(), the first SIGINT,
// SIGTERM or SIGUSR1 (Slurm's warning before the time limit, `sbatch --signal`) only sets a flag:
// the training loop sees it after the current update, writes its last checkpoint, the worker
// releases its claim and exits with 128 + the signal's number. A second SIGINT or SIGTERM exits at
// once (every file is written atomically, so nothing is left half-written; the run resumes from
// its last checkpoint and its claim dies with the process).
#pragma once

namespace sb {

void install_stop_handlers();
int stop_signal();               // 0, or the first stop signal received
void request_stop(int signal);   // as if `signal` had arrived (tests, the worker launcher)
int exit_code_for_signal(int signal);  // 128 + signal: 130 for SIGINT, 143 for SIGTERM

// A process group (a worker started by this process) that a second SIGINT or SIGTERM kills along
// with this process, so that "stop at once" stops the workers too. At most 1024 groups.
void add_stop_group(int process_group);

}  // namespace sb
