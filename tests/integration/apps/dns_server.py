"""Test DNS server (UDP and TCP): answers A queries for the names given, NXDOMAIN for anything else.

usage: dns_server.py HOST PORT NAME=IPV4 [NAME=IPV4 ...]
Prints ``ready`` once listening. A known name has no AAAA record (an empty NOERROR answer).
"""

from __future__ import annotations

import socket
import struct
import sys
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


def answer(wire: bytes, records: dict[str, str]) -> bytes:
    query = dns.message.from_wire(wire)
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    question = query.question[0]
    name = question.name.to_text(omit_final_dot=True).lower()
    if name not in records:
        response.set_rcode(dns.rcode.NXDOMAIN)
    elif question.rdtype == dns.rdatatype.A:
        response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", records[name]))
    return response.to_wire()


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    records = dict(entry.split("=", 1) for entry in sys.argv[3:])
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((host, port))
    tcp = socket.create_server((host, port))

    def serve_tcp() -> None:
        while True:
            connection, _ = tcp.accept()
            with connection:
                length = struct.unpack("!H", connection.recv(2))[0]
                reply = answer(connection.recv(length), records)
                connection.sendall(struct.pack("!H", len(reply)) + reply)

    threading.Thread(target=serve_tcp, daemon=True).start()
    print("ready", flush=True)
    while True:
        wire, peer = udp.recvfrom(65535)
        udp.sendto(answer(wire, records), peer)


if __name__ == "__main__":
    main()
