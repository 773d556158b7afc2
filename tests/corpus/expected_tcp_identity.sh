#!/usr/bin/env bash
# The expected values of tests/offline/analyze_corpus.rs for tcp_identity.pcap, from
# tshark: its TCP conversations (tcp.stream, reassembly and analysis at
# their defaults), then the frames carrying each tcp.analysis flag.
# Usage: bash tests/corpus/expected_tcp_identity.sh tests/corpus/tcp_identity.pcap > tests/corpus/expected_tcp_identity.tsv
set -euo pipefail
f=${1:?capture}
flags=(retransmission fast_retransmission spurious_retransmission duplicate_ack out_of_order lost_segment ack_lost_segment zero_window keep_alive)
printf 'conversations'; printf '\t%s' "${flags[@]}"; printf '\n'
printf '%d' "$(tshark -r "$f" -q -z conv,tcp 2>/dev/null | grep -c '<->')"
for x in "${flags[@]}"; do
  printf '\t%d' "$(tshark -r "$f" -Y "tcp.analysis.$x" 2>/dev/null | wc -l)"
done
printf '\n'
