#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs what is missing, builds, and runs the data
# engine's demo on the quickstart task (grammar statistics and one sample).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
echo
echo "== selectivbench grammar tasks/quickstart.toml"
build/selectivbench grammar tasks/quickstart.toml
echo
echo "== selectivbench show tasks/quickstart.toml --index 0 --elements 24"
build/selectivbench show tasks/quickstart.toml --index 0 --elements 24
echo
echo "== selectivbench grammar tasks/task2.toml (the paper's task 2 grammar)"
build/selectivbench grammar tasks/task2.toml
