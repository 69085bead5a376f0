#!/usr/bin/env bash
# Runs a benchmark file on a CUDA machine for at most a given time, resuming where an earlier call
# stopped, and copies the run folders without their checkpoints to $OUT (what a report needs).
#
#   scripts/gpu_sweep.sh CONFIG SECONDS [run options...]
#
# The sweep works in out/sweep/<benchmark file name> (kept between calls on a machine that stays
# up). On a fresh machine, finished runs carried in out/sweep-carry/<name> (an earlier call's
# $OUT/runs.tgz unpacked) are put back first, so they are not trained again. When the time is up the
# sweep gets SIGTERM: the runs in flight write their checkpoint and the next call resumes them.
set -uo pipefail
cd "$(dirname "$0")/.."
config=$1 seconds=$2
shift 2
OUT="${OUT:-out/gpu}"
name=$(basename "$config" .toml)
work="out/sweep/$name"
mkdir -p "$OUT" "$work"

if [ ! -x build-gpu/selectivbench ]; then
  GPU_CHECK_ONLY_BUILD=1 OUT="$OUT/build" scripts/gpu_check.sh || exit 1
fi
if [ -d "out/sweep-carry/$name" ] && [ -z "$(ls -A "$work")" ]; then
  cp -r "out/sweep-carry/$name/." "$work/"
  echo "gpu_sweep: put back $(find "$work" -name summary.json | wc -l) finished runs"
fi

start=$(date +%s)
timeout -s TERM -k 60 "$seconds" build-gpu/selectivbench run "$config" --out "$work" "$@" \
  > "$OUT/sweep.log" 2>&1
code=$?
echo "gpu_sweep: exit $code after $(( $(date +%s) - start )) s"
grep -E "^sweep:" "$OUT/sweep.log" | tail -2
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader

# The light files of every run: summaries, configs, metrics, logs (no checkpoints, no claims), as
# one archive (the device tool brings back files only a few folders deep).
tar -C "$work" --exclude=checkpoints --exclude=claims -czf "$OUT/runs.tgz" .
echo "gpu_sweep: $(find "$work" -name summary.json | wc -l) finished runs in \$OUT/runs.tgz"
