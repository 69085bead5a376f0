#!/usr/bin/env bash
# A sweep as a real Slurm job array (README "Running a sweep on several GPUs or a cluster"):
# `selectivbench slurm --array 2 --submit` on a tiny CPU benchmark; every run must finish exactly
# once, whichever task trained it. Needs a running Slurm (scripts/slurm/start-local.sh, which
# scripts/test.sh starts); without one the test is skipped (exit 77), unless
# SELECTIVBENCH_REQUIRE_SLURM=1 (CI) makes that a failure.
# Usage: test_slurm.sh SELECTIVBENCH SOURCE_DIR WORK_DIR
set -uo pipefail
SB=$1; SRC=$2; WORK=$3
if ! command -v sbatch > /dev/null || ! sinfo -h > /dev/null 2>&1; then
  if [ "${SELECTIVBENCH_REQUIRE_SLURM:-0}" = 1 ]; then
    echo "FAIL: no Slurm cluster answers (sinfo), and SELECTIVBENCH_REQUIRE_SLURM=1"; exit 1
  fi
  echo "skipped: no Slurm cluster (start one with scripts/slurm/start-local.sh)"; exit 77
fi
rm -rf "$WORK"; mkdir -p "$WORK"; cd "$WORK"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

cat > tiny.toml <<TOML
[benchmark]
name = "tiny"
tasks = ["$SRC/tasks/quickstart.toml"]
task_set = ["train.size=96", "test.size=16", "sequence.length=12", "sequence.max_string_length=10"]
models = ["gla", "transformer"]
widths = [16]
layers = [1]
seeds = [1, 2, 3]
learning_rates = [1e-2]
warmups = [1]
[training]
batch_size = 8
max_updates = 40
eval_every = 20
TOML

"$SB" slurm tiny.toml --out out --array 2 --cpus-per-task 1 --time 10 --submit > submit.log 2>&1 ||
  { fail "slurm --submit exited $?: $(cat submit.log)"; echo "test_slurm: $failures failure(s)"; exit 1; }
cat submit.log
job=$(sed -n 's/^Submitted batch job \([0-9]*\).*/\1/p' submit.log)
[ -n "$job" ] || { fail "no job id in: $(cat submit.log)"; exit 1; }
script=$(sed -n 's/^sbatch script: //p' submit.log)
grep -q -- "--signal=B:USR1@300" "$script" || fail "the script has no --signal line"
grep -q -- "--array=0-1" "$script" || fail "the script has no --array=0-1 line"

# Wait for the array to leave the queue (up to 5 minutes).
for _ in $(seq 300); do
  [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break
  sleep 1
done
[ -z "$(squeue -h -j "$job" 2>/dev/null)" ] || { fail "job $job still queued after 5 minutes"; scancel "$job"; }

runs=0
for dir in out/*/*/; do
  [ -f "$dir/config.json" ] || continue
  runs=$((runs + 1))
  [ "$(jq -r .status "$dir/summary.json" 2>/dev/null)" = finished ] || fail "$dir did not finish"
  [ "$(grep -c '^run ' "$dir/log.txt")" = 1 ] || fail "$dir was started more than once"
  [ "$(ls "$dir/claims" | wc -l)" = 1 ] || fail "$dir was claimed more than once"
  [ "$(jq -r .update "$dir/metrics.jsonl" | sort | uniq -d | wc -l)" = 0 ] || fail "$dir repeats an update"
  jq -r .worker "$dir/summary.json" | grep -q "^slurm-${job}_[01]$" || fail "$dir: not trained by a task of $job"
done
[ "$runs" = 6 ] || fail "$runs run folders, expected 6"
for task in 0 1; do
  log=out/slurm/${job}_${task}.out
  [ -f "$log" ] || { fail "no log $log"; continue; }
  grep -q "selectivbench worker ${job}_${task}" "$log" || fail "$log: the task did not start a worker"
done
echo "workers: $(jq -r .worker out/*/*/summary.json | sort | uniq -c | tr '\n' ' ')"
[ -f out/results.csv ] || fail "no results.csv"
echo "test_slurm: $failures failure(s)"
[ "$failures" = 0 ]
