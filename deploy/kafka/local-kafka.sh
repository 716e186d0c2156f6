#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft) for development and tests, run from
# Maven Central jars with plain `java`: no Docker, no system install.
#
#   local-kafka.sh fetch          download the broker jars into the cache (once)
#   local-kafka.sh start          fetch, format storage if new, start, wait until it serves
#   local-kafka.sh stop           stop the broker started from the same data folder
#   local-kafka.sh status         exit 0 when that broker is running
#   local-kafka.sh bootstrap      print its bootstrap address
#
# Settings (environment):
#   KAFKA_PORT             client listener on 127.0.0.1           (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener              (default KAFKA_PORT + 1)
#   KAFKA_DATA_DIR         storage, logs, pid file                (default .cache/kafka/data-PORT)
#   KAFKA_FRESH=1          wipe KAFKA_DATA_DIR before starting
#   KAFKA_START_TIMEOUT    seconds to wait for the broker         (default 90)
#   KAFKA_HEAP_OPTS        JVM heap                               (default -Xms256m -Xmx768m)
#   KAFKA_SASL_PORT        also listen for SASL_PLAINTEXT here (SCRAM-SHA-512, SCRAM-SHA-256, PLAIN)
#   KAFKA_SASL_USER, KAFKA_SASL_PASSWORD   the SASL user created with the storage
#                          (default wirewatch / wirewatch-secret; development only)
#   KAFKA_TLS_PORT         also listen for SSL (TLS) here, with a certificate for 127.0.0.1 and
#                          localhost signed by a CA made with the storage; clients trust
#                          KAFKA_DATA_DIR/tls/ca.pem (development only)
#   WIREWATCH_CACHE_DIR    where jars are cached                  (default .cache at the repo root)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache_dir="${WIREWATCH_CACHE_DIR:-$repo/.cache}"
kafka_version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
lib_dir="$cache_dir/kafka/$kafka_version/lib"
port="${KAFKA_PORT:-9092}"
controller_port="${KAFKA_CONTROLLER_PORT:-$((port + 1))}"
data_dir="${KAFKA_DATA_DIR:-$cache_dir/kafka/data-$port}"
pid_file="$data_dir/broker.pid"
start_timeout="${KAFKA_START_TIMEOUT:-90}"
sasl_port="${KAFKA_SASL_PORT:-}"
tls_port="${KAFKA_TLS_PORT:-}"
tls_dir="$data_dir/tls"
sasl_user="${KAFKA_SASL_USER:-wirewatch}"
sasl_password="${KAFKA_SASL_PASSWORD:-wirewatch-secret}"

say() { echo "local-kafka: $*" >&2; }
die() { say "error: $*"; exit 1; }

fetch() {
  if [[ -f "$lib_dir/.complete" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "Maven (mvn) is required to fetch Kafka $kafka_version"
  command -v java >/dev/null || die "Java 17+ is required to run Kafka $kafka_version"
  say "fetching Apache Kafka $kafka_version jars from Maven Central into $lib_dir"
  local staging="$lib_dir.partial"
  rm -rf "$staging"
  mkdir -p "$staging"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$staging" >&2 \
    || die "mvn could not fetch the Kafka jars"
  rm -rf "$lib_dir"
  mv "$staging" "$lib_dir"
  touch "$lib_dir/.complete"
}

kafka_java() {
  # exec, so that a backgrounded call's $! is the JVM itself
  # shellcheck disable=SC2086
  exec java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m} \
    -Dlog4j2.configurationFile="$here/log4j2.properties" \
    -Dkafka.logs.dir="$data_dir" \
    -cp "$lib_dir/*" "$@"
}

running_pid() {
  [[ -f "$pid_file" ]] || return 1
  local pid
  pid="$(cat "$pid_file")"
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

write_config() {
  local listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port"
  local advertised="PLAINTEXT://127.0.0.1:$port"
  if [[ -n "$sasl_port" ]]; then
    listeners="$listeners,SASL_PLAINTEXT://127.0.0.1:$sasl_port"
    advertised="$advertised,SASL_PLAINTEXT://127.0.0.1:$sasl_port"
  fi
  if [[ -n "$tls_port" ]]; then
    listeners="$listeners,SSL://127.0.0.1:$tls_port"
    advertised="$advertised,SSL://127.0.0.1:$tls_port"
  fi
  # The file holds the SASL and keystore passwords: readable by its owner only, from its first byte.
  rm -f "$data_dir/server.properties"
  (umask 077 && : >"$data_dir/server.properties")
  cat >"$data_dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL
log.dirs=$data_dir/logs
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# wirewatch stamps records with their event time; time-based retention would
# delete replayed old pages at once, so the development broker keeps by size.
log.retention.ms=-1
log.retention.bytes=1073741824
# Large enough for the oversized pages the tests send to prove they are dead-lettered.
message.max.bytes=16777216
EOF
  if [[ -n "$sasl_port" ]]; then
    cat >>"$data_dir/server.properties" <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$sasl_user="$sasl_password";
EOF
  fi
  if [[ -n "$tls_port" ]]; then
    cat >>"$data_dir/server.properties" <<EOF
ssl.keystore.type=PKCS12
ssl.keystore.location=$tls_dir/broker.p12
ssl.keystore.password=$(cat "$tls_dir/password")
ssl.client.auth=none
EOF
  fi
}

# A CA of its own and a broker certificate it signs, for 127.0.0.1 and localhost; made once per data folder.
make_certificates() {
  [[ -f "$tls_dir/broker.p12" ]] && return 0
  command -v keytool >/dev/null || die "keytool (Java) is required for KAFKA_TLS_PORT"
  rm -rf "$tls_dir"
  mkdir -p -m 700 "$tls_dir"
  # Keys, keystores and their password: the owner's alone.
  local previous_umask
  previous_umask="$(umask)"
  umask 077
  local password
  password="$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  echo "$password" >"$tls_dir/password"
  local keytool=(keytool -storetype PKCS12 -storepass "$password" -keypass "$password")
  "${keytool[@]}" -genkeypair -keystore "$tls_dir/ca.p12" -alias ca -keyalg RSA -keysize 2048 -validity 3650 \
    -dname "CN=wirewatch development CA" -ext bc:c -ext ku:c=keyCertSign,cRLSign >/dev/null 2>&1
  "${keytool[@]}" -exportcert -rfc -keystore "$tls_dir/ca.p12" -alias ca -file "$tls_dir/ca.pem" >/dev/null 2>&1
  "${keytool[@]}" -genkeypair -keystore "$tls_dir/broker.p12" -alias broker -keyalg RSA -keysize 2048 \
    -validity 3650 -dname "CN=localhost" >/dev/null 2>&1
  "${keytool[@]}" -certreq -keystore "$tls_dir/broker.p12" -alias broker -file "$tls_dir/broker.csr" >/dev/null 2>&1
  "${keytool[@]}" -gencert -keystore "$tls_dir/ca.p12" -alias ca -infile "$tls_dir/broker.csr" -rfc \
    -outfile "$tls_dir/broker.pem" -validity 3650 -ext SAN=ip:127.0.0.1,dns:localhost \
    -ext ku:c=digitalSignature,keyEncipherment -ext eku=serverAuth >/dev/null 2>&1
  "${keytool[@]}" -importcert -noprompt -keystore "$tls_dir/broker.p12" -alias ca -file "$tls_dir/ca.pem" >/dev/null 2>&1
  "${keytool[@]}" -importcert -noprompt -keystore "$tls_dir/broker.p12" -alias broker -file "$tls_dir/broker.pem" \
    >/dev/null 2>&1 || die "could not make the TLS certificates in $tls_dir"
  umask "$previous_umask"
  say "made a development CA ($tls_dir/ca.pem) and a broker certificate for 127.0.0.1"
}

start() {
  if pid="$(running_pid)"; then
    say "already running (pid $pid) on 127.0.0.1:$port"
    return 0
  fi
  if port_open "$port"; then
    die "127.0.0.1:$port is taken by another process; set KAFKA_PORT"
  fi
  fetch
  if [[ "${KAFKA_FRESH:-0}" == 1 ]]; then
    rm -rf "$data_dir"
  fi
  mkdir -p "$data_dir"
  if [[ -n "$tls_port" ]]; then
    make_certificates
  fi
  write_config
  if [[ ! -f "$data_dir/logs/meta.properties" ]]; then
    local cluster_id
    cluster_id="$(kafka_java kafka.tools.StorageTool random-uuid)"
    local scram=()
    if [[ -n "$sasl_port" ]]; then
      scram=(--add-scram "SCRAM-SHA-512=[name=$sasl_user,password=$sasl_password]"
             --add-scram "SCRAM-SHA-256=[name=$sasl_user,password=$sasl_password]")
    fi
    (kafka_java kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$data_dir/server.properties" "${scram[@]}" >/dev/null)
  fi
  say "starting Kafka $kafka_version on 127.0.0.1:$port (data: $data_dir)"
  (kafka_java kafka.Kafka "$data_dir/server.properties") >"$data_dir/stdout.log" 2>&1 </dev/null &
  echo $! >"$pid_file"
  local waited=0
  until grep -q "Kafka Server started" "$data_dir/server.log" 2>/dev/null && port_open "$port"; do
    if ! running_pid >/dev/null; then
      tail -n 30 "$data_dir/stdout.log" >&2 || true
      die "the broker exited during start-up (logs: $data_dir)"
    fi
    if ((waited >= start_timeout * 2)); then
      stop
      die "the broker did not serve within ${start_timeout}s (logs: $data_dir)"
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
  say "ready: bootstrap 127.0.0.1:$port"
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$pid_file"
    return 0
  fi
  say "stopping broker (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "broker did not stop in 30s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pid_file"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) running_pid >/dev/null ;;
  bootstrap) echo "127.0.0.1:$port" ;;
  *)
    sed -n '2,20s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
    ;;
esac
