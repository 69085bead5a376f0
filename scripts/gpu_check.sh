#!/usr/bin/env bash
# The GPU checks in one go, on a machine with a CUDA LibTorch 2.x from a PyTorch install:
# configure and build against it, run the test suite, run check-plugin on CUDA in float32 and
# bfloat16 (float32 also checks the moves to tf32, bfloat16 and bf16-mixed), the quickstart on
# CUDA, and the training-speed benchmark. Writes logs to $OUT (default: out/gpu).
#
# Headers that machine lacks (toml++, CLI11, nlohmann-json, spdlog/fmt, GoogleTest sources) are
# taken from third_party_device/ when present (README "Building against LibTorch 2.x").
# GPU_CHECK_BENCH=0 skips the training benchmark; GPU_CHECK_TESTS=0 runs only the CUDA tests and the
# out-of-tree test instead of the whole suite, GPU_CHECK_TESTS=REGEX the tests matching it;
# GPU_CHECK_PLUGINS="a b" checks only those plugins ("none": none), GPU_CHECK_DTYPES="float32"
# only those dtypes; GPU_CHECK_BENCH_DTYPES and GPU_CHECK_BENCH_ARGS replace the benchmark's
# precisions and arguments (e.g. "--widths 256 --loop tasks/task1_model_size.toml"); GPU_CHECK_QUICKSTART=0 skips
# the quickstart; GPU_CHECK_PACKING=1 adds the sweep-packing benchmark (bench_packing, K workers
# on one GPU) and GPU_CHECK_ONLY_BUILD=1 stops after the build.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-out/gpu}"
mkdir -p "$OUT"
TP=third_party_device
extra=()
if [ -d "$TP/include" ]; then
  # Ours for every library but nlohmann-json when the machine has its own: a target that links
  # the system's package sees only that one, and two versions in one binary give two ABIs.
  # (spdlog stays ours: the machine's is built against another fmt than LibTorch's headers.)
  inc="$PWD/build-gpu/third_party_include"
  rm -rf "$inc" && mkdir -p "$inc"
  for lib in "$TP"/include/*; do
    name=$(basename "$lib")
    [ "$name" = nlohmann ] && [ -e /usr/include/nlohmann/json.hpp ] && continue
    ln -s "$PWD/$lib" "$inc/$name"
  done
  echo "headers from $TP: $(ls "$inc" | tr '\n' ' ')"
  extra+=(-Dtomlplusplus__tomlplusplus_INCLUDE_DIR="$inc"
          -DCLI11__CLI11_INCLUDE_DIR="$inc"
          -Dnlohmann_json__nlohmann_json_INCLUDE_DIR="$inc"
          -Dspdlog__spdlog_INCLUDE_DIR="$inc")
fi
[ -d "$TP/googletest" ] && extra+=(-DGTEST_SOURCE_DIR="$PWD/$TP/googletest")
prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
step() { echo; echo "== $*"; }

step configure
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  "${extra[@]}" > "$OUT/configure.log" 2>&1 || { tail -40 "$OUT/configure.log"; exit 1; }
grep -i "cuda" "$OUT/configure.log" | head -8
step build
( time cmake --build build-gpu -j "$(nproc)" ) > "$OUT/build.log" 2>&1 || { grep -E "error|FAILED" -A3 "$OUT/build.log" | head -60; exit 1; }
tail -3 "$OUT/build.log"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

[ "${GPU_CHECK_ONLY_BUILD:-0}" = 1 ] && exit 0

step ctest
if [ "${GPU_CHECK_TESTS:-1}" = 1 ]; then
  ctest --test-dir build-gpu -j 8 --timeout 600 > "$OUT/ctest.log" 2>&1
elif [ "${GPU_CHECK_TESTS:-1}" = 0 ]; then  # only what needs the GPU, and the installed-SDK path
  ctest --test-dir build-gpu -j 4 -R "Cuda|out_of_tree" --timeout 600 > "$OUT/ctest.log" 2>&1
else
  ctest --test-dir build-gpu -j 8 -R "$GPU_CHECK_TESTS" --timeout 600 > "$OUT/ctest.log" 2>&1
fi
grep -E "tests passed|Failed|\*\*\*|Skipped" "$OUT/ctest.log" | head -30

plugins=${GPU_CHECK_PLUGINS:-$(ls build-gpu/plugins | sed -n 's/^libsb_\(.*\)\.so$/\1/p')}
[ "$plugins" = none ] && plugins=""
for dtype in ${GPU_CHECK_DTYPES:-float32 bfloat16}; do
  for p in $plugins; do
    step "check-plugin $p --device cuda --dtype $dtype"
    build-gpu/selectivbench check-plugin "$p" --device cuda --dtype "$dtype" --threads 4 > "$OUT/check_${p}_${dtype}.txt" 2>&1
    echo "$(tail -1 "$OUT/check_${p}_${dtype}.txt"); $(grep -E 'step equals|moves|FAIL|throughput' "$OUT/check_${p}_${dtype}.txt" | sed 's/  */ /g' | tr '\n' ' ')"
  done
done

if [ "${GPU_CHECK_QUICKSTART:-1}" = 1 ]; then
  step "quickstart on CUDA"
  ( time build-gpu/selectivbench run configs/quickstart.toml --device cuda --out "$OUT/quickstart" ) 2>&1 | tail -8
fi

if [ "${GPU_CHECK_PACKING:-0}" = 1 ]; then
  step "bench_packing: K workers on one GPU"
  build-gpu/bench/bench_packing --selectivbench build-gpu/selectivbench --work "$OUT/packing" \
    ${GPU_CHECK_PACKING_ARGS:-} | tee "$OUT/bench_packing.txt"
fi

[ "${GPU_CHECK_BENCH:-1}" = 0 ] && exit 0
for dtype in ${GPU_CHECK_BENCH_DTYPES:-float32 bfloat16}; do
  step "bench_train cuda $dtype ${GPU_CHECK_BENCH_ARGS:-}"
  # shellcheck disable=SC2086  # the arguments are words on purpose
  build-gpu/bench/bench_train --device cuda --dtype "$dtype" ${GPU_CHECK_BENCH_ARGS:---widths 256,1024 --iters 5} | tee "$OUT/bench_train_cuda_${dtype}.txt"
done
