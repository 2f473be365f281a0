#!/usr/bin/env bash
# Runs every fuzz target for $1 seconds (default 10), starting from the seeded corpus, and
# prints the executions per target. Fails on the first crash.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-10}"
python3 seed-corpus.py >/dev/null
cargo fuzz build -s none
for target in $(cargo fuzz list); do
  mkdir -p "corpus/${target}"
  log="$(mktemp)"
  if ! cargo fuzz run -s none "${target}" "corpus/${target}" -- \
      -max_total_time="${seconds}" -rss_limit_mb=2048 >"${log}" 2>&1; then
    tail -40 "${log}"
    echo "fuzz target ${target} failed" >&2
    exit 1
  fi
  runs="$(grep -Eo 'Done [0-9]+ runs' "${log}" | grep -Eo '[0-9]+' | tail -1 || true)"
  echo "${target}: ${runs:-?} executions in ${seconds} s"
  rm -f "${log}"
done
