#!/usr/bin/env bash
# Short fuzzing run for CI: every target for FUZZ_SECONDS (default 60) from the
# checked-in seeds. Exits non-zero on the first crash, leak or timeout, and
# leaves the reproducer in fuzz/artifacts/<target>/.
#
# cargo-fuzz needs nightly-only flags (-Zsanitizer=address); on a stable
# toolchain RUSTC_BOOTSTRAP=1 unlocks them. See fuzz/README.md for the long run.
set -euo pipefail
cd "$(dirname "$0")"

SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
TARGETS=(target_set_json target_set_csv broker_event audit_event)
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
cargo fuzz --version

echo "== building fuzz targets (address sanitizer)"
cargo fuzz build

for t in "${TARGETS[@]}"; do
  # A fresh corpus from the seeds each run: CI must not depend on leftovers.
  corpus="$(mktemp -d)"
  cp seeds/"$t"/* "$corpus"/
  echo "== fuzzing $t for ${SECONDS_PER_TARGET}s"
  log="$(mktemp)"
  status=0
  cargo fuzz run "$t" "$corpus" -- \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  grep -E "^(Done|stat::number_of_executed_units|SUMMARY)" "$log" || true
  rm -rf "$corpus"
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log" >&2
    rm -f "$log"
    echo "fuzz target $t failed (exit $status); reproducer in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  rm -f "$log"
done
echo "fuzz: ${#TARGETS[@]} targets x ${SECONDS_PER_TARGET}s, no failure"
