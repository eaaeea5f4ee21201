"""Batches of encoded messages: round trip and truncation."""

from __future__ import annotations

import pytest

from pymirrord.protocol.batch import batch_parts, split_batch
from pymirrord.protocol.errors import ProtocolError


def test_messages_round_trip_through_a_batch() -> None:
    messages = [b"", b"a", b"x" * 70_000]
    assert [bytes(view) for view in split_batch(b"".join(batch_parts(messages)))] == messages
    assert split_batch(b"") == []


@pytest.mark.parametrize(("cut", "text"), [(2, "inside a length"), (6, "announces 1 bytes")])
def test_a_truncated_batch_is_refused_with_its_place(cut: int, text: str) -> None:
    data = b"".join(batch_parts([b"", b"z"]))
    with pytest.raises(ProtocolError, match=text):
        split_batch(data[: cut + (4 if cut == 6 else 0)][:cut] if cut == 2 else data[:-1])
