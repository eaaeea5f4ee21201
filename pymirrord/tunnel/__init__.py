"""Tunnels: dedicated TCP connections between a session and its agent, one per relayed connection.

A tunnel carries one connection's bytes raw, both ways, with no framing: the kernel's own flow control
holds back that connection alone, and both ends move the bytes with ``splice`` (no copy through Python).
The shared websocket keeps carrying everything else: announcements, closes, HTTP-filtered requests.
"""

PATH = "/tunnel"
"""Where a session asks the agent's websocket server for a tunnel (with ``STREAM_SUBPROTOCOL``)."""
KEY_HEADER = "x-pymirrord-tunnel-key"
"""Names the session a tunnel belongs to: the key the agent gave it in ``AgentHello``."""
ID_HEADER = "x-pymirrord-tunnel"
"""The tunnel's number, chosen by the session (the agent names it in ``NewConnection``)."""
USE_HEADER = "x-pymirrord-tunnel-use"
"""What a tunnel is for: ``incoming`` (the agent picks it for a stolen connection) or ``outgoing`` (the
session names it when it asks for a connection)."""
ENDS_HEADER = "x-pymirrord-tunnel-ends"
"""``counted``: the tunnel passes something that carries no half-close (a Kubernetes port-forward), so each
side announces its end with ``TunnelEnd`` on the websocket and never half-closes the tunnel."""
