#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft) for development and tests, from the jars on Maven Central.
#
#   scripts/kafka.sh fetch                      # jars from kafka/pom.xml -> .cache/kafka/libs (idempotent)
#   scripts/kafka.sh start [--port N] [--dir D] [--scram user:pass]
#                                               # background broker; prints KAFKA_BROKERS=127.0.0.1:PORT
#   scripts/kafka.sh stop [--dir D]             # SIGTERM, wait (30 s), then SIGKILL
#   scripts/kafka.sh status [--dir D]           # running? port? (exit 0 if running, 3 if not)
#
# Default dir: .kafka/ (git-ignored). Port: --port, else $KAFKA_PORT, else the port this dir used
# last time (if free), else a free one. The dir keeps its data across stop/start; delete it to reset.
# `start` is implemented by tools/localBroker.ts (the same code the tests use).
set -euo pipefail
ORIG_PWD=$PWD
cd "$(dirname "$0")/.."
ROOT=$(pwd -P)
POM=$ROOT/kafka/pom.xml
CACHE=$ROOT/.cache/kafka
LIBS=$CACHE/libs
STAMP=$CACHE/libs.stamp

log() { echo "kafka: $*" >&2; }
die() { log "$*"; exit 1; }

pom_sha() { sha256sum "$POM" | cut -d' ' -f1; }

up_to_date() {
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(pom_sha)" ] && compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null
}

cmd_fetch() {
  if up_to_date; then
    log "jars up to date in ${LIBS#"$ROOT"/}"
    return 0
  fi
  mkdir -p "$CACHE"
  # one fetch at a time (parallel test processes); re-check once we hold the lock
  if command -v flock >/dev/null; then
    exec 9>"$CACHE/fetch.lock"
    flock 9
    if up_to_date; then
      exec 9>&-
      log "jars up to date in ${LIBS#"$ROOT"/}"
      return 0
    fi
  fi
  command -v mvn >/dev/null || die "mvn not found (needed to fetch the Kafka jars from Maven Central)"
  local want tmp="$CACHE/libs.tmp.$$"
  want=$(pom_sha)
  rm -rf "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  log "fetching Kafka jars (kafka/pom.xml) via Maven..."
  if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies -DoutputDirectory="$tmp" \
    -DincludeScope=runtime >"$CACHE/mvn.log" 2>&1; then
    tail -n 40 "$CACHE/mvn.log" >&2
    die "mvn dependency:copy-dependencies failed (full log: ${CACHE#"$ROOT"/}/mvn.log)"
  fi
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  trap - EXIT
  echo "$want" >"$STAMP"
  exec 9>&- # release the lock (and keep it out of the broker started by `start`)
  log "$(ls "$LIBS" | wc -l) jars in ${LIBS#"$ROOT"/} ($(du -sh "$LIBS" | cut -f1))"
}

DIR=$ROOT/.kafka
abs_dir() { (cd "$ORIG_PWD" && realpath -m "$1"); }
parse_dir() {
  while [ $# -gt 0 ]; do
    case $1 in
      --dir) [ $# -ge 2 ] || die "--dir needs a value"; DIR=$(abs_dir "$2"); shift 2 ;;
      *) die "unknown argument: $1" ;;
    esac
  done
}

# pid of the broker running in $DIR, if any (checked against /proc cmdline to survive pid reuse)
running_pid() {
  local pid
  pid=$(cat "$DIR/kafka.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka $DIR/server.properties" || return 1
  echo "$pid"
}

recorded_port() { # $1 = listener name
  sed -n 's/^listeners=//p' "$DIR/server.properties" 2>/dev/null | tr ',' '\n' | sed -n "s|^$1://[^:]*:\([0-9]*\)$|\1|p"
}

cmd_start() {
  cmd_fetch
  command -v java >/dev/null || [ -x "${JAVA_HOME:-/nonexistent}/bin/java" ] || die "java not found"
  local args=()
  while [ $# -gt 0 ]; do
    case $1 in
      --dir) [ $# -ge 2 ] || die "--dir needs a value"; DIR=$(abs_dir "$2"); shift 2 ;;
      --port | --scram) [ $# -ge 2 ] || die "$1 needs a value"; args+=("$1" "$2"); shift 2 ;;
      *) die "unknown argument: $1" ;;
    esac
  done
  exec node --import tsx "$ROOT/tools/localBroker.ts" start --dir "$DIR" "${args[@]}"
}

cmd_stop() {
  parse_dir "$@"
  local pid
  if ! pid=$(running_pid); then
    log "not running (dir ${DIR})"
    rm -f "$DIR/kafka.pid"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "no clean shutdown after 30 s; SIGKILL $pid"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$DIR/kafka.pid"
  log "stopped (pid $pid)"
}

cmd_status() {
  parse_dir "$@"
  local pid port sasl
  if pid=$(running_pid); then
    port=$(recorded_port PLAINTEXT)
    sasl=$(recorded_port SASL_PLAINTEXT)
    local rss
    rss=$(ps -o rss= -p "$pid" | tr -d ' ')
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      log "running: pid $pid, port $port${sasl:+, sasl port $sasl}, rss $((rss / 1024)) MiB, dir $DIR"
    else
      log "starting or unhealthy: pid $pid, port $port not accepting connections, dir $DIR"
    fi
    echo "KAFKA_BROKERS=127.0.0.1:$port"
    [ -z "$sasl" ] || echo "KAFKA_SASL_BROKERS=127.0.0.1:$sasl"
    return 0
  fi
  log "not running (dir $DIR)"
  return 3
}

case ${1:-} in
  fetch) shift; cmd_fetch "$@" ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  status) shift; cmd_status "$@" ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
