#!/usr/bin/env bash
# HTTP requests and responses per corpus file, as tshark counts them with
# its default TCP and HTTP reassembly, for tests/offline/analyze_http.rs.
# Usage: bash tests/corpus/expected_http_corpus.sh ../shared/corpus > tests/corpus/expected_http_corpus.tsv
set -euo pipefail
corpus=${1:?corpus directory}
printf 'file\trequests\tresponses\n'
cd "$corpus"
for f in $(find . -name '*.pcap' -o -name '*.pcapng' | sed 's|^\./||' | sort); do
  printf '%s\t%d\t%d\n' "$f" \
    "$(tshark -r "$f" -Y http.request -T fields -e http.request.method -E occurrence=a -E aggregator=, 2>/dev/null | tr ',' '\n' | grep -c . || true)" \
    "$(tshark -r "$f" -Y http.response -T fields -e http.response.code -E occurrence=a -E aggregator=, 2>/dev/null | tr ',' '\n' | grep -c . || true)"
done
