#!/usr/bin/env bash
# The engine's seeded simulation (engine/tests/simulation.rs) at length:
#   scripts/simulate.sh [STEPS] [SEED]
# STEPS defaults to 10,000,000; without SEED each run draws one and prints
# it, and a failure prints the line that reruns it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
export VOUCH_SIM_STEPS="${1:-10000000}"
if [ -n "${2:-}" ]; then export VOUCH_SIM_SEED="$2"; fi
cargo test --release --locked -p vouch-engine --test simulation -- --nocapture
