"""A compact binary codec for frozen message dataclasses.

A message is ``varint(tag)`` followed by its fields in declaration order:

- ``int``: unsigned LEB128 varint, below 2**64 (ids, ports, pids, errnos are never negative);
- ``bool``: one byte, 0 or 1;
- ``str``: varint length, then UTF-8; ``bytes``: varint length, then the bytes as they are;
- a ``str``-valued ``Enum``: its value as a ``str``;
- ``Optional[T]``: one byte 0 (absent) or 1 followed by ``T``;
- ``tuple[T, ...]``: varint count, then the items;
- a nested frozen dataclass: its fields, no tag.

Each direction has its own ``Codec`` holding only the messages that direction may carry, so a peer
that sends a message the wrong way gets a ``ProtocolError`` and not a confused state machine.
Decoding never raises anything but ``ProtocolError``, whatever the bytes.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any, ClassVar, Generic, TypeVar

from pymirrord.protocol.errors import ProtocolError

_MAX_VARINT_BYTES = 10
_MAX_UINT = (1 << 64) - 1

Encoder = Callable[[Any, list[bytes]], None]
Decoder = Callable[["_Reader"], Any]

M = TypeVar("M")


class _Reader:
    """A cursor over one message's bytes; every read checks bounds."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        # A view: slicing it copies only what a field keeps, whatever buffer the message sits in.
        self._data = memoryview(data)
        self._pos = 0

    def varint(self) -> int:
        result = 0
        shift = 0
        data = self._data
        for _ in range(_MAX_VARINT_BYTES):
            if self._pos >= len(data):
                raise ProtocolError(f"message ends inside a number at byte {self._pos}")
            byte = data[self._pos]
            self._pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if result > _MAX_UINT:
                    raise ProtocolError(f"number too large before byte {self._pos}")
                return result
            shift += 7
        raise ProtocolError(f"number longer than {_MAX_VARINT_BYTES} bytes at byte {self._pos}")

    def take(self, count: int) -> bytes:
        end = self._pos + count
        if end > len(self._data):
            raise ProtocolError(
                f"message needs {count} bytes at byte {self._pos} but has {len(self._data) - self._pos}"
            )
        chunk = bytes(self._data[self._pos : end])
        self._pos = end
        return chunk

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise ProtocolError(f"{len(self._data) - self._pos} unexpected bytes after the message")

    @property
    def position(self) -> int:
        return self._pos


def _encode_varint(value: int, out: list[bytes]) -> None:
    if value < 0 or value > _MAX_UINT:
        raise ProtocolError(f"cannot encode {value}: numbers are unsigned 64-bit")
    if value < 0x80:
        out.append(bytes((value,)))
        return
    buf = bytearray()
    while value >= 0x80:
        buf.append((value & 0x7F) | 0x80)
        value >>= 7
    buf.append(value)
    out.append(bytes(buf))


def _encode_bytes(value: bytes, out: list[bytes]) -> None:
    _encode_varint(len(value), out)
    out.append(value)


def _decode_bytes(reader: _Reader) -> bytes:
    return reader.take(reader.varint())


def _encode_str(value: str, out: list[bytes]) -> None:
    _encode_bytes(value.encode("utf-8"), out)


def _decode_str(reader: _Reader) -> str:
    start = reader.position
    raw = _decode_bytes(reader)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ProtocolError(f"text at byte {start} is not UTF-8: {error.reason}") from None


def _encode_bool(value: bool, out: list[bytes]) -> None:
    out.append(b"\x01" if value else b"\x00")


def _decode_bool(reader: _Reader) -> bool:
    start = reader.position
    byte = reader.take(1)
    if byte == b"\x00":
        return False
    if byte == b"\x01":
        return True
    raise ProtocolError(f"byte {start} should be a boolean (0 or 1), found {byte[0]}")


def _field_codec(hint: Any, where: str) -> tuple[Encoder, Decoder]:
    """The encoder and decoder for one field type, built once per message class."""
    if hint is int:
        return _encode_varint, _Reader.varint
    if hint is bool:
        return _encode_bool, _decode_bool
    if hint is str:
        return _encode_str, _decode_str
    if hint is bytes:
        return _encode_bytes, _decode_bytes
    if isinstance(hint, type) and issubclass(hint, Enum):
        return _enum_codec(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _struct_codec(hint)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union and len(args) == 2 and type(None) in args:
        inner = args[0] if args[1] is type(None) else args[1]
        return _optional_codec(*_field_codec(inner, where))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _tuple_codec(*_field_codec(args[0], where))
    raise TypeError(f"{where}: the codec cannot carry fields of type {hint!r}")


def _enum_codec(enum_type: type[Enum]) -> tuple[Encoder, Decoder]:
    by_value = {member.value: member for member in enum_type}

    def encode(value: Enum, out: list[bytes]) -> None:
        _encode_str(value.value, out)

    def decode(reader: _Reader) -> Enum:
        start = reader.position
        text = _decode_str(reader)
        try:
            return by_value[text]
        except KeyError:
            raise ProtocolError(f"{text!r} at byte {start} is not a {enum_type.__name__}") from None

    return encode, decode


def _optional_codec(encode_inner: Encoder, decode_inner: Decoder) -> tuple[Encoder, Decoder]:
    def encode(value: Any, out: list[bytes]) -> None:
        if value is None:
            out.append(b"\x00")
        else:
            out.append(b"\x01")
            encode_inner(value, out)

    def decode(reader: _Reader) -> Any:
        return decode_inner(reader) if _decode_bool(reader) else None

    return encode, decode


def _tuple_codec(encode_item: Encoder, decode_item: Decoder) -> tuple[Encoder, Decoder]:
    def encode(values: Sequence[Any], out: list[bytes]) -> None:
        _encode_varint(len(values), out)
        for value in values:
            encode_item(value, out)

    def decode(reader: _Reader) -> tuple[Any, ...]:
        count = reader.varint()
        # Every item takes at least one byte, so a count beyond the remaining bytes is a lie that would
        # otherwise make us loop for a long time before failing.
        if count > len(reader._data) - reader.position:
            raise ProtocolError(f"list of {count} items at byte {reader.position} is longer than the message")
        return tuple(decode_item(reader) for _ in range(count))

    return encode, decode


_STRUCT_CACHE: dict[type, tuple[Encoder, Decoder]] = {}


def _struct_codec(cls: type) -> tuple[Encoder, Decoder]:
    cached = _STRUCT_CACHE.get(cls)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    names: list[str] = []
    encoders: list[Encoder] = []
    decoders: list[Decoder] = []
    for field in dataclasses.fields(cls):
        names.append(field.name)
        encode_field, decode_field = _field_codec(hints[field.name], f"{cls.__name__}.{field.name}")
        encoders.append(encode_field)
        decoders.append(decode_field)
    pairs = list(zip(names, encoders))

    def encode(value: Any, out: list[bytes]) -> None:
        for name, encode_field in pairs:
            encode_field(getattr(value, name), out)

    def decode(reader: _Reader) -> Any:
        return cls(*[decode_field(reader) for decode_field in decoders])

    _STRUCT_CACHE[cls] = (encode, decode)
    return encode, decode


class Codec(Generic[M]):
    """Encodes and decodes the messages of one direction; ``tags`` maps each tag to its message class."""

    def __init__(self, name: str, tags: dict[int, type[Any]]) -> None:
        self.name = name
        self._decoders: dict[int, Decoder] = {}
        self._encoders: dict[type, tuple[bytes, Encoder]] = {}
        for tag, cls in tags.items():
            encode, decode = _struct_codec(cls)
            prefix: list[bytes] = []
            _encode_varint(tag, prefix)
            self._encoders[cls] = (prefix[0], encode)
            self._decoders[tag] = decode

    @property
    def message_types(self) -> tuple[type, ...]:
        return tuple(self._encoders)

    def encode(self, message: M) -> bytes:
        try:
            prefix, encode = self._encoders[type(message)]
        except KeyError:
            raise ProtocolError(f"{type(message).__name__} is not a {self.name} message") from None
        out = [prefix]
        encode(message, out)
        return b"".join(out)

    def decode(self, data: bytes | bytearray | memoryview) -> M:
        reader = _Reader(data)
        tag = reader.varint()
        decode = self._decoders.get(tag)
        if decode is None:
            raise ProtocolError(f"unknown {self.name} message tag {tag}")
        try:
            message: M = decode(reader)
        except (ValueError, TypeError) as error:
            # A dataclass __post_init__ that validates its fields speaks ValueError/TypeError.
            raise ProtocolError(f"invalid {self.name} message: {error}") from None
        reader.finish()
        return message


class Tagged:
    """Mixin documenting that a message class carries its wire tag as ``TAG``."""

    TAG: ClassVar[int]


def codec_for(name: str, classes: Sequence[type[Any]]) -> Codec[Any]:
    """A codec over message classes that each declare a unique ``TAG``."""
    tags: dict[int, type[Any]] = {}
    for cls in classes:
        tag = cls.TAG
        if tag in tags:
            raise TypeError(f"{cls.__name__} and {tags[tag].__name__} share tag {tag}")
        tags[tag] = cls
    return Codec(name, tags)
