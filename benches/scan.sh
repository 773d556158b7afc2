#!/usr/bin/env bash
# Scan benchmark: sonde against masscan and zmap (Debian packages) on the
# same namespace lab, in the same run. Needs root; sends only inside the two
# namespaces it creates and removes.
#
#   sudo bash benches/scan.sh
#
# The lab: namespace sonde-bs (the scanner, veth bs 198.18.0.2/24) and
# sonde-bt (the target side, veth bt 198.18.0.1/24), with 198.19.0.0/16
# routed to sonde-bt, where a local route answers for every address of it
# (the kernel's "AnyIP"). Listeners on 0.0.0.0 ports 22, 80 and 443 make
# those ports open on all 65,536 hosts; the other 18 of the 21 ports answer
# RST. Ground truth: 196,608 open (host, port) pairs. SYN cookies are always
# on so the target side keeps no per-SYN state.
#
# Every tool's achieved rate is measured the same way, from the target
# namespace's counters of SYNs answered, sampled every 10 ms (see measure):
# probes / (last - first sample that moved). Peak memory is the max RSS
# from /usr/bin/time. Recall is the share of the 196,608 open pairs a tool
# reported. The scanner namespace drops its kernel's own RSTs (as masscan's
# documentation advises) so they do not load the target side. Each tool
# gets a time limit (2x its expected duration + 30 s); masscan 1.3.2 can
# hang in its final wait, and is stopped with SIGINT then.
#
# Settings: KEEP_RSTS=1 (leave the scanner kernel's RSTs on); RATES (sonde and masscan, space separated; default
# "100000 max"), where "max" asks for 10,000,000 pps; ACCURACY_RATES for the
# ±5% rate check on smaller scans (default "100 1000 10000 100000 300000").
# GROWTH (issue 19's growth table: port counts, default "24 100 1000"; empty
# to skip), GROWTH_RATE (default 300000), GROWTH_PEERS (default "masscan
# zmap"; empty for sonde alone), GROWTH_MODES (default "full compact"),
# ONLY_GROWTH=1 (skip everything else). BASELINE=PATH: another sonde
# binary scans the /16 too, right after today's at each rate (no speed
# lost against an earlier binary, measured in the same run).
#
# Then the on-link scans of benches/scan_onlink.sh (its own lab; ONLINK=0
# skips them): the four scans issue 25 names, from one command.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "benches/scan.sh needs root (network namespaces)" >&2; exit 1; }
RATES=${RATES:-"100000 max"}
ACCURACY_RATES=${ACCURACY_RATES:-"100 1000 10000 100000 300000"}
PORTS=21,22,23,25,53,80,110,111,135,139,143,443,445,993,995,1723,3306,3389,5900,8080,8443
OPEN_PORTS="22 80 443"
NET=198.19.0.0/16
TRUTH=$((65536 * 3))
S=sonde-bs
T=sonde-bt
work=$(mktemp -d)

need=()
command -v masscan >/dev/null || need+=(masscan)
command -v zmap >/dev/null || need+=(zmap)
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --quiet
cargo build --release --quiet --bench syn_ceiling
sonde=$PWD/target/release/sonde
ceiling=$(ls -t target/release/deps/syn_ceiling-* | grep -v '\.d$' | head -1)

teardown() {
  ip netns pids $T 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del $S 2>/dev/null || true
  ip netns del $T 2>/dev/null || true
  rm -rf "$work"
}
trap teardown EXIT
teardown
work=$(mktemp -d)

ip netns add $S
ip netns add $T
ip link add bs netns $S type veth peer name bt netns $T
ip -n $S addr add 198.18.0.2/24 dev bs
ip -n $T addr add 198.18.0.1/24 dev bt
for ns in $S $T; do
  ip -n $ns link set lo up
  ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
ip -n $S link set bs up
ip -n $T link set bt up
ip -n $S route add $NET via 198.18.0.1
ip -n $T route add local $NET dev lo
ip netns exec $T sysctl -qw net.ipv4.tcp_syncookies=2
ip netns exec $T sysctl -qw net.core.somaxconn=65535
# The scanner's kernel would answer every SYN-ACK with a RST. KEEP_RSTS=1
# leaves them on, as on a real scanner host (issue 15's routed topology).
if [ -z "${KEEP_RSTS:-}" ]; then
  ip netns exec $S iptables -A OUTPUT -p tcp --tcp-flags RST RST -j DROP
fi
for p in $OPEN_PORTS; do
  ip netns exec $T python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', $p)); s.listen(65535); time.sleep(100000)" &
done
sleep 0.5
ip netns exec $S ping -c 1 -W 2 198.18.0.1 >/dev/null
gw_mac=$(ip -n $T -o link show bt | sed -E 's/.*link\/ether ([0-9a-f:]+).*/\1/')
if [ -n "${SETUP_ONLY:-}" ]; then
  # Leave the lab up for profiling; remove it with: ip netns del sonde-bs; ip netns del sonde-bt
  trap - EXIT
  echo "lab up: ip netns exec $S ..."
  exit 0
fi

# Count the probes the target side answers while "$@" runs: every SYN to an
# open port gets a SYN cookie (TcpExt SyncookiesSent, cookies are always on)
# and every SYN to a closed one a RST (Tcp OutRsts); the RSTs a scanner
# sends to SYN-ACKs get no answer. Sampled every 10 ms from the target
# namespace's own /proc/net counters, the same way for every tool; prints
# "probes seconds pps max_rss_kb whole_run_seconds". TIMEOUT seconds at most per tool.
measure() {
  local out=$1 limit=$2
  shift 2
  ip netns exec $T python3 benches/answered_syns.py sample "$work/samples" &
  local sampler=$!
  sleep 0.3
  local rc=0
  # timeout inside: the tool's peak memory still reaches time when it is stopped
  /usr/bin/time -f '%M %e' -o "$work/rss" ip netns exec $S timeout -k 5 -s INT "$limit" "$@" \
    >"$out" 2>"$work/stderr" || rc=$?
  # A tool stopped at its time limit (masscan) has no trustworthy peak memory.
  if [ $rc = 124 ] || [ $rc = 137 ]; then echo "-1 $(tail -1 "$work/rss" | cut -d' ' -f2)" >"$work/rss"; fi
  if [ $rc != 0 ]; then
    echo "  (exit status $rc$([ $rc = 124 ] && echo ', stopped at the time limit'):" \
      "$(tr '\r' '\n' <"$work/stderr" | grep -v '^ *$' | tail -1))" >&2
  fi
  sleep 0.1
  kill $sampler
  wait $sampler 2>/dev/null || true
  read -r n secs <<<"$(python3 benches/answered_syns.py rate "$work/samples")"
  local pps=0
  [ "$n" -gt 0 ] && pps=$(awk "BEGIN { printf \"%d\", $n / ($secs > 0 ? $secs : 1e-9) }")
  echo "$n $secs $pps $(tail -1 "$work/rss")"
}
ratio() { awk "BEGIN { if ($2 > 0) printf \"%.2f\", $1 / $2; else print \"n/a\" }"; }

echo "lab: $NET x 21 ports ($((65536 * 21)) probes), ground truth $TRUTH open"
printf '%-26s %10s %8s %10s %8s %8s\n' tool probes secs pps recall "rss MB"
declare -A PPS
report() { # name "probes secs pps rss" found
  read -r n secs pps rss _ <<<"$2"
  PPS[$1]=$pps
  local mb=n/a
  [ "$rss" -ge 0 ] && mb=$((rss / 1024))
  local recall=-
  [ "$3" != - ] && recall="$(awk "BEGIN { printf \"%.2f\", 100 * $3 / $TRUTH }")%"
  printf '%-26s %10s %8s %10s %8s %8s\n' "$1" "$n" "$secs" "$pps" "$recall" "$mb"
}

# Issue 19's growth table: memory and bytes written as the scan grows,
# for each evidence mode and the peers' defaults; the open-port sets must
# be equal (zmap scans one port: its port-80 set is compared with the
# others' port-80 subset).
growth_ports() { # N ports holding the open ones (22, 80, 443)
  case $1 in
    24) echo 1-22,80,443 ;;
    100) echo 1-98,443,8080 ;;
    1000) echo 1-998,8080,8443 ;;
    *) echo "GROWTH: port counts are 24, 100 or 1000" >&2; exit 2 ;;
  esac
}
# "count sha256" of a sorted "address port" list on stdin
open_set() { sort -u | tee "$work/set" | wc -l | tr -d '\n'; echo " $(sha256sum <"$work/set" | cut -c1-12)"; }
sonde_open() { python3 -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("state") == "open" and (len(sys.argv) < 3 or r["port"] == int(sys.argv[2])):
        print(r["target"], r["port"])' "$@"; }
bytes_of() { [ -e "$1" ] && stat -c %s "$1" || echo 0; }
mb() { awk "BEGIN { printf \"%.1f\", $1 / 1e6 }"; }
growth() {
  local rate=${GROWTH_RATE:-300000}
  echo
  echo "growth (issue 19): $NET x N ports, routed, kernel RSTs $([ -n "${KEEP_RSTS:-}" ] && echo on || echo dropped), --rate $rate"
  printf '%-22s %6s %10s %8s %8s %11s %12s %12s %11s %s\n' tool ports probes "run s" "rss MB" "report MB" "results MB" "pcap MB" "sent MB" "open set (count sha)"
  for n in $GROWTH; do
    local ports probes limit
    ports=$(growth_ports "$n")
    probes=$((65536 * n))
    limit=$((3 * probes / rate + 120))
    for mode in ${GROWTH_MODES:-full compact}; do
      rm -rf "$work/g"
      m=$(measure "$work/sonde.out" $limit "$sonde" scan --scope scopes/lab.toml $NET \
        -p "$ports" --rate "$rate" --retries 0 --wait 2 --quiet --evidence $mode -o "$work/g")
      read -r _ _ _ rss secs <<<"$m"
      printf '%-22s %6s %10s %8s %8s %11s %12s %12s %11s %s\n' "sonde --evidence $mode" "$n" "$probes" "$secs" \
        "$((rss / 1024))" "$(mb "$(bytes_of "$work/g/report.json")")" \
        "$(mb "$(bytes_of "$work/g/results.ndjson")")" "$(mb "$(bytes_of "$work/g/capture.pcap")")" \
        "$(mb "$(bytes_of "$work/g/sent.jsonl")")" "$(sonde_open "$work/g/results.ndjson" | open_set) (port 80: $(sonde_open "$work/g/results.ndjson" 80 | open_set))"
      python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
c = r["capture_analysis_cost"] or {}
big = sorted(((len(json.dumps(v)), k) for k, v in r.items()), reverse=True)[:3]
print("    analysis of its own pcap: %s frames, %s s wall, %s s cpu; largest report parts: %s" % (
    c.get("frames"), c.get("wall_seconds"), c.get("cpu_seconds"),
    ", ".join("%s %.1f MB" % (k, n / 1e6) for n, k in big)))' "$work/g/report.json" || true
    done
    for peer in ${GROWTH_PEERS-masscan zmap}; do
      case $peer in
        masscan)
          # masscan 1.3.2 hangs in its final wait: a limit after sending.
          m=$(measure "$work/masscan.out" $((2 * probes / rate + 30)) masscan $NET -p "$ports" --rate "$rate" \
            --wait 2 -e bs --router-mac "$gw_mac" --adapter-ip 198.18.0.2 -oL "$work/masscan.txt")
          read -r _ _ _ rss secs <<<"$m"
          set=$(awk '/^open tcp/ { print $4, $3 }' "$work/masscan.txt" | open_set)
          out=$(bytes_of "$work/masscan.txt") ;;
        zmap)
          : >"$work/zmap-allow"
          m=$(measure "$work/zmap.out" $limit zmap -q -p 80 -P "$n" $NET -i bs \
            -G "$gw_mac" -S 198.18.0.2 -b "$work/zmap-allow" -r "$rate" -c 2 -o "$work/zmap.txt" --disable-syslog)
          read -r _ _ _ rss secs <<<"$m"
          set="(port 80: $(awk '{ print $1, 80 }' "$work/zmap.txt" | open_set))"
          out=$(bytes_of "$work/zmap.txt") ;;
      esac
      local rmb=n/a
      [ "$rss" -ge 0 ] && rmb=$((rss / 1024))
      printf '%-22s %6s %10s %8s %8s %11s %12s %12s %11s %s\n' "$peer" "$n" "$probes" "$secs" "$rmb" - "$(mb "$out")" - - "$set"
    done
  done
}
GROWTH=${GROWTH-"24 100 1000"}
if [ -n "${ONLY_GROWTH:-}" ]; then
  growth
  exit 0
fi

for rate in $RATES; do
  r=$rate
  [ "$rate" = max ] && r=2000000
  limit=$((2 * 65536 * 21 / r + 30))
  # Every run writes its whole run directory: pcap, NDJSON, audit log and
  # the report with the capture's own analysis.
  rm -rf "$work/sonde-run"
  m=$(measure "$work/sonde.out" $limit "$sonde" scan --scope scopes/lab.toml $NET \
    -p $PORTS --rate "$r" --retries 0 --wait 2 --quiet -o "$work/sonde-run")
  found=$(grep -c '"state":"open"' "$work/sonde-run/results.ndjson" || true)
  report "sonde --rate $rate" "$m" "$found"
  if [ -n "${BASELINE:-}" ]; then
    rm -rf "$work/sonde-run"
    m=$(measure "$work/sonde.out" $limit "$BASELINE" scan --scope scopes/lab.toml $NET \
      -p $PORTS --rate "$r" --retries 0 --wait 2 --quiet -o "$work/sonde-run")
    found=$(grep -c '"state":"open"' "$work/sonde-run/results.ndjson" || true)
    report "baseline sonde --rate $rate" "$m" "$found"
  fi

  r=$rate
  [ "$rate" = max ] && r=10000000
  limit=$((2 * 65536 * 21 / r + 30))
  m=$(measure "$work/masscan.out" $limit masscan $NET -p $PORTS --rate "$r" \
    --wait 2 -e bs --router-mac "$gw_mac" --adapter-ip 198.18.0.2 -oL "$work/masscan.txt")
  found=$(grep -c '^open tcp' "$work/masscan.txt" || true)
  report "masscan --rate $rate" "$m" "$found"
done

rm -rf "$work/sonde-run"

# zmap's default blacklist holds 198.18.0.0/15: an empty one instead.
: >"$work/zmap-allow"
# zmap scans one port per run; -P 21 sends 21 probes per host on port 80,
# the same packet count as the others. Its recall counts port 80 only
# (65,536 open), scaled to the table's ground truth.
for rate in $RATES; do
  r=$rate
  [ "$rate" = max ] && r=0
  limit=$((r > 0 ? 2 * 65536 * 21 / r + 30 : 60))
  m=$(measure "$work/zmap.out" $limit zmap -q -p 80 -P 21 $NET -i bs \
    -G "$gw_mac" -S 198.18.0.2 -b "$work/zmap-allow" -r "$r" -c 2 -o "$work/zmap.txt" --disable-syslog)
  found=$(sort -u "$work/zmap.txt" | grep -c . || true)
  report "zmap -P 21 --rate $rate" "$m" "$((found * 3))"
done

# The lab's ceiling: valid SYNs through one AF_PACKET socket, sendmmsg in
# batches, nothing else (benches/syn_ceiling.rs), measured the same way.
m=$(measure "$work/ceiling.out" 60 "$ceiling" bs "$gw_mac" 198.18.0.2 65536 $PORTS)
report "ceiling (bare sendmmsg)" "$m" -
CEILING=${PPS[ceiling (bare sendmmsg)]}
# The same through a PACKET_TX_RING: issue 15 asks for whichever is faster.
m=$(measure "$work/ceiling.out" 60 "$ceiling" bs "$gw_mac" 198.18.0.2 65536 $PORTS tx-ring)
report "ceiling (bare TX ring)" "$m" -

lab_limit=""
for rate in $RATES; do
  pps=${PPS[sonde --rate $rate]}
  if [ -z "$lab_limit" ] || [ "$pps" -gt "$lab_limit" ]; then lab_limit=$pps; fi
done
echo
for rate in $RATES; do
  echo "sonde / masscan at --rate $rate: $(ratio "${PPS[sonde --rate $rate]}" "${PPS[masscan --rate $rate]}")x;" \
    "sonde / zmap: $(ratio "${PPS[sonde --rate $rate]}" "${PPS[zmap -P 21 --rate $rate]}")x;" \
    "sonde / the lab's ceiling: $(ratio "${PPS[sonde --rate $rate]}" "$CEILING")x"
  if [ -n "${BASELINE:-}" ]; then
    echo "  today's / baseline at --rate $rate: $(ratio "${PPS[sonde --rate $rate]}" "${PPS[baseline sonde --rate $rate]}")x"
  fi
done

# Rate accuracy: enough probes at each rate for about 3 seconds of sending.
echo
echo "rate accuracy (sonde, achieved vs requested, target within 5%):"
for rate in $ACCURACY_RATES; do
  probes=$((rate * 3))
  [ $probes -lt 300 ] && probes=300
  hosts=$(((probes + 20) / 21))
  last=$((hosts - 1))
  targets="198.19.$((last / 256)).$((last % 256))"
  targets="198.19.0.0-$targets"
  m=$(measure "$work/sonde.out" $((probes * 2 / rate + 30)) "$sonde" scan --scope scopes/lab.toml "$targets" \
    -p $PORTS --rate "$rate" --retries 0 --wait 1 --quiet -o "$work/acc-$rate")
  read -r n secs pps _ _ <<<"$m"
  # the counter's window spans n-1 intervals between probes
  achieved=$(awk "BEGIN { printf \"%.0f\", ($n - 1) / $secs }")
  dev=$(awk "BEGIN { printf \"%+.1f\", 100 * ($achieved - $rate) / $rate }")
  ok=$(awk "BEGIN { d = ($achieved - $rate) / $rate; print (d < -0.05 || d > 0.05) ? \"OUTSIDE\" : \"ok\" }")
  # Above the most this lab takes (sonde's best rate above), the limit is the machine's.
  if [ -n "$lab_limit" ] && [ "$rate" -gt "$lab_limit" ]; then ok="above this lab's limit of $lab_limit pps"; fi
  printf '  requested %8s  achieved %8s  (%s%%) %s, %s probes\n' "$rate" "$achieved" "$dev" "$ok" "$n"
done

if [ -n "$GROWTH" ]; then
  growth
fi

# Issue 25's on-link scans have their own lab (the scanner on the targets'
# link, its own address inside the range): the sparse own-subnet /16 against
# masscan, the dense /24 against nmap, the lossy /24 against nmap -T4, with
# BASELINE too when given. ONLINK=0 skips them.
if [ "${ONLINK:-1}" != 0 ] && [ -z "${ONLY_GROWTH:-}" ]; then
  teardown
  trap - EXIT
  echo
  echo "== on-link scans (benches/scan_onlink.sh) =="
  bash benches/scan_onlink.sh
fi
