#!/usr/bin/env bash
# Starts a real single-node Slurm cluster on this machine for selectivbench's cluster tests:
# munged, slurmctld and slurmd on this host, one partition "debug" holding this node with all its
# CPUs. Debian 12's slurm-wlm and munge; no systemd needed (the daemons are started directly) and
# no cgroups (processes are tracked through /proc). Idempotent: a call while the cluster is up only
# checks it. Each fresh start begins with no jobs left from before (slurmctld -c).
#
# Usage: scripts/slurm/start-local.sh [STATE_DIR]
#   STATE_DIR (or $SELECTIVBENCH_SLURM_DIR; default /var/lib/selectivbench-slurm) holds slurm.conf,
#   the daemons' logs and pid files, and their spool folders. /etc/slurm/slurm.conf is linked to
#   STATE_DIR/slurm.conf when that path is free, so sbatch, squeue, sinfo and scontrol find the
#   cluster as they are; in any case the one line on stdout is `export SLURM_CONF=...`, so
#   `eval "$(scripts/slurm/start-local.sh)"` sets it. Progress goes to stderr.
#   SELECTIVBENCH_SLURM_TIMEOUT: seconds to wait for the node to take a job once the daemons are
#   started (default 60).
# Stop it with scripts/slurm/stop-local.sh [STATE_DIR].
set -euo pipefail

state=$(realpath -m "${1:-${SELECTIVBENCH_SLURM_DIR:-/var/lib/selectivbench-slurm}}")
timeout_s=${SELECTIVBENCH_SLURM_TIMEOUT:-60}

# The daemons run as root (SlurmUser=root), so the whole script does; jobs still run as whoever
# submits them.
if [ "$(id -u)" -ne 0 ]; then
  exec sudo SELECTIVBENCH_SLURM_TIMEOUT="$timeout_s" "$(realpath "$0")" "$state"
fi

say() { echo "start-local: $*" >&2; }
t0_real=$EPOCHREALTIME

# --- packages ------------------------------------------------------------------------------------
missing=()
for p in slurm-wlm munge; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${missing[@]}" >&2
fi

conf=$state/slurm.conf
ctld_pidfile=$state/slurmctld.pid
slurmd_pidfile=$state/slurmd.pid
export SLURM_CONF=$conf

# Whether process PID still runs; a zombie (ended, not yet reaped) does not.
alive() {
  local s
  for s in /proc/"$1"/task/*/stat; do
    [ -r "$s" ] && [ "$(awk '{print $3}' "$s" 2>/dev/null)" != Z ] && return 0
  done
  return 1
}

# The pid in FILE when that process is alive and runs NAME (slurmctld, slurmd, munged), else nothing.
live_pid() {
  local file=$1 name=$2 pid
  [ -s "$file" ] || return 1
  pid=$(tr -dc 0-9 <"$file")
  [ -n "$pid" ] && alive "$pid" || return 1
  case "$(cat "/proc/$pid/comm")" in "$name" | "$name"-wlm) echo "$pid" ;; *) return 1 ;; esac
}

# TERM, then KILL after 30 s; returns once the process is gone.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 300; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

show_logs() {
  local f
  for f in "$state/munge/munged.log" "$state/slurmctld.log" "$state/slurmd.log"; do
    [ -s "$f" ] || continue
    echo "---- last lines of $f" >&2
    tail -n 20 "$f" >&2
  done
}

fail() {
  show_logs
  say "FAILED: $*"
  say "(scripts/slurm/stop-local.sh $state stops what did start)"
  exit 1
}

# --- munge: Slurm's daemons and clients authenticate each other through it -------------------------
munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
mkdir -p "$state"
chmod 0755 "$state" # clients of every user read slurm.conf here
if munge_ok; then
  say "munged already running"
else
  # munged insists that the key belongs to its user and is readable by nobody else.
  if [ ! -s /etc/munge/munge.key ]; then
    say "creating /etc/munge/munge.key"
    install -d -o munge -g munge -m 0700 /etc/munge
    mungekey --create --keyfile=/etc/munge/munge.key
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge # the default socket, which Slurm uses
  install -d -o munge -g munge -m 0700 "$state/munge"
  say "starting munged"
  runuser -u munge -- munged --pid-file="$state/munge/munged.pid" \
    --log-file="$state/munge/munged.log" --seed-file="$state/munge/munged.seed" ||
    fail "munged did not start"
  touch "$state/munge/started-here" # stop-local.sh stops only a munged started here
  for ((i = 0; i < 50; i++)); do munge_ok && break; sleep 0.2; done
  munge_ok || fail "munge does not answer (munge -n | unmunge)"
fi

# --- slurm.conf ----------------------------------------------------------------------------------
# The node is this host under its short hostname (what slurmd looks for and what jobs see as
# $(hostname)), reached on 127.0.0.1, so no name resolution is needed.
host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) * 95 / 100 / 1024))
new_conf=$(
  cat <<EOF
# Written by scripts/slurm/start-local.sh: a single-node Slurm cluster for selectivbench's tests.
ClusterName=selectivbench
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$state/slurmctld
SlurmdSpoolDir=$state/slurmd
SlurmctldPidFile=$ctld_pidfile
SlurmdPidFile=$slurmd_pidfile
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: processes are tracked through /proc, tasks are not confined, nothing is accounted.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
# Cores are handed out one by one, so the tasks of an array run side by side.
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# The CPUs and memory below are taken as written even where slurmd counts other hardware, and a
# node that was down comes back by itself when its slurmd registers again.
SlurmdParameters=config_overrides
ReturnToService=2
MailProg=/bin/true
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus Sockets=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
)

ctld_pid=$(live_pid "$ctld_pidfile" slurmctld || true)
slurmd_pid=$(live_pid "$slurmd_pidfile" slurmd || true)
if [ -n "$ctld_pid$slurmd_pid" ] && [ "$new_conf" != "$(cat "$conf" 2>/dev/null)" ]; then
  say "slurm.conf changed (hostname, CPUs or memory): restarting the daemons"
  [ -z "$slurmd_pid" ] || stop_pid "$slurmd_pid"
  [ -z "$ctld_pid" ] || stop_pid "$ctld_pid"
  ctld_pid='' slurmd_pid=''
fi

# Another Slurm on this machine would hold the same ports.
for name in slurmctld slurmd; do
  for pid in $(pgrep -x "$name" || true) $(pgrep -x "$name-wlm" || true); do
    # (a daemon just stopped can linger as a zombie until it is reaped: that one does not count)
    [ "$pid" = "$ctld_pid" ] || [ "$pid" = "$slurmd_pid" ] || ! alive "$pid" ||
      fail "$name (pid $pid) runs, but not from $state; stop that Slurm first"
  done
done

printf '%s\n' "$new_conf" >"$conf.tmp"
mv "$conf.tmp" "$conf"
mkdir -p "$state/slurmctld" "$state/slurmd"
touch "$state/slurmctld.log" "$state/slurmd.log"
chmod 0644 "$state/slurmctld.log" "$state/slurmd.log" # readable by the tests' user when they fail

# The default path, so that the tests' sbatch/squeue/sinfo need no SLURM_CONF; an existing
# configuration that is not ours is left alone.
etc_conf=/etc/slurm/slurm.conf
etc_conf_free() { # missing, a dangling link, or a link to a file written by this script
  [ -L "$etc_conf" ] || [ ! -e "$etc_conf" ] || return 1
  [ ! -e "$etc_conf" ] || head -n1 "$etc_conf" | grep -q 'scripts/slurm/start-local.sh'
}
mkdir -p /etc/slurm
if etc_conf_free; then
  ln -sfn "$conf" "$etc_conf"
elif [ "$(realpath "$etc_conf")" != "$conf" ]; then
  say "note: $etc_conf is another configuration; export SLURM_CONF=$conf to reach this cluster"
fi

# --- daemons (both fork into the background and log to STATE_DIR) --------------------------------
t0=$SECONDS # the wait below is counted from here, after any installation
if [ -z "$ctld_pid" ]; then
  say "starting slurmctld"
  slurmctld -c -f "$conf" || fail "slurmctld did not start"
fi
if [ -z "$slurmd_pid" ]; then
  say "starting slurmd"
  slurmd -f "$conf" || fail "slurmd did not start"
fi

# --- wait until the node takes jobs --------------------------------------------------------------
node_state=''
while ((SECONDS - t0 < timeout_s)); do
  # A daemon that fails (a port in use, a bad slurm.conf) exits soon after forking.
  if ((SECONDS - t0 >= 2)); then
    live_pid "$ctld_pidfile" slurmctld >/dev/null || fail "slurmctld exited (its log is above)"
    live_pid "$slurmd_pidfile" slurmd >/dev/null || fail "slurmd exited (its log is above)"
  fi
  node_state=$(timeout 5 sinfo -h -N -n "$host" -o %T 2>/dev/null | head -n1 || true)
  case "$node_state" in idle | mixed | allocated | completing) break ;; esac
  sleep 0.5
done
case "$node_state" in
  idle | mixed | allocated | completing) ;;
  *) fail "node $host is '${node_state:-not reported}' after ${timeout_s} s (sinfo)" ;;
esac
# A real job proves munge, slurmctld, slurmd and slurmstepd together; a busy node has proved it.
if [ "$node_state" = idle ]; then
  left=$((timeout_s - (SECONDS - t0)))
  ((left > 5)) || left=5
  timeout "$left" srun -N1 -n1 -p debug -t 1 -J start-local-check true >&2 ||
    fail "the test job (srun -N1 true) did not run"
fi

took=$(awk -v a="$t0_real" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')
say "$(sinfo -V) up after $took s: node $host, $cpus CPUs, partition debug ($node_state)"
echo "export SLURM_CONF=$conf"
