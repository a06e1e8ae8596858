#!/usr/bin/env bash
# Brings up everything a node and the tests need: PostgreSQL, Redis, Kafka, ClickHouse, and the
# clients the tests read with (kcat, promtool).
# Idempotent: each part starts only if it is not already answering.
here=$(cd "$(dirname "$0")" && pwd)
"$here/tools.sh"
"$here/stores.sh"
"$here/kafka.sh"
"$here/clickhouse.sh"
