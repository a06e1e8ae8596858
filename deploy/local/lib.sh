# Shared helpers for the local-stack scripts. Sourced, not run.
set -euo pipefail

STATE_DIR="${DATA_PROC_LOCAL_STATE:-$HOME/.cache/254carbon}"
RUN_DIR="$STATE_DIR/run"
mkdir -p "$RUN_DIR"

log() { printf '[local-stack] %s\n' "$*" >&2; }

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_until DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds or the deadline passes.
wait_until() {
  local what=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      log "gave up waiting for $what after ${seconds}s"
      return 1
    fi
    sleep 0.5
  done
  log "$what is up"
}

# pid_alive NAME: true when the pid file written by start_daemon names a live process.
pid_alive() {
  local f="$RUN_DIR/$1.pid"
  [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

# start_daemon NAME LOGFILE COMMAND...: starts COMMAND detached and records its pid.
start_daemon() {
  local name=$1 logfile=$2
  shift 2
  setsid "$@" >"$logfile" 2>&1 < /dev/null &
  echo $! >"$RUN_DIR/$name.pid"
}

# stop_daemon NAME: stops the process start_daemon recorded (TERM, then KILL after 30 s).
stop_daemon() {
  local f="$RUN_DIR/$1.pid" pid
  [[ -f $f ]] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $1 (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$f"
}

apt_updated=0
apt_install() {
  if ((apt_updated == 0)); then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}
