"""Bench app: a UDP DNS server that answers A queries for the names given, NXDOMAIN otherwise.

usage: dns_responder.py HOST PORT NAME=IPV4 [...]    (prints ``ready`` once listening)
"""

from __future__ import annotations

import socket
import sys

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


def main() -> None:
    records = dict(entry.split("=", 1) for entry in sys.argv[3:])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((sys.argv[1], int(sys.argv[2])))
    print("ready", flush=True)
    while True:
        wire, peer = sock.recvfrom(65535)
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        if name not in records:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(question.name, 0, "IN", "A", records[name]))
        sock.sendto(response.to_wire(), peer)


if __name__ == "__main__":
    main()
