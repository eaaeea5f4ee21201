"""The ``hosts`` file, as the C library reads it: ``ADDRESS NAME [ALIASES...]`` per line, ``#`` comments.

Names match case-insensitively and literally (search domains never apply to the file). Every line that names
the host contributes its address, in file order, as glibc's ``getaddrinfo`` does.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class HostsMatch:
    """The addresses a hosts file gives a name, and the canonical name (the first name of the first line)."""

    addresses: tuple[str, ...]
    canonical_name: str


def lookup_hosts(text: str, name: str, *, ipv4: bool = True, ipv6: bool = True) -> HostsMatch | None:
    """The addresses of ``name`` in a hosts file's ``text`` (only the families asked for), or None."""
    wanted = name.rstrip(".").lower()
    if not wanted:
        return None
    addresses: list[str] = []
    canonical: str | None = None
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        names = [entry.rstrip(".").lower() for entry in fields[1:]]
        if wanted not in names:
            continue
        try:
            address = ipaddress.ip_address(fields[0].split("%", 1)[0])
        except ValueError:
            continue  # a malformed line is skipped, as the C library does
        if canonical is None:
            canonical = fields[1]
        if (address.version == 4 and ipv4) or (address.version == 6 and ipv6):
            text_address = str(address)
            if text_address not in addresses:
                addresses.append(text_address)
    if canonical is None:
        return None
    return HostsMatch(tuple(addresses), canonical)
