#!/usr/bin/env bash
# Stops only what up.sh started (the processes named by pid files); leaves the machine's
# own PostgreSQL and Redis alone.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

for name in kafka clickhouse; do
  f="$RUN_DIR/$name.pid"
  [[ -f $f ]] || continue
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$f"
done
