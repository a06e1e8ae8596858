#!/usr/bin/env bash
# Starts the machine's PostgreSQL and Redis if they are down (they are normally started
# before every session and CI run; see shared/STACK.md).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  log "starting postgresql"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
fi
wait_until "postgresql" 30 pg_isready -q -h 127.0.0.1 -p 5432

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
redis_ping() { [[ $(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) == PONG ]]; }
wait_until "redis" 30 redis_ping
