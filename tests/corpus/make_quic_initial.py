#!/usr/bin/env python3
"""Make tests/corpus/quic_initial.pcap: two QUIC v1 handshakes on loopback
(127.0.0.1:4433) made with aioquic (pip install aioquic), captured with
dumpcap: one client offers SNI Quic.Sonde.Test and ALPN h3, the other SNI
other.sonde.test and ALPN hq-interop. The server's certificate is made
here (openssl) and thrown away.

Usage (root, for dumpcap on lo): python3 tests/corpus/make_quic_initial.py OUT.pcap
"""
import asyncio
import os
import subprocess
import sys
import tempfile
import time

from aioquic.asyncio import connect, serve
from aioquic.quic.configuration import QuicConfiguration

PORT = 4433


async def main(out):
    tmp = tempfile.mkdtemp()
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=quic.sonde.test"],
                   check=True, stderr=subprocess.DEVNULL)
    cap = subprocess.Popen(["dumpcap", "-q", "-P", "-i", "lo", "-f", f"udp port {PORT}", "-w", out],
                           stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    server_conf = QuicConfiguration(is_client=False, alpn_protocols=["h3", "hq-interop"])
    server_conf.load_cert_chain(cert, key)
    server = await serve("127.0.0.1", PORT, configuration=server_conf)
    for sni, alpn in [("Quic.Sonde.Test", "h3"), ("other.sonde.test", "hq-interop")]:
        conf = QuicConfiguration(is_client=True, alpn_protocols=[alpn], server_name=sni)
        conf.verify_mode = 0  # CERT_NONE: the certificate is self-signed
        async with connect("127.0.0.1", PORT, configuration=conf) as client:
            await client.ping()
        await asyncio.sleep(0.2)
    server.close()
    await asyncio.sleep(0.5)
    cap.terminate()
    cap.wait()


asyncio.run(main(sys.argv[1]))
