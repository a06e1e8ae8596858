#!/usr/bin/env bash
# Stops only what up.sh and prometheus.sh started (the processes named by pid files);
# leaves the machine's own PostgreSQL and Redis alone.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

for name in prometheus kafka clickhouse; do
  stop_daemon "$name"
done
