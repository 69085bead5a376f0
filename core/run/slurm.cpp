#include "core/run/slurm.hpp"

#include <cctype>
#include <sstream>

namespace sb {

std::string shell_quote(const std::string& word) {
  bool plain = !word.empty();
  for (char c : word) {
    plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || std::string("/._-=:,+@%").find(c) != std::string::npos);
  }
  if (plain) return word;
  std::string out = "'";
  for (char c : word) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string slurm_script(const SlurmJob& job) {
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# A selectivbench sweep as a Slurm job array: each task is one worker on the shared output\n"
    << "# folder; runs are claimed in their folders, so tasks never train a run twice, and a run\n"
    << "# whose task dies is taken over from its last checkpoint. Submit again to finish what a\n"
    << "# time limit left.\n"
    << "#SBATCH --job-name=" << job.job_name << "\n"
    << "#SBATCH --array=0-" << job.array - 1 << "\n"
    << "#SBATCH --ntasks=1\n";
  if (job.cpus_per_task > 0) s << "#SBATCH --cpus-per-task=" << job.cpus_per_task << "\n";
  if (job.gpus_per_task > 0) s << "#SBATCH --gres=gpu:" << job.gpus_per_task << "\n";
  if (!job.time.empty()) s << "#SBATCH --time=" << job.time << "\n";
  if (!job.partition.empty()) s << "#SBATCH --partition=" << job.partition << "\n";
  s << "#SBATCH --output=" << job.output_dir << "/%A_%a.out\n"
    << "#SBATCH --open-mode=append\n"
    // B: to the batch shell, which exec's the worker: the worker itself gets it.
    << "#SBATCH --signal=B:USR1@" << job.signal_seconds << "\n";
  if (job.requeue) s << "#SBATCH --requeue\n";
  for (const auto& o : job.sbatch_options) s << "#SBATCH " << o << "\n";
  s << "\nset -euo pipefail\n"
    << "cd " << shell_quote(job.workdir) << "\n"
    << "echo \"selectivbench worker ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} on $(hostname), "
       "restart ${SLURM_RESTART_COUNT:-0}\"\n"
    << "exec";
  for (const auto& w : job.worker_command) s << " " << shell_quote(w);
  s << " \\\n  --worker-name \"slurm-${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"\n";
  return s.str();
}

}  // namespace sb
