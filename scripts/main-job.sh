#!/usr/bin/env bash
# The main job end to end: installs what is missing, builds, starts a vouch
# server on a fresh embedded data directory (RocksDB on disk), replays real
# public data through it over TCP (every order gets a code, part is
# redeemed, retried and reversed), audits the server against the client's
# model, prints the summary and stops the server.
#
# The data folder: VOUCH_DATA when set; else ../shared/data when it exists
# beside the project (it adds the research-use Tianchi O2O file); else the
# openly licensed files bundled in data/ (see data/README.md).
#
# Options (environment): VOUCH_DATA, VOUCH_TARGET_SCHEME (tcp or quic,
# default tcp), VOUCH_REPORT (JSON report path, default
# target/replay-report.json; its fields are in loadtest/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
if [ -n "${VOUCH_DATA:-}" ]; then
  data="$VOUCH_DATA"
  [ -d "$data" ] || { echo "error: VOUCH_DATA=$data is not a folder; unset it to use the bundled data/ (see data/README.md)" >&2; exit 2; }
elif [ -d ../shared/data ]; then
  data=../shared/data
else
  data=data
fi
scheme="${VOUCH_TARGET_SCHEME:-tcp}"
report="${VOUCH_REPORT:-target/replay-report.json}"
echo "input data: $data"
cargo build --release --locked -p vouch -p vouch-loadtest
work=$(mktemp -d)
log="$work/serve.log"
# A 10 s reversal window: the replay's redemptions become payable, and are
# settled and paid out, within the run (the default is an hour).
./target/release/vouch serve --data-dir "$work/data" --listen-tcp 127.0.0.1:0 --listen-quic 127.0.0.1:0 \
  --reversal-window-s 10 >"$log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 600); do
  grep -q '^ready$' "$log" && break
  kill -0 $pid 2>/dev/null || { cat "$log"; echo "error: server did not start" >&2; exit 2; }
  sleep 0.1
done
addr=$(sed -n "s/^listening $scheme //p" "$log")
echo "server on $scheme://$addr (data directory $work/data)"
status=0
./target/release/vouch-loadtest replay --target "$scheme://$addr" --data "$data" \
  --token-file "$work/data/admin.token" --ca "$work/data/cert.pem" --json "$report" || status=$?
kill -TERM $pid
wait $pid || true
tail -n 1 "$log"
exit $status
