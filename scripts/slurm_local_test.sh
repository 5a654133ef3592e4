#!/usr/bin/env bash
# A real Slurm test on one machine: install a single-node Slurm from Debian's packages, start
# munge, MariaDB, slurmdbd, slurmctld and slurmd with a throw-away configuration, run
# the packaged quick study (--smoke) through `disentkit sweep run --executor slurm`, plus one source
# that fails on purpose (its dataset is not on disk), and check that the failed run is reported
# failed while every other run finishes. Every daemon is stopped on exit, whatever happens.
#
# Needs root and Debian 12 (apt-get reaches Debian's archive, or the packages are installed).
# Usage:  scripts/slurm_local_test.sh     PYTHON=path/to/python picks the interpreter;
#         SLURM_TEST_STUDY=file.yaml runs another study; KEEP_SLURM_TMP=1 keeps logs and runs.
# Why accounting: submitit reads job states with sacct; without slurmdbd it waits forever on a
# job that died without writing its result. Why timeout_min >= 2: submitit's time-out handling
# needs the margin (the sweep refuses less).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
KEEP="${KEEP_SLURM_TMP:-0}"
T0=$(date +%s)
log() { printf '[slurm-test %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
die() { log "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts system daemons)"
"$PYTHON" -c "import disentkit, submitit" || die "$PYTHON cannot import disentkit and submitit (pip install -e '.[slurm]')"

# --- 1. packages (seconds when the archive is reachable; skipped when already installed) -------
if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null \
   || ! command -v munged >/dev/null; then
  log "installing slurm-wlm, slurmdbd, munge, mariadb-server"
  POLICY_CREATED=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then  # keep the packages from starting their own daemons
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && POLICY_CREATED=1
  fi
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    slurm-wlm slurmdbd munge mariadb-server >/dev/null
  [ "$POLICY_CREATED" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

# --- 2. a throw-away tree; every daemon is stopped by the trap ----------------------------------
TMP="$(mktemp -d /tmp/disentkit-slurm.XXXXXX)"
chmod 755 "$TMP"
mkdir -p "$TMP"/{etc,log,state,spool,munge,munge-run,mysql,run}
PIDS_MARIADB="" ; SWEEP_PID=""

pid_of() { [ -s "$1" ] && cat "$1" || true; }
stop_pid() {  # stop_pid NAME PID: TERM, wait up to 15 s, then KILL
  local name="$1" pid="$2"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || { log "stopped $name ($pid)"; return 0; }; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  log "killed $name ($pid)"
}
cleanup() {
  local rc=$?
  set +e
  if [ -n "$SWEEP_PID" ] && kill -0 "$SWEEP_PID" 2>/dev/null; then
    kill -TERM -- "-$SWEEP_PID" 2>/dev/null  # the sweep's own process group
    stop_pid sweep "$SWEEP_PID"
  fi
  if [ -f "$TMP/etc/slurm.conf" ] && command -v scancel >/dev/null; then
    SLURM_CONF="$TMP/etc/slurm.conf" scancel --quiet --full --user=root 2>/dev/null
    for _ in $(seq 100); do
      [ -z "$(SLURM_CONF="$TMP/etc/slurm.conf" squeue -h 2>/dev/null)" ] && break; sleep 0.1
    done
  fi
  stop_pid slurmd "$(pid_of "$TMP/run/slurmd.pid")"
  stop_pid slurmctld "$(pid_of "$TMP/run/slurmctld.pid")"
  stop_pid slurmdbd "$(pid_of "$TMP/run/slurmdbd.pid")"
  stop_pid mariadbd "$PIDS_MARIADB"
  stop_pid munged "$(pid_of "$TMP/munge-run/munged.pid")"
  # job steps live in slurmstepd processes re-parented to init: stop any that ran our config
  for p in $(pgrep -x slurmstepd 2>/dev/null); do
    grep -qs "$TMP" "/proc/$p/environ" && stop_pid slurmstepd "$p"
  done
  if [ "$KEEP" = 1 ] || [ $rc != 0 ]; then
    log "logs kept in $TMP/log"
    [ $rc != 0 ] && tail -n 15 "$TMP"/log/{slurmctld,slurmd,slurmdbd,sweep}.log 2>/dev/null | sed 's/^/    /'
  fi
  [ "$KEEP" = 1 ] || [ $rc != 0 ] || rm -rf "$TMP"
  log "$([ $rc = 0 ] && echo PASS || echo "FAILED (exit $rc)") after $(( $(date +%s) - T0 )) s"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND (5 s cap each) until it succeeds
  local secs="$1" what="$2"; shift 2
  local deadline=$(( $(date +%s) + secs ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    timeout 5 "$@" >/dev/null 2>>"$TMP/log/wait.log" && return 0; sleep 0.2
  done
  die "timed out after ${secs}s waiting for $what"
}
DB_PORT=$(free_port); DBD_PORT=$(free_port); CTLD_PORT=$(free_port); SLURMD_PORT=$(free_port)
HOST="$(hostname -s)"
CPUS="$(nproc)"

# --- 3. munge, as the munge user, with its own key and socket -----------------------------------
dd if=/dev/urandom of="$TMP/munge/munge.key" bs=1024 count=1 status=none
chown -R munge:munge "$TMP/munge" "$TMP/munge-run"; chmod 700 "$TMP/munge"; chmod 400 "$TMP/munge/munge.key"
chmod 755 "$TMP/munge-run"  # clients (slurm, jobs) must reach the socket
MUNGE_SOCKET="$TMP/munge-run/munge.socket"
runuser -u munge -- /usr/sbin/munged --key-file="$TMP/munge/munge.key" --socket="$MUNGE_SOCKET" \
  --pid-file="$TMP/munge-run/munged.pid" --log-file="$TMP/munge/munged.log" --seed-file="$TMP/munge/munged.seed"
wait_for 10 munged test -S "$MUNGE_SOCKET"
log "munged up"

# --- 4. MariaDB on a loopback port, with a slurm user -------------------------------------------
chown mysql:mysql "$TMP/mysql"
mariadb-install-db --no-defaults --user=mysql --datadir="$TMP/mysql" --skip-test-db \
  --auth-root-authentication-method=socket >"$TMP/log/mariadb-install.log" 2>&1 \
  || die "mariadb-install-db failed (see $TMP/log/mariadb-install.log)"
mariadbd --no-defaults --user=mysql --datadir="$TMP/mysql" --socket="$TMP/mysql/mysqld.sock" \
  --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$TMP/mysql/mariadbd.pid" --skip-log-bin \
  --innodb-buffer-pool-size=32M --log-error="$TMP/log/mariadb.log" >>"$TMP/log/mariadb.log" 2>&1 &
PIDS_MARIADB=$!
wait_for 60 mariadb mariadb --no-defaults -S "$TMP/mysql/mysqld.sock" -u root -e 'SELECT 1'
DB_PASS="$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mariadb --no-defaults -S "$TMP/mysql/mysqld.sock" -u root -e \
  "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
log "mariadb up on 127.0.0.1:$DB_PORT"

# --- 5. Slurm configuration ----------------------------------------------------------------------
cat >"$TMP/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$TMP/run/slurmdbd.pid
LogFile=$TMP/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
chmod 600 "$TMP/etc/slurmdbd.conf"
cat >"$TMP/etc/slurm.conf" <<EOF
ClusterName=disentkit
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$TMP/state
SlurmdSpoolDir=$TMP/spool
SlurmctldPidFile=$TMP/run/slurmctld.pid
SlurmdPidFile=$TMP/run/slurmd.pid
SlurmctldLogFile=$TMP/log/slurmctld.log
SlurmdLogFile=$TMP/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MailProg=/bin/true
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# with slurmdbd, this names the munge socket used to reach it (AuthInfo covers the rest)
AccountingStoragePass=$MUNGE_SOCKET
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$TMP/etc/slurm.conf"

# --- 6. daemons ------------------------------------------------------------------------------------
slurmdbd
wait_for 30 slurmdbd sacctmgr -n list cluster
timeout 20 sacctmgr -i add cluster disentkit >/dev/null
slurmctld
wait_for 30 slurmctld scontrol ping
slurmd
wait_for 30 "an idle node" bash -c "sinfo -h -o %T | grep -qx idle"
log "slurm up: $(sinfo -h -o '%P %D %T %c cpus')"

# --- 7. the sweep: the quick study plus one source that fails on purpose -------------------------------
STUDY="$TMP/quick-with-failure.yaml"
"$PYTHON" - "${SLURM_TEST_STUDY:-$REPO/src/disentkit/studies/quick.yaml}" "$STUDY" <<'EOF'
import sys, yaml
study = yaml.safe_load(open(sys.argv[1]))
# a source whose method option does not exist: the study passes its checks, the job fails
study["sources"].append({"name": "missing-data", "dataset": "color-dsprites", "seeds": [0],
                         "overrides": {"method.options": {"no_such_option": 1}}})
study["transfers"].append({"source": "missing-data", "targets": ["shapes3d"]})
yaml.safe_dump(study, open(sys.argv[2], "w"), sort_keys=False)
EOF
OUT="$TMP/runs"
log "disentkit sweep run --executor slurm (smoke)"
# in the background, in its own process group, so that a signal to this script reaches the trap
# at once (bash defers traps while a foreground command runs) and the trap can stop the sweep
setsid bash -c 'cd "$1" && shift && exec "$@"' _ "$TMP" "$PYTHON" -m disentkit sweep run "$STUDY" \
  --smoke --out "$OUT" --executor slurm --slurm-time 30 --max-parallel 2 --threads 1 \
  >"$TMP/log/sweep.log" 2>&1 &
SWEEP_PID=$!
set +e
wait "$SWEEP_PID"
SWEEP_RC=$?
set -e
SWEEP_PID=""
sed 's/^/    /' "$TMP/log/sweep.log"
[ "$SWEEP_RC" = 1 ] || die "the sweep should exit 1 (one run failed), exited $SWEEP_RC"

# --- 8. checks: the failed run (and only it) failed, its transfer was blocked, the rest are done ---
"$PYTHON" - "$STUDY" "$OUT" <<'EOF'
import json, sys
from disentkit.experiment.study import load_study, plan
from disentkit.sweep.state import run_state
study = plan(load_study(sys.argv[1], smoke=True), sys.argv[2], optional={})
states = {r.name: run_state(study.out / r.folder).state for r in study.runs}
bad = {n: s for n, s in states.items() if n.startswith("missing-data")}
good = {n: s for n, s in states.items() if not n.startswith("missing-data")}
print("    states:", json.dumps(states, indent=1))
assert bad["missing-data.b1.s0"] == "failed", bad
assert bad["missing-data--shapes3d.b1.s0"] == "todo", bad  # blocked: never submitted
assert good and set(good.values()) == {"done"}, good
(failed,) = [r for r in study.runs if r.name == "missing-data.b1.s0"]
err = json.loads((study.out / failed.folder / "error.json").read_text())
assert err.get("slurm_job_id"), err
print("    failed run's error:", err["type"], "-", err["message"][:120])
EOF
FAILED_JOB=$("$PYTHON" -c "import json,glob,sys; print(json.load(open(glob.glob(sys.argv[1])[0]))['slurm_job_id'])" \
  "$OUT/sources/missing-data.*/error.json")
SACCT_STATE=""
for _ in $(seq 120); do  # the job may still be tearing down when the sweep has read its result
  SACCT_STATE=$(sacct -n -X -P -j "$FAILED_JOB" -o State | head -1)
  case "$SACCT_STATE" in PENDING|RUNNING|COMPLETING|"") sleep 0.5 ;; *) break ;; esac
done
log "sacct: job $FAILED_JOB is $SACCT_STATE"
[ "$SACCT_STATE" = FAILED ] || die "Slurm should record the failing run's job as FAILED, found '$SACCT_STATE'"

# re-running the same command submits nothing that is done (only the failed run is retried)
( cd "$TMP" && "$PYTHON" -m disentkit sweep run "$STUDY" --smoke --out "$OUT" --executor slurm \
    --slurm-time 30 --max-parallel 2 --threads 1 --no-retry-failed ) 2>&1 | tee "$TMP/log/sweep2.log" | sed 's/^/    /' || true
grep -q "wave" "$TMP/log/sweep2.log" && die "the re-run submitted jobs although every runnable run was done"
log "re-run submitted nothing"

# the sweep's table, mean ± std over the two seeds, from the runs Slurm produced
"$PYTHON" -m disentkit aggregate "$OUT" --no-report --bootstrap 200 | sed 's/^/    /'
grep -q "color-dsprites" "$OUT/aggregate.csv" 2>/dev/null || [ -n "${SLURM_TEST_STUDY:-}" ] \
  || die "aggregate.csv lacks the quick study's transfers"
log "aggregate: $(($(wc -l <"$OUT/aggregate.csv") - 1)) rows in aggregate.csv"
