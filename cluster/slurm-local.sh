#!/usr/bin/env bash
# A single-node SLURM on this machine, for trying and testing `--cluster slurm` (the tests, .ci/run and the
# README use it). Debian's slurmctld/slurmd/slurm-client/munge, daemons started by hand (no systemd):
#
#   bash cluster/slurm-local.sh start    # install when missing (apt-get; root), configure, start; waits until the node is idle
#   bash cluster/slurm-local.sh status   # sinfo + squeue; exit 0 only when the node answers
#   bash cluster/slurm-local.sh stop     # cancel every job, stop the daemons
#
# The node declares SEISGRID_SLURM_CPUS CPUs (default 8) whatever the machine has (SlurmdParameters=
# config_overrides), so several one-core Dask worker jobs run side by side on a 2-core machine. Process
# tracking is proctrack/linuxproc and there is no task plugin: no cgroups or systemd needed. State, logs and
# spool go to SEISGRID_SLURM_DIR (default /tmp/seisgrid-slurm); the configuration to SLURM_CONF (default
# /etc/slurm/slurm.conf, where sbatch/squeue look without being told).
set -euo pipefail

dir="${SEISGRID_SLURM_DIR:-/tmp/seisgrid-slurm}"
conf="${SLURM_CONF:-/etc/slurm/slurm.conf}"
cpus="${SEISGRID_SLURM_CPUS:-8}"
host="$(hostname -s)"

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sbatch >/dev/null; then
        return
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "slurm-local: slurmctld/slurmd/munge are not installed and this is not root; install them:" >&2
        echo "  apt-get install slurmctld slurmd slurm-client munge" >&2
        exit 1
    fi
    echo "slurm-local: installing slurmctld slurmd slurm-client munge (apt-get, ~30 s)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q slurmctld slurmd slurm-client munge >"$dir/apt.log" 2>&1 \
        || { apt-get update -q >>"$dir/apt.log" 2>&1 && apt-get install -y -q slurmctld slurmd slurm-client munge \
            >>"$dir/apt.log" 2>&1; } || { tail -20 "$dir/apt.log" >&2; exit 1; }
}

configure() {
    local memory_mb
    memory_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    mkdir -p "$dir/state" "$dir/spool" "$(dirname "$conf")"
    cat >"$conf" <<CONF
# Written by cluster/slurm-local.sh: a one-node SLURM for tests and trials, not for production.
ClusterName=seisgrid
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
# no cgroups or systemd here
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
# a killed or cancelled job's processes get this long before SIGKILL
KillWait=5
# run more one-CPU jobs than the machine has cores
SlurmdParameters=config_overrides
NodeName=$host CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

start_munge() {
    if pgrep -x munged >/dev/null; then
        return
    fi
    if [ ! -s /etc/munge/munge.key ]; then
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null; then mungekey --create --force >/dev/null 2>&1 || true; fi
        [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    if id munge >/dev/null 2>&1; then
        chown munge:munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
        chmod 400 /etc/munge/munge.key
        runuser -u munge -- munged
    else
        chmod 400 /etc/munge/munge.key
        munged --force
    fi
}

node_state() {
    sinfo -h -N -o '%t' 2>/dev/null | head -n1
}

start() {
    mkdir -p "$dir"
    install
    configure
    start_munge
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
    local state=""
    for _ in $(seq 1 60); do
        state="$(node_state)"
        case "$state" in
            idle|mix|alloc) break ;;
            down*|drain*) scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    case "$state" in
        idle|mix|alloc) ;;
        *) echo "slurm-local: the node did not come up (state '${state:-none}'); logs in $dir" >&2
           tail -n 5 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 2>/dev/null || true
           exit 1 ;;
    esac
    echo "slurm-local: running ($cpus CPUs on node $host, partition debug; config $conf, logs $dir)" >&2
}

stop() {
    if command -v scancel >/dev/null && pgrep -x slurmctld >/dev/null; then
        scancel --user="$(id -un)" >/dev/null 2>&1 || true
        for _ in $(seq 1 20); do
            [ -z "$(squeue -h 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    pkill -x slurmd 2>/dev/null || true
    pkill -x slurmctld 2>/dev/null || true
    for _ in $(seq 1 20); do
        pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null || break
        sleep 0.25
    done
    echo "slurm-local: stopped" >&2
}

status() {
    if ! pgrep -x slurmctld >/dev/null; then
        echo "slurm-local: not running" >&2
        exit 1
    fi
    sinfo
    squeue
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
