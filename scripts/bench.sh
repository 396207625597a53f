#!/usr/bin/env bash
# Reproduces the load-test numbers of BENCHMARKS.md: starts a fresh server
# per scenario on 127.0.0.1 (durable: every reply after a synced write),
# runs vouch-loadtest against it, and prints one line per scenario plus the
# JSON reports in target/bench/. Usage: scripts/bench.sh [tcp|quic ...]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
cargo build --release --locked -p vouch -p vouch-loadtest >/dev/null
out=target/bench
mkdir -p "$out"
schemes=("${@:-tcp quic}")
read -r -a schemes <<<"${schemes[*]}"
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

start() { # [keep]: reuse the data directory instead of a fresh one
  [ "${1:-}" = keep ] || rm -rf "$work/data"
  ./target/release/vouch serve --data-dir "$work/data" --listen-tcp 127.0.0.1:0 --listen-quic 127.0.0.1:0 >"$work/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do grep -q '^ready$' "$work/serve.log" && return; sleep 0.1; done
  echo "server did not start" >&2; cat "$work/serve.log" >&2; exit 2
}
stop() { kill -TERM "$pid"; wait "$pid" || true; pid=""; }
lt() { # scheme name args...
  local scheme=$1 name=$2; shift 2
  local addr; addr=$(sed -n "s/^listening $scheme //p" "$work/serve.log")
  ./target/release/vouch-loadtest "$@" --target "$scheme://$addr" \
    --token-file "$work/data/admin.token" --ca "$work/data/cert.pem" --json "$out/$name-$scheme.json" >"$out/$name-$scheme.txt"
  echo "== $name over $scheme"; cat "$out/$name-$scheme.txt"
}

for s in "${schemes[@]}"; do
  start; lt "$s" flash-sale-1m flash-sale --orders 1000000 --batch 1000 --connections 4 --depth 4
  rss=$(awk '/VmRSS/{print $2}' /proc/"$pid"/status); echo "server RSS after 1 M live vouchers: ${rss} KiB"
  stop
  t0=$(date +%s%N); start keep; t1=$(date +%s%N)
  echo "restart with 1 M vouchers to ready: $(( (t1 - t0) / 1000000 )) ms ($(grep '^recovered' "$work/serve.log"))"
  stop
  start; lt "$s" pos-batched pos --vouchers 100000 --units 10 --redeems 500000 --batch 1000 --connections 4 --depth 4; stop
  start; lt "$s" pos-single pos --vouchers 20000 --units 40 --redeems 200000 --batch 1 --connections 8 --depth 64; stop
  # Latency at about half of the single-frame peak, open loop (latency from
  # the intended send time).
  start; lt "$s" pos-single-open pos --vouchers 20000 --units 40 --redeems 200000 --batch 1 --connections 8 --depth 64 --rate 45000; stop
  start; lt "$s" replay replay --data ../shared/data; stop
  start; lt "$s" mixed mixed; stop
done
