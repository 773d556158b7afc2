#!/usr/bin/env python3
"""Make tests/corpus/tcp_identity.pcap: TCP connections written byte by byte
(no packet is sent), each on its own client port, for the connection
identity and sequence analysis tshark's `tcp.stream` and `tcp.analysis.*`
define:

  40001  a connection closed with FINs, then a new SYN (another ISN) on the
         same ports: two connections
  40002  a connection left open, then a new SYN with another ISN: two
  40003  a connection reset, then a new SYN: two
  40004  a SYN repeated with the same ISN after the handshake: one
         connection, one retransmission (not spurious: no data)
  40005  three SYNs, each with another ISN: three connections
  40006  data the receiver acknowledged, sent again 2 s later: spurious
  40007  the same, 0.5 ms later: spurious still (its data was acknowledged)
  40008  a segment of a hole 10 ms after the highest one, the initial round
         trip being 20 ms: out of order
  40009  the same 30 ms after: a retransmission
  40010  segments the capture missed, acknowledged by three ACKs in a row:
         one "ACKed unseen segment" and two duplicate ACKs; later holes
         once each

Expected values: bash tests/corpus/expected_tcp_identity.sh (tshark).
Usage: python3 tests/corpus/make_tcp_identity.py tests/corpus/tcp_identity.pcap
"""
import struct
import sys

S, A, F, R, P = 2, 16, 1, 4, 8
CLIENT, SERVER = "198.18.0.1", "198.18.0.2"
T = 1700000000.0


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return (~s) & 0xFFFF


def addr(a):
    return bytes(int(x) for x in a.split("."))


def tcp(src, dst, sport, dport, seq, ack, flags, payload=b""):
    h = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                    0x50, flags, 64240, 0, 0)
    pseudo = addr(src) + addr(dst) + struct.pack("!BBH", 0, 6, len(h) + len(payload))
    h = h[:16] + struct.pack("!H", checksum(pseudo + h + payload)) + h[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(h) + len(payload), 1, 0, 64, 6, 0,
                     addr(src), addr(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + h + payload


def c2s(port, *a, **k):
    return tcp(CLIENT, SERVER, port, 80, *a, **k)


def s2c(port, *a, **k):
    return tcp(SERVER, CLIENT, 80, port, *a, **k)


def connection(port, t0, isn, sisn, close=True, data=b"hello", rtt=0.02):
    """A handshake (rtt from SYN to the client's ACK), one request, its ACK."""
    n = len(data)
    out = [
        (t0, c2s(port, isn, 0, S)),
        (t0 + rtt / 2, s2c(port, sisn, isn + 1, S | A)),
        (t0 + rtt, c2s(port, isn + 1, sisn + 1, A)),
    ]
    if data:
        out += [(t0 + rtt + 0.01, c2s(port, isn + 1, sisn + 1, A | P, data)),
                (t0 + rtt + 0.02, s2c(port, sisn + 1, isn + 1 + n, A))]
    if close:
        out += [(t0 + rtt + 0.03, c2s(port, isn + 1 + n, sisn + 1, F | A)),
                (t0 + rtt + 0.04, s2c(port, sisn + 1, isn + 2 + n, F | A)),
                (t0 + rtt + 0.05, c2s(port, isn + 2 + n, sisn + 2, A))]
    return out


def frames():
    f = []
    f += connection(40001, T, 1000, 5000) + connection(40001, T + 1, 900000, 700000)
    f += connection(40002, T + 2, 1000, 5000, close=False) + connection(40002, T + 3, 900000, 700000)
    f += connection(40003, T + 4, 1000, 5000, close=False)
    f += [(T + 4.5, c2s(40003, 1006, 0, R))] + connection(40003, T + 5, 900000, 700000)
    f += connection(40004, T + 6, 1000, 5000, close=False) + [(T + 7, c2s(40004, 1000, 0, S))]
    f += [(T + 8 + i, c2s(40005, 1000 * (i + 1), 0, S)) for i in range(3)]
    f += connection(40006, T + 12, 1000, 5000, close=False)
    f += [(T + 14, c2s(40006, 1001, 5001, A | P, b"hello"))]
    f += connection(40007, T + 15, 1000, 5000, close=False)
    f += [(T + 15.0405, c2s(40007, 1001, 5001, A | P, b"hello"))]
    for port, t0, gap in ((40008, T + 16, 0.01), (40009, T + 18, 0.03)):
        f += connection(port, t0, 1000, 5000, close=False, data=b"")
        f += [(t0 + 1, c2s(port, 1101, 5001, A | P, b"b" * 100)),
              (t0 + 1 + gap, c2s(port, 1001, 5001, A | P, b"a" * 100))]
    t0, port = T + 20, 40010
    f += connection(port, t0, 1000, 5000, close=False)
    f += [(t0 + 0.1, s2c(port, 5001, 1006, A | P, b"x" * 100)),
          (t0 + 0.2, c2s(port, 1006, 5301, A)), (t0 + 0.21, c2s(port, 1006, 5301, A)),
          (t0 + 0.22, c2s(port, 1006, 5301, A)),
          (t0 + 0.3, s2c(port, 5301, 1006, A | P, b"y" * 100)), (t0 + 0.31, c2s(port, 1006, 5401, A)),
          (t0 + 0.4, s2c(port, 5201, 1006, A | P, b"z" * 100)),
          (t0 + 0.5, c2s(port, 1006, 5601, A)), (t0 + 0.6, c2s(port, 1006, 5801, A))]
    return sorted(f, key=lambda x: x[0])


def main(path):
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for t, p in frames():
            sec = int(t)
            usec = int(round((t - sec) * 1e6))
            out.write(struct.pack("<IIII", sec, usec, len(p), len(p)))
            out.write(p)


if __name__ == "__main__":
    main(sys.argv[1])
