"""Starts the layer in this process: reads the environment, connects to the session, installs hooks.

Nothing happens without ``PYMIRRORD_LAYER_SOCKET``. Every failure becomes one ``pymirrord: ...`` line on
stderr and leaves the app running unhooked: the layer must never be the reason an app breaks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING or __package__:
    from pymirrord.layer.pymirrord_layer_client import SOCKET_ENV, SessionClient, SessionUnavailable
    from pymirrord.layer.pymirrord_layer_config import (
        CONFIG_ENV,
        LayerConfigError,
        parse_config,
        process_names,
    )
    from pymirrord.layer.pymirrord_layer_debugger import command_line, detect
    from pymirrord.layer.pymirrord_layer_dns import DnsHooks
    from pymirrord.layer.pymirrord_layer_hooks import Hooks
    from pymirrord.layer.pymirrord_layer_outgoing import Outgoing
    from pymirrord.layer.pymirrord_layer_policy import Policy
    from pymirrord.layer.pymirrord_layer_warn import warn
else:
    from pymirrord_layer_client import SOCKET_ENV, SessionClient, SessionUnavailable
    from pymirrord_layer_config import CONFIG_ENV, LayerConfigError, parse_config, process_names
    from pymirrord_layer_debugger import command_line, detect
    from pymirrord_layer_dns import DnsHooks
    from pymirrord_layer_hooks import Hooks
    from pymirrord_layer_outgoing import Outgoing
    from pymirrord_layer_policy import Policy
    from pymirrord_layer_warn import warn

_UNHOOKED = "the app runs without pymirrord"


class _Started:
    """Whether ``start`` ran in this process, and what it installed: a second start (a chained copy of
    this layer further down ``sys.path``) must not hook the sockets twice."""

    done = False
    hooks: Hooks | None = None
    dns: DnsHooks | None = None


def start(environ: Mapping[str, str]) -> Hooks | None:
    """Starts the layer as ``environ`` says; returns the installed hooks, or ``None`` when unhooked."""
    if _Started.done:
        return _Started.hooks
    _Started.done = True
    path = environ.get(SOCKET_ENV)
    if not path:
        return None
    try:
        config = parse_config(environ.get(CONFIG_ENV))
    except LayerConfigError as error:
        warn(f"{error}; {_UNHOOKED}")
        return None
    if config.skips(process_names()):
        return None
    if config.incoming.mode == "off" and not config.outgoing.enabled and not config.dns.enabled:
        # Nothing to hook: do not even make the session wait for a hello.
        return None
    client = SessionClient(path)
    try:
        client.connect()
    except SessionUnavailable as error:
        warn(f"{error}; {_UNHOOKED}")
        return None
    policy = Policy(config.outgoing, config.dns)
    outgoing = None
    if config.outgoing.enabled:
        debugger, problems = detect(command_line(), os.environ)
        for problem in problems:
            warn(problem)
        outgoing = Outgoing(policy, client, debugger)
    hooks = Hooks(config.incoming, client, outgoing)
    hooks.install()
    if config.dns.enabled:
        dns = DnsHooks(policy, client, outgoing)
        dns.install()
        _Started.dns = dns
    os.register_at_fork(after_in_child=client.after_fork_in_child)
    _Started.hooks = hooks
    return hooks
