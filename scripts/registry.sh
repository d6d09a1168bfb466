#!/usr/bin/env bash
# A local Apicurio Registry (in-memory storage) serving the Confluent Schema Registry API, for
# development and tests (test/helpers/registry.ts uses the same build). Built from Maven Central.
#
#   scripts/registry.sh build                 # registry/app/pom.xml -> .cache/registry/build (idempotent)
#   scripts/registry.sh start [--port N]      # background registry; prints SCHEMA_REGISTRY_URL=...
#   scripts/registry.sh stop                  # SIGTERM, wait (20 s), then SIGKILL
#   scripts/registry.sh status                # running? (exit 0 if running, 3 if not)
#
# The Confluent-compatible API is at http://127.0.0.1:PORT/apis/ccompat/v7 (what a topic's
# schemaRegistry.url names). Storage is in memory: a restart forgets every schema.
# Port: --port, else $REGISTRY_PORT, else a free one. Runtime files: .cache/registry/run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd -P)
APP=$ROOT/registry/app
CACHE=$ROOT/.cache/registry
BUILD=$CACHE/build
JAR=$BUILD/local-schema-registry-0-runner.jar
STAMP=$CACHE/build.stamp
RUN=$CACHE/run

log() { echo "registry: $*" >&2; }
die() { log "$*"; exit 1; }

# The build's inputs: the pom and the one source folder.
inputs_sha() { (cd "$APP" && find pom.xml src -type f | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -d' ' -f1; }

up_to_date() { [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(inputs_sha)" ] && [ -f "$JAR" ]; }

cmd_build() {
  if up_to_date; then
    log "up to date: ${JAR#"$ROOT"/}"
    return 0
  fi
  mkdir -p "$CACHE"
  if command -v flock >/dev/null; then # one build at a time (parallel test processes)
    exec 9>"$CACHE/build.lock"
    flock 9
    if up_to_date; then
      exec 9>&-
      log "up to date: ${JAR#"$ROOT"/}"
      return 0
    fi
  fi
  command -v mvn >/dev/null || die "mvn not found (needed to build the registry from Maven Central)"
  local want t0
  want=$(inputs_sha)
  t0=$(date +%s)
  log "building Apicurio Registry (registry/app/pom.xml; a few minutes the first time)..."
  rm -rf "$BUILD"
  if ! mvn -B -Dstyle.color=never -f "$APP/pom.xml" package -DskipTests -Dregistry.build.dir="$BUILD" >"$CACHE/mvn.log" 2>&1; then
    tail -n 40 "$CACHE/mvn.log" >&2
    die "mvn package failed (full log: ${CACHE#"$ROOT"/}/mvn.log)"
  fi
  [ -f "$JAR" ] || die "the build did not produce ${JAR#"$ROOT"/}"
  echo "$want" >"$STAMP"
  exec 9>&-
  log "built in $(($(date +%s) - t0)) s: ${JAR#"$ROOT"/} ($(du -sh "$BUILD" | cut -f1))"
}

running_pid() {
  local pid
  pid=$(cat "$RUN/registry.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$JAR" || return 1
  echo "$pid"
}

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

cmd_start() {
  local port=${REGISTRY_PORT:-}
  while [ $# -gt 0 ]; do
    case $1 in
      --port) [ $# -ge 2 ] || die "--port needs a value"; port=$2; shift 2 ;;
      *) die "unknown argument: $1" ;;
    esac
  done
  cmd_build
  command -v java >/dev/null || die "java not found"
  mkdir -p "$RUN"
  if pid=$(running_pid); then
    log "already running (pid $pid)"
    echo "SCHEMA_REGISTRY_URL=$(cat "$RUN/url")"
    return 0
  fi
  [ -n "$port" ] || port=$(free_port)
  local url="http://127.0.0.1:$port/apis/ccompat/v7"
  # Quarkus reads HTTP_PORT (the registry's application.properties); bind to loopback only.
  # In-memory H2 with a 30 s lock timeout (H2's 1 s default fails concurrent first registrations on a loaded machine).
  HTTP_PORT=$port REGISTRY_DATASOURCE_URL='jdbc:h2:mem:registry_db;LOCK_TIMEOUT=30000' nohup java -Xms64m -Xmx384m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError \
    -Dquarkus.http.host=127.0.0.1 -jar "$JAR" >"$RUN/registry.log" 2>&1 &
  echo $! >"$RUN/registry.pid"
  echo "$url" >"$RUN/url"
  for _ in $(seq 1 240); do
    if curl -sf "$url/subjects" >/dev/null 2>&1; then
      log "running: pid $(cat "$RUN/registry.pid"), port $port (log ${RUN#"$ROOT"/}/registry.log)"
      echo "SCHEMA_REGISTRY_URL=$url"
      return 0
    fi
    kill -0 "$(cat "$RUN/registry.pid")" 2>/dev/null || { tail -n 30 "$RUN/registry.log" >&2; die "the registry exited while starting"; }
    sleep 0.5
  done
  die "no answer from $url/subjects after 120 s (log ${RUN#"$ROOT"/}/registry.log)"
}

cmd_stop() {
  local pid
  if ! pid=$(running_pid); then
    log "not running"
    rm -f "$RUN/registry.pid"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  rm -f "$RUN/registry.pid"
  log "stopped (pid $pid)"
}

cmd_status() {
  local pid
  if pid=$(running_pid); then
    log "running: pid $pid"
    echo "SCHEMA_REGISTRY_URL=$(cat "$RUN/url")"
    return 0
  fi
  log "not running"
  return 3
}

case ${1:-} in
  build) shift; cmd_build "$@" ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  status) shift; cmd_status "$@" ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
