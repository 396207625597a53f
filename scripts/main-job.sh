#!/usr/bin/env bash
# The main job end to end: installs what is missing, builds, starts a vouch
# server on a fresh embedded data directory (RocksDB on disk), replays the
# real data of ../shared/data through it over TCP (every order gets a code,
# part is redeemed, retried and reversed), audits the server against the
# client's model, prints the summary and stops the server.
#
# Options (environment): VOUCH_DATA (default ../shared/data),
# VOUCH_TARGET_SCHEME (tcp or quic, default tcp), VOUCH_REPORT (JSON report
# path, default target/replay-report.json).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
data="${VOUCH_DATA:-../shared/data}"
scheme="${VOUCH_TARGET_SCHEME:-tcp}"
report="${VOUCH_REPORT:-target/replay-report.json}"
[ -f "$data/o2o-coupon-issuance-2016-07.csv" ] || { echo "error: no input data in $data" >&2; exit 2; }
cargo build --release --locked -p vouch -p vouch-loadtest
work=$(mktemp -d)
log="$work/serve.log"
./target/release/vouch serve --data-dir "$work/data" --listen-tcp 127.0.0.1:0 --listen-quic 127.0.0.1:0 >"$log" 2>&1 &
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
