#!/usr/bin/env bash
# On-link scan benchmark (issue 15): targets on the scanner's own link, the
# ordinary internal engagement, where sonde must resolve every target's MAC
# itself. Needs root; sends only inside the two namespaces it creates and
# removes.
#
#   sudo bash benches/scan_onlink.sh
#
# The lab: namespace sonde-os (the scanner, veth os 198.19.255.254/15) and
# sonde-ot (the targets, veth ot 198.19.255.253/15), one link, no router.
# On ot: 198.18.1.1-150 live (listeners on 22, 80, 443, 8080 make those
# open, every other port answers RST), 198.18.1.151-200 silent (they answer
# ARP, iptables drops everything else: filtered), 198.18.1.201-254 absent;
# and 198.18.X.7 for X = 2..255 live, so 198.18.0.0/16 is a sparse range
# of 404 live addresses among 65,536. The scanner's kernel RSTs are left on,
# as on a real scanner host.
#
# Two scans, whole-run wall time (start to exit, evidence and report
# included for sonde), peers in the same run. sonde runs with its default
# cooldown (it follows the round trips, as nmap's timeouts do):
#   dense:  198.18.1.0/24 x 1-1024,8080 (261,375 probes): sonde and
#           nmap -sS -n --min-rate 100000 -T5 (its ARP ping finds the live
#           and silent hosts); both compared with the ground truth.
#   sparse: 198.18.0.0/16 x 1-20,22 (1,376,256 probes, 405 x 21 reach a
#           host): the scanner's own subnet, its own second address
#           198.18.0.1 (a listener on 22) included, as a user's first scan
#           is (issue 25): sonde and masscan (its frames go to the target
#           side's MAC, which owns every other address); port 22 compared
#           with the truth.
#   lossy:  the dense scan with 5% of packets dropped each way on the
#           target side (iptables statistic): sonde with default flags and
#           nmap -sS -T4 --min-rate RATE; recall and time (LOSS=0 skips).
# RATE (default 100000) is asked of every tool. ONLY=checkpoint runs the
# checkpoint cost alone (CHECKPOINT=0 skips it). BASELINE=PATH runs the
# dense and lossy scans with another sonde binary too (today's against an
# earlier one, in turns).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "benches/scan_onlink.sh needs root (network namespaces)" >&2; exit 1; }
RATE=${RATE:-100000}
S=sonde-os
T=sonde-ot

need=()
command -v nmap >/dev/null || need+=(nmap)
command -v masscan >/dev/null || need+=(masscan)
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --quiet
sonde=$PWD/target/release/sonde

teardown() {
  ip netns pids $T 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns pids $S 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del $S 2>/dev/null || true
  ip netns del $T 2>/dev/null || true
  if [ -n "${work:-}" ]; then rm -rf "$work"; fi
}
trap teardown EXIT
teardown
work=$(mktemp -d)

ip netns add $S
ip netns add $T
ip link add os netns $S type veth peer name ot netns $T
ip -n $S addr add 198.19.255.254/15 dev os
# The scanner's own address inside the sparse /16 (issue 25's first scan).
ip -n $S addr add 198.18.0.1/15 dev os
{
  echo "addr add 198.19.255.253/15 dev ot"
  for i in $(seq 1 200); do echo "addr add 198.18.1.$i/15 dev ot"; done
  for x in $(seq 2 255); do echo "addr add 198.18.$x.7/15 dev ot"; done
} | ip -n $T -batch -
for ns in $S $T; do
  ip -n $ns link set lo up
  ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
ip -n $S link set os up
ip -n $T link set ot up
ip netns exec $T sysctl -qw net.ipv4.tcp_syncookies=2
ip netns exec $T sysctl -qw net.core.somaxconn=65535
# Only this host's own address answers ARP for it (no ARP flux).
ip netns exec $T sysctl -qw net.ipv4.conf.all.arp_ignore=1
ip netns exec $T iptables -A INPUT -m iprange --dst-range 198.18.1.151-198.18.1.200 -j DROP
for p in 22 80 443 8080; do
  ip netns exec $T python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', $p)); s.listen(65535); time.sleep(100000)" &
done
ip netns exec $S python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('198.18.0.1', 22)); s.listen(65535); time.sleep(100000)" &
sleep 0.5
target_mac=$(ip -n $T -o link show ot | sed -E 's/.*link\/ether ([0-9a-f:]+).*/\1/')

# Whole-run wall time and peak memory of "$@" in the scanner namespace.
run() {
  local out=$1 limit=$2
  shift 2
  local start end rc=0
  start=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$work/rss" ip netns exec $S timeout -k 5 -s INT "$limit" "$@" \
    >"$out" 2>"$work/stderr" || rc=$?
  end=$(date +%s.%N)
  [ $rc = 0 ] || echo "  (exit status $rc: $(tr '\r' '\n' <"$work/stderr" | grep -v '^ *$' | tail -1))" >&2
  echo "$(awk "BEGIN { printf \"%.2f\", $end - $start }") $(($(tail -1 "$work/rss") / 1024))"
}

# The open (address, port) pairs of the ground truth, for a port list.
truth_dense() { for i in $(seq 1 150); do for p in 22 80 443 8080; do echo "198.18.1.$i $p"; done; done; }
sonde_open() { python3 -c "
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get('state') == 'open': print(r['target'], r['port'])" "$1" | sort -u; }

# The open (address, port) pairs of an nmap greppable file.
nmap_open() { python3 - "$1" <<'PY' | sort -u
import re, sys
for line in open(sys.argv[1]):
    m = re.match(r"Host: (\S+) .*Ports: (.*)", line)
    if m:
        for p in m.group(2).split(","):
            f = p.strip().split("/")
            if len(f) > 2 and f[1] == "open":
                print(m.group(1), f[0])
PY
}

# Checkpoint cost (issue 29): a first pass of about 12 s to the 150 live
# hosts at CK_RATE (default 300000), today's binary with its default
# checkpoints (every 5 s, and at the pass's end), with one a second (the
# stress case), and with none but the pass's end (--checkpoint-every 3600),
# in turns (CK_TURNS, default 2; CK_CONFIGS="name:secs ..." narrows the
# list); BASELINE too when given (a binary without checkpoints).
# The figure is the first pass's achieved rate (report.json rate.achieved):
# the cost is what the checkpoints take from it.
checkpoint_cost() {
  local rate=${CK_RATE:-300000}
  local nports=$(((rate * 12 + 149) / 150))
  [ "$nports" -gt 65535 ] && nports=65535
  echo
  local turns=${CK_TURNS:-2}
  echo "checkpoint cost: 198.18.1.1-150 x 1-$nports at --rate $rate, first pass's achieved rate, best of $turns turns"
  printf '%-44s %10s %8s %s
' "binary, checkpoints" "achieved" seconds checkpoints
  declare -A best
  local labels=(${CK_CONFIGS:-none:3600 default:5 every-second:1} ${BASELINE:+"baseline:-"})
  for turn in $(seq 1 "$turns"); do
    # Each turn starts one further along the list: no binary always runs
    # after the same one (the order moves the figures by a few percent).
    local k=$(( (turn - 1) % ${#labels[@]} ))
    for spec in "${labels[@]:$k}" "${labels[@]:0:$k}"; do
      local name=${spec%%:*} every=${spec##*:} bin=$sonde extra=()
      if [ "$name" = baseline ]; then bin=$BASELINE; else extra=(--checkpoint-every "$every"); fi
      rm -rf "$work/ck"
      read -r secs mb <<<"$(run "$work/ck.out" 120 "$bin" scan --scope scopes/lab.toml 198.18.1.1-150 \
        -p "1-$nports" --rate "$rate" --retries 0 --wait 0.5 --quiet "${extra[@]}" -o "$work/ck")"
      local got n
      got=$(python3 -c "import json; print(round(json.load(open('$work/ck/report.json'))['rate']['achieved']))")
      n=$(grep -c '"scan_checkpoint"' "$work/ck/audit.jsonl" || true)
      printf '%-44s %10s %8s %s
' "$name (turn $turn)" "$got" "$secs" "$n"
      if [ -z "${best[$name]:-}" ] || [ "$got" -gt "${best[$name]}" ]; then best[$name]=$got; fi
    done
  done
  echo "achieved with default checkpoints / without: $(awk "BEGIN { printf \"%.4f\", ${best[default]} / ${best[none]} }") (target: at least 0.99)"
  [ -n "${best[every-second]:-}" ] && echo "achieved with one a second / without: $(awk "BEGIN { printf \"%.4f\", ${best[every-second]} / ${best[none]} }")"
  [ -n "${BASELINE:-}" ] && echo "achieved today's default / baseline: $(awk "BEGIN { printf \"%.4f\", ${best[default]} / ${best[baseline]} }")"
  return 0
}
if [ "${ONLY:-}" = checkpoint ]; then
  checkpoint_cost
  exit 0
fi

echo "dense on-link: 198.18.1.0/24 x 1-1024,8080 at --rate $RATE"
printf '%-44s %8s %8s %8s %s\n' tool seconds "rss MB" open exact
truth_dense | sort -u >"$work/truth"

for rate in "$RATE" "${FASTEST:-1000000}"; do
  rm -rf "$work/dense"
  read -r secs mb <<<"$(run "$work/sonde.out" 300 "$sonde" scan --scope scopes/lab.toml 198.18.1.0/24 \
    -p 1-1024,8080 --rate "$rate" --quiet -o "$work/dense")"
  sonde_open "$work/dense/results.ndjson" >"$work/sonde-open"
  exact=$(cmp -s "$work/truth" "$work/sonde-open" && echo yes || echo NO)
  down=$(python3 -c "import json; r=json.load(open('$work/dense/report.json')); print(sum(d['count'] for d in r['neighbour_discovery']['down']))")
  printf '%-44s %8s %8s %8s %s\n' "sonde --rate $rate" "$secs" "$mb" "$(wc -l <"$work/sonde-open")" "$exact ($down down: no-arp-reply)"
  [ "$rate" = "$RATE" ] && sonde_dense=$secs
  sonde_fastest=$secs
done

# BASELINE=PATH: the same dense scan with another sonde binary (an earlier
# commit's), in the same run, in turns (base, today's, base, today's: the
# first run of all pays for cold caches), the best of each: no speed lost.
if [ -n "${BASELINE:-}" ]; then
  best_base=999999; best_new=999999
  for turn in 1 2; do
    for bin in "$BASELINE" "$sonde"; do
      rm -rf "$work/dense"
      read -r secs mb <<<"$(run "$work/sonde.out" 300 "$bin" scan --scope scopes/lab.toml 198.18.1.0/24 \
        -p 1-1024,8080 --rate "$RATE" --quiet -o "$work/dense")"
      sonde_open "$work/dense/results.ndjson" >"$work/sonde-open"
      exact=$(cmp -s "$work/truth" "$work/sonde-open" && echo yes || echo NO)
      label=$([ "$bin" = "$sonde" ] && echo "today's" || echo baseline)
      printf '%-44s %8s %8s %8s %s\n' "$label sonde --rate $RATE (turn $turn)" "$secs" "$mb" "$(wc -l <"$work/sonde-open")" "$exact"
      if [ "$bin" = "$sonde" ]; then
        best_new=$(awk "BEGIN { print ($secs < $best_new) ? $secs : $best_new }")
      else
        best_base=$(awk "BEGIN { print ($secs < $best_base) ? $secs : $best_base }")
      fi
    done
  done
  echo "today's / baseline, best of two turns each: $(awk "BEGIN { printf \"%.2f\", $best_new / $best_base }")"
fi

read -r secs mb <<<"$(run "$work/nmap.out" 300 nmap -sS -n --min-rate "$RATE" -T5 -p 1-1024,8080 \
  198.18.1.0/24 -oG "$work/nmap.gnmap")"
nmap_open "$work/nmap.gnmap" >"$work/nmap-open"
exact=$(cmp -s "$work/truth" "$work/nmap-open" && echo yes || echo NO)
printf '%-44s %8s %8s %8s %s\n' "nmap -sS --min-rate $RATE -T5" "$secs" "$mb" "$(wc -l <"$work/nmap-open")" "$exact"
nmap_dense=$secs
echo "sonde / nmap whole-run time: $(awk "BEGIN { printf \"%.2f\", $sonde_dense / $nmap_dense }") at the same rate," \
  "$(awk "BEGIN { printf \"%.2f\", $sonde_fastest / $nmap_dense }") at sonde's fastest (target: at most 0.5)"

echo
echo "sparse on-link, the scanner's own subnet: 198.18.0.0/16 x 1-20,22 at --rate $RATE (404 live addresses and the scanner's own)"
printf '%-44s %8s %8s %8s %s\n' tool seconds "rss MB" "22 open" recall
live22=$((150 + 254 + 1))
read -r secs mb <<<"$(run "$work/sonde.out" 600 "$sonde" scan --scope scopes/lab.toml 198.18.0.0/16 \
  -p 1-20,22 --rate "$RATE" --retries 0 --quiet -o "$work/sparse")"
found=$(sonde_open "$work/sparse/results.ndjson" | awk '$2 == 22' | wc -l)
printf '%-44s %8s %8s %8s %s\n' "sonde" "$secs" "$mb" "$found" "$(awk "BEGIN { printf \"%.1f%%\", 100 * $found / $live22 }")"
sonde_sparse=$secs
read -r secs mb <<<"$(run "$work/masscan.out" 120 masscan 198.18.0.0/16 -p 1-20,22 --rate "$RATE" \
  --wait 1 -e os --router-mac "$target_mac" --adapter-ip 198.19.255.254 -oL "$work/masscan.txt")"
found=$(awk '$1 == "open" && $3 == 22' "$work/masscan.txt" | sort -u | wc -l)
printf '%-44s %8s %8s %8s %s\n' "masscan (frames to the target side's MAC)" "$secs" "$mb" "$found" "$(awk "BEGIN { printf \"%.1f%%\", 100 * $found / $live22 }")"
echo "sonde / masscan whole-run time: $(awk "BEGIN { printf \"%.2f\", $sonde_sparse / $secs }") (target: at most 0.5, i.e. 2x the rate)"

if [ "${LOSS:-1}" != 0 ]; then
  echo
  echo "lossy on-link: 5% dropped each way on the target side, 198.18.1.0/24 x 1-1024,8080 at --rate $RATE"
  printf '%-44s %8s %8s %8s %s\n' tool seconds "rss MB" open recall
  for chain in INPUT OUTPUT; do
    ip netns exec $T iptables -I $chain -m statistic --mode random --probability 0.05 -j DROP
  done
  total=$(wc -l <"$work/truth")
  # With BASELINE, the earlier binary too, in turns (its retry rule
  # against today's), the best of each; "sent" is every probe and retry.
  sonde_lossy=999999
  for turn in 1 ${BASELINE:+2}; do
    for bin in ${BASELINE:+"$BASELINE"} "$sonde"; do
      rm -rf "$work/lossy"
      read -r secs mb <<<"$(run "$work/sonde.out" 300 "$bin" scan --scope scopes/lab.toml 198.18.1.0/24 \
        -p 1-1024,8080 --rate "$RATE" --quiet -o "$work/lossy")"
      sonde_open "$work/lossy/results.ndjson" >"$work/sonde-open"
      found=$(comm -12 "$work/truth" "$work/sonde-open" | wc -l)
      added=$(python3 -c "import json; r=json.load(open('$work/lossy/report.json')); p=r['passes']; print(p['added'], p['loss_estimate'], r['counters']['sent'])")
      label=$([ "$bin" = "$sonde" ] && echo "sonde (default flags)" || echo "baseline sonde (default flags)")
      printf '%-44s %8s %8s %8s %s\n' "$label" "$secs" "$mb" "$found" "$(awk "BEGIN { printf \"%.2f%%\", 100 * $found / $total }") (passes added, loss estimate, sent: $added)"
      if [ "$bin" = "$sonde" ]; then
        sonde_lossy=$(awk "BEGIN { print ($secs < $sonde_lossy) ? $secs : $sonde_lossy }")
      fi
    done
  done
  read -r secs mb <<<"$(run "$work/nmap.out" 600 nmap -sS -n -T4 --min-rate "$RATE" -p 1-1024,8080 \
    198.18.1.0/24 -oG "$work/nmap-lossy.gnmap")"
  nmap_open "$work/nmap-lossy.gnmap" >"$work/nmap-open"
  found=$(comm -12 "$work/truth" "$work/nmap-open" | wc -l)
  printf '%-44s %8s %8s %8s %s\n' "nmap -sS -T4 --min-rate $RATE" "$secs" "$mb" "$found" "$(awk "BEGIN { printf \"%.2f%%\", 100 * $found / $total }")"
  echo "sonde / nmap -T4 whole-run time on the lossy link: $(awk "BEGIN { printf \"%.2f\", $sonde_lossy / $secs }") (target: below 1, recall at least 99.9%)"
  for chain in INPUT OUTPUT; do
    ip netns exec $T iptables -D $chain -m statistic --mode random --probability 0.05 -j DROP
  done
fi

# Rate accuracy on the link: about 3 s of probes at each rate to the 150
# live hosts (198.18.1.1-150 x enough ports), achieved rate from the target
# side's counters (every SYN is answered: a SYN cookie on an open port, a
# RST elsewhere), sampled every 10 ms, as benches/scan.sh does routed.
ACCURACY_RATES=${ACCURACY_RATES-"100 1000 10000 100000 300000"}
echo
echo "rate accuracy on the link (sonde, achieved vs requested, target within 5%):"
for bin in "$sonde" ${BASELINE:+"$BASELINE"}; do
[ "$bin" = "$sonde" ] || echo " baseline $bin:"
for rate in $ACCURACY_RATES; do
  probes=$((rate * 3))
  [ $probes -lt 300 ] && probes=300
  nports=$(((probes + 149) / 150))
  ip netns exec $T python3 benches/answered_syns.py sample "$work/samples" &
  sampler=$!
  sleep 0.3
  rm -rf "$work/acc"
  run "$work/acc.out" $((probes * 2 / rate + 30)) "$bin" scan --scope scopes/lab.toml 198.18.1.1-150 \
    -p "1-$nports" --rate "$rate" --retries 0 --wait 1 --quiet -o "$work/acc" >/dev/null
  sleep 0.1
  kill $sampler
  wait $sampler 2>/dev/null || true
  read -r n secs <<<"$(python3 benches/answered_syns.py rate "$work/samples")"
  awk -v n="$n" -v s="$secs" -v r="$rate" 'BEGIN {
    a = (s > 0) ? (n - 1) / s : 0; d = (a - r) / r
    printf "  requested %8d  achieved %8.0f  (%+.1f%%) %s, %d probes\n", r, a, 100 * d, (d < -0.05 || d > 0.05) ? "OUTSIDE" : "ok", n
  }'
done
done

[ "${CHECKPOINT:-1}" = 0 ] || checkpoint_cost
