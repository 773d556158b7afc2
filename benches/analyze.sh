#!/usr/bin/env bash
# Analysis benchmark: sonde analyze against tshark (-z io,phs), capinfos and a
# Scapy rdpcap loop, on the same generated capture, in the same run.
#
#   bash benches/analyze.sh            # 1,000,000 packets (N=... to change)
#
# Prints packets/s, MB/s and peak memory (max RSS) per tool, and sonde's
# ratio to each. Each tool runs RUNS times (default 5); the best wall time
# and its peak memory are kept, since this 2-core VM's timings vary by ±30%.
# The analysis thread's rate on one core is taken over CORE_RUNS runs
# (default 15): best, median and worst are printed, the target judged on
# the median (what a run on this shared VM typically gives), not the best.
# Scapy needs ~7 KB of memory per packet with rdpcap, so it reads only the
# first SCAPY_N packets (default 100,000); its rate is measured on those.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
RUNS=${RUNS:-5}
CORE_RUNS=${CORE_RUNS:-15}
SCAPY_N=${SCAPY_N:-100000}
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"

need=()
command -v tshark >/dev/null || need+=(tshark)
command -v capinfos >/dev/null || need+=(wireshark-common)
# Debian's python3-scapy lives in the system interpreter (not a pyenv one on PATH).
py=/usr/bin/python3
"$py" -c 'import scapy' 2>/dev/null || need+=(python3-scapy)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --release --quiet
cap="$work/mixed.pcap"
if [ ! -s "$cap" ]; then
  cargo bench --quiet --bench gen_capture -- "$cap" "$N"
fi
bytes=$(stat -c %s "$cap")
packets=$(capinfos -M -c -T "$cap" | awk -F'\t' 'NR==2 {print $2}')
echo "capture: $cap, $packets packets, $((bytes / 1000000)) MB"

# best wall seconds and its max RSS (KB) over RUNS runs of a command
best() {
  local best_s="" best_kb=""
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f '%e %M' -o "$work/t" "$@" >/dev/null 2>&1
    read -r s kb <"$work/t"
    if [ -z "$best_s" ] || awk "BEGIN{exit !($s < $best_s)}"; then best_s=$s; best_kb=$kb; fi
  done
  echo "$best_s $best_kb"
}

cat >"$work/scapy_loop.py" <<PY
import sys
from scapy.all import rdpcap, TCP, UDP, IP
pkts = rdpcap(sys.argv[1], count=int(sys.argv[2]))
n = tcp = udp = 0
for p in pkts:
    n += 1
    if p.haslayer(TCP): tcp += 1
    elif p.haslayer(UDP): udp += 1
print(n, tcp, udp)
PY

read -r s_sec s_kb < <(best target/release/sonde analyze "$cap" --report "$work/report.json")
# the whole process pinned to one core (analysis and the reading/hashing thread share it)
read -r s1_sec s1_kb < <(best taskset -c 0 target/release/sonde analyze "$cap" --report /dev/null)
# the analysis thread's own CPU time, as sonde measures it (--timings), over
# CORE_RUNS runs (half a second each): the best is the least disturbed run,
# the median shows what this shared VM gives at the moment
: >"$work/core"
for _ in $(seq "$CORE_RUNS"); do
  target/release/sonde analyze "$cap" --report /dev/null --timings 2>&1 |
    sed -n 's/.*(\([0-9]*\) frames\/s on one core).*/\1/p' >>"$work/core"
done
core_pps=$(sort -n "$work/core" | tail -1)
core_median=$(sort -n "$work/core" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
core_worst=$(sort -n "$work/core" | head -1)
# the floor: pcap-parser + etherparse alone over the file in memory (the issue's "bare loop")
cargo build --release --quiet --bench bare_loop
bare=$(ls -t target/release/deps/bare_loop-* | grep -v '\.d$' | head -1)
bare_pps=0
for _ in $(seq "$RUNS"); do
  pps=$("$bare" "$cap" | awk '{print $4}')
  [ "${pps:-0}" -gt "$bare_pps" ] && bare_pps=$pps
done
read -r t_sec t_kb < <(best tshark -q -z io,phs -r "$cap")
read -r c_sec c_kb < <(best capinfos "$cap")
read -r p_sec p_kb < <(RUNS=1 best "$py" "$work/scapy_loop.py" "$cap" "$SCAPY_N")

got=$($py -c "import json,sys; print(json.load(open(sys.argv[1]))['summary']['packets'])" "$work/report.json")
[ "$got" = "$packets" ] || { echo "sonde counted $got packets, capinfos $packets" >&2; exit 1; }

row() { # name packets seconds kb
  awk -v n="$1" -v p="$2" -v s="$3" -v kb="$4" -v b="$bytes" -v tp="$packets" \
    'BEGIN { printf "%-22s %10d %8.2f %12.0f %9.1f %9.1f\n", n, p, s, p/s, (b*p/tp)/s/1e6, kb/1024 }'
}
echo
printf "%-22s %10s %8s %12s %9s %9s\n" tool packets seconds packets/s MB/s peak_MB
row "sonde analyze" "$packets" "$s_sec" "$s_kb"
row "sonde, one core" "$packets" "$s1_sec" "$s1_kb"
row "tshark -z io,phs" "$packets" "$t_sec" "$t_kb"
row "capinfos" "$packets" "$c_sec" "$c_kb"
row "scapy rdpcap loop" "$SCAPY_N" "$p_sec" "$p_kb"
echo
awk -v s="$s_sec" -v t="$t_sec" -v c="$c_sec" -v p="$p_sec" -v n="$packets" -v sn="$SCAPY_N" -v core="$core_pps" -v med="$core_median" -v worst="$core_worst" -v runs="$CORE_RUNS" -v bare="$bare_pps" 'BEGIN {
  sr = n / s
  printf "sonde vs tshark:   %.1fx the packets/s\n", sr / (n / t)
  printf "sonde vs capinfos: %.1fx the packets/s\n", sr / (n / c)
  printf "sonde vs scapy:    %.0fx the packets/s\n", sr / (sn / p)
  printf "analysis thread on one core (CPU time, every detector on), %d runs: best %.0f, median %.0f, worst %.0f packets/s\n", runs, core, med, worst
  printf "bare pcap-parser + etherparse loop (no analysis, file in memory): %.0f packets/s (sonde: %.0f%% of it)\n", bare, 100 * core / bare
  printf "target (issue 18): 2,500,000 packets/s on one core (median run) -> %s\n", (med >= 2.5e6 ? "met" : "NOT met")
}'
# Issue 18 holds the 5M-packet capture (N=5000000) under 64 MB.
awk -v kb="$s_kb" 'BEGIN { printf "target (issue 18, on the 5M-packet capture): peak memory under 64 MB -> %s (%.1f MB)\n", (kb/1024 < 64 ? "met" : "NOT met"), kb/1024 }'
echo "(sonde reads and hashes each input on a second thread, the analysis runs on one;"
echo " 'sonde, one core' pins both to a single core with taskset)"
