#!/usr/bin/env bash
# A real single-node Slurm on this machine for tests/integration/test_slurm.py:
# munged, slurmctld and slurmd from the distribution's packages, partition
# "debug", the node on 127.0.0.1. Idempotent: installs only what is missing,
# writes slurm.conf only where none is (or where this script wrote it, for
# another host name or core count), starts only the daemons not running, and
# waits until sinfo shows the node ready. A slurm.conf someone else wrote (a
# real cluster's) is never touched. Needs root; takes ~10 s from nothing.
set -euo pipefail

MARK="# written by trainwatch tests/integration/slurm_up.sh"
CONF=/etc/slurm/slurm.conf

if [ "$(id -u)" != 0 ]; then
    echo "slurm_up.sh: must run as root (installs packages, starts daemons)" >&2
    exit 1
fi

missing=""
command -v slurmctld >/dev/null 2>&1 || missing="$missing slurmctld"
command -v slurmd >/dev/null 2>&1 || missing="$missing slurmd"
command -v sbatch >/dev/null 2>&1 || missing="$missing slurm-client"
command -v munged >/dev/null 2>&1 || [ -x /usr/sbin/munged ] || missing="$missing munge"
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    log=$(mktemp)
    # shellcheck disable=SC2086 # one word per package
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; } >"$log" 2>&1; then
        cat "$log" >&2
        exit 1
    fi
    rm -f "$log"
fi

# munge: a key, its socket folder, the daemon (as the munge user).
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null 2>&1; then
        mungekey -c -f -k /etc/munge/munge.key
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! pgrep -x munged >/dev/null; then
    # --force: a socket left by a munged that was killed (CI ends the session's
    # processes) would otherwise stop it from starting.
    su -s /bin/sh munge -c "/usr/sbin/munged --force"
fi

host=$(hostname -s)
cpus=$(nproc)
wanted="$MARK
ClusterName=tw
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmUser=root
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
JobCompType=jobcomp/none
MpiDefault=none
KillWait=2
OverTimeLimit=0
InactiveLimit=0
MinJobAge=300
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
restart=""
if [ ! -e "$CONF" ] || { head -n1 "$CONF" | grep -qxF "$MARK" && [ "$(cat "$CONF")" != "$wanted" ]; }; then
    mkdir -p /etc/slurm
    printf '%s\n' "$wanted" >"$CONF"
    restart=yes
fi
mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm

if [ -n "$restart" ]; then
    # Our own daemons from an older slurm.conf: reconfigure them (never kill a cluster's).
    if pgrep -x slurmctld >/dev/null; then scontrol reconfigure || true; fi
fi
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd

for _ in $(seq 1 60); do
    state=$(sinfo -h -N -n "$host" -o %t 2>/dev/null | head -n1 || true)
    case "$state" in
    idle | mix | alloc) echo "slurm_up.sh: node $host is $state"; exit 0 ;;
    down* | drain* | drng*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
echo "slurm_up.sh: node $host not ready after 30 s (sinfo: ${state:-no answer}); see /var/log/slurm/" >&2
exit 1
