#!/usr/bin/env bash
# What each analysis stage costs, in instructions per packet as callgrind
# counts them (exact and repeatable, unlike timings on this shared VM), on
# the generated benchmark capture (N packets, default 200,000).
#
#   bash benches/analyze_cost.sh                      # this checkout
#   BASE=/path/to/old/sonde bash benches/analyze_cost.sh   # and a baseline, side by side
#
# Costs are exclusive and grouped by the source file of the code (code
# inlined from a stage's file counts in that file; what it calls in std,
# hashbrown or httparse counts there). The hashing thread's SHA-256 is left
# out (under valgrind sha2 takes its software path). A baseline binary is
# made with `git worktree add /tmp/base REV && cd /tmp/base && cargo build --release`.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200000}
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
command -v valgrind >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
cargo build --release --quiet
cap="$work/cost.pcap"
[ -s "$cap" ] || cargo bench --quiet --bench gen_capture -- "$cap" "$N" >/dev/null
packets=$(capinfos -M -c -T "$cap" | awk -F'\t' 'NR==2 {print $2}')

cost() { # binary, out file
  valgrind --tool=callgrind --callgrind-out-file="$2" "$1" analyze "$cap" --report /dev/null >/dev/null 2>&1
  callgrind_annotate --inclusive=no --auto=no --threshold=100 "$2" 2>/dev/null |
    awk -v n="$packets" -f benches/callgrind_by_file.awk | sort -k2
}
cost target/release/sonde "$work/cg.now" >"$work/now.txt"
echo "capture: $packets packets (benches/gen_capture.rs); instructions per packet by source file"
if [ -n "${BASE:-}" ]; then
  cost "$BASE" "$work/cg.base" >"$work/base.txt"
  printf '%10s %10s %10s  %s\n' base now diff file
  join -1 2 -2 2 -a 1 -a 2 -e 0 -o 0,1.1,2.1 <(sort -k2 "$work/base.txt") <(sort -k2 "$work/now.txt") |
    awk '{ printf "%10.1f %10.1f %+10.1f  %s\n", $2, $3, $3 - $2, $1 }' | sort -k2 -rn
else
  sort -rn "$work/now.txt"
fi
