#!/usr/bin/env bash
# The main job end to end: installs what is missing, builds, starts a vouch
# server on a fresh embedded data directory (RocksDB on disk), replays real
# public data through it over TCP (every order gets a code, part is
# redeemed, retried and reversed; cancellations become refunds; every
# seller is settled and paid), restarts the server with a rehearsal clock
# 4 days ahead so that the short-validity products expire (REF-6, SET-1),
# settles again, audits units and money against the client's model,
# audits what a local webhook receiver (the SMS gateway, flaky on purpose)
# accepted against the engine's live codes and redemptions, prints the
# summary and stops the server.
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
stop() {
  local pid
  pid=$(cat "$work/serve.pid" 2>/dev/null) || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}
trap 'stop; kill "$(cat "$work/receiver.pid" 2>/dev/null)" 2>/dev/null; rm -rf "$work"' EXIT
# The webhook receiver plays the SMS gateway, the code providers and the
# payment system; one message in ten fails its first attempt.
secret=$(head -c 24 /dev/urandom | base64)
export VOUCH_RECEIVER_SECRET="$secret" VOUCH_SMS_WEBHOOK_SECRET="$secret"
export VOUCH_PROVIDER_WEBHOOK_SECRET="$secret" VOUCH_PAYMENT_WEBHOOK_SECRET="$secret"
./target/release/vouch-receiver --listen 127.0.0.1:0 --record "$work/received.jsonl" \
  --flaky-every 10 >"$work/receiver.log" 2>&1 &
echo $! >"$work/receiver.pid"
for _ in $(seq 1 100); do grep -q '^ready$' "$work/receiver.log" && break; sleep 0.1; done
hooks=$(sed -n 's|^listening ||p' "$work/receiver.log")
[ -n "$hooks" ] || { cat "$work/receiver.log"; echo "error: the webhook receiver did not start" >&2; exit 2; }
webhooks="--sms-webhook $hooks/sms --provider-webhook $hooks/provider --payment-webhook $hooks/payment --webhook-backoff-ms 200 --webhook-concurrency 32"
# A 10 s reversal window: the replay's redemptions become payable, and are
# settled and paid out, within the run (the default is an hour).
# shellcheck disable=SC2086
bash scripts/serve-bg.sh "$work" --reversal-window-s 10 $webhooks
addr=$(cat "$work/addr.$scheme")
echo "server on $scheme://$addr (data directory $work/data)"
# The restart: the same data directory and addresses, the clock 4 days
# ahead (for this rehearsal only: deadlines pass early).
restart="bash scripts/serve-bg.sh --restart '$work' --rehearsal-clock-ahead-s 345600 $webhooks"
status=0
./target/release/vouch-loadtest replay --target "$scheme://$addr" --data "$data" \
  --token-file "$work/data/admin.token" --ca "$work/data/cert.pem" --json "$report" \
  --restart "$restart" --delivery-record "$work/received.jsonl" || status=$?
stop
tail -n 1 "$work/serve.log"
exit $status
