"""Messages and codecs between layer, session and agent (sans-I/O, stdlib only, Python 3.9+).

Four directions, one module each: ``session_to_agent``, ``agent_to_session``, ``layer_to_session`` and
``session_to_layer``. ``codec`` turns messages into bytes and back; ``framing`` cuts a byte stream into
length-prefixed frames for the layer's local socket; on the agent's websocket, ``batch`` puts the messages
of one turn of the event loop in one websocket message.
"""

from __future__ import annotations

PROTOCOL_VERSION = 7
"""Bumped whenever a message changes shape or is added; both ends refuse a peer with another version.
2: environment requests, per-connection flow control, batches on the agent's websocket.
3: tunnels (``tunnel_key`` in ``AgentHello``, ``tunnel`` in ``NewConnection`` and the outgoing connect
messages).
4: counted tunnels (``TunnelEnd`` both ways), for tunnels through a Kubernetes port-forward.
5: ``HttpAppTunnel``: a tunnel to the session's app that the agent sends matching HTTP requests on, and
``HttpRequestServed`` for a session that counts those requests.
6: ``HttpRequestsServed`` in place of ``HttpRequestServed``: the requests served in a short spell, counted,
with the last few described, instead of one message per request.
7: ``ClientHello.report_traffic`` and ``TrafficReport``: the agent counts the bytes and finds the requests
of the connections it steals through tunnels for a session that shows them, which then reach the app
without passing the session."""
