from __future__ import annotations

import contextlib
import dataclasses
import enum
import typing
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pymirrord.protocol import agent_to_session, layer_to_session, session_to_agent, session_to_layer
from pymirrord.protocol.codec import Codec, codec_for
from pymirrord.protocol.errors import ProtocolError
from pymirrord.protocol.types import LogLevel, Mode, SocketAddress

CODECS: list[Codec[Any]] = [
    session_to_agent.CODEC,
    agent_to_session.CODEC,
    layer_to_session.CODEC,
    session_to_layer.CODEC,
]

uints = st.integers(min_value=0, max_value=(1 << 64) - 1)
addresses = st.builds(SocketAddress, host=st.text(max_size=40), port=st.integers(0, 65535))


def strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    if hint is int:
        return uints
    if hint is bool:
        return st.booleans()
    if hint is str:
        return st.text(max_size=50)
    if hint is bytes:
        return st.binary(max_size=200)
    if hint is SocketAddress:
        return addresses
    if hint in (Mode, LogLevel):
        return st.sampled_from(list(hint))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return st.sampled_from(list(hint))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return st.builds(hint, **{f.name: strategy_for(hints[f.name]) for f in dataclasses.fields(hint)})
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        return st.none() | strategy_for(args[0])
    if origin is tuple:
        return st.lists(strategy_for(args[0]), max_size=5).map(tuple)
    raise AssertionError(f"no strategy for {hint!r}")


def message_strategy(codec: Codec[Any]) -> st.SearchStrategy[Any]:
    def builds(cls: type) -> st.SearchStrategy[Any]:
        hints = typing.get_type_hints(cls)
        fields = {f.name: strategy_for(hints[f.name]) for f in dataclasses.fields(cls)}
        return st.builds(cls, **fields)

    return st.one_of([builds(cls) for cls in codec.message_types])


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@given(data=st.data())
def test_every_message_round_trips(codec: Codec[Any], data: st.DataObject) -> None:
    message = data.draw(message_strategy(codec))
    assert codec.decode(codec.encode(message)) == message


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@given(blob=st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_protocol_error(codec: Codec[Any], blob: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        codec.decode(blob)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@given(data=st.data())
def test_truncated_or_extended_messages_are_rejected(codec: Codec[Any], data: st.DataObject) -> None:
    encoded = codec.encode(data.draw(message_strategy(codec)))
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(ProtocolError):
        codec.decode(encoded[:cut])
    with pytest.raises(ProtocolError):
        codec.decode(encoded + b"\x00")


def test_payload_bytes_travel_verbatim() -> None:
    payload = bytes(range(256)) * 4
    encoded = agent_to_session.CODEC.encode(agent_to_session.ConnectionRead(7, payload))
    assert payload in encoded  # carried as raw bytes, not escaped or base64


def test_messages_of_another_direction_are_refused() -> None:
    hello = session_to_agent.ClientHello(1, "0.1", "s")
    with pytest.raises(ProtocolError, match="not a agent-to-session message"):
        agent_to_session.CODEC.encode(hello)  # type: ignore[arg-type]


def test_unknown_tag_and_bad_values_name_the_problem() -> None:
    with pytest.raises(ProtocolError, match="unknown session-to-agent message tag 99"):
        session_to_agent.CODEC.decode(b"\x63")
    bad_mode = b"\x0a\x50\x04fake"  # PortSubscribe(port=80, mode="fake")
    with pytest.raises(ProtocolError, match="'fake' at byte 2 is not a Mode"):
        session_to_agent.CODEC.decode(bad_mode)
    with pytest.raises(ProtocolError, match="not UTF-8"):
        agent_to_session.CODEC.decode(b"\x03\x04info\x01\xff")
    with pytest.raises(ProtocolError, match="unsigned 64-bit"):
        session_to_agent.CODEC.encode(session_to_agent.Ping(-1))


def test_overlong_numbers_and_lists_are_rejected() -> None:
    with pytest.raises(ProtocolError, match="longer than 10 bytes"):
        session_to_agent.CODEC.decode(b"\x02" + b"\xff" * 11)
    with pytest.raises(ProtocolError, match="too large"):
        session_to_agent.CODEC.decode(b"\x02" + b"\xff" * 9 + b"\x7f")


def test_duplicate_tags_are_a_programming_error() -> None:
    with pytest.raises(TypeError, match="share tag"):
        codec_for("x", [session_to_agent.Ping, session_to_agent.Ping])
