#!/bin/bash
# The torch-free libraries (data engine, config reader, util) and their test suites built and run
# under AddressSanitizer + UndefinedBehaviorSanitizer: any invalid read, leak or undefined
# behaviour in them fails this test. They build in a few minutes on two cores (no LibTorch).
# Usage: run.sh SOURCE_DIR WORK_DIR
set -euo pipefail
SRC=$1; WORK=$2
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/selectivbench-ccache}"
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake -S "$SRC" -B "$WORK" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DSELECTIVBENCH_BUILD_BENCH=OFF -DSELECTIVBENCH_CUDA_KERNELS=OFF > "$WORK.configure.log" 2>&1 \
  || { cat "$WORK.configure.log"; exit 1; }
cmake --build "$WORK" --target sb_tests_data sb_tests_config -j "$(nproc)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
"$WORK/tests/sb_tests_data"
"$WORK/tests/sb_tests_config"
echo "sanitizers: data and config suites clean"
