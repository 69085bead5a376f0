#!/usr/bin/env bash
# Sweeps as users run them, with real processes on one output folder (README "Running a sweep on
# several GPUs or a cluster"): two workers and --jobs 2 train every run once with the results of
# one worker; a worker killed with -9 is taken over and its run resumed; SIGTERM leaves a resumable
# run; a sweep with a problem exits 3 (2 for the command line) before making any folder.
# A run that fails says so on one line of stderr and keeps its whole reason in its folder.
# Usage: test_sweep.sh SELECTIVBENCH SOURCE_DIR WORK_DIR FIXTURE_PLUGIN_DIR
set -uo pipefail
SB=$1; SRC=$2; WORK=$3; FIXTURES=$4
rm -rf "$WORK"; mkdir -p "$WORK"; cd "$WORK"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

# Four small runs (two models x two seeds), a few seconds each on one core.
cat > tiny.toml <<TOML
[benchmark]
name = "tiny"
tasks = ["$SRC/tasks/quickstart.toml"]
task_set = ["train.size=96", "test.size=16", "sequence.length=12", "sequence.max_string_length=10"]
models = ["gla", "transformer"]
widths = [16]
layers = [1]
seeds = [1, 2]
learning_rates = [1e-2]
warmups = [1]
[training]
batch_size = 8
max_updates = 24
eval_every = 8
threads = 1
TOML
# One longer run, to be killed or stopped while it trains.
sed -e 's/max_updates = 24/max_updates = 4000/' -e 's/eval_every = 8/eval_every = 20/' \
    -e 's/models = .*/models = ["gla"]/' -e 's/seeds = .*/seeds = [1]/' tiny.toml > long.toml

# Every run of OUT has a summary, one "run ..." start line in its log per start, and metrics
# without a repeated update.
check_once() {
  local out=$1 what=$2 runs=0
  for dir in "$out"/*/*/; do
    [ -f "$dir/config.json" ] || continue
    runs=$((runs + 1))
    [ -f "$dir/summary.json" ] || fail "$what: $dir has no summary"
    local dups
    dups=$(jq -r .update "$dir/metrics.jsonl" | sort | uniq -d | wc -l)
    [ "$dups" = 0 ] || fail "$what: $dir/metrics.jsonl repeats an update"
    [ "$(jq -r .update "$dir/metrics.jsonl" | wc -l)" = 3 ] || fail "$what: $dir has not 3 evaluations"
    [ "$(grep -c '^run ' "$dir/log.txt")" = 1 ] || fail "$what: $dir was started more than once"
    [ "$(ls "$dir/claims" | wc -l)" = 1 ] || fail "$what: $dir was claimed more than once"
  done
  [ "$runs" = 4 ] || fail "$what: $runs run folders, expected 4"
}
# "model seed test_acc test_loss" of every run, sorted: equal across worker counts.
results_of() { for s in "$1"/*/*/summary.json; do jq -r '[.model, .seed, .test_acc, .test_loss] | @tsv' "$s"; done | sort; }

# 1. One worker, the reference.
"$SB" run tiny.toml --out one > one.log 2>&1 || fail "one worker: exit $?"
check_once one "one worker"

# 2. Two workers started at once on one folder.
"$SB" run tiny.toml --out two > two_a.log 2>&1 & a=$!
"$SB" run tiny.toml --out two > two_b.log 2>&1 & b=$!
wait $a || fail "worker a: exit $?"
wait $b || fail "worker b: exit $?"
check_once two "two workers"
[ "$(results_of one)" = "$(results_of two)" ] || fail "two workers: results differ from one worker's"
grep -q "finished" two_a.log && grep -q "finished" two_b.log && ok "both workers trained runs" ||
  echo "note: one worker trained every run (the other found none free)"

# 3. --jobs 2: two child workers, the cores split.
"$SB" run tiny.toml --out jobs --jobs 2 > jobs.log 2>&1 || fail "--jobs 2: exit $?"
check_once jobs "--jobs 2"
[ "$(results_of one)" = "$(results_of jobs)" ] || fail "--jobs 2: results differ from one worker's"
grep -q "worker cpu1" jobs.log || fail "--jobs 2 did not start worker cpu1"
[ "$(jq -r .worker jobs/*/*/summary.json | sort -u | wc -l)" -ge 1 ] || fail "--jobs 2: no worker names"
[ "$(jq -r .threads jobs/*/*/summary.json | sort -u)" = 1 ] || fail "--jobs 2: a worker did not get 1 thread"
ok "one worker, two workers, --jobs 2"

wait_for_checkpoint() {  # $1: run folder; up to 60 s
  for _ in $(seq 600); do [ -f "$1/checkpoints/last.pt" ] && return 0; sleep 0.1; done
  return 1
}

# 4. kill -9 while training: the next worker takes the dead claim over and resumes.
"$SB" run long.toml --out killed > killed_1.log 2>&1 & k=$!
long_dir=killed/quickstart/gla_d16_L1_s1_lr0.01_w1
wait_for_checkpoint "$long_dir" || fail "kill -9: no checkpoint within 60 s"
kill -9 $k; wait $k 2>/dev/null
[ -f "$long_dir/summary.json" ] && fail "kill -9: the run finished before it was killed"
"$SB" run long.toml --out killed --set training.max_updates=4000 > killed_2.log 2>&1 || fail "take-over worker: exit $?"
grep -q "took over from a dead claim" "$long_dir/log.txt" || fail "kill -9: no take-over in the log"
grep -q "resuming from" "$long_dir/log.txt" || fail "kill -9: the run did not resume"
[ "$(jq -r .status "$long_dir/summary.json")" = finished ] || fail "kill -9: not finished"
[ "$(jq -r .update "$long_dir/metrics.jsonl" | sort | uniq -d | wc -l)" = 0 ] || fail "kill -9: an update twice in metrics.jsonl"
[ "$(jq -r .update "$long_dir/metrics.jsonl" | wc -l)" = 200 ] || fail "kill -9: not 200 evaluations"
[ "$(ls "$long_dir/claims" | wc -l)" = 2 ] || fail "kill -9: expected two claims"
ok "kill -9 and take-over"

# 5. SIGTERM: checkpoint, release, exit 143; the same sweep resumes, even when its file is spelt
# another way (absolute, from another working folder) and names its task by a relative path.
rel_task=$(realpath --relative-to="$WORK" "$SRC/tasks/quickstart.toml")
sed "s|^tasks = .*|tasks = [\"$rel_task\"]|" long.toml > termed.toml
"$SB" run termed.toml --out termed > termed_1.log 2>&1 & t=$!
t_dir=termed/quickstart/gla_d16_L1_s1_lr0.01_w1
wait_for_checkpoint "$t_dir" || fail "SIGTERM: no checkpoint within 60 s"
kill -TERM $t; wait $t; code=$?
[ "$code" = 143 ] || fail "SIGTERM: exit $code, expected 143"
grep -q "stopped by signal 15" termed_1.log || fail "SIGTERM: no stop message"
[ -f "$t_dir/summary.json" ] && fail "SIGTERM: a summary was written for an unfinished run"
[ "$(jq -r .released "$t_dir/claims/000001.json")" = interrupted ] || fail "SIGTERM: claim not released"
(cd / && "$SB" run "$WORK/termed.toml" --out "$WORK/termed") > termed_2.log 2>&1 \
  || fail "resume after SIGTERM (file spelt another way): exit $?: $(tail -3 termed_2.log)"
[ "$(jq -r .resumed_from_update "$t_dir/summary.json")" -gt 0 ] || fail "SIGTERM: not resumed"
[ "$(jq -r .update "$t_dir/metrics.jsonl" | sort | uniq -d | wc -l)" = 0 ] || fail "SIGTERM: an update twice"
ok "SIGTERM leaves a resumable run"

# 6. Preflight: every problem before the first folder.
expect_exit() {  # code, regex, args...
  local code=$1 regex=$2; shift 2
  "$SB" "$@" > pre.log 2>&1; local got=$?
  [ "$got" = "$code" ] || { fail "$* exited $got, expected $code: $(tail -2 pre.log)"; return; }
  grep -Eq -e "$regex" pre.log || fail "$*: output does not match '$regex': $(tail -2 pre.log)"
}
printf '[plugins.gla]\nchunk_sise = 8\n' | cat tiny.toml - > badopt.toml
expect_exit 3 "badopt.toml.*chunk_sise.*chunk_size" run badopt.toml --out pre1
sed 's/models = .*/models = ["gla", "mamba_typo"]/' tiny.toml > badmodel.toml
expect_exit 3 "mamba_typo" run badmodel.toml --out pre2
printf '[plugins.mamba]\nd_state = 8\n' | cat tiny.toml - > unused.toml
expect_exit 3 "plugins.mamba.*no model of the grid uses" run unused.toml --out pre3
if ! "$SB" run tiny.toml --device cuda --dry-run > /dev/null 2>&1; then
  expect_exit 2 "CUDA is not available" run tiny.toml --out pre4 --device cuda
  expect_exit 3 "training.device.*CUDA is not available" run tiny.toml --out pre5 --set 'training.device="cuda"'
  expect_exit 2 "no CUDA device" run tiny.toml --out pre6 --gpus all
fi
expect_exit 2 "--gpus or --device" run tiny.toml --out pre7 --gpus 0 --device cpu
for d in pre1 pre2 pre3 pre4 pre5 pre6 pre7; do [ -e "$d" ] && fail "preflight made $d"; done
ok "preflight"

# A run whose plugin throws in forward: exit 1, the other run finished, on stderr exactly one
# line for the failure (naming the run and error.txt), on stdout one line for it too, and the
# reason in the run's error.txt and summary.json.
sed 's/models = .*/models = ["misbehaving", "gla"]/; s/seeds = .*/seeds = [1]/' tiny.toml > failing.toml
printf '[plugins.misbehaving]\nbehaviour = "throw_in_forward"\n' >> failing.toml
"$SB" run failing.toml --out failing --plugin-path "$FIXTURES" > failing.out 2> failing.err; code=$?
[ "$code" = 1 ] && ok "a failed run exits 1" || fail "a failed run: exit $code, expected 1"
run_dir=$(ls -d failing/*/misbehaving_*)
[ "$(wc -l < failing.err)" = 1 ] && grep -q "^error: run $run_dir failed: .*misbehaving forward (as asked) (the whole reason: $run_dir/error.txt)$" failing.err \
  && ok "a failed run: one line on stderr" || fail "a failed run's stderr: $(cat failing.err)"
[ "$(grep -c "misbehaving" failing.out)" -ge 1 ] && ! grep -q "Exception raised\|frame #" failing.out failing.err \
  && ok "a failed run: no backtrace on stdout or stderr" || fail "a failed run's stdout: $(cat failing.out)"
grep -q "misbehaving forward (as asked)" "$run_dir/error.txt" && grep -q '"status": "failed"' "$run_dir/summary.json" \
  && ok "a failed run keeps its reason in error.txt and summary.json" || fail "no reason in $run_dir"
ls failing/*/gla_*/summary.json > /dev/null 2>&1 && ok "the run after a failed one finished" \
  || fail "the run after the failed one did not finish"

# --dry-run says what a worker would do with each run: skip the finished and the failed ones
# (unless --retry-failed), train the others; a fresh folder has every run to do.
"$SB" run failing.toml --out failing --plugin-path "$FIXTURES" --dry-run > dry.out 2>&1 || fail "dry run: exit $?"
grep -q "misbehaving_.* failed: skipped (--retry-failed runs it again)$" dry.out \
  && grep -q "gla_.* done (finished): skipped$" dry.out && grep -q "^sweep: 1/2 done, 0 running, 1 failed, 0 left" dry.out \
  && ok "dry run marks finished and failed runs" || fail "dry run: $(cat dry.out)"
"$SB" run failing.toml --out failing --plugin-path "$FIXTURES" --dry-run --retry-failed > dry.out 2>&1
grep -q "misbehaving_.* failed: runs again (--retry-failed)$" dry.out && ok "dry run with --retry-failed" \
  || fail "dry run with --retry-failed: $(cat dry.out)"
"$SB" run failing.toml --out fresh --plugin-path "$FIXTURES" --dry-run > dry.out 2>&1
[ "$(grep -c " to run$" dry.out)" = 2 ] && [ ! -e fresh ] && ok "dry run of a fresh folder" \
  || fail "dry run of a fresh folder: $(cat dry.out)"

echo "test_sweep: $failures failure(s)"
[ "$failures" = 0 ]
