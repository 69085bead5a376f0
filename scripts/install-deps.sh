#!/usr/bin/env bash
# Installs the Debian 12 packages selectivbench needs, only those missing (idempotent).
# Runs apt-get as root, or through sudo.
set -euo pipefail

packages=(
  g++ cmake ninja-build ccache pkg-config   # toolchain
  libtorch-dev                              # tensors and autograd (LibTorch 1.13, CPU)
  libopenblas0-openmp                       # an optimised BLAS for LibTorch (17x the reference BLAS)
  libboost-dev                              # Boost.DLL (plugins), Boost.CRC (data files)
  libtomlplusplus-dev                       # task and benchmark files
  libspdlog-dev                             # logging
  libcli11-dev                              # command line
  nlohmann-json3-dev                        # JSON output, metadata, cache keys
  libgtest-dev                              # tests
  jq                                        # the sweep tests read run summaries
  slurm-wlm munge                           # a single-node Slurm for the cluster test
  gnuplot-nox                               # figures of reports
  python3                                   # the results test parses CSV, JSONL and HTML
  git                                       # the commit recorded in --version and run summaries
  bsdutils                                  # script(1): the NO_COLOR test gives the CLI a terminal
  clang libfuzzer-14-dev                    # the fuzz test: libFuzzer targets of the file readers
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

run_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
run_root apt-get update -qq
run_root apt-get install -y -qq "${missing[@]}"
