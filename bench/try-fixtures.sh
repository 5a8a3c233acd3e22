#!/usr/bin/env bash
# Wall time of `pipewright try` per fixture of tests/fixtures/try/ (cold: an empty tool
# cache; warm: the cache from the cold run), with each run's exit status. Prints a table.
# Usage: bench/try-fixtures.sh [path/to/pipewright]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-${CARGO_TARGET_DIR:-target}/release/pipewright}"
cache="$(mktemp -d)"
trap 'rm -rf "$cache"' EXIT
printf '%-24s %10s %10s %6s\n' fixture cold_s warm_s exit
for repo in tests/fixtures/try/*/; do
  name="$(basename "$repo")"
  t0=$(date +%s.%N)
  rc=0
  XDG_CACHE_HOME="$cache" "$bin" try "$repo" >/dev/null 2>&1 || rc=$?
  t1=$(date +%s.%N)
  XDG_CACHE_HOME="$cache" "$bin" try "$repo" >/dev/null 2>&1 || rc=$?
  t2=$(date +%s.%N)
  printf '%-24s %10.1f %10.1f %6s\n' "$name" "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$rc"
done
