#!/usr/bin/env bash
# The expected tcp_analysis counts of tests/offline/analyze_corpus.rs, from tshark's
# tcp.analysis.* fields (frames carrying each flag), for every corpus file.
# Usage: bash tests/corpus/expected_tcp.sh ../shared/corpus > tests/corpus/expected_tcp.tsv
set -euo pipefail
corpus=${1:?corpus directory}
flags=(retransmission fast_retransmission spurious_retransmission duplicate_ack out_of_order lost_segment ack_lost_segment zero_window keep_alive)
printf 'file'; printf '\t%s' "${flags[@]}"; printf '\n'
cd "$corpus"
for f in $(find . -name '*.pcap' -o -name '*.pcapng' | sed 's|^\./||' | sort); do
  printf '%s' "$f"
  for x in "${flags[@]}"; do
    printf '\t%d' "$(tshark -r "$f" -Y "tcp.analysis.$x" 2>/dev/null | wc -l)"
  done
  printf '\n'
done
