"""The target side's count of SYNs answered, for benches/scan.sh and
benches/scan_onlink.sh: every SYN to an open port gets a SYN cookie
(TcpExt SyncookiesSent; the benches keep cookies always on) and every SYN
to a closed one a RST (Tcp OutRsts).

  answered_syns.py sample FILE     write "monotonic-time count" lines every 10 ms
                                   (run it in the target namespace)
  answered_syns.py rate FILE       print "probes seconds": the count's increase
                                   and the time from the sample before the first
                                   increase to the first sample at the final count
"""
import sys
import time


def count():
    total = 0
    for path, table, field in (("/proc/net/snmp", "Tcp:", "OutRsts"),
                               ("/proc/net/netstat", "TcpExt:", "SyncookiesSent")):
        rows = [line.split() for line in open(path) if line.startswith(table)]
        total += int(rows[1][rows[0].index(field)])
    return total


def sample(path):
    with open(path, "w") as f:
        while True:
            f.write(f"{time.monotonic():.4f} {count()}\n")
            f.flush()
            time.sleep(0.01)


def rate(path):
    rows = [tuple(map(float, line.split())) for line in open(path) if len(line.split()) == 2]
    moving = [i for i in range(1, len(rows)) if rows[i][1] != rows[i - 1][1]]
    if not moving:
        print(0, 0)
        return
    n = rows[-1][1] - rows[0][1]
    print(int(n), f"{rows[moving[-1]][0] - rows[moving[0] - 1][0]:.3f}")


if __name__ == "__main__":
    {"sample": sample, "rate": rate}[sys.argv[1]](sys.argv[2])
