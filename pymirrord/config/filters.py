"""The grammar of outgoing and DNS filter entries: ``[tcp|udp|any://][NAME|IP|SUBNET/LEN][:PORT]``.

Examples: ``"tcp://10.0.0.0/8:5432"``, ``"db.internal"``, ``":53"``, ``"udp://[fd00::1]:53"``. DNS filters use
the same grammar without the protocol part. Errors carry the character range of the offending part so that the
config checker can underline exactly that inside the string.
"""

from __future__ import annotations

import ipaddress
import re

from pymirrord.config.model import FilterProtocol, FilterRule

_PROTOCOLS: dict[str, FilterProtocol] = {"any": "any", "tcp": "tcp", "udp": "udp"}
_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


_DEFAULT_HINT = "entries look like tcp://10.0.0.0/8:5432, db.internal, 1.2.3.4:80 or :53"


class FilterSyntaxError(Exception):
    """What is wrong with a filter entry, and which characters ``[start, end)`` of it are at fault."""

    def __init__(self, message: str, start: int, end: int, hint: str = _DEFAULT_HINT) -> None:
        super().__init__(message)
        self.message = message
        self.start = start
        self.end = end
        self.hint = hint


def parse_filter_rule(text: str, *, allow_protocol: bool = True) -> FilterRule:
    """Parse one filter entry; raises ``FilterSyntaxError`` naming the offending characters."""
    if not text.strip():
        raise FilterSyntaxError("empty filter entry", 0, len(text))
    protocol: FilterProtocol = "any"
    offset = 0
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if scheme:
        if not allow_protocol:
            raise FilterSyntaxError(
                "DNS filter entries have no protocol",
                0,
                scheme.end(),
                hint="write the name or address alone, for example db.internal or db.internal:5432",
            )
        name = scheme.group(1).lower()
        if name not in _PROTOCOLS:
            raise FilterSyntaxError(
                f"unknown protocol {scheme.group(1)!r}",
                0,
                scheme.end(1),
                hint="the protocol is tcp, udp or any",
            )
        protocol = _PROTOCOLS[name]
        offset = scheme.end()
    rest = text[offset:]
    host_text, host_start, port_text, port_start = _split_host_port(rest, offset)
    port = _parse_port(port_text, port_start) if port_text is not None else None
    if not host_text:
        if port is None:
            raise FilterSyntaxError("filter entry names neither an address nor a port", 0, len(text))
        return FilterRule(protocol, "any", None, port)
    host_end = host_start + len(host_text)
    if "/" in host_text:
        try:
            ipaddress.ip_network(host_text, strict=False)
        except ValueError:
            raise FilterSyntaxError(
                f"{host_text!r} is not a valid subnet",
                host_start,
                host_end,
                hint="write a subnet as 10.0.0.0/8",
            ) from None
        return FilterRule(protocol, "subnet", host_text, port)
    try:
        ipaddress.ip_address(host_text)
    except ValueError:
        pass
    else:
        return FilterRule(protocol, "ip", host_text, port)
    labels = host_text.rstrip(".").split(".")
    if all(label.isdigit() for label in labels):
        raise FilterSyntaxError(f"{host_text!r} is not a valid IP address", host_start, host_end)
    if len(host_text) > 253 or not all(_LABEL.match(label) for label in labels):
        bad = next((label for label in labels if not _LABEL.match(label)), host_text)
        at = host_start + max(host_text.find(bad), 0) if bad else host_start
        raise FilterSyntaxError(
            f"{host_text!r} is not a valid host name, IP address or subnet", at, max(at + len(bad), at + 1)
        )
    return FilterRule(protocol, "name", host_text, port)


def _split_host_port(rest: str, offset: int) -> tuple[str, int, str | None, int]:
    """Split ``host[:port]``; IPv6 addresses take brackets when a port follows (``[::1]:80``)."""
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0:
            raise FilterSyntaxError("missing ] after an IPv6 address", offset, offset + len(rest))
        host = rest[1:close]
        tail = rest[close + 1 :]
        if tail and not tail.startswith(":"):
            raise FilterSyntaxError("expected :PORT after ]", offset + close + 1, offset + len(rest))
        return host, offset + 1, (tail[1:] if tail else None), offset + close + 2
    if rest.count(":") > 1:
        # A bare IPv6 address or subnet: its colons are not a port separator.
        return rest, offset, None, 0
    host, colon, port = rest.partition(":")
    return host, offset, (port if colon else None), offset + len(host) + 1


def _parse_port(text: str, start: int) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise FilterSyntaxError(
            f"{text!r} is not a valid port number",
            start,
            start + max(len(text), 1),
            hint="ports are 1 to 65535",
        )
    return int(text)
