#!/usr/bin/python3
# Reference bytes for tests/offline/craft.rs, made by Scapy (Debian's python3-scapy,
# 2.5.0) for the same packets as the sonde specs. Regenerate with:
#
#   /usr/bin/python3 tests/craft/fixtures.py > tests/craft/fixtures.tsv
#
# Each line: sonde spec <TAB> Scapy expression <TAB> hex of bytes(packet).
# Addresses are given explicitly: neither tool may consult a route here.
from scapy.all import Ether, IP, IPv6, TCP, UDP, ICMP, DNS, DNSQR, Raw
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6DestUnreach

S4, D4 = "198.18.0.2", "198.18.1.5"
S6, D6 = "2001:db8::2", "2001:db8:1::5"
CASES = [
    (f"ip(src={S4},dst={D4})/tcp(dport=80)",
     f"IP(src='{S4}',dst='{D4}')/TCP(dport=80)"),
    (f"ip(src={S4},dst={D4},ttl=3)/tcp(dport=80,flags=S,seq=1000,options=mss:1460;sackok;ws:7;ts:1:0)/raw(text=\"hello\")",
     f"IP(src='{S4}',dst='{D4}',ttl=3)/TCP(dport=80,flags='S',seq=1000,options=[('MSS',1460),('SAckOK',b''),('WScale',7),('Timestamp',(1,0))])/Raw(b'hello')"),
    (f"ip(src={S4},dst={D4},id=4242,flags=DF,tos=16)/tcp(sport=40000,dport=443,flags=SA,ack=7,window=65535)",
     f"IP(src='{S4}',dst='{D4}',id=4242,flags='DF',tos=16)/TCP(sport=40000,dport=443,flags='SA',ack=7,window=65535)"),
    (f"ip(src={S4},dst={D4})/tcp(dport=22,flags=FPU,urgptr=3)",
     f"IP(src='{S4}',dst='{D4}')/TCP(dport=22,flags='FPU',urgptr=3)"),
    (f"ip(src={S4},dst={D4})/udp(sport=5353,dport=53)/dns(id=4660,qd=www.example.com:A)",
     f"IP(src='{S4}',dst='{D4}')/UDP(sport=5353,dport=53)/DNS(id=4660,rd=1,qd=DNSQR(qname='www.example.com',qtype='A'))"),
    (f"ip(src={S4},dst={D4})/icmp(id=7,seq=1)/raw(pattern=41,len=32)",
     f"IP(src='{S4}',dst='{D4}')/ICMP(id=7,seq=1)/Raw(b'A'*32)"),
    (f"ip(src={S4},dst={D4})/icmp(type=dest-unreach,code=3)/ip(src={D4},dst={S4})/udp(sport=53,dport=4444)",
     f"IP(src='{S4}',dst='{D4}')/ICMP(type=3,code=3)/IP(src='{D4}',dst='{S4}')/UDP(sport=53,dport=4444)"),
    (f"ip(src={S4},dst={D4},chksum=0xdead)/udp(chksum=0xbeef)/raw(hex=00ff)",
     f"IP(src='{S4}',dst='{D4}',chksum=0xdead)/UDP(chksum=0xbeef)/Raw(b'\\x00\\xff')"),
    (f"ip(src={S4},dst={D4},frag=185,flags=MF,proto=17)/raw(hex=0102030405060708)",
     f"IP(src='{S4}',dst='{D4}',frag=185,flags='MF',proto=17)/Raw(bytes(range(1,9)))"),
    (f"ip(src={S4},dst={D4},options=94040000)/tcp(dport=80)",
     f"IP(src='{S4}',dst='{D4}',options=b'\\x94\\x04\\x00\\x00')/TCP(dport=80)"),
    (f"ip(src={S4},dst={D4})/udp(dport=53)/dns(id=9,rd=0,qclass=CH,qd=version.bind:TXT)",
     f"IP(src='{S4}',dst='{D4}')/UDP(dport=53)/DNS(id=9,rd=0,qd=DNSQR(qname='version.bind',qtype='TXT',qclass='CH'))"),
    (f"ipv6(src={S6},dst={D6},hlim=5,fl=12345,tc=32)/tcp(dport=80)",
     f"IPv6(src='{S6}',dst='{D6}',hlim=5,fl=12345,tc=32)/TCP(dport=80)"),
    (f"ipv6(src={S6},dst={D6})/udp(dport=53)/dns(qd=example.org:AAAA)",
     f"IPv6(src='{S6}',dst='{D6}')/UDP(dport=53)/DNS(rd=1,qd=DNSQR(qname='example.org',qtype='AAAA'))"),
    (f"ipv6(src={S6},dst={D6})/icmpv6(type=echo-request,id=1,seq=2)/raw(text=\"ping\")",
     f"IPv6(src='{S6}',dst='{D6}')/ICMPv6EchoRequest(id=1,seq=2,data=b'ping')"),
    (f"ether(src=02:00:00:00:00:01,dst=02:00:00:00:00:02)/ip(src={S4},dst={D4})/icmp",
     f"Ether(src='02:00:00:00:00:01',dst='02:00:00:00:00:02')/IP(src='{S4}',dst='{D4}')/ICMP()"),
]
for spec, expr in CASES:
    print(f"{spec}\t{expr}\t{bytes(eval(expr)).hex()}")
