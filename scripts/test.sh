#!/usr/bin/env bash
# Builds selectivbench and runs every test (GoogleTest suites, command-line and sweep tests, the
# Slurm job-array test on a single-node Slurm, via CTest). SELECTIVBENCH_SLURM_TEST=0 skips
# starting the local Slurm (its test is then skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
if [ "${SELECTIVBENCH_SLURM_TEST:-1}" = 1 ] && ! sinfo -h > /dev/null 2>&1; then
  scripts/slurm/start-local.sh > /dev/null
  trap 'scripts/slurm/stop-local.sh > /dev/null 2>&1 || true' EXIT  # this script started it
fi
ctest --test-dir build --output-on-failure -j "$(nproc)"
