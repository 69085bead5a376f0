#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs what is missing, builds, and runs the CPU
# quickstart benchmark (configs/quickstart.toml: transformer vs gla on a small grammar, a few
# minutes on 2 cores), printing the comparison table. Results go to out/quickstart/; a second call
# skips the runs already finished.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
echo
echo "== selectivbench grammar tasks/quickstart.toml"
build/selectivbench grammar tasks/quickstart.toml
echo
echo "== selectivbench run configs/quickstart.toml --out out/quickstart"
build/selectivbench run configs/quickstart.toml --out out/quickstart "$@"
