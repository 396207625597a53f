#!/usr/bin/env bash
# The test command: installs what is missing, builds in release mode (one
# RocksDB build serves the tests, the server and the crash test) and runs
# every test of the workspace (README.md's command blocks included, see
# tests/readme.rs), then the main job on the bundled data. Ends with cargo's
# summaries and one total line.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
# The connection-limit tests open thousands of sockets.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
start=$(date +%s)
cargo build --release --workspace --all-targets --locked
set +e
cargo test --release --workspace --locked --no-fail-fast 2>&1 | tee target/test-output.txt
status=${PIPESTATUS[0]}
# The main job as a plain clone runs it: on the bundled data/ only.
echo "main job on the bundled data:"
VOUCH_DATA=data VOUCH_REPORT=target/main-job-report.json bash scripts/main-job.sh 2>&1 | tail -n 4
main_job=${PIPESTATUS[0]}
[ "$main_job" -eq 0 ] || { echo "main job failed (exit $main_job)"; [ "$status" -ne 0 ] || status=$main_job; }
set -e
totals=$(awk '/^test result: /{for(i=1;i<=NF;i++){if($(i+1) ~ /^passed/)p+=$i; if($(i+1) ~ /^failed/)f+=$i}} END{printf "%d %d", p, f}' target/test-output.txt)
read -r passed failed <<<"$totals"
echo "test time: $(( $(date +%s) - start )) s"
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
