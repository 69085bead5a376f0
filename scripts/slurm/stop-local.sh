#!/usr/bin/env bash
# Stops the single-node Slurm cluster of scripts/slurm/start-local.sh: cancels the jobs left in it
# (so none of their processes outlives the cluster), then stops slurmd, slurmctld, and munged when
# start-local.sh started it. Idempotent: stopping a stopped cluster does nothing. Bounded: each
# daemon gets 30 s after TERM, then KILL.
#
# Usage: scripts/slurm/stop-local.sh [STATE_DIR]   (the same STATE_DIR as start-local.sh; default
#        $SELECTIVBENCH_SLURM_DIR or /var/lib/selectivbench-slurm). Logs stay in STATE_DIR.
set -euo pipefail

state=$(realpath -m "${1:-${SELECTIVBENCH_SLURM_DIR:-/var/lib/selectivbench-slurm}}")
if [ "$(id -u)" -ne 0 ]; then exec sudo "$(realpath "$0")" "$state"; fi

say() { echo "stop-local: $*" >&2; }
export SLURM_CONF=$state/slurm.conf

# Whether process PID still runs; a zombie (ended, not yet reaped) does not.
alive() {
  local s
  for s in /proc/"$1"/task/*/stat; do
    [ -r "$s" ] && [ "$(awk '{print $3}' "$s" 2>/dev/null)" != Z ] && return 0
  done
  return 1
}

# The pid in FILE when that process is alive and runs NAME, else nothing.
live_pid() {
  local file=$1 name=$2 pid
  [ -s "$file" ] || return 1
  pid=$(tr -dc 0-9 <"$file")
  [ -n "$pid" ] && alive "$pid" || return 1
  case "$(cat "/proc/$pid/comm")" in "$name" | "$name"-wlm) echo "$pid" ;; *) return 1 ;; esac
}

# Stops the NAME daemon whose pid is in FILE: TERM, then KILL after 30 s.
stop_daemon() {
  local name=$1 file=$2 pid i
  pid=$(live_pid "$file" "$name") || { rm -f "$file"; return 0; }
  say "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  # the pid itself is watched: a daemon may remove its pid file before it has finished
  for ((i = 0; i < 300; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    say "$name did not stop within 30 s: KILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

# Jobs first, while slurmctld and slurmd can still end them (KillWait: TERM, then KILL after 30 s).
if live_pid "$state/slurmctld.pid" slurmctld >/dev/null && live_pid "$state/slurmd.pid" slurmd >/dev/null; then
  if [ -n "$(squeue -h -o %i 2>/dev/null)" ]; then
    say "cancelling the jobs left in the cluster"
    scancel --partition=debug 2>/dev/null || true
    for ((i = 0; i < 80; i++)); do
      [ -n "$(squeue -h -o %i 2>/dev/null)" ] || break
      sleep 0.5
    done
    [ -z "$(squeue -h -o %i 2>/dev/null)" ] || say "warning: jobs still listed after 40 s: $(squeue -h -o %i | xargs)"
  fi
fi

stop_daemon slurmd "$state/slurmd.pid"
stop_daemon slurmctld "$state/slurmctld.pid"
if [ -e "$state/munge/started-here" ]; then
  stop_daemon munged "$state/munge/munged.pid"
  rm -f "$state/munge/started-here"
fi
say "stopped"
