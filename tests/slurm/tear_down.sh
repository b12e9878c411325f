#!/usr/bin/env bash
# Stop the single-node SLURM cluster that tests/slurm/bring_up.sh started.
#
# Cancels the submitting user's jobs and waits for them to leave the node, then stops the daemons
# one at a time by PID file, in dependency order, waiting for each process to exit:
#   slurmd, slurmctld, slurmdbd, mariadbd, munged.
# A PID file whose process is gone, or whose PID now belongs to another program, is skipped.
# Packages, configuration and state (/var/spool/slurm*, /var/lib/mysql) stay, so the next
# bring-up is quick. Exit status 0 when everything is stopped, 1 when a daemon would not exit.
#
# Environment: STEERID_SLURM_USER (whose jobs to cancel: $SUDO_USER or the caller).
set -uo pipefail

SUBMIT_USER=${STEERID_SLURM_USER:-${SUDO_USER:-$(id -un)}}
status=0

log() { printf '[tear_down %s] %s\n' "$(date +%T)" "$*" >&2; }

# wait_gone PID SECONDS: true once /proc/PID is gone.
wait_gone() {
    local pid=$1 deadline=$((SECONDS + $2))
    while [[ -d /proc/$pid ]]; do
        ((SECONDS < deadline)) || return 1
        sleep 0.25
    done
}

user_jobs() { timeout 10 squeue -h -u "$SUBMIT_USER" -o %i 2>/dev/null; }

cancel_jobs() {
    command -v scancel >/dev/null || return 0
    timeout 10 scontrol ping >/dev/null 2>&1 || return 0
    local jobs
    jobs=$(user_jobs)
    [[ -n $jobs ]] || return 0
    log "cancelling jobs of $SUBMIT_USER: $(echo $jobs)"
    timeout 30 scancel -u "$SUBMIT_USER" || log "scancel failed"
    local deadline=$((SECONDS + 90))
    # Cancelled jobs stay in squeue while they complete (CG); wait until their steps are gone.
    local states=PENDING,CONFIGURING,RUNNING,COMPLETING
    while [[ -n $(timeout 10 squeue -h -u "$SUBMIT_USER" -t "$states" -o %i 2>/dev/null) ]]; do
        if ((SECONDS >= deadline)); then
            log "jobs still listed after 90 s: $(echo $(user_jobs))"
            status=1
            return
        fi
        sleep 1
    done
}

# stop PID_FILE NAME SECONDS
stop() {
    local pid_file=$1 name=$2 grace=$3 pid
    [[ -s $pid_file ]] || return 0
    pid=$(tr -dc 0-9 <"$pid_file")
    if [[ -z $pid || ! -d /proc/$pid ]]; then
        log "$name: not running (stale $pid_file)"
        return 0
    fi
    if [[ $(cat "/proc/$pid/comm" 2>/dev/null) != "$name" ]]; then
        log "$name: pid $pid from $pid_file is now '$(cat "/proc/$pid/comm" 2>/dev/null)'; not touching it"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    if ! wait_gone "$pid" "$grace"; then
        log "$name (pid $pid) still running after ${grace} s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null
        wait_gone "$pid" 10 || { log "$name (pid $pid) would not exit"; status=1; }
    fi
}

cancel_jobs
stop /run/slurmd.pid slurmd 30
stop /run/slurmctld.pid slurmctld 60
stop /run/slurmdbd.pid slurmdbd 30
stop /run/mysqld/mysqld.pid mariadbd 60
stop /run/munge/munged.pid munged 20
((status == 0)) && log "cluster stopped"
exit "$status"
