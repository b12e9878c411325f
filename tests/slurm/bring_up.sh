#!/usr/bin/env bash
# Bring up a single-node SLURM cluster with real accounting on localhost, for tests/test_slurm.py.
#
#   munged -> mariadbd -> slurmdbd -> (sacctmgr: cluster, account, user) -> slurmctld -> slurmd
#
# Debian 12 packages (slurm-wlm, munge, slurmdbd, mariadb-server), no systemd: every daemon is
# started by hand, detached from the caller (setsid, stdio redirected to logs) and leaves a PID file
# that tests/slurm/tear_down.sh stops it by. Also installs the Snakemake SLURM executor plugin.
#
# Idempotent: if the cluster is already up, healthy and configured as this script would configure
# it, it does nothing. Daemons already running are reused; SLURM daemons are restarted only when
# their configuration file changed.
#
# Exit status: 0 cluster up and a smoke job went through sbatch and sacct; 77 the cluster cannot be
# brought up here (not root, no apt-get, packages or plugin not installable): callers skip; any
# other status is a failure, with the daemons' logs printed to stderr.
#
# Environment (all optional): STEERID_SLURM_CLUSTER (steerid), STEERID_SLURM_PARTITION (debug),
# STEERID_SLURM_ACCOUNT (steerid_ci), STEERID_SLURM_USER (the user who submits jobs: $SUDO_USER
# or the caller), PYTHON (interpreter that gets the plugin: python3),
# STEERID_SLURM_PLUGIN_VERSION (2.8.0, installed when the plugin is missing).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLUSTER=${STEERID_SLURM_CLUSTER:-steerid}
PARTITION=${STEERID_SLURM_PARTITION:-debug}
ACCOUNT=${STEERID_SLURM_ACCOUNT:-steerid_ci}
SUBMIT_USER=${STEERID_SLURM_USER:-${SUDO_USER:-$(id -un)}}
PYTHON=${PYTHON:-python3}
PLUGIN=snakemake-executor-plugin-slurm
PLUGIN_VERSION=${STEERID_SLURM_PLUGIN_VERSION:-2.8.0}
PACKAGES=(slurm-wlm munge slurmdbd slurm-wlm-mysql-plugin mariadb-server)
# The accounting database only listens on 127.0.0.1; the password guards nothing else.
DB_NAME=slurm_acct_db
DB_USER=slurm
DB_PASS=steerid-local-only
EX_UNAVAILABLE=77
LOG_DIR=/var/log/slurm
SLURM_CONF=/etc/slurm/slurm.conf
SLURMDBD_CONF=/etc/slurm/slurmdbd.conf
MUNGED_PID=/run/munge/munged.pid
MARIADBD_PID=/run/mysqld/mysqld.pid
SLURMDBD_PID=/run/slurmdbd.pid
SLURMCTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid

log() { printf '[bring_up %s] %s\n' "$(date +%T)" "$*" >&2; }

unavailable() {
    log "UNAVAILABLE: $*"
    exit "$EX_UNAVAILABLE"
}

dump_logs() {
    local file
    for file in "$LOG_DIR"/slurmctld.log "$LOG_DIR"/slurmd.log "$LOG_DIR"/slurmdbd.log \
        "$LOG_DIR"/mariadbd.log "$LOG_DIR"/daemons.out /var/log/munge/munged.log; do
        [[ -f $file ]] || continue
        printf '\n----- last 40 lines of %s\n' "$file" >&2
        tail -n 40 "$file" >&2 || true
    done
    if command -v sinfo >/dev/null; then
        printf '\n----- sinfo -R\n' >&2
        timeout 10 sinfo -R >&2 || true
    fi
}

fail() {
    log "FAILED: $*"
    dump_logs
    exit 1
}

# True while the process named in a PID file exists (readable without root, unlike kill -0).
pid_alive() {
    local pid
    [[ -r $1 ]] || return 1
    pid=$(tr -dc 0-9 <"$1") || return 1
    [[ -n $pid && -d /proc/$pid ]]
}

# wait_for SECONDS COMMAND...: poll COMMAND every half second until it succeeds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

# Start a daemon detached from this script's session and stdio (so a caller capturing our
# output is not held open by it, and a Ctrl-C to the caller's process group does not reach it).
spawn() { setsid "$@" </dev/null >>"$LOG_DIR/daemons.out" 2>&1; }

run_as_submitter() {
    if [[ $SUBMIT_USER == "$(id -un)" ]]; then
        "$@"
    else
        runuser -u "$SUBMIT_USER" -- "$@"
    fi
}

plugin_installed() {
    "$PYTHON" -c "import importlib.metadata as m; print(m.version('$PLUGIN'))" 2>/dev/null
}

# --- the node as slurmd sees it ---------------------------------------------------------------

detected() { slurmd -C 2>/dev/null | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }

node_cpus() {
    local online detected_cpus
    online=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
    detected_cpus=$(detected CPUs)
    echo $((detected_cpus > 0 && detected_cpus < online ? detected_cpus : online))
}

# 85% of MemTotal, never above what slurmd detects (the node would be drained as "Low RealMemory").
node_real_memory() {
    local total_kb share detected_mb
    total_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    share=$((total_kb * 85 / 100 / 1024))
    detected_mb=$(detected RealMemory)
    echo $((detected_mb > 0 && detected_mb < share ? detected_mb : share))
}

render_slurm_conf() {
    sed -e "s/@CLUSTER@/$CLUSTER/g" -e "s/@PARTITION@/$PARTITION/g" \
        -e "s/@CPUS@/$(node_cpus)/g" -e "s/@REAL_MEMORY@/$(node_real_memory)/g" \
        "$HERE/slurm.conf.in"
}

render_slurmdbd_conf() {
    sed -e "s/@DB_NAME@/$DB_NAME/g" -e "s/@DB_USER@/$DB_USER/g" -e "s/@DB_PASS@/$DB_PASS/g" \
        "$HERE/slurmdbd.conf.in"
}

# write_if_changed PATH MODE < content: returns 0 if the file was (re)written, 1 if unchanged.
write_if_changed() {
    local path=$1 mode=$2 tmp
    tmp=$(mktemp "$path.XXXXXX")
    cat >"$tmp"
    chmod "$mode" "$tmp"
    if [[ -f $path ]] && cmp -s "$tmp" "$path"; then
        rm -f "$tmp"
        return 1
    fi
    mv -f "$tmp" "$path"
    return 0
}

node_state() { timeout 10 sinfo -h -n localhost -p "$PARTITION" -o %T 2>/dev/null | head -n 1; }

node_usable() { [[ $(node_state) =~ ^(idle|mixed|allocated|completing)$ ]]; }

association_exists() {
    timeout 10 sacctmgr -n -P list assoc cluster="$CLUSTER" account="$ACCOUNT" user="$SUBMIT_USER" \
        format=user 2>/dev/null | grep -qx "$SUBMIT_USER"
}

healthy() {
    local pid_file
    for pid_file in "$MUNGED_PID" "$MARIADBD_PID" "$SLURMDBD_PID" "$SLURMCTLD_PID" "$SLURMD_PID"; do
        pid_alive "$pid_file" || return 1
    done
    command -v slurmd >/dev/null && [[ -f $SLURM_CONF ]] || return 1
    [[ "$(render_slurm_conf)" == "$(cat "$SLURM_CONF")" ]] || return 1
    node_usable && association_exists && [[ -n $(plugin_installed) ]]
}

# stop_daemon PID_FILE NAME: SIGTERM by PID file and wait for the process to exit.
stop_daemon() {
    local pid_file=$1 name=$2 pid
    pid_alive "$pid_file" || return 0
    pid=$(tr -dc 0-9 <"$pid_file")
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || return 0
    log "stopping $name (pid $pid) to apply a changed configuration"
    kill "$pid"
    wait_for 60 test ! -d "/proc/$pid" || fail "$name (pid $pid) did not exit within 60 s"
}

# --- steps ------------------------------------------------------------------------------------

install_packages() {
    local missing=() package
    for package in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$package")
    done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    local apt=(timeout 900 apt-get -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends)
    export DEBIAN_FRONTEND=noninteractive
    if ! "${apt[@]}" install "${missing[@]}" >"$LOG_DIR/apt.log" 2>&1; then
        # The package lists may be stale or absent: refresh them once and retry.
        if ! { timeout 300 apt-get -q -o DPkg::Lock::Timeout=300 update &&
            "${apt[@]}" install "${missing[@]}"; } >>"$LOG_DIR/apt.log" 2>&1; then
            tail -n 30 "$LOG_DIR/apt.log" >&2
            unavailable "apt-get could not install ${missing[*]} (log: $LOG_DIR/apt.log)"
        fi
    fi
}

install_plugin() {
    local version
    version=$(plugin_installed || true)
    if [[ -z $version ]]; then
        log "installing $PLUGIN==$PLUGIN_VERSION into $PYTHON"
        timeout 600 "$PYTHON" -m pip install -q "$PLUGIN==$PLUGIN_VERSION" >&2 ||
            unavailable "pip could not install $PLUGIN==$PLUGIN_VERSION"
    elif [[ $version != "$PLUGIN_VERSION" ]]; then
        log "note: $PLUGIN $version is installed (tested with $PLUGIN_VERSION); keeping it"
    fi
}

start_munge() {
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --keyfile=/etc/munge/munge.key
    fi
    chown munge:munge /etc/munge /etc/munge/munge.key
    chmod 0700 /etc/munge
    chmod 0600 /etc/munge/munge.key
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    if ! pid_alive "$MUNGED_PID"; then
        spawn runuser -u munge -- /usr/sbin/munged
    fi
    wait_for 20 bash -c 'munge -n | unmunge' || fail "munged does not answer (munge -n | unmunge)"
}

start_mariadb() {
    install -d -o mysql -g mysql -m 0755 /run/mysqld
    if ! mariadb-admin ping >/dev/null 2>&1; then
        if [[ ! -d /var/lib/mysql/mysql ]]; then
            mariadb-install-db --user=mysql --datadir=/var/lib/mysql >>"$LOG_DIR/mariadbd.log" 2>&1 ||
                fail "mariadb-install-db failed"
        fi
        setsid /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 --pid-file="$MARIADBD_PID" \
            </dev/null >>"$LOG_DIR/mariadbd.log" 2>&1 &
        wait_for 60 mariadb-admin ping || fail "mariadbd did not come up within 60 s"
    fi
    pid_alive "$MARIADBD_PID" || fail "mariadbd answers but $MARIADBD_PID names no live process"
    mariadb <<SQL || fail "could not create the accounting database and its user"
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
SQL
}

start_slurmdbd() {
    local dbd_conf_changed=$1
    if [[ $dbd_conf_changed == yes ]]; then
        stop_daemon "$SLURMDBD_PID" slurmdbd
    fi
    pid_alive "$SLURMDBD_PID" || spawn /usr/sbin/slurmdbd
    # sacctmgr only talks to slurmdbd once slurm.conf names accounting_storage/slurmdbd.
    wait_for 60 timeout 10 sacctmgr -n list cluster || fail "slurmdbd does not answer sacctmgr within 60 s"
}

register_accounts() {
    if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >&2 || fail "sacctmgr add cluster $CLUSTER"
    fi
    if ! sacctmgr -n -P list account format=account | grep -qx "$ACCOUNT"; then
        sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description=steerid-tests \
            organization=steerid >&2 || fail "sacctmgr add account $ACCOUNT"
    fi
    if ! association_exists; then
        sacctmgr -i add user "$SUBMIT_USER" account="$ACCOUNT" cluster="$CLUSTER" >&2 ||
            fail "sacctmgr add user $SUBMIT_USER account=$ACCOUNT"
    fi
    association_exists || fail "no association user=$SUBMIT_USER account=$ACCOUNT after sacctmgr add"
}

start_slurm() {
    local conf_changed=$1 state
    if [[ $conf_changed == yes ]]; then
        stop_daemon "$SLURMD_PID" slurmd
        stop_daemon "$SLURMCTLD_PID" slurmctld
    fi
    pid_alive "$SLURMCTLD_PID" || spawn /usr/sbin/slurmctld
    wait_for 60 timeout 10 scontrol ping || fail "slurmctld does not answer scontrol ping within 60 s"
    pid_alive "$SLURMD_PID" || spawn /usr/sbin/slurmd -N localhost
    if ! wait_for 60 node_usable; then
        state=$(node_state)
        if [[ $state =~ drain|down|fail ]]; then
            log "node is '$state'; resuming it once"
            scontrol update nodename=localhost state=resume >&2 || true
            wait_for 30 node_usable && return 0
        fi
        fail "node localhost is '$(node_state)', not idle, after 60 s"
    fi
}

smoke_test() {
    local job state
    job=$(cd /tmp && run_as_submitter timeout 120 sbatch --parsable --wait -J steerid-smoke \
        -A "$ACCOUNT" -p "$PARTITION" -t 1 --mem=100 -o /dev/null --wrap 'srun true') ||
        fail "smoke job did not complete (sbatch --wait: ${job:-no job id})"
    job=${job%%;*}
    sacct_state() { state=$(sacct -n -X -P -j "$job" -o State 2>/dev/null | head -n 1) && [[ $state == COMPLETED ]]; }
    wait_for 60 sacct_state || fail "sacct does not show smoke job $job as COMPLETED (state: '${state:-}')"
    log "smoke job $job COMPLETED in sacct"
}

main() {
    if healthy; then
        log "cluster $CLUSTER already up and healthy; nothing to do"
        exit 0
    fi
    [[ $(id -u) -eq 0 ]] || unavailable "bringing up SLURM needs root (running as $(id -un))"
    command -v apt-get >/dev/null && command -v dpkg-query >/dev/null ||
        unavailable "no apt-get/dpkg-query: not a Debian-like system"
    id "$SUBMIT_USER" >/dev/null 2>&1 || fail "submitting user '$SUBMIT_USER' does not exist"

    install -d -m 0755 "$LOG_DIR" /etc/slurm /var/spool/slurmctld /var/spool/slurmd
    local started=$SECONDS
    install_packages
    install_plugin

    local conf_changed=no dbd_conf_changed=no
    render_slurm_conf | write_if_changed "$SLURM_CONF" 0644 && conf_changed=yes
    render_slurmdbd_conf | write_if_changed "$SLURMDBD_CONF" 0600 && dbd_conf_changed=yes
    chown root:root "$SLURMDBD_CONF"

    start_munge
    start_mariadb
    start_slurmdbd "$dbd_conf_changed"
    register_accounts
    start_slurm "$conf_changed"
    smoke_test
    log "cluster $CLUSTER up in $((SECONDS - started)) s: partition=$PARTITION account=$ACCOUNT" \
        "user=$SUBMIT_USER CPUs=$(node_cpus) RealMemory=$(node_real_memory)"
}

main "$@"
