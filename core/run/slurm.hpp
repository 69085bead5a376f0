// A sweep as a Slurm job array: every array task is a worker of the sweep (core/run/sweep.hpp) on
// the shared output folder, so the array's size, requeues and preemption need no bookkeeping: a
// task takes whatever run is free, and a run whose task dies is taken over from its checkpoint.
#pragma once

#include <string>
#include <vector>

namespace sb {

struct SlurmJob {
  std::string job_name;
  int array = 1;               // tasks in the array
  int cpus_per_task = 0;       // 0: the cluster's default
  int gpus_per_task = 0;       // --gres=gpu:G; each task runs one worker per GPU it gets
  std::string time;            // --time, e.g. "04:00:00"; "" = the partition's default
  std::string partition;       // "" = the cluster's default
  std::vector<std::string> sbatch_options;  // more #SBATCH lines, e.g. "--account=proj42"
  int signal_seconds = 300;    // SIGUSR1 this long before the time limit: checkpoint, release, exit
  bool requeue = true;         // preempted or failed-node tasks go back into the queue
  std::string workdir;         // absolute: where the tasks start
  std::string output_dir;      // absolute: where Slurm writes each task's log
  // The worker's command line, absolute paths: {"/opt/sb/bin/selectivbench", "run", "/x.toml", ...}
  std::vector<std::string> worker_command;
};

// The sbatch script's text.
std::string slurm_script(const SlurmJob& job);

// A word quoted for bash: 'it'\''s'.
std::string shell_quote(const std::string& word);

}  // namespace sb
