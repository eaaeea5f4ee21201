"""Messages and codecs between layer, session and agent (sans-I/O, stdlib only, Python 3.9+).

Four directions, one module each: ``session_to_agent``, ``agent_to_session``, ``layer_to_session`` and
``session_to_layer``. ``codec`` turns messages into bytes and back; ``framing`` cuts a byte stream into
length-prefixed frames for the layer's local socket (the agent link is a websocket, one message per frame).
"""

from __future__ import annotations

PROTOCOL_VERSION = 1
"""Bumped whenever a message changes shape; both ends refuse a peer with another version."""
