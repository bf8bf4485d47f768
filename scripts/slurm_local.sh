#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for the scale-out tests and for trying nasframe's Slurm path.
#
#   scripts/slurm_local.sh start    install Debian's Slurm packages if missing (needs root and apt-get), start
#                                   mariadb, slurmdbd, slurmctld and slurmd on the loopback, wait for the node to
#                                   be idle, print the SLURM_CONF line that points clients (sbatch, submitit) at it
#   scripts/slurm_local.sh stop     stop exactly the daemons that start started (by the PIDs it recorded)
#   scripts/slurm_local.sh status   say whether the cluster answers
#
# Everything (config, state, spool, logs, database, PIDs) lives under $NASFRAME_SLURM_DIR (default
# /tmp/nasframe-slurm). The node is `localhost` (127.0.0.1) with this machine's CPUs and 90 % of its memory, in
# one partition `local`; authentication is auth/none (Slurm 22.05, Debian 12; Slurm 23.11+ needs munge instead).
# Accounting runs through slurmdbd because without it `sacct` fails and submitit waits forever on a job that died
# without its result file. Ports: $NASFRAME_SLURM_PORT (default 16817) for slurmctld, +1 slurmd, +2 slurmdbd,
# +3 mariadb; nothing listens beyond 127.0.0.1.
set -euo pipefail

DIR=${NASFRAME_SLURM_DIR:-/tmp/nasframe-slurm}
PORT=${NASFRAME_SLURM_PORT:-16817}
CTLD_PORT=$PORT; SLURMD_PORT=$((PORT + 1)); DBD_PORT=$((PORT + 2)); DB_PORT=$((PORT + 3))
PACKAGES=(slurmctld slurmd slurm-client slurmdbd mariadb-server)
DAEMONS=(mariadb slurmdbd slurmctld slurmd)  # start order; stop runs it backwards

say() { echo "slurm_local: $*" >&2; }
die() { say "$*"; exit 1; }

wait_for_port() {  # name port seconds pid
  local name=$1 port=$2 seconds=$3 pid=$4
  for _ in $(seq $((seconds * 10))); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || die "$name exited before listening on 127.0.0.1:$port; see $DIR/log/$name.log"
    sleep 0.1
  done
  die "$name did not listen on 127.0.0.1:$port within ${seconds} s; see $DIR/log/$name.log"
}

install_if_missing() {
  local missing=()
  for binary in slurmctld slurmd slurmdbd sbatch mariadbd mariadb-install-db; do
    command -v "$binary" >/dev/null || missing+=("$binary")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}, and installing Slurm needs root (apt-get install ${PACKAGES[*]})"
  command -v apt-get >/dev/null || die "missing ${missing[*]}, and there is no apt-get to install ${PACKAGES[*]}"
  say "installing ${PACKAGES[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${PACKAGES[@]}" >"$DIR/log/apt.log" 2>&1 \
    || { DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$DIR/log/apt.log" 2>&1 \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${PACKAGES[@]}" >>"$DIR/log/apt.log" 2>&1; } \
    || die "apt-get install ${PACKAGES[*]} failed; see $DIR/log/apt.log"
}

write_configs() {
  local cpus memory
  cpus=$(nproc)
  memory=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  memory=$((memory * 9 / 10))
  cat >"$DIR/slurm.conf" <<EOF
# written by nasframe's scripts/slurm_local.sh: one node, loopback only
ClusterName=nasframe
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
KillWait=5
MinJobAge=300
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$DIR/slurmdbd.conf" <<EOF
# written by nasframe's scripts/slurm_local.sh
AuthType=auth/none
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=nasframe-local
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$DIR/slurmdbd.conf"
}

started() { [ -f "$DIR/pids/$1" ] && kill -0 "$(cat "$DIR/pids/$1")" 2>/dev/null; }

start_daemon() {  # name command...: run in the foreground of a background job, record its PID
  local name=$1; shift
  "$@" >>"$DIR/log/$name.out" 2>&1 &
  echo $! >"$DIR/pids/$name"
}

start() {
  mkdir -p "$DIR"/{state,spool,log,run,pids}
  for name in "${DAEMONS[@]}"; do
    if started "$name"; then die "$name of an earlier start still runs (PID $(cat "$DIR/pids/$name")): run stop first"; fi
  done
  for port in "$CTLD_PORT" "$SLURMD_PORT" "$DBD_PORT" "$DB_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "127.0.0.1:$port is in use (another cluster?): stop it, or choose other ports with NASFRAME_SLURM_PORT"
    fi
  done
  install_if_missing
  write_configs
  export SLURM_CONF=$DIR/slurm.conf

  if [ ! -d "$DIR/mysql/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$DIR/mysql" --user=root --auth-root-authentication-method=normal \
      --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed; see $DIR/log/mariadb-install.log"
  fi
  start_daemon mariadb mariadbd --no-defaults --datadir="$DIR/mysql" --socket="$DIR/run/mysql.sock" --port="$DB_PORT" \
    --bind-address=127.0.0.1 --skip-name-resolve --user=root --pid-file="$DIR/run/mariadb.pid" \
    --log-error="$DIR/log/mariadb.log"
  wait_for_port mariadb "$DB_PORT" 60 "$(cat "$DIR/pids/mariadb")"
  mariadb --no-defaults --socket="$DIR/run/mysql.sock" -u root -e "
    CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'nasframe-local';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" || die "could not create Slurm's accounting database"

  start_daemon slurmdbd slurmdbd -D
  wait_for_port slurmdbd "$DBD_PORT" 60 "$(cat "$DIR/pids/slurmdbd")"
  start_daemon slurmctld slurmctld -D -i -f "$DIR/slurm.conf"
  wait_for_port slurmctld "$CTLD_PORT" 60 "$(cat "$DIR/pids/slurmctld")"
  start_daemon slurmd slurmd -D -N localhost -f "$DIR/slurm.conf"
  wait_for_port slurmd "$SLURMD_PORT" 60 "$(cat "$DIR/pids/slurmd")"

  for _ in $(seq 600); do
    state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
    if [ "$state" = idle ]; then
      say "node localhost idle ($(nproc) CPUs); clients need: export SLURM_CONF=$DIR/slurm.conf"
      echo "export SLURM_CONF=$DIR/slurm.conf"
      return 0
    fi
    sleep 0.1
  done
  die "the node did not become idle within 60 s (state: ${state:-none}); see $DIR/log/"
}

stop() {
  local name pid
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    name=${DAEMONS[i]}
    [ -f "$DIR/pids/$name" ] || continue
    pid=$(cat "$DIR/pids/$name")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then say "$name (PID $pid) ignored SIGTERM for 30 s: SIGKILL"; kill -9 "$pid"; fi
      say "stopped $name (PID $pid)"
    fi
    rm -f "$DIR/pids/$name"
  done
}

status() {
  export SLURM_CONF=$DIR/slurm.conf
  [ -f "$SLURM_CONF" ] || die "no cluster configured under $DIR"
  sinfo -h -n localhost -o "node %N: %T, %c CPUs, %m MB" || die "slurmctld does not answer"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status   (state under \$NASFRAME_SLURM_DIR, default /tmp/nasframe-slurm)" >&2; exit 2 ;;
esac
