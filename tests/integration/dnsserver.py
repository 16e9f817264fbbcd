#!/usr/bin/env python3
"""A small authoritative DNS server over UDP for the name-resolution tests.

    dnsserver.py --listen 127.0.0.1:53 --zone FILE

FILE is JSON, read again for every query so that a test can change it
while the server runs: {"name": {"a": ["127.0.0.1"], "delay": 3.0}, ...}.
A name in the file gets its A records (AAAA queries an empty answer)
after `delay` seconds; any other name NXDOMAIN.  Each query is answered
from its own thread, so a slow answer holds up no other.  One line per
query on stdout when answered: "TIME QNAME QTYPE -> RCODE ANSWERS", TIME
the wall clock (time.time()).
"""

import argparse
import json
import socket
import struct
import sys
import threading
import time

QTYPE_A = 1
QTYPE_AAAA = 28


def parse_query(pkt):
    """(id, flags, qname, qtype, question bytes) of a query, or None."""
    if len(pkt) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", pkt[:6])
    if qd != 1:
        return None
    i, labels = 12, []
    while True:
        if i >= len(pkt):
            return None
        n = pkt[i]
        i += 1
        if n == 0:
            break
        if n > 63 or i + n > len(pkt):
            return None
        labels.append(pkt[i:i + n].decode("ascii", "replace").lower())
        i += n
    if i + 4 > len(pkt):
        return None
    qtype = struct.unpack("!H", pkt[i:i + 2])[0]
    return qid, flags, ".".join(labels), qtype, pkt[12:i + 4]


def answer(zone_file, pkt):
    q = parse_query(pkt)
    if q is None:
        return None, ""
    qid, flags, name, qtype, question = q
    try:
        with open(zone_file) as f:
            zone = json.load(f)
    except (OSError, ValueError):
        zone = {}
    entry = zone.get(name)
    time.sleep(float(entry.get("delay", 0)) if entry else 0)
    rd = flags & 0x0100
    rcode, records = 0, []
    if entry is None:
        rcode = 3       # NXDOMAIN
    elif qtype == QTYPE_A:
        records = entry.get("a", [])
    # QR, AA, RD as asked, RA
    hdr = struct.pack("!HHHHHH", qid, 0x8400 | rd | 0x0080 | rcode, 1,
                      len(records), 0, 0)
    body = question
    for addr in records:
        body += struct.pack("!HHHIH", 0xC00C, QTYPE_A, 1, 5, 4)
        body += socket.inet_aton(addr)
    return hdr + body, "%s %d -> %d %s" % (name, qtype, rcode, ",".join(records))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--zone", required=True)
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, int(port)))
    lock = threading.Lock()
    print("dnsserver: listening on %s" % a.listen, flush=True)

    def serve(pkt, peer):
        out, line = answer(a.zone, pkt)
        if out is None:
            return
        with lock:
            s.sendto(out, peer)
            print("%.3f %s" % (time.time(), line), flush=True)

    while True:
        pkt, peer = s.recvfrom(2048)
        threading.Thread(target=serve, args=(pkt, peer), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
