#!/usr/bin/env bash
# Brings up everything a node and the tests need: PostgreSQL, Redis, Kafka, ClickHouse.
# Idempotent: each part starts only if it is not already answering.
here=$(cd "$(dirname "$0")" && pwd)
"$here/stores.sh"
"$here/kafka.sh"
"$here/clickhouse.sh"
