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
# and, read as the services read them (docs/configuration.md), how to reach the brokers:
#   TRIBUTARY_KAFKA_SECURITY_PROTOCOL  PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL
#   TRIBUTARY_KAFKA_SASL_MECHANISM     PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* only)
#   TRIBUTARY_KAFKA_SASL_USERNAME[_FILE], TRIBUTARY_KAFKA_SASL_PASSWORD[_FILE]
#   TRIBUTARY_KAFKA_SSL_CA_PATH        PEM CA of the brokers (default: the JVM's trusted CAs)
#   TRIBUTARY_KAFKA_SSL_CHECK_HOSTNAME false to skip the hostname check (default true)
set -euo pipefail

bootstrap="${TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS:?TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS is not set}"
replication="${TOPIC_REPLICATION_FACTOR:-1}"
kafka_topics="${KAFKA_TOPICS:-/opt/kafka/bin/kafka-topics.sh}"
protocol="${TRIBUTARY_KAFKA_SECURITY_PROTOCOL:-PLAINTEXT}"

# The value of setting $1, from the variable or from the file its _FILE variable names.
setting() {
  local name="$1" file_name="$1_FILE"
  if [ -n "${!name:-}" ] && [ -n "${!file_name:-}" ]; then
    echo "$name and ${file_name} are both set; set only one of them" >&2
    exit 1
  fi
  if [ -n "${!file_name:-}" ]; then
    cat "${!file_name}"
  else
    printf '%s' "${!name:-}"
  fi
}

# A value inside a JAAS string ("..."), itself inside a .properties value.
jaas_quoted() {
  local value="${1//\\/\\\\}"
  value="${value//\"/\\\"}"
  value="${value//\\/\\\\}"
  printf '"%s"' "$value"
}

# kafka-topics.sh --command-config for the configured protocol, in a file only this user
# reads (it holds the password), removed on exit.
client_config=()
if [ "$protocol" != "PLAINTEXT" ]; then
  config_file="$(mktemp "${TMPDIR:-/tmp}/tributary-kafka-client.XXXXXX")"
  trap 'rm -f "$config_file"' EXIT
  {
    echo "security.protocol=$protocol"
    case "$protocol" in
      SSL | SASL_SSL)
        if [ -n "${TRIBUTARY_KAFKA_SSL_CA_PATH:-}" ]; then
          echo "ssl.truststore.type=PEM"
          echo "ssl.truststore.location=$TRIBUTARY_KAFKA_SSL_CA_PATH"
        fi
        if [ "${TRIBUTARY_KAFKA_SSL_CHECK_HOSTNAME:-true}" = "false" ]; then
          echo "ssl.endpoint.identification.algorithm="
        fi
        ;;
    esac
    case "$protocol" in
      SASL_PLAINTEXT | SASL_SSL)
        mechanism="${TRIBUTARY_KAFKA_SASL_MECHANISM:?TRIBUTARY_KAFKA_SASL_MECHANISM is not set}"
        case "$mechanism" in
          PLAIN) module=org.apache.kafka.common.security.plain.PlainLoginModule ;;
          SCRAM-SHA-256 | SCRAM-SHA-512) module=org.apache.kafka.common.security.scram.ScramLoginModule ;;
          *) echo "unknown TRIBUTARY_KAFKA_SASL_MECHANISM: $mechanism" >&2; exit 1 ;;
        esac
        username="$(setting TRIBUTARY_KAFKA_SASL_USERNAME)"
        password="$(setting TRIBUTARY_KAFKA_SASL_PASSWORD)"
        echo "sasl.mechanism=$mechanism"
        echo "sasl.jaas.config=$module required username=$(jaas_quoted "$username") password=$(jaas_quoted "$password");"
        ;;
    esac
  } > "$config_file"
  client_config=(--command-config "$config_file")
fi

topics() {
  "$kafka_topics" --bootstrap-server "$bootstrap" "${client_config[@]}" "$@"
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
ensure_topic tributary.workflow.calls 12
ensure_topic tributary.deadletter 3
