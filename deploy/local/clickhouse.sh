#!/usr/bin/env bash
# Installs Debian's clickhouse-server if missing and starts it as a plain process with its
# own data folder, HTTP on 127.0.0.1:${CLICKHOUSE_HTTP_PORT:-8123}, unless one already answers.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

HTTP_PORT="${CLICKHOUSE_HTTP_PORT:-8123}"
TCP_PORT="${CLICKHOUSE_TCP_PORT:-9000}"
DATA="$STATE_DIR/clickhouse-$HTTP_PORT"

clickhouse_ping() { curl -fsS "http://127.0.0.1:$HTTP_PORT/ping" >/dev/null 2>&1; }

if clickhouse_ping; then
  log "clickhouse already answering on $HTTP_PORT"
  exit 0
fi

if [[ ! -x /usr/sbin/clickhouse-server ]]; then
  log "installing clickhouse-server from Debian"
  apt_install clickhouse-server clickhouse-client
fi

mkdir -p "$DATA/tmp" "$DATA/uf" "$DATA/fs"
log "starting clickhouse on 127.0.0.1:$HTTP_PORT"
start_daemon clickhouse "$DATA/stdout.log" /usr/sbin/clickhouse-server \
  --config-file=/etc/clickhouse-server/config.xml -- \
  --path="$DATA/" --tmp_path="$DATA/tmp/" --user_files_path="$DATA/uf/" \
  --format_schema_path="$DATA/fs/" --logger.log="$DATA/log" --logger.errorlog="$DATA/err" \
  --http_port="$HTTP_PORT" --tcp_port="$TCP_PORT" --listen_host=127.0.0.1
wait_until "clickhouse" 60 clickhouse_ping
