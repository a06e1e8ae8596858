#!/usr/bin/env bash
# A local Prometheus (Debian's `prometheus` package) scraping the node of `make start`, so its
# metrics can be graphed at once: http://127.0.0.1:${PROMETHEUS_PORT:-9090}/graph.
# Loads the project's alert rules (deploy/monitoring/alerts.yml) when they exist.
#   bash deploy/local/prometheus.sh [start]   start unless one already answers (idempotent)
#   bash deploy/local/prometheus.sh stop      stop the one this script started
# PROMETHEUS_PORT (default 9090) is where it listens; DATA_PROC_HTTP_PORT (default 8080) is the
# node it scrapes. Data and config live under the local state folder, never in the checkout.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

PORT="${PROMETHEUS_PORT:-9090}"
NODE_PORT="${DATA_PROC_HTTP_PORT:-8080}"
DATA="$STATE_DIR/prometheus-$PORT"
RULES="$(cd "$here/../.." && pwd)/deploy/monitoring/alerts.yml"

if [[ ${1:-start} == stop ]]; then
  stop_daemon prometheus
  exit 0
fi

prometheus_ready() { curl -fsS "http://127.0.0.1:$PORT/-/ready" >/dev/null 2>&1; }

if prometheus_ready; then
  log "prometheus already answering on $PORT"
  exit 0
fi

command -v prometheus >/dev/null || apt_install prometheus

mkdir -p "$DATA/tsdb"
config="$DATA/prometheus.yml"
{
  echo "global:"
  echo "  scrape_interval: 5s"
  echo "  evaluation_interval: 15s"
  if [[ -f $RULES ]]; then
    echo "rule_files:"
    echo "  - $RULES"
  fi
  echo "scrape_configs:"
  echo "  - job_name: data-processing"
  echo "    static_configs:"
  echo "      - targets: ['127.0.0.1:$NODE_PORT']"
  echo "        labels:"
  echo "          env: local"
} >"$config"

log "starting prometheus on 127.0.0.1:$PORT (scraping 127.0.0.1:$NODE_PORT)"
start_daemon prometheus "$DATA/prometheus.log" prometheus \
  --config.file="$config" --storage.tsdb.path="$DATA/tsdb" --storage.tsdb.retention.time=2d \
  --web.listen-address="127.0.0.1:$PORT"
wait_until "prometheus" 60 prometheus_ready
