#!/usr/bin/env bash
# The expected TLS values of tests/offline/analyze_tls.rs, from tshark's dissection
# of tests/corpus/tls_loopback.pcap (three handshakes on loopback, made with
# openssl s_server/s_client: TLS 1.3 with SNI and ALPN h2,http/1.1; TLS 1.2
# with SNI Other.Sonde.Test and ALPN http/1.1; TLS 1.3 without SNI or ALPN).
# and of tests/corpus/quic_initial.pcap (two QUIC v1 handshakes made with
# aioquic by make_quic_initial.py: SNI Quic.Sonde.Test with ALPN h3, SNI
# other.sonde.test with ALPN hq-interop).
# tshark 4.0 has no JA4 field, so its parts are computed here from tshark's
# cipher, extension and signature-algorithm fields, as FoxIO's spec says.
# Usage: bash tests/corpus/expected_tls.sh
set -euo pipefail
cd "$(dirname "$0")"
# A ClientHello's JA4 (protocol letter argv[1]) and server name, from
# tshark's fields on standard input.
ja4_of_fields=$(cat <<'PY'
import sys, hashlib
grease = lambda v: (v & 0x0F0F) == 0x0A0A and (v >> 8) == (v & 0xFF)
h = lambda t: hashlib.sha256(t.encode()).hexdigest()[:12]
for line in sys.stdin:
    sni, alpn, vers, c, e, s = line.rstrip("\n").split("\t")
    cs = [x for x in (int(v, 16) for v in c.split(",")) if not grease(x)]
    es = [x for x in (int(v) for v in e.split(",")) if not grease(x)]
    ss = [int(v, 16) for v in s.split(",")] if s else []
    ver = max(int(v, 16) for v in vers.split(",")) if vers else 0x0303
    first = alpn.split(",")[0] if alpn else ""
    a = (first[0] + first[-1]) if first else "00"
    ext = ",".join("%04x" % x for x in sorted(x for x in es if x not in (0, 16)))
    if ss:
        ext += "_" + ",".join("%04x" % x for x in ss)
    code = {0x0304: "13", 0x0303: "12"}[ver]
    print(sys.argv[1] + "%s%s%02d%02d%s_%s_%s\t%s" % (code, "d" if 0 in es else "i", len(cs), len(es), a,
          h(",".join("%04x" % x for x in sorted(cs))), h(ext), sni or "-"))
PY
)
# ClientHellos of capture $1 as JA4 (protocol letter $2) and server name.
ja4() {
tshark -r "$1" -Y "tls.handshake.type==1" -T fields -E occurrence=a -E aggregator=, \
  -e tls.handshake.extensions_server_name -e tls.handshake.extensions_alpn_str \
  -e tls.handshake.extensions.supported_version \
  -e tls.handshake.ciphersuite -e tls.handshake.extension.type -e tls.handshake.sig_hash_alg 2>/dev/null |
python3 -c "$ja4_of_fields" "$2"
}
ja4 tls_loopback.pcap t
# QUIC v1 Initial packets, which tshark decrypts (RFC 9001 keys).
ja4 quic_initial.pcap q
# JA4S of each ServerHello: t, version (supported_versions, else the
# hello's), extension count, the chosen ALPN's first and last characters;
# the cipher suite; the SHA-256 of the extension types in the order sent.
tshark -r tls_loopback.pcap -Y "tls.handshake.type==2" -T fields -E occurrence=a -E aggregator=, \
  -e tls.handshake.extensions.supported_version -e tls.handshake.version -e tls.handshake.ciphersuite \
  -e tls.handshake.extension.type -e tls.handshake.extensions_alpn_str 2>/dev/null |
python3 -c '
import sys, hashlib
for line in sys.stdin:
    sv, hv, c, e, alpn = line.rstrip("\n").split("\t")
    ver = int(sv, 16) if sv else int(hv, 16)
    es = [int(v) for v in e.split(",")] if e else []
    a = (alpn[0] + alpn[-1]) if alpn else "00"
    code = {0x0304: "13", 0x0303: "12"}[ver]
    h = hashlib.sha256(",".join("%04x" % x for x in es).encode()).hexdigest()[:12] if es else "0" * 12
    print("JA4S t%s%02d%s_%04x_%s" % (code, len(es), a, int(c, 16), h))
'
