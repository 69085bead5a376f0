#!/usr/bin/env bash
# Builds selectivbench and runs every test (GoogleTest suites and command-line tests via CTest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"
