#!/usr/bin/env bash
# A single Prometheus Alertmanager for development and tests: Debian's
# prometheus-alertmanager (bin/setup installs it), on loopback, without
# clustering, with deploy/alertmanager/alertmanager.yml.
#
#   local-alertmanager.sh start    start it and wait until it is ready
#   local-alertmanager.sh stop     stop the one started from the same data folder
#   local-alertmanager.sh status   exit 0 when it is running
#   local-alertmanager.sh url      print its address
#
# Settings (environment):
#   ALERTMANAGER_PORT       listen on 127.0.0.1 here   (default 9095: 9093, its usual port, is the local broker's controller)
#   ALERTMANAGER_DATA_DIR   silences, notification log, pid file     (default .cache/alertmanager/data-PORT)
#   ALERTMANAGER_CONFIG     routing configuration                    (default deploy/alertmanager/alertmanager.yml)
#   ALERTMANAGER_FRESH=1    wipe the data folder before starting
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
port="${ALERTMANAGER_PORT:-9095}"
data_dir="${ALERTMANAGER_DATA_DIR:-$repo/.cache/alertmanager/data-$port}"
config="${ALERTMANAGER_CONFIG:-$here/alertmanager.yml}"
pid_file="$data_dir/alertmanager.pid"
url="http://127.0.0.1:$port"
say() { echo "local-alertmanager: $*" >&2; }
die() { say "$*"; exit 1; }

binary() {
  command -v prometheus-alertmanager || command -v alertmanager ||
    die "Alertmanager is not installed (Debian: apt-get install prometheus-alertmanager; bin/setup does it)"
}

running() { [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }

start() {
  running && { say "already running ($url)"; return 0; }
  [[ "${ALERTMANAGER_FRESH:-0}" == 1 ]] && rm -rf "$data_dir"
  mkdir -p "$data_dir"
  local program
  program="$(binary)"
  # --cluster.listen-address= turns off the gossip listener: one instance, nothing on other interfaces.
  "$program" --config.file="$config" --storage.path="$data_dir" \
    --web.listen-address="127.0.0.1:$port" --cluster.listen-address= \
    >"$data_dir/alertmanager.log" 2>&1 </dev/null &
  echo $! >"$pid_file"
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request; urllib.request.urlopen('$url/-/ready', timeout=1)" 2>/dev/null; then
      say "ready: $url"
      return 0
    fi
    running || { cat "$data_dir/alertmanager.log" >&2; die "Alertmanager exited"; }
    sleep 0.2
  done
  die "Alertmanager did not get ready within 20 s (log: $data_dir/alertmanager.log)"
}

stop() {
  running || return 0
  local pid
  pid="$(cat "$pid_file")"
  say "stopping Alertmanager (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pid_file"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) running ;;
  url) echo "$url" ;;
  *) sed -n '2,15s/^# \{0,1\}//p' "$0"; exit 2 ;;
esac
