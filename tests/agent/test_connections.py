from __future__ import annotations

import pytest

from pymirrord.agent.connections import CloseClient, ConnectionTable, PauseClient, Send, WriteClient
from pymirrord.agent.subscriptions import Route
from pymirrord.protocol.agent_to_session import (
    ConnectionClosed,
    ConnectionRead,
    ConnectionWriteFlow,
    Log,
    NewConnection,
)
from pymirrord.protocol.types import Mode, SocketAddress

A, B, C = 1, 2, 3
CLIENT = SocketAddress("10.0.0.2", 40000)
LOCAL = SocketAddress("10.0.0.1", 80)


def open_(table: ConnectionTable, route: Route) -> int:
    cid, _ = table.open(80, route, CLIENT, LOCAL)
    return cid


def test_open_announces_to_stealer_and_mirrors() -> None:
    table = ConnectionTable()
    cid, effects = table.open(80, Route(A, (B, C)), CLIENT, LOCAL)
    assert effects == [
        Send(A, NewConnection(cid, 80, Mode.STEAL, CLIENT, LOCAL, handed_over=False)),
        Send(B, NewConnection(cid, 80, Mode.MIRROR, CLIENT, LOCAL, handed_over=False)),
        Send(C, NewConnection(cid, 80, Mode.MIRROR, CLIENT, LOCAL, handed_over=False)),
    ]
    second, _ = table.open(80, Route(A, ()), CLIENT, LOCAL)
    assert second != cid
    assert len(table) == 2


def test_client_data_goes_to_the_owner_and_as_copies_to_mirrors() -> None:
    table = ConnectionTable()
    cid = open_(table, Route(A, (B,)))
    assert table.client_data(cid, b"GET /") == [
        Send(A, ConnectionRead(cid, b"GET /"), copy=False),
        Send(B, ConnectionRead(cid, b"GET /"), copy=True),
    ]
    with pytest.raises(ValueError):
        table.client_data(cid, b"")
    assert table.client_data(999, b"x") == []


def test_stolen_connection_finishes_when_both_sides_half_closed() -> None:
    table = ConnectionTable()
    cid = open_(table, Route(A, (B,)))
    assert table.client_eof(cid) == [Send(A, ConnectionRead(cid, b"")), Send(B, ConnectionRead(cid, b""))]
    assert table.client_eof(cid) == []
    assert table.write(A, cid, b"HTTP/1.1 200 OK\r\n") == [WriteClient(cid, b"HTTP/1.1 200 OK\r\n")]
    effects = table.write(A, cid, b"")
    assert effects[:2] == [WriteClient(cid, b""), CloseClient(cid)]
    assert {e.session for e in effects[2:] if isinstance(e, Send)} == {A, B}
    assert all(isinstance(e, Send) and isinstance(e.message, ConnectionClosed) for e in effects[2:])
    assert table.get(cid) is None


def test_session_half_close_first_then_client() -> None:
    table = ConnectionTable()
    cid = open_(table, Route(A, ()))
    assert table.write(A, cid, b"") == [WriteClient(cid, b"")]
    assert table.get(cid) is not None
    # Writing after the half-close is a session bug: reported to it, not sent.
    late = table.write(A, cid, b"late")
    assert len(late) == 1
    assert isinstance(late[0], Send)
    assert isinstance(late[0].message, Log)
    effects = table.client_eof(cid)
    assert Send(A, ConnectionRead(cid, b"")) in effects
    assert CloseClient(cid) in effects
    assert table.get(cid) is None


def test_writes_from_mirrors_or_unknown_sessions_are_ignored() -> None:
    table = ConnectionTable()
    cid = open_(table, Route(A, (B,)))
    assert table.write(B, cid, b"reply") == []
    assert table.write(C, cid, b"reply") == []
    assert table.write(A, 12345, b"reply") == []
    mirrored = open_(table, Route(None, (B,)))
    assert table.write(B, mirrored, b"reply") == []


def test_mirrored_connection_ends_only_when_the_pod_side_is_done() -> None:
    table = ConnectionTable()
    cid = open_(table, Route(None, (A, B)))
    assert table.client_eof(cid) == [Send(A, ConnectionRead(cid, b"")), Send(B, ConnectionRead(cid, b""))]
    assert table.get(cid) is not None
    assert table.closed(cid, "finished") == [
        Send(A, ConnectionClosed(cid, "finished")),
        Send(B, ConnectionClosed(cid, "finished")),
    ]
    assert table.closed(cid, "finished") == []


def test_owner_close_closes_the_client_and_tells_the_mirrors() -> None:
    table = ConnectionTable()
    cid = open_(table, Route(A, (B,)))
    effects = table.close(A, cid)
    assert effects[0] == CloseClient(cid)
    assert [e.session for e in effects[1:] if isinstance(e, Send)] == [B]
    assert table.get(cid) is None
    assert table.close(A, cid) == []


def test_mirror_close_and_unsubscribe_stop_only_its_copies() -> None:
    table = ConnectionTable()
    cid = open_(table, Route(None, (A, B)))
    assert table.unsubscribe(A, cid) == []
    assert table.client_data(cid, b"x") == [Send(B, ConnectionRead(cid, b"x"), copy=True)]
    assert table.close(B, cid) == []
    assert table.client_data(cid, b"x") == []
    # The passthrough still runs: the entry lives until the pod side is done.
    assert table.get(cid) is not None


def test_owner_unsubscribe_closes_the_stolen_connection() -> None:
    table = ConnectionTable()
    cid = open_(table, Route(A, ()))
    assert table.unsubscribe(A, cid) == [CloseClient(cid)]


def test_drop_copy_warns_the_session_and_ends_its_copy() -> None:
    table = ConnectionTable()
    cid = open_(table, Route(None, (A, B)))
    effects = table.drop_copy(A, cid, "the session is too slow")
    assert len(effects) == 2
    assert isinstance(effects[0], Send)
    assert isinstance(effects[0].message, Log)
    assert "too slow" in effects[0].message.message
    assert effects[1] == Send(A, ConnectionClosed(cid, "the session is too slow"))
    assert table.client_data(cid, b"x") == [Send(B, ConnectionRead(cid, b"x"), copy=True)]
    assert table.drop_copy(A, cid, "again") == []


def test_session_gone_closes_its_stolen_connections_and_drops_its_copies() -> None:
    table = ConnectionTable()
    stolen = open_(table, Route(A, (B,)))
    mirrored = open_(table, Route(None, (A, B)))
    other = open_(table, Route(B, ()))
    effects = table.session_gone(A)
    assert CloseClient(stolen) in effects
    assert Send(B, ConnectionClosed(stolen, "the session that stole it disconnected")) in effects
    assert not any(isinstance(e, Send) and e.session == A for e in effects)
    assert table.get(stolen) is None
    assert table.client_data(mirrored, b"x") == [Send(B, ConnectionRead(mirrored, b"x"), copy=True)]
    assert table.get(other) is not None
    assert table.ids() == (mirrored, other)


def test_stealer_listed_as_mirror_gets_no_duplicate() -> None:
    table = ConnectionTable()
    _, effects = table.open(80, Route(A, (A, B)), CLIENT, LOCAL)
    assert [e.session for e in effects if isinstance(e, Send)] == [A, B]


def test_a_handed_over_connection_is_announced_once_and_not_tracked() -> None:
    table = ConnectionTable()
    cid, effects = table.hand_over(80, A, CLIENT, LOCAL)
    assert effects == [Send(A, NewConnection(cid, 80, Mode.STEAL, CLIENT, LOCAL, handed_over=True))]
    assert len(table) == 0
    other, _ = table.open(80, Route(A, ()), CLIENT, LOCAL)
    assert other != cid


def test_only_the_owner_pauses_reading_its_client() -> None:
    table = ConnectionTable()
    cid = open_(table, Route(A, (B,)))
    assert table.read_flow(B, cid, True) == [], "a copy never slows the client"
    assert table.read_flow(A, cid, True) == [PauseClient(cid, True)]
    assert table.read_flow(A, cid, True) == [], "paused already"
    assert table.read_flow(A, cid, False) == [PauseClient(cid, False)]
    assert table.read_flow(A, 999, True) == []


def test_the_owner_is_asked_to_hold_its_writes_and_to_go_on() -> None:
    table = ConnectionTable()
    cid = open_(table, Route(A, (B,)))
    assert table.write_flow(cid, True) == [Send(A, ConnectionWriteFlow(cid, True))]
    assert table.write_flow(cid, True) == []
    assert table.write_flow(cid, False) == [Send(A, ConnectionWriteFlow(cid, False))]
    mirrored = open_(table, Route(None, (B,)))
    assert table.write_flow(mirrored, True) == [], "nobody writes to a mirrored connection"
    table.closed(cid, "gone")
    assert table.write_flow(cid, True) == []
