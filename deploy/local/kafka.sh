#!/usr/bin/env bash
# Installs (from Maven Central jars) and starts a single-node KRaft Kafka broker on
# 127.0.0.1:${KAFKA_PORT:-9092}, unless one already answers there. KAFKA_DATA_DIR sets its
# data folder; KAFKA_EXEC=1 runs it in the foreground (exec), for a test that owns a broker.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

KAFKA_VERSION=4.1.1
KAFKA_PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
LIBS="$STATE_DIR/kafka-$KAFKA_VERSION/libs"
DATA="${KAFKA_DATA_DIR:-$STATE_DIR/kafka-$KAFKA_VERSION-data-$KAFKA_PORT}"

if port_open 127.0.0.1 "$KAFKA_PORT"; then
  log "kafka already listening on $KAFKA_PORT"
  exit 0
fi

if [[ ! -f "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]]; then
  log "fetching kafka $KAFKA_VERSION jars into $LIBS"
  command -v mvn >/dev/null || apt_install maven
  mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$LIBS" -DincludeScope=runtime >&2
fi

mkdir -p "$DATA"
props="$DATA/server.properties"
cat >"$props" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA/logs
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
PROPS

cat >"$DATA/log4j2.properties" <<'L4J'
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = info
logger.server.name = org.apache.kafka.server
logger.server.level = warn
L4J

java_opts=(-Xms256m -Xmx1g -Dlog4j2.configurationFile="$DATA/log4j2.properties")
if [[ ! -f "$DATA/logs/meta.properties" ]]; then
  cluster_id=$(java -cp "$LIBS/*" "${java_opts[@]}" kafka.tools.StorageTool random-uuid)
  java -cp "$LIBS/*" "${java_opts[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$props" \
    --standalone >&2
fi

log "starting kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT"
if [[ ${KAFKA_EXEC:-0} == 1 ]]; then
  exec java -cp "$LIBS/*" "${java_opts[@]}" kafka.Kafka "$props"
fi
start_daemon kafka "$DATA/kafka.log" java -cp "$LIBS/*" "${java_opts[@]}" kafka.Kafka "$props"
wait_until "kafka" 90 port_open 127.0.0.1 "$KAFKA_PORT"
