#!/usr/bin/env bash
# Renders a report's report.html in headless Chromium (Debian's `chromium`) to a PNG, to see the
# report as a reader's browser shows it. Not part of the tests (Chromium is ~300 MB):
#   sudo apt-get install chromium
#   scripts/screenshot-report.sh docs/results/paper-small-task1-model-size [OUT.png] [WIDTHxHEIGHT]
# Writes OUT.png (default: <report folder>/report-screenshot.png).
set -euo pipefail
dir=${1:?usage: screenshot-report.sh REPORT_DIR [OUT.png] [WIDTHxHEIGHT]}
html="$(cd "$dir" && pwd)/report.html"
[ -f "$html" ] || { echo "screenshot-report: $html not found (run selectivbench report first)" >&2; exit 1; }
out=${2:-$dir/report-screenshot.png}
size=${3:-1280x4200}
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "screenshot-report: chromium not found (sudo apt-get install chromium)" >&2; exit 1; }
out_abs="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
# --no-sandbox: Chromium refuses to run as root with its sandbox (containers, CI machines).
"$browser" --headless=new --no-sandbox --disable-gpu --hide-scrollbars \
  --window-size="${size/x/,}" --screenshot="$out_abs" "file://$html" 2> /tmp/screenshot-report.$$.log \
  || { cat /tmp/screenshot-report.$$.log >&2; exit 1; }
rm -f /tmp/screenshot-report.$$.log
echo "screenshot-report: $out_abs ($size)"
