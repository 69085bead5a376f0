#!/usr/bin/env bash
# collect and report as users run them (README "Reading results"), on two small CPU sweeps in two
# folders: a sweep over test.gap.duration with a uniform-duration table among its values, and an
# `evaluate` of one run under another condition. The CSV is read back with Python's csv module
# (strict), the JSONL with its json module and the HTML with its XML parser; every row must equal
# its summary.json and every number in the report's tables must equal the one computed here.
# Usage: test_results.sh SELECTIVBENCH SOURCE_DIR WORK_DIR
set -uo pipefail
SB=$1; SRC=$2; WORK=$3
rm -rf "$WORK"; mkdir -p "$WORK"; cd "$WORK"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

cat > gaps.toml <<'TOML'
[task]
name = "gaps"
protocol = "clean"
seed = 1
labels = "state"
[grammar]
vocab = 9
ambiguities = 8
ambiguity_depth = 3
[sequence]
length = 12
max_string_length = 10
[train]
size = 96
[test]
size = 16
[test.gap]
duration = [0.1, 0.2, { dist = "uniform", low = 0.1, high = 0.3 }]
TOML
cat > a.toml <<'TOML'
[benchmark]
name = "results-a"
tasks = ["gaps.toml"]
models = ["gla", "transformer"]
widths = [16]
layers = [1]
seeds = [1, 2]
learning_rates = [1e-2, 3e-3]
warmups = [1]
[training]
batch_size = 8
max_updates = 16
eval_every = 8
threads = 1
TOML
sed -e 's/results-a/results-b/' -e 's/models = .*/models = ["linear_attention"]/' \
    -e 's/widths = .*/widths = [16, 32]/' a.toml > b.toml

# A trained task and one that evaluates its models under longer gaps (as task 4 tests task 2).
sed -e 's/^name = "gaps"/name = "plain"/' -e 's/^duration = .*/duration = 0.1/' gaps.toml > plain.toml
sed -e 's/^name = "gaps"/name = "longgaps"/' -e 's/^duration = .*/duration = [0.2, 0.5]/' \
    -e 's/^labels = "state"/labels = "state"\nevaluates = "plain"/' gaps.toml > longgaps.toml
sed -e 's/results-a/results-c/' -e 's/tasks = .*/tasks = ["plain.toml", "longgaps.toml"]/' \
    -e 's/models = .*/models = ["gla"]/' -e 's/seeds = .*/seeds = [1]/' a.toml > c.toml

"$SB" run a.toml --out runs/a > a.log 2>&1 || fail "run a: exit $?"
"$SB" run c.toml --out runs/c > c.log 2>&1 || fail "run c: exit $? $(tail -3 c.log)"
"$SB" run b.toml --out runs/b > b.log 2>&1 || fail "run b: exit $?"
first_run=$(dirname "$(ls runs/a/*/gla_*/summary.json | head -1)")
"$SB" evaluate "$first_run" gaps.toml --set test.gap.duration=0.5 > evaluate.json 2> evaluate.err \
  || fail "evaluate: exit $? $(cat evaluate.err)"
ls "$first_run"/evaluations/*.json > /dev/null 2>&1 && ok "evaluate wrote its record" \
  || fail "evaluate left no record in $first_run/evaluations"
# In another precision: a second record, which says its precision.
"$SB" evaluate "$first_run" gaps.toml --set test.gap.duration=0.5 --dtype bfloat16 > evaluate_bf16.json 2> evaluate.err \
  || fail "evaluate --dtype: exit $? $(cat evaluate.err)"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["dtype"]=="bfloat16", r["dtype"]; assert "dtype_bfloat16" in r["record"], r["record"]' \
  evaluate_bf16.json && ok "evaluate --dtype bfloat16 evaluates in bfloat16" \
  || fail "evaluate --dtype: $(head -c 400 evaluate_bf16.json)"

# A transformer run recorded before `double_residual` was a transformer option: `evaluate` takes it
# from the run's reference_quirks. Copies of a run without the option: quirks off evaluates as the
# run itself, quirks on as the double residual (another network, so another loss).
transformer_run=$(dirname "$(ls runs/a/*/transformer_*/summary.json | head -1)")
for quirks in false true; do
  rm -rf "legacy_$quirks"; cp -r "$transformer_run" "legacy_$quirks"
  jq ".training.reference_quirks = $quirks | del(.model.plugin_options.transformer.double_residual)" \
    "$transformer_run/config.json" > "legacy_$quirks/config.json"
  "$SB" evaluate "legacy_$quirks" gaps.toml --set test.gap.duration=0.5 > "legacy_$quirks.json" 2> evaluate.err \
    || fail "evaluate legacy_$quirks: exit $? $(cat evaluate.err)"
done
"$SB" evaluate "$transformer_run" gaps.toml --set test.gap.duration=0.5 > transformer_now.json 2> evaluate.err \
  || fail "evaluate $transformer_run: exit $? $(cat evaluate.err)"
python3 - transformer_now.json legacy_false.json legacy_true.json <<'PY' \
  && ok "evaluate of a run recorded before double_residual follows its reference_quirks" \
  || fail "evaluate of legacy transformer runs"
import json, sys
now, off, on = (json.load(open(f))["test_loss"] for f in sys.argv[1:])
assert abs(now - off) < 1e-12, (now, off)
assert abs(now - on) > 1e-6, (now, on)
PY

"$SB" collect runs > runs.csv 2> collect.err || fail "collect csv: exit $? $(cat collect.err)"
"$SB" collect runs/a runs/b runs/c --format jsonl --out runs.jsonl 2>> collect.err || fail "collect jsonl: exit $?"
"$SB" collect runs --format md > runs.md 2>> collect.err || fail "collect md: exit $?"
"$SB" collect runs/a/results.csv > /dev/null 2>&1; code=$?
[ "$code" = 2 ] && ok "collect of a file exits 2" || fail "collect of a file: exit $code, expected 2"

if python3 - <<'PY'; then ok "collect rows equal summaries; CSV and JSONL read back"; else fail "collect: rows differ from the summaries (above)"; fi
import csv, glob, json, math, os, sys
bad = []
with open("runs.csv", newline="") as f:
    rows = list(csv.DictReader(f, strict=True))
with open("runs.jsonl") as f:
    objects = [json.loads(line) for line in f]
summaries = sorted(glob.glob("runs/*/*/*/summary.json"))
evaluations = sorted(glob.glob("runs/*/*/*/evaluations/*.json"))
if len(rows) != len(summaries) + len(evaluations):
    bad.append(f"{len(rows)} CSV rows for {len(summaries)} runs and {len(evaluations)} evaluations")
if len(objects) != len(rows):
    bad.append(f"{len(objects)} JSONL objects, {len(rows)} CSV rows")
if "test.gap.duration" not in rows[0]:
    bad.append("no test.gap.duration column")
by_dir = {r["dir"]: r for r in rows}
obj_by_dir = {o["dir"]: o for o in objects}
for path in summaries:
    s = json.load(open(path))
    d = os.path.dirname(path)
    r, o = by_dir.get(d), obj_by_dir.get(d)
    if r is None or o is None:
        bad.append(f"{d}: no row"); continue
    for key in ("model", "status", "benchmark", "dtype"):
        if r[key] != str(s[key]): bad.append(f"{d}: {key} {r[key]!r} != {s[key]!r}")
    for key in ("width", "layers", "seed", "updates", "parameters"):
        if key not in s and r[key] == "" and o[key] is None: continue  # an evaluation has none
        if int(r[key]) != s[key] or o[key] != s[key]: bad.append(f"{d}: {key} {r[key]} != {s.get(key)}")
    for key in ("lr", "test_acc", "best_acc", "test_loss", "tokens_per_s", "wall_seconds"):
        if key not in s and r[key] == "" and o[key] is None: continue
        if float(r[key]) != s[key] or o[key] != s[key]:  # full precision: exactly equal
            bad.append(f"{d}: {key} {r[key]} != {s[key]!r}")
    variant = s["variant"].get("test.gap.duration", "")
    if r["test.gap.duration"] != variant: bad.append(f"{d}: axis {r['test.gap.duration']!r} != {variant!r}")
    want = None if not variant else float(variant) if not variant.startswith("{") else variant
    if o["test.gap.duration"] != want: bad.append(f"{d}: JSONL axis {o['test.gap.duration']!r} != {want!r}")
    kind = "evaluated" if "trained_run" in s else "trained"
    if r["task"] != s["task_name"] or r["kind"] != kind: bad.append(f"{d}: task {r['task']} kind {r['kind']}")
    if kind == "evaluated" and (r["trained_run"] != s["trained_run"] or r["status"] != "evaluated"):
        bad.append(f"{d}: evaluated row {r['trained_run']} {r['status']}")
evaluated = [r for r in rows if r["task"] == "longgaps"]
if sorted(r["test.gap.duration"] for r in evaluated) != ["0.2", "0.2", "0.5", "0.5"]:
    bad.append(f"longgaps rows: {[r['test.gap.duration'] for r in evaluated]}")
tables = [r for r in rows if r["test.gap.duration"].startswith("{ dist")]
if not tables or '"uniform"' not in tables[0]["test.gap.duration"]:
    bad.append("the uniform-duration variant did not survive the CSV")
for path in evaluations:
    e = json.load(open(path))
    r = by_dir.get(path)
    if r is None: bad.append(f"{path}: no row"); continue
    if r["status"] != "evaluated" or float(r["test_acc"]) != e["test_acc"] or r["test.gap.duration"] != "0.5":
        bad.append(f"{path}: row {r['status']} {r['test_acc']} {r['test.gap.duration']} != {e['test_acc']}")
benchmarks = sorted({r["benchmark"] for r in rows})
if benchmarks != ["results-a", "results-b", "results-c"]: bad.append(f"benchmarks {benchmarks}")
print("\n".join(bad) if bad else f"collect: {len(rows)} rows equal their summaries")
sys.exit(1 if bad else 0)
PY
grep -q "| gaps | 0.5 | gla |" runs.md && ok "collect --format md" || fail "md table lacks the evaluation row"

"$SB" report runs --out report > report.log 2>&1 || fail "report: exit $? $(tail -3 report.log)"
for f in report.md report.html runs.csv runs.jsonl; do
  [ -s "report/$f" ] || fail "report/$f missing or empty"
done
svgs=$(ls report/figures/*.svg 2>/dev/null | wc -l); pngs=$(ls report/figures/*.png 2>/dev/null | wc -l)
[ "$svgs" -ge 3 ] && [ "$svgs" = "$pngs" ] && ok "report drew $svgs figures as SVG and PNG" \
  || fail "report drew $svgs SVG and $pngs PNG figures"
if python3 - <<'PY'; then ok "report HTML parses and its numbers equal the runs"; else fail "report: HTML or its numbers (above)"; fi
import csv, statistics, sys, xml.etree.ElementTree as ET
ns = {"h": "http://www.w3.org/1999/xhtml"}
root = ET.parse("report/report.html").getroot()   # strict XML: a parse error fails the test
bad = []
rows = list(csv.DictReader(open("report/runs.csv", newline="")))
# Expected: per (task, condition, model, width, layers) and seed the best final test accuracy
# over lr x warmup, then the mean over seeds.
best = {}
for r in rows:
    if r["status"] not in ("finished", "diverged", "evaluated") or not r["test_acc"]: continue
    key = (r["task"], r["test.gap.duration"], r["model"], r["width"], r["layers"])
    per_seed = best.setdefault(key, {})
    per_seed[r["seed"]] = max(per_seed.get(r["seed"], 0.0), float(r["test_acc"]))
checked = 0
task = None
for element in root.find("h:body", ns).iter():
    if element.tag == "{%s}h2" % ns["h"]:
        task = element.text[5:] if element.text.startswith("Task ") else None
    if element.tag != "{%s}table" % ns["h"]: continue
    table = element
    header = [th.text for th in table.iter("{%s}th" % ns["h"])]
    if "best over lr × warmup: mean ± sd (seeds)" not in header: continue
    col = header.index("best over lr × warmup: mean ± sd (seeds)")
    for tr in table.find("h:tbody", ns):
        cells = list(tr)
        text = [c.text or "" for c in cells]
        axis = text[header.index("test.gap.duration")] if "test.gap.duration" in header else ""
        key = (task, axis, text[0],
               text[header.index("width")], text[header.index("layers")])
        want = best.get(key)
        if want is None: bad.append(f"table row {key}: no such runs"); continue
        mean = float(cells[col].get("data-mean"))
        if abs(mean - statistics.mean(want.values())) > 1e-12 or int(cells[col].get("data-n")) != len(want):
            bad.append(f"{key}: report {mean} (n {cells[col].get('data-n')}), runs {statistics.mean(want.values())} (n {len(want)})")
        if not cells[col].text.startswith(f"{statistics.mean(want.values()):.4f}"):
            bad.append(f"{key}: shown {cells[col].text}")
        checked += 1
if checked != len(best): bad.append(f"{checked} table rows checked, {len(best)} cells in the runs")
# Findings name only models that ran.
present = {r["model"] for r in rows}
h2 = [e for e in root.iter() if e.tag == "{%s}h2" % ns["h"]]
body = list(root.find("h:body", ns))
i = next(k for k, e in enumerate(body) if e.tag.endswith("h2") and e.text == "Findings")
findings = next(e for e in body[i:] if e.tag.endswith("ul"))
text = " ".join("".join(li.itertext()) for li in findings)
for model in ("transformer", "gla", "linear_attention", "mamba", "mamba2", "delta_net",
              "gated_delta_net", "gated_delta_product", "retnet", "mesa_net"):
    named = f" {model} " in f" {text.replace('(', ' ').replace(',', ' ')} "
    if named and model not in present: bad.append(f"findings name {model}, which has no runs")
for model in present:
    if model not in text: bad.append(f"findings do not rank {model}")
if "figure" not in {e.tag.split('}')[1] for e in root.iter()}: bad.append("no figure in the HTML")
print("\n".join(bad) if bad else f"report: {checked} table rows equal the runs; findings name only {sorted(present)}")
sys.exit(1 if bad else 0)
PY
[ -s report/figures/longgaps_vs_test.gap.duration_d16.svg ] && ok "report draws the evaluations against the gap" \
  || fail "no figure of longgaps against test.gap.duration"
grep -q "^## Views not drawn" report/report.md && grep -q "task2 (accuracy per model and width): no results" report/report.md \
  && ok "report says which views are missing" || fail "report does not list the missing views"

[ "$failures" = 0 ] && echo "all results checks passed" || echo "$failures results check(s) failed"
[ "$failures" = 0 ]
