#!/usr/bin/env bash
# Creates Tributary's Kafka topics with the partition counts of
# shared/src/tributary_shared/topics.py (ALL_TOPICS), and grows a topic that has
# fewer partitions than specified. Idempotent: safe to run on every deploy.
#
# Runs inside the apache/kafka image (compose "kafka-init" service, Kubernetes
# Job "tributary-topics").
#   TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS  bootstrap servers (required)
#   TOPIC_REPLICATION_FACTOR           replicas per partition for new topics (default 1)
#   KAFKA_TOPICS                       path of kafka-topics.sh (default /opt/kafka/bin/kafka-topics.sh)
set -euo pipefail

bootstrap="${TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS:?TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS is not set}"
replication="${TOPIC_REPLICATION_FACTOR:-1}"
kafka_topics="${KAFKA_TOPICS:-/opt/kafka/bin/kafka-topics.sh}"

topics() {
  "$kafka_topics" --bootstrap-server "$bootstrap" "$@"
}

# "name partition-count" for every existing topic; retried while the broker starts.
describe_all() {
  topics --describe --exclude-internal \
    | awk '{ for (i = 1; i < NF; i++) if ($i == "PartitionCount:") print $2, $(i + 1) }'
}

existing=""
for attempt in $(seq 1 30); do
  if existing="$(describe_all)"; then
    break
  fi
  if [ "$attempt" -eq 30 ]; then
    echo "Kafka at $bootstrap did not answer; giving up" >&2
    exit 1
  fi
  echo "waiting for Kafka at $bootstrap (attempt $attempt)" >&2
  sleep 5
done

ensure_topic() {
  local name="$1" want="$2" have
  have="$(printf '%s\n' "$existing" | awk -v topic="$name" '$1 == topic { print $2 }')"
  if [ -z "$have" ]; then
    echo "creating $name: $want partitions, replication factor $replication"
    topics --create --if-not-exists --topic "$name" \
      --partitions "$want" --replication-factor "$replication"
  elif [ "$have" -lt "$want" ]; then
    echo "growing $name: $have -> $want partitions"
    topics --alter --topic "$name" --partitions "$want"
  elif [ "$have" -gt "$want" ]; then
    # Partitions cannot be removed; consumers still work, scaling caps differ.
    echo "warning: $name has $have partitions, more than the $want specified" >&2
  else
    echo "$name: $have partitions, as specified"
  fi
}

# name                          partitions   (keep in step with tributary_shared.core.topics)
ensure_topic tributary.workflow.requests 12
ensure_topic tributary.steps 24
ensure_topic tributary.step.results 12
ensure_topic tributary.workflow.events 12
ensure_topic tributary.deadletter 3
