"""Which session serves one HTTP request on a filtered port, and which get a copy (pure).

The first stealing session whose filter matches serves the request (sessions in subscription order); no
match means the pod's app serves it. Mirroring sessions get a copy when their filter matches, or always
when they subscribed without one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pymirrord.agent.subscriptions import HttpSubscriber
from pymirrord.http1 import RequestHead
from pymirrord.http_filter import RequestHead as FilterRequest
from pymirrord.protocol.types import Mode


@dataclass(frozen=True)
class RequestRoute:
    """``stealer`` serves the request (None: the pod's app); ``mirrors`` get copies; names say which filter
    part matched, for the sessions' logs."""

    stealer: int | None
    matched: str
    mirrors: tuple[tuple[int, str], ...]


def filter_view(head: RequestHead) -> FilterRequest:
    return FilterRequest(head.method, head.target, head.headers)


def route_request(subscribers: Iterable[HttpSubscriber], head: RequestHead) -> RequestRoute:
    return route_view(subscribers, filter_view(head))


def route_view(subscribers: Iterable[HttpSubscriber], request: FilterRequest) -> RequestRoute:
    """``route_request`` for what a filter sees of a request (an HTTP/2 stream's, for one)."""
    stealer: int | None = None
    matched = ""
    mirrors: list[tuple[int, str]] = []
    for subscriber in subscribers:
        if subscriber.filter is None:
            part: str | None = "everything"
        elif subscriber.mode is Mode.STEAL and stealer is not None:
            continue  # already taken: the later stealer's filter need not run
        else:
            part = subscriber.filter.match(request)
        if part is None:
            continue
        if subscriber.mode is Mode.MIRROR:
            mirrors.append((subscriber.session, part))
        elif stealer is None and subscriber.filter is not None:
            stealer, matched = subscriber.session, part
    return RequestRoute(stealer, matched, tuple(mirrors))
