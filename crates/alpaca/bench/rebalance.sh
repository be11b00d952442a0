#!/usr/bin/env bash
# The adapter's request-budget benchmark against alpaca-fake (see
# crates/alpaca/examples/rebalance_bench.rs for what is measured).
#
#   crates/alpaca/bench/rebalance.sh [ORDERS=500] [RPM=600] [FAST_ORDERS=100]
#
# Two fakes: one enforcing the same budget as the adapter (a 429 would show
# any pacing mistake), one with an effectively unlimited budget. Exit 0 when
# the paced run had no 429 and stayed within 5% of its bound.
set -euo pipefail
cd "$(dirname "$0")/../../.."
ORDERS="${1:-500}"
RPM="${2:-600}"
FAST="${3:-100}"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
[ -n "${SKIP_BUILD:-}" ] || cargo build -q -p alpaca-fake -p keel-alpaca --example rebalance_bench
FAKE=target/debug/alpaca-fake
AT=2026-12-01T15:00:00Z
LOGDIR="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$LOGDIR"; }
trap cleanup EXIT

start_fake() { # name, extra args...
  local name="$1"; shift
  "$FAKE" --bind 127.0.0.1:0 --at "$AT" --partial-fill-prob 0 --cash 100000000 "$@" >"$LOGDIR/$name.out" 2>"$LOGDIR/$name.err" &
  PIDS+=("$!")
  for _ in $(seq 1 100); do
    if grep -q "listening on" "$LOGDIR/$name.out" 2>/dev/null; then
      sed -n 's|alpaca-fake listening on http://||p' "$LOGDIR/$name.out" | head -n1
      return
    fi
    sleep 0.1
  done
  echo "alpaca-fake ($name) did not start" >&2; cat "$LOGDIR/$name.err" >&2; exit 1
}

# The fake's bucket holds a little more than the client's burst: requests paced
# apart when sent can arrive closer together.
PACED="$(start_fake paced --requests-per-minute "$RPM" --burst 10)"
UNPACED="$(start_fake unpaced --requests-per-minute 1000000)"
target/debug/examples/rebalance_bench --paced "$PACED" --unpaced "$UNPACED" \
  --orders "$ORDERS" --rpm "$RPM" --fast-orders "$FAST"
