#!/usr/bin/env bash
# Starts a vouch server in the background for the main job and waits until
# it is ready: `scripts/serve-bg.sh WORK [vouch serve flags...]` serves the
# data directory WORK/data on loopback and writes WORK/serve.pid and
# WORK/addr.tcp, WORK/addr.quic; its output goes to WORK/serve.log.
# `scripts/serve-bg.sh --restart WORK [flags...]` first stops the server of
# WORK/serve.pid (SIGTERM, a clean stop) and starts it again on the same
# addresses, appending its output to WORK/serve.log.
set -euo pipefail
cd "$(dirname "$0")/.."
restart=false
if [ "${1:-}" = "--restart" ]; then restart=true; shift; fi
work="$1"; shift
tcp=127.0.0.1:0
quic=127.0.0.1:0
if $restart; then
  pid=$(cat "$work/serve.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && { echo "error: server $pid did not stop" >&2; exit 2; }
  tcp=$(cat "$work/addr.tcp")
  quic=$(cat "$work/addr.quic")
fi
log="$work/serve.log"
start=0
[ -f "$log" ] && start=$(wc -l <"$log")
./target/release/vouch serve --data-dir "$work/data" --listen-tcp "$tcp" --listen-quic "$quic" \
  "$@" >>"$log" 2>&1 &
echo $! >"$work/serve.pid"
# Recovery replays the log: allow 3 minutes on a busy 2-core machine.
for _ in $(seq 1 1800); do
  tail -n +"$((start + 1))" "$log" | grep -q '^ready$' && break
  kill -0 "$!" 2>/dev/null || { cat "$log"; echo "error: server did not start" >&2; exit 2; }
  sleep 0.1
done
tail -n +"$((start + 1))" "$log" | grep -q '^ready$' || {
  tail -n +"$((start + 1))" "$log" | grep -v ' delisted: ' | tail -n 20 >&2
  echo "error: server not ready in 180 s (its last lines above)" >&2; exit 2; }
tail -n +"$((start + 1))" "$log" | sed -n 's/^listening tcp //p' >"$work/addr.tcp"
tail -n +"$((start + 1))" "$log" | sed -n 's/^listening quic //p' >"$work/addr.quic"
