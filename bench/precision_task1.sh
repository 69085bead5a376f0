#!/usr/bin/env bash
# Trains bench/configs/precision_task1.toml once per precision mode, the three modes side by side
# on one GPU, then lists test accuracy per evaluation. Usage: bench/precision_task1.sh BIN OUTDIR
# (BIN: the selectivbench executable; PRECISION_ARGS: more words for `run`, e.g.
# --set 'benchmark.models=["gla"]'). `selectivbench report OUTDIR/*` draws the curves.
set -euo pipefail
# shellcheck disable=SC2086  # PRECISION_ARGS is words on purpose
bin=$(realpath "${1:?selectivbench executable}")
out=$(realpath -m "${2:?output folder}")
mkdir -p "$out"
modes=${PRECISION_MODES:-float32 tf32 bf16-mixed}
cd "$(dirname "$0")/.."
for mode in $modes; do
  "$bin" run bench/configs/precision_task1.toml --dtype "$mode" --out "$out/$mode" --threads 4 ${PRECISION_ARGS:-} \
    > "$out.$mode.log" 2>&1 &
done
wait
for mode in $modes; do
  echo "== $mode"
  tail -8 "$out.$mode.log"
done
