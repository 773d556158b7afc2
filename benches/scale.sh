#!/usr/bin/env bash
# Scale-out benchmark (issue 17): one scan on 1, 2 and 4 "machines", each a
# scanner namespace with its own veth and address into the same target
# namespace, each shard paced to the same per-host rate (as separate hosts
# would be); then `sonde merge` of 4 shards of 1.5M probes each. Needs root;
# sends only inside the namespaces it creates and removes.
#
#   sudo bash benches/scale.sh
#
# Targets: 198.19.0.0/16 routed to the target namespace, every address
# answering (the kernel's "AnyIP"), listeners on 22, 80 and 443; SYN
# cookies on. The scanners' kernels' RSTs are dropped so that N scanners
# load the one target side with probes only.
#
# Settings: RATE (per scanner, default 50000), PORTS_SPEEDUP (default
# 15-22: 524,288 probes), PORTS_MERGE (default 1-92: 65,536 x 92 = 6.03M
# probes, 1.5M per shard), SCANNERS (default "1 2 4").
#
# Printed: per N, whole-run wall time (start of the first shard to the end
# of the last, each shard's evidence and report included), the speed-up
# over one scanner, and the open ports found (the ground truth is 65,536 in
# 15-22 (22), 131,072 in 1-92 (22, 80)); then merge wall time, peak memory and
# the merged report's size and open-port count.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "benches/scale.sh needs root (network namespaces)" >&2; exit 1; }
RATE=${RATE:-50000}
PORTS_SPEEDUP=${PORTS_SPEEDUP:-15-22}
PORTS_MERGE=${PORTS_MERGE:-1-92}
SCANNERS=${SCANNERS:-"1 2 4"}
NET=198.19.0.0/16
T=sonde-st
MAXN=4

need=()
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --quiet
sonde=$PWD/target/release/sonde

teardown() {
  ip netns pids $T 2>/dev/null | xargs -r kill 2>/dev/null || true
  for k in $(seq 1 $MAXN); do ip netns del sonde-s$k 2>/dev/null || true; done
  ip netns del $T 2>/dev/null || true
  if [ -n "${work:-}" ]; then rm -rf "$work"; fi
}
trap teardown EXIT
teardown
work=$(mktemp -d)

ip netns add $T
ip -n $T link set lo up
ip netns exec $T sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip -n $T route add local $NET dev lo
ip netns exec $T sysctl -qw net.ipv4.tcp_syncookies=2
ip netns exec $T sysctl -qw net.core.somaxconn=65535
for k in $(seq 1 $MAXN); do
  s=sonde-s$k
  ip netns add $s
  ip link add vs$k netns $s type veth peer name vt$k netns $T
  ip -n $s link set lo up
  ip netns exec $s sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip -n $s addr add 198.18.$((10 + k)).2/24 dev vs$k
  ip -n $T addr add 198.18.$((10 + k)).1/24 dev vt$k
  ip -n $s link set vs$k up
  ip -n $T link set vt$k up
  ip -n $s route add $NET via 198.18.$((10 + k)).1
  ip netns exec $s iptables -A OUTPUT -p tcp --tcp-flags RST RST -j DROP
  ip netns exec $s ping -c 1 -W 2 198.18.$((10 + k)).1 >/dev/null
done
for p in 22 80 443; do
  ip netns exec $T python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', $p)); s.listen(65535); time.sleep(100000)" &
done
sleep 0.5

# Shards 1..N of one scan, at once, one per scanner namespace: the
# whole-run seconds and the merged run's open-port count.
scan_on() { # N PORTS DIR
  local n=$1 ports=$2 dir=$3 pids=() start end
  rm -rf "$dir"
  mkdir -p "$dir"
  start=$(date +%s.%N)
  for k in $(seq 1 "$n"); do
    /usr/bin/time -f '%M' -o "$dir/rss-$k" ip netns exec sonde-s$k "$sonde" scan --scope scopes/lab.toml $NET \
      -p "$ports" --rate "$RATE" --retries 0 --wait 1 --seed 20261130 --shard "$k/$n" --quiet \
      -o "$dir/shard-$k" >"$dir/out-$k" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { echo "a shard failed:" >&2; cat "$dir"/out-* >&2; exit 1; }; done
  end=$(date +%s.%N)
  awk "BEGIN { printf \"%.2f\", $end - $start }"
}
open_in() { python3 -c '
import json, sys
print(sum(1 for h in json.load(open(sys.argv[1]))["hosts"] for r in h["results"] if r["state"] == "open"))' "$1"; }

echo "speed-up: $NET x $PORTS_SPEEDUP on N scanners at --rate $RATE each (date $(date -u +%F))"
printf '%-10s %10s %10s %9s %12s %s\n' scanners probes seconds speedup "peak MB/shard" "open (merged)"
base=
for n in $SCANNERS; do
  secs=$(scan_on "$n" "$PORTS_SPEEDUP" "$work/s$n")
  if [ "$n" = 1 ]; then
    open=$(open_in "$work/s$n/shard-1/report.json")
  else
    "$sonde" merge $(for k in $(seq 1 "$n"); do echo "$work/s$n/shard-$k"; done) -o "$work/s$n/merged" >/dev/null
    open=$(open_in "$work/s$n/merged/report.json")
  fi
  [ -z "$base" ] && base=$secs
  peak=$(for k in $(seq 1 "$n"); do tail -1 "$work/s$n/rss-$k"; done | sort -n | tail -1)
  probes=$(python3 -c "import json; print(sum(json.load(open('$work/s$n/shard-%d/report.json' % k))['probes'] for k in range(1, $n + 1)))")
  printf '%-10s %10s %10s %9s %12s %s\n' "$n" "$probes" "$secs" "$(awk "BEGIN { printf \"%.2fx\", $base / $secs }")" "$((peak / 1024))" "$open"
  rm -rf "$work/s$n"
done

echo
echo "merge: 4 shards of $NET x $PORTS_MERGE ($((65536 * $(echo "$PORTS_MERGE" | awk -F- '{print $2 - $1 + 1}') / 4)) probes each)"
secs=$(scan_on 4 "$PORTS_MERGE" "$work/m")
echo "  the 4 shards: $secs s whole-run"
/usr/bin/time -f '%M %e' -o "$work/merge-rss" "$sonde" merge "$work"/m/shard-{1,2,3,4} -o "$work/m/merged" >/dev/null
read -r rss msecs <"$work/merge-rss"
size=$(stat -c %s "$work/m/merged/report.json")
echo "  sonde merge: $msecs s, peak $((rss / 1024)) MB, report.json $(awk "BEGIN { printf \"%.1f\", $size / 1e6 }") MB, open ports $(open_in "$work/m/merged/report.json")"
/usr/bin/time -f '%M %e' -o "$work/verify-rss" "$sonde" verify "$work/m/merged" >/dev/null
read -r rss vsecs <"$work/verify-rss"
echo "  sonde verify of the merge (every shard too): $vsecs s, peak $((rss / 1024)) MB"
