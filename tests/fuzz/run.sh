#!/bin/bash
# Builds the libFuzzer targets (tests/fuzz) with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer, and runs each for a bounded time from a seed corpus: the project's
# task files (tasks/), benchmark files (configs/) and a valid symbol cache. A crash, a sanitizer
# report, an uncaught exception, a hang (-timeout) or a leak fails this test; the input that did it
# is left in WORK_DIR/findings/<target>/ for a regression test.
# Usage: run.sh SOURCE_DIR WORK_DIR [SECONDS_PER_TARGET (default 60)] [RUNS_PER_TARGET (default: no limit)]
set -euo pipefail
SRC=$1; WORK=$2; SECONDS_EACH=${3:-60}; RUNS=${4:--1}
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/selectivbench-ccache}"
if ! command -v clang++ > /dev/null; then
  echo "fuzz: clang++ not found; scripts/install-deps.sh installs clang and libfuzzer-14-dev" >&2
  exit 1
fi
mkdir -p "$WORK"
flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
cmake -S "$SRC" -B "$WORK/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_FLAGS="$flags" \
  -DSELECTIVBENCH_BUILD_FUZZERS=ON -DSELECTIVBENCH_BUILD_TESTS=OFF -DSELECTIVBENCH_BUILD_BENCH=OFF \
  -DSELECTIVBENCH_CUDA_KERNELS=OFF > "$WORK/configure.log" 2>&1 || { cat "$WORK/configure.log"; exit 1; }
cmake --build "$WORK/build" --target fuzz_task_file fuzz_benchmark_file fuzz_data_cache fuzz_seed_cache \
  -j "$(nproc)"
bin="$WORK/build/tests/fuzz"

# Seed corpora: copies, so that the corpus libFuzzer grows stays in WORK_DIR.
rm -rf "$WORK/corpus" "$WORK/seed_cache"
mkdir -p "$WORK/corpus/task_file" "$WORK/corpus/benchmark_file" "$WORK/corpus/data_cache" "$WORK/seed_cache"
cp "$SRC"/tasks/*.toml "$WORK/corpus/task_file/"
find "$SRC/configs" -name '*.toml' | while read -r f; do
  cp "$f" "$WORK/corpus/benchmark_file/$(echo "${f#$SRC/configs/}" | tr / _)"
done
"$bin/fuzz_seed_cache" "$WORK/seed_cache" > "$WORK/seed_cache.log" || { cat "$WORK/seed_cache.log"; exit 1; }
cp "$WORK"/seed_cache/*.sbd "$WORK/corpus/data_cache/"

export SB_FUZZ_TASKS="$SRC/tasks"
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
for target in task_file benchmark_file data_cache; do
  mkdir -p "$WORK/findings/$target"
  echo "fuzz_$target: ${SECONDS_EACH} s"
  if ! "$bin/fuzz_$target" "$WORK/corpus/$target" -max_total_time="$SECONDS_EACH" -runs="$RUNS" \
      -timeout=20 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="$WORK/findings/$target/" > "$WORK/fuzz_$target.log" 2>&1; then
    echo "fuzz_$target: FAILED (input in $WORK/findings/$target/)"
    tail -60 "$WORK/fuzz_$target.log"
    status=1
  fi
  grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)" "$WORK/fuzz_$target.log" \
    | sed "s/^/  fuzz_$target /" || true
done
exit $status
