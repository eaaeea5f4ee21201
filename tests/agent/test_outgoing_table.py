from __future__ import annotations

import errno

from pymirrord.agent.outgoing_table import OutgoingTable, describe_error
from pymirrord.protocol.outgoing_types import Transport
from pymirrord.protocol.types import SocketAddress

REMOTE = SocketAddress("10.0.0.1", 5432)
LOCAL = SocketAddress("10.0.0.9", 40000)


def test_a_tcp_connection_is_done_when_both_directions_ended() -> None:
    table = OutgoingTable()
    connection_id = table.open(1, Transport.TCP, REMOTE, LOCAL)
    assert table.from_app(connection_id, 10) is False
    assert table.from_remote(connection_id, 0) is False
    assert table.from_app(connection_id, 0) is True
    connection = table.forget(connection_id)
    assert connection is not None and connection.bytes_out == 10
    assert len(table) == 0


def test_udp_datagrams_never_end_a_connection_even_empty_ones() -> None:
    table = OutgoingTable()
    connection_id = table.open(1, Transport.UDP, REMOTE, LOCAL)
    assert table.from_app(connection_id, 0) is False
    assert table.from_remote(connection_id, 0) is False


def test_a_session_only_touches_its_own_connections() -> None:
    table = OutgoingTable()
    mine = table.open(1, Transport.TCP, REMOTE, LOCAL)
    theirs = table.open(2, Transport.TCP, REMOTE, LOCAL)
    assert table.owned(1, mine) is not None
    assert table.owned(1, theirs) is None
    assert table.session_gone(1) == [mine]
    assert table.get(mine) is None and table.get(theirs) is not None


def test_errors_travel_as_errno_names() -> None:
    assert describe_error(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")) == (
        "ECONNREFUSED",
        "Connection refused",
    )
    assert describe_error(TimeoutError())[0] == "ETIMEDOUT"
    assert describe_error(RuntimeError("odd"))[0] == "EIO"
