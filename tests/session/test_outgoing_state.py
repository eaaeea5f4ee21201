from __future__ import annotations

from pymirrord.protocol import session_to_agent as to_agent
from pymirrord.protocol.layer_to_session import ConnectRequest, ResolveRequest
from pymirrord.protocol.outgoing_types import AddressFamily, SocketKind, Transport
from pymirrord.protocol.types import SocketAddress
from pymirrord.session.outgoing_state import OutgoingState

REMOTE = SocketAddress("10.0.0.1", 80)


def connect(state: OutgoingState, layer: int, transport: Transport = Transport.TCP) -> int:
    request_id, message = state.connect(layer, ConnectRequest(transport, REMOTE, False, 0))
    assert message == to_agent.OutgoingConnect(request_id, transport, REMOTE, 0, False)
    return request_id


def test_an_answer_opens_the_connection_for_the_layer_that_asked() -> None:
    state = OutgoingState()
    request_id = connect(state, layer=3)
    pending, messages = state.connect_answered(request_id, 41, succeeded=True)
    assert pending is not None and pending.layer == 3 and messages == []
    assert state.connections[41].layer == 3


def test_a_connection_opened_for_a_layer_that_left_is_closed_again() -> None:
    state = OutgoingState()
    request_id = connect(state, layer=3)
    state.layer_gone(3)
    pending, messages = state.connect_answered(request_id, 41, succeeded=True)
    assert pending is None
    assert messages == [to_agent.OutgoingClose(41)]
    assert 41 not in state.connections


def test_a_late_answer_after_the_layer_gave_up_is_closed_too() -> None:
    state = OutgoingState()
    request_id = connect(state, layer=1)
    state.abandon_connect(request_id)
    assert state.connect_answered(request_id, 5, succeeded=True) == (None, [to_agent.OutgoingClose(5)])
    assert state.connect_answered(999, 6, succeeded=False) == (None, [])


def test_tcp_is_finished_once_both_sides_stopped_sending() -> None:
    state = OutgoingState()
    state.connect_answered(connect(state, 1), 7, succeeded=True)
    connection = state.from_app(7, 0)
    assert connection is not None and not connection.finished
    connection = state.from_remote(7, 0)
    assert connection is not None and connection.finished


def test_a_layer_closes_only_its_own_connections() -> None:
    state = OutgoingState()
    state.connect_answered(connect(state, 1, Transport.UDP), 7, succeeded=True)
    assert state.closed_by_app(7, layer=2) == []
    assert state.closed_by_app(7, layer=1) == [to_agent.OutgoingClose(7)]
    assert state.closed_by_app(7, layer=1) == []


def test_a_departed_layer_takes_its_udp_connections_but_not_tcp_ones() -> None:
    state = OutgoingState()
    state.connect_answered(connect(state, 1, Transport.UDP), 7, succeeded=True)
    state.connect_answered(connect(state, 1, Transport.TCP), 8, succeeded=True)
    gone, messages = state.layer_gone(1)
    assert gone == [7]
    assert messages == [to_agent.OutgoingClose(7)]
    assert list(state.connections) == [8]


def test_lookups_are_matched_back_to_their_layer() -> None:
    state = OutgoingState()
    request = ResolveRequest("db", 5432, AddressFamily.ANY, SocketKind.STREAM, 0, True, False)
    request_id, message = state.lookup(4, request)
    assert message == to_agent.DnsLookup(
        request_id, "db", 5432, AddressFamily.ANY, SocketKind.STREAM, 0, True, False
    )
    assert state.lookup_answered(request_id) == 4
    assert state.lookup_answered(request_id) is None


def test_losing_the_agent_ends_everything() -> None:
    state = OutgoingState()
    state.connect_answered(connect(state, 1), 7, succeeded=True)
    connect(state, 1)
    assert state.agent_lost() == [7]
    assert not state.connections and not state.pending_connects
