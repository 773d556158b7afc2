#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 600), JOBS at a time
# (default: the core count), from seed corpora built from ../shared/corpus,
# scopes/, the craft fixtures and the unit tests' inputs. Needs the nightly
# toolchain and cargo-fuzz (cargo install cargo-fuzz).
#
#   bash fuzz/run.sh                 # all targets, 10 minutes each
#   SECONDS_EACH=60 bash fuzz/run.sh capture
#
# Crashes land in fuzz/artifacts/TARGET/; each one found becomes a
# regression test named after what it was (tests/robustness.rs).
set -euo pipefail
cd "$(dirname "$0")"
each=${SECONDS_EACH:-600}
jobs=${JOBS:-$(nproc)}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(capture craft_spec scope_file target_spec report_page)
seeds=corpus

mkdir -p $seeds/capture $seeds/craft_spec $seeds/scope_file $seeds/target_spec $seeds/report_page
# Captures: every corpus file small enough to be a useful seed.
find ../../shared/corpus -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.cap' \) -size -2000k \
  -exec cp -n {} $seeds/capture/ \; 2>/dev/null || true
cp -n ../scopes/*.toml $seeds/scope_file/
cut -f1 ../tests/craft/fixtures.tsv | while IFS= read -r spec; do
  printf '%s' "$spec" >"$seeds/craft_spec/$(printf '%s' "$spec" | sha1sum | cut -c1-16)"
done
# Reports and audit logs: the committed fixtures (a scan run directory's
# report.json and audit.jsonl, an analysis report, in fuzz/seeds/).
cp -n seeds/report_page/* $seeds/report_page/
for t in "198.18.1.0/24" "198.18.1.1-198.18.1.50" "2001:db8::/120" "host.example:80" \
  "22,80,1000-2000" "-" "1/4" "www.example.com:AAAA" "# comment\n198.18.0.1\n"; do
  printf "$t" >"$seeds/target_spec/$(printf '%s' "$t" | sha1sum | cut -c1-16)"
done

run() {
  local t=$1
  echo "fuzzing $t for $each s"
  cargo +nightly fuzz run "$t" "$seeds/$t" -- -max_total_time="$each" -rss_limit_mb=2048 \
    -timeout=10 -print_final_stats=1 >"fuzz-$t.log" 2>&1 && echo "$t: no crash ($(grep -E 'stat::number_of_executed_units' "fuzz-$t.log" | awk '{print $2}') runs)" \
    || { echo "$t: FAILED, see fuzz/fuzz-$t.log and fuzz/artifacts/$t/"; return 1; }
}
cargo +nightly fuzz build
status=0
running=0
for t in "${targets[@]}"; do
  run "$t" &
  running=$((running + 1))
  if [ $running -ge "$jobs" ]; then
    wait -n || status=1
    running=$((running - 1))
  fi
done
while [ $running -gt 0 ]; do
  wait -n || status=1
  running=$((running - 1))
done
exit $status
