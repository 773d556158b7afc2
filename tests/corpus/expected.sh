#!/usr/bin/env bash
# Derive the expected counts for tests/offline/analyze_corpus.rs from tshark.
# Usage: bash tests/corpus/expected.sh ../shared/corpus > tests/corpus/expected.tsv
#
# Per file: frames, then frames containing each protocol, then TCP and UDP
# conversations. For the per-frame protocol counts IP reassembly is off
# (-o ip.defragment:FALSE ...) so that, like sonde's statistics, a first
# fragment counts with its transport protocol. Conversations are counted with
# reassembly on (tshark's default): sonde's flows, like tshark's
# conversations, hold the reassembled datagram, never a fragment. Protocols
# quoted inside an ICMP error (ip:icmp:ip:udp) are not counted: the list is
# cut after the first icmp/icmpv6, as sonde counts the outer packet only.
set -euo pipefail
corpus=${1:?corpus directory}
opts=(-o ip.defragment:FALSE -o ipv6.defragment:FALSE)
printf 'file\tframes\teth\tip\tipv6\tarp\ttcp\tudp\ticmp\ticmpv6\ttcp_convs\tudp_convs\n'
cd "$corpus"
for f in $(find . -name '*.pcap' -o -name '*.pcapng' | sed 's|^\./||' | sort); do
  tshark -r "$f" "${opts[@]}" -T fields -e frame.protocols 2>/dev/null | awk -v f="$f" '
    { n++; split($0, p, ":"); delete seen
      for (i = 1; i in p; i++) { if (!(p[i] in seen)) { seen[p[i]] = 1; c[p[i]]++ } if (p[i] == "icmp" || p[i] == "icmpv6") break } }
    END { printf "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d", f, n, c["eth"], c["ip"], c["ipv6"], c["arp"], c["tcp"], c["udp"], c["icmp"], c["icmpv6"] }'
  tcp=$(tshark -r "$f" -q -z conv,tcp 2>/dev/null | grep -c '<->' || true)
  udp=$(tshark -r "$f" -q -z conv,udp 2>/dev/null | grep -c '<->' || true)
  printf '\t%d\t%d\n' "$tcp" "$udp"
done
