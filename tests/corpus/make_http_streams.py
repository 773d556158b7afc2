#!/usr/bin/env python3
"""Make tests/corpus/http_streams.pcap: HTTP/1.1 exchanges on loopback
(127.0.0.1:18080) whose messages do not start at segment starts, captured
with dumpcap. Each exchange is its own connection; every send is its own
segment (TCP_NODELAY and a pause between sends).

  1. three pipelined GETs in one segment; three responses in one segment
  2. a request head over three segments; a response head over two, its
     body over two
  3. a POST whose 3,000-byte body spans two segments, then a GET on the
     same connection; a chunked response (three chunks, each its own
     segment, a trailer), then a Content-Length one
  4. HEAD (the response says Content-Length: 1234 and sends no body), then
     a GET whose response follows at once in the same segment
  5. Expect: 100-continue: 100 Continue, the body, then 200
  6. an HTTP/1.0 response delimited by the connection's close, its body
     holding text that looks like a response head
  7. an attack tool's request line (spaces in the URI) over two segments
  8. a request with 10 KB of headers over four segments

Usage (root, for dumpcap on lo): python3 tests/corpus/make_http_streams.py OUT.pcap
"""
import socket
import subprocess
import sys
import threading
import time

PORT = 18080
PAUSE = 0.03


def send_parts(sock, parts):
    for p in parts:
        sock.sendall(p)
        time.sleep(PAUSE)


def read_until(sock, n_bytes_or_marker):
    buf = b""
    while True:
        if isinstance(n_bytes_or_marker, int) and len(buf) >= n_bytes_or_marker:
            return buf
        if isinstance(n_bytes_or_marker, bytes) and buf.count(n_bytes_or_marker) >= 1:
            return buf
        chunk = sock.recv(65536)
        if not chunk:
            return buf
        buf += chunk


def body(n, fill=b"x"):
    return fill * n


# Each exchange: (client sends, server sends), each a list of segments.
# The server reads what the client sent in full before answering, so the
# order on the wire is fixed.
POST_BODY = body(3000, b"p")
BIG_HEADERS = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"f" * 90) for i in range(100))
EXCHANGES = [
    (
        [b"GET /pipe/1 HTTP/1.1\r\nHost: lab.test\r\n\r\n"
         b"GET /pipe/2 HTTP/1.1\r\nHost: lab.test\r\n\r\n"
         b"GET /pipe/3 HTTP/1.1\r\nHost: lab.test\r\n\r\n"],
        [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"
         b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"
         b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"],
    ),
    (
        [b"GET /split-head HT", b"TP/1.1\r\nHost: Split.Lab.Test\r\nUser-Agent: sp", b"litter/1\r\n\r\n"],
        [b"HTTP/1.1 200 OK\r\nContent-Ty", b"pe: text/plain\r\nContent-Length: 20\r\n\r\n0123456789", b"abcdefghij"],
    ),
    (
        [b"POST /upload HTTP/1.1\r\nHost: lab.test\r\nContent-Length: 3000\r\n\r\n" + POST_BODY[:1000],
         POST_BODY[1000:] + b"GET /after-post HTTP/1.1\r\nHost: lab.test\r\n\r\n"],
        [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
         b"a\r\n0123456789\r\n",
         b"1A;note=x\r\nHTTP/1.1 200 OK inside\r\n\r\n\r\n",
         b"0\r\nX-Trailer: yes\r\n\r\n"
         b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"],
    ),
    (
        [b"HEAD /head HTTP/1.1\r\nHost: lab.test\r\n\r\n", b"GET /after-head HTTP/1.1\r\nHost: lab.test\r\n\r\n"],
        [b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
         b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"],
    ),
    (
        [b"PUT /expect HTTP/1.1\r\nHost: lab.test\r\nExpect: 100-continue\r\nContent-Length: 6\r\n\r\n", b"abcdef"],
        [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 204 No Content\r\n\r\n"],
    ),
    (
        [b"GET /close HTTP/1.0\r\nHost: lab.test\r\n\r\n"],
        [b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n", b"HTTP/1.1 500 not a response\r\n\r\nmore text"],
    ),
    (
        [b"GET /search?q=' UNION ALL SE", b"LECT 1,2-- HTTP/1.1\r\nHost: lab.test\r\nUser-Agent: sqlmap/1.7\r\n\r\n"],
        [b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"],
    ),
    (
        [b"GET /big-head HTTP/1.1\r\nHost: lab.test\r\n" + BIG_HEADERS[:3000],
         BIG_HEADERS[3000:6000], BIG_HEADERS[6000:], b"\r\n"],
        [b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n"],
    ),
]


def serve(listener, done):
    for client_parts, server_parts in EXCHANGES:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        read_until(conn, sum(len(p) for p in client_parts))
        send_parts(conn, server_parts)
        conn.shutdown(socket.SHUT_WR)
        read_until(conn, 1 << 30)
        conn.close()
    done.set()


def main():
    out = sys.argv[1]
    cap = subprocess.Popen(
        ["dumpcap", "-q", "-P", "-i", "lo", "-f", f"tcp port {PORT}", "-w", out],
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", PORT))
    listener.listen(1)
    done = threading.Event()
    threading.Thread(target=serve, args=(listener, done), daemon=True).start()
    for client_parts, _ in EXCHANGES:
        c = socket.create_connection(("127.0.0.1", PORT))
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        send_parts(c, client_parts)
        read_until(c, 1 << 30)
        c.close()
        time.sleep(PAUSE)
    done.wait(10)
    time.sleep(0.5)
    cap.terminate()
    cap.wait()


main()
