from __future__ import annotations

from pymirrord.protocol import session_to_agent as to_agent
from pymirrord.protocol import session_to_layer as to_layer
from pymirrord.protocol.types import Mode, SocketAddress
from pymirrord.session.state import OpenToApp, PortServed, ReplyToLayer, SendToAgent, SessionState

APP = SocketAddress("127.0.0.1", 41000)
CLIENT = SocketAddress("10.1.0.2", 51000)
POD = SocketAddress("10.1.0.1", 80)


def active(state: SessionState, layer: int = 1, port: int = 80) -> None:
    state.layer_listen(layer, port, APP)
    state.subscribe_result(port, state.mode, None)


def test_listen_subscribes_and_the_confirmation_answers_the_layer() -> None:
    state = SessionState(Mode.STEAL)
    assert state.layer_listen(1, 80, APP) == [SendToAgent(to_agent.PortSubscribe(80, Mode.STEAL, False))]
    assert state.subscribe_result(80, Mode.STEAL, None) == [
        ReplyToLayer(1, to_layer.ListenResult(80, Mode.STEAL, None)),
        PortServed(80, Mode.STEAL),
    ]


def test_a_refused_subscription_reaches_the_layer_and_frees_the_port() -> None:
    state = SessionState(Mode.STEAL)
    state.layer_listen(1, 80, APP)
    assert state.subscribe_result(80, Mode.STEAL, "port 80 is stolen by another session") == [
        ReplyToLayer(1, to_layer.ListenResult(80, None, "port 80 is stolen by another session"))
    ]
    assert state.listeners == {}


def test_a_second_process_cannot_take_a_served_port() -> None:
    state = SessionState(Mode.MIRROR)
    active(state, layer=1)
    [reply] = state.layer_listen(2, 80, APP)
    assert isinstance(reply, ReplyToLayer) and reply.layer == 2
    assert isinstance(reply.message, to_layer.ListenResult) and reply.message.error


def test_listener_closed_before_the_agent_answered_is_unsubscribed() -> None:
    state = SessionState(Mode.MIRROR)
    state.layer_listen(1, 80, APP)
    assert state.layer_closed_listener(1, 80, APP) == [SendToAgent(to_agent.PortUnsubscribe(80))]
    assert state.subscribe_result(80, Mode.MIRROR, None) == [SendToAgent(to_agent.PortUnsubscribe(80))]


def test_a_vanished_layer_releases_all_its_ports() -> None:
    state = SessionState(Mode.MIRROR)
    active(state, layer=1, port=80)
    active(state, layer=1, port=8080)
    active(state, layer=2, port=9000)
    assert state.layer_gone(1) == [
        SendToAgent(to_agent.PortUnsubscribe(80)),
        SendToAgent(to_agent.PortUnsubscribe(8080)),
    ]
    assert list(state.listeners) == [9000]


def test_new_connection_opens_the_app_and_the_peer_is_known_once_bound() -> None:
    state = SessionState(Mode.STEAL)
    active(state)
    assert state.new_connection(7, 80, Mode.STEAL, CLIENT, POD) == [OpenToApp(7, APP, Mode.STEAL)]
    assert state.peer_of(50123) == to_layer.PeerAnswer(None, None, handover=False)
    state.app_connecting(7, 50123)
    assert state.peer_of(50123) == to_layer.PeerAnswer(CLIENT, POD, handover=False)
    state.forget(7)
    assert state.peer_of(50123) == to_layer.PeerAnswer(None, None, handover=False)


def test_connection_for_an_unserved_port_is_handed_back() -> None:
    state = SessionState(Mode.STEAL)
    assert state.new_connection(7, 80, Mode.STEAL, CLIENT, POD) == [SendToAgent(to_agent.ConnectionClose(7))]


def test_only_stolen_connections_send_the_apps_bytes_back() -> None:
    state = SessionState(Mode.STEAL)
    active(state)
    state.new_connection(1, 80, Mode.STEAL, CLIENT, POD)
    state.new_connection(2, 80, Mode.MIRROR, CLIENT, POD)
    assert state.from_app(1, b"reply") == [SendToAgent(to_agent.ConnectionWrite(1, b"reply"))]
    assert state.from_app(1, b"") == [SendToAgent(to_agent.ConnectionWrite(1, b""))]
    assert state.from_app(2, b"reply") == []
    assert state.counters.bytes_out == 5


def test_closing_the_app_side_releases_by_mode() -> None:
    state = SessionState(Mode.STEAL)
    active(state)
    state.new_connection(1, 80, Mode.STEAL, CLIENT, POD)
    state.new_connection(2, 80, Mode.MIRROR, CLIENT, POD)
    assert state.app_closed(1) == [SendToAgent(to_agent.ConnectionClose(1))]
    assert state.app_closed(2) == [SendToAgent(to_agent.ConnectionUnsubscribe(2))]
    assert state.app_closed(2) == []
    assert state.from_client(2, 10) is False


def test_unreachable_app_closes_the_connection_once() -> None:
    state = SessionState(Mode.STEAL)
    active(state)
    state.new_connection(1, 80, Mode.STEAL, CLIENT, POD)
    assert state.app_unreachable(1) == [SendToAgent(to_agent.ConnectionClose(1))]
    assert state.app_unreachable(1) == []


def test_a_port_listened_on_twice_is_released_when_both_listeners_close() -> None:
    state = SessionState(Mode.MIRROR)
    v6 = SocketAddress("::1", 41001)
    active(state)
    assert state.layer_listen(1, 80, v6) == [ReplyToLayer(1, to_layer.ListenResult(80, Mode.MIRROR, None))]
    assert state.layer_closed_listener(1, 80, APP) == []
    assert state.listeners[80].address == v6
    assert state.layer_closed_listener(1, 80, SocketAddress("127.0.0.1", 1)) == [], "not one of its listeners"
    assert state.layer_closed_listener(1, 80, v6) == [SendToAgent(to_agent.PortUnsubscribe(80))]


def test_handover_is_asked_for_stolen_ipv4_listeners_only() -> None:
    steal = SessionState(Mode.STEAL, handover=True)
    assert steal.layer_listen(1, 80, APP) == [SendToAgent(to_agent.PortSubscribe(80, Mode.STEAL, True))]
    assert steal.layer_listen(2, 81, SocketAddress("::1", 4000)) == [
        SendToAgent(to_agent.PortSubscribe(81, Mode.STEAL, False))
    ]
    mirror = SessionState(Mode.MIRROR, handover=True)
    assert mirror.layer_listen(1, 80, APP) == [SendToAgent(to_agent.PortSubscribe(80, Mode.MIRROR, False))]


def test_a_handed_over_connection_opens_the_app_without_a_relay_and_is_found_by_its_port() -> None:
    state = SessionState(Mode.STEAL, handover=True)
    active(state)
    assert state.new_connection(3, 80, Mode.STEAL, CLIENT, POD, handed_over=True) == [
        OpenToApp(3, APP, Mode.STEAL, handed_over=True)
    ]
    state.app_connecting(3, 50200)
    assert state.connection_at(50200) == 3
    assert state.connection_at(50201) is None
