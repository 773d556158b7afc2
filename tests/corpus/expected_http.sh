#!/usr/bin/env bash
# The HTTP messages tshark finds in tests/corpus/http_streams.pcap (made by
# make_http_streams.py), with its default TCP and HTTP reassembly, for
# tests/offline/analyze_http.rs: one line per request (its URI) and per response
# (its status code), with the TCP stream it is in.
# Usage: bash tests/corpus/expected_http.sh > tests/corpus/expected_http.tsv
set -euo pipefail
cd "$(dirname "$0")"
tshark -r http_streams.pcap -Y http.request -T fields -E occurrence=a -E aggregator='|' \
  -e tcp.stream -e http.request.uri 2>/dev/null |
  awk -F'\t' '{ n = split($2, u, "|"); for (i = 1; i <= n; i++) printf "%s\trequest\t%s\n", $1, u[i] }'
tshark -r http_streams.pcap -Y http.response -T fields -E occurrence=a -E aggregator='|' \
  -e tcp.stream -e http.response.code 2>/dev/null |
  awk -F'\t' '{ n = split($2, c, "|"); for (i = 1; i <= n; i++) printf "%s\tresponse\t%s\n", $1, c[i] }'
