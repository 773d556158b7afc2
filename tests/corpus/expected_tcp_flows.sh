#!/usr/bin/env bash
# Per-connection tcp.analysis counts for tests/offline/analyze_corpus.rs (the flow
# summaries' `tcp_analysis`), from tshark: for every corpus file with any
# event, one line per (connection, flag): the file, the connection's two
# endpoints in sorted order (address:port), the flag and its frame count.
# Usage: bash tests/corpus/expected_tcp_flows.sh ../shared/corpus > tests/corpus/expected_tcp_flows.tsv
set -euo pipefail
corpus=${1:?corpus directory}
flags=(retransmission fast_retransmission spurious_retransmission duplicate_ack out_of_order lost_segment ack_lost_segment zero_window keep_alive)
cd "$corpus"
for f in $(find . -name '*.pcap' -o -name '*.pcapng' | sed 's|^\./||' | sort); do
  for x in "${flags[@]}"; do
    tshark -r "$f" -Y "tcp.analysis.$x" -T fields -E separator=' ' \
      -e ip.src -e ipv6.src -e tcp.srcport -e ip.dst -e ipv6.dst -e tcp.dstport 2>/dev/null |
      awk -v f="$f" -v x="$x" '
        NF == 4 { a = $1 ":" $2; b = $3 ":" $4
                  if (b < a) { t = a; a = b; b = t }
                  n[a "\t" b]++ }
        END { for (k in n) printf "%s\t%s\t%s\t%d\n", f, k, x, n[k] }' | sort
  done
done
