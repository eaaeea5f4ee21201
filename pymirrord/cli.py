"""The ``pymirrord`` command line: argument parsing and dispatch only.

Each subcommand's work lives in the package that owns it; this module turns arguments into calls and
``PymirrordError`` into a clear message with a hint and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pymirrord import __version__
from pymirrord.console import say
from pymirrord.errors import PymirrordError


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pymirrord",
        description="Run or debug a local process as if it ran inside a Kubernetes pod.",
    )
    parser.add_argument("--version", action="version", version=f"pymirrord {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    verify = sub.add_parser(
        "verify-config",
        help="check a mirrord config file (.json, .toml, .yaml) and report every problem with its place",
    )
    verify.add_argument("path", metavar="PATH", help="the config file to check")
    verify.add_argument(
        "--ide",
        action="store_true",
        help="print mirrord's JSON result shape for editors instead of human-readable diagnostics",
    )
    verify.set_defaults(handler=_run_verify_config)
    _add_agent_parser(sub)
    _add_exec_parser(sub)
    _add_lsp_parser(sub)
    _add_ls_parser(sub)
    demo = sub.add_parser(
        "demo",
        help="run the user-service story (mirror, then steal) against a local network namespace (root)",
    )
    demo.set_defaults(handler=_run_demo)
    return parser


def _add_exec_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser(
        "exec",
        help="run COMMAND with the layer injected, serving the target's traffic",
        description=(
            "Run COMMAND as if it ran inside the target: it receives a copy of the traffic that reaches the"
            " target's ports (mirror, the default) or serves that traffic itself (--steal)."
        ),
    )
    run.add_argument(
        "-f", "--config-file", metavar="FILE", help="a mirrord config file (.json, .toml, .yaml)"
    )
    run.add_argument(
        "-t",
        "--target",
        metavar="TARGET",
        help="pod/NAME, deployment/NAME, ... (Kubernetes), or netns/NAME, pid/PID (this machine)",
    )
    run.add_argument("-n", "--target-namespace", metavar="NS", help="the target's Kubernetes namespace")
    run.add_argument(
        "--steal",
        "--tcp-steal",
        dest="steal",
        action="store_true",
        default=None,
        help="serve the target's incoming traffic instead of the target (default: mirror it)",
    )
    run.add_argument(
        "--no-outgoing",
        action="store_true",
        help="connect from this machine instead of through the target (TCP and UDP)",
    )
    run.add_argument("--no-tcp-outgoing", action="store_true", help="make TCP connections from this machine")
    run.add_argument("--no-udp-outgoing", action="store_true", help="send connected UDP from this machine")
    run.add_argument(
        "--no-remote-dns", action="store_true", help="resolve host names on this machine, not in the target"
    )
    run.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a variable in COMMAND's environment, over the target's and the config's (repeatable)",
    )
    run.add_argument(
        "--no-remote-env",
        action="store_true",
        help="do not copy the target's environment variables (feature.env: false)",
    )
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARGS...]")
    run.set_defaults(handler=_run_exec, parser=run)


def _add_agent_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agent = sub.add_parser(
        "agent",
        help="serve sessions from inside a local target's network namespace (started by `exec`; needs root)",
        description=(
            "Enter the target's network namespace, redirect stolen and HTTP-filtered ports to this agent "
            "with iptables, capture the ports that are only mirrored (PYMIRRORD_MIRROR_CAPTURE=0 redirects "
            "them too), and serve sessions over a websocket. The session token is read from the environment "
            "variable PYMIRRORD_AGENT_TOKEN. Once ready, prints one JSON line on stdout: "
            '{"event": "ready", "address": "HOST:PORT", "agent_id": "..."}; everything else goes to stderr.'
        ),
    )
    where = agent.add_mutually_exclusive_group(required=True)
    where.add_argument("--target", metavar="netns/NAME|pid/PID", help="the local target")
    where.add_argument(
        "--targetless",
        action="store_true",
        help="no target: serve outgoing connections and DNS from this machine's own network only"
        " (needs no privileges; mirroring and stealing are refused)",
    )
    where.add_argument(
        "--container-id",
        metavar="ID",
        help="the target container's id (as in a pod's status, e.g. containerd://...); its first process"
        " is found through /proc, so any container runtime works",
    )
    agent.add_argument(
        "--listen",
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="where the websocket listens, in the current namespace (default 127.0.0.1:0, any free port)",
    )
    agent.add_argument(
        "--idle-timeout",
        type=float,
        metavar="SECONDS",
        help="exit once no session has been connected for this long",
    )
    agent.add_argument("--verbose", action="store_true", help="log every connection on stderr")
    agent.set_defaults(handler=_run_agent)


def _add_ls_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ls = sub.add_parser("ls", help="list the Kubernetes targets (ready pods and workloads) of a namespace")
    ls.add_argument("-n", "--namespace", metavar="NS", help="the namespace (default: the kube context's)")
    ls.add_argument("--json", action="store_true", help="print JSON (targets, namespaces, notes)")
    ls.add_argument(
        "-f", "--config-file", metavar="FILE", help="read kubeconfig and context from this config"
    )
    ls.add_argument("--kubeconfig", metavar="PATH", help="the kubeconfig file (default: $KUBECONFIG)")
    ls.add_argument("--context", metavar="NAME", help="the kube context (default: the current one)")
    ls.set_defaults(handler=_run_ls)


def _run_ls(args: argparse.Namespace) -> int:
    from pymirrord.kube.listing import run_ls

    return run_ls(
        namespace=args.namespace,
        as_json=args.json,
        config_file=args.config_file,
        kubeconfig=args.kubeconfig,
        context=args.context,
    )


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, such as 127.0.0.1:2087, not {text!r}")
    return host.strip("[]"), int(port)


def _add_lsp_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lsp = sub.add_parser(
        "lsp",
        help="the editor helper: a language server for config files that also starts debug sessions",
        description="Serve the editor helper (LSP and pymirrord's requests, see docs/helper-protocol.md) on "
        "stdio, or on a TCP port or websocket for editors that connect to a running server.",
    )
    where = lsp.add_mutually_exclusive_group()
    where.add_argument("--stdio", action="store_true", help="talk over stdin/stdout (the default)")
    where.add_argument("--tcp", type=_host_port, metavar="HOST:PORT", help="listen on a TCP port")
    where.add_argument("--ws", type=_host_port, metavar="HOST:PORT", help="listen for a websocket")
    lsp.set_defaults(handler=_run_lsp)


def _run_lsp(args: argparse.Namespace) -> int:
    from pymirrord.server.server import run

    return run(tcp=args.tcp, ws=args.ws)


def _run_agent(args: argparse.Namespace) -> int:
    from pymirrord.agent.main import run

    return run(args)


def _run_verify_config(args: argparse.Namespace) -> int:
    from pymirrord.config.verify import run_verify_config

    status: int = run_verify_config(args.path, ide=args.ide, out=sys.stdout)
    return status


def _run_exec(args: argparse.Namespace) -> int:
    from pymirrord.config.load import ConfigOverrides, resolve_config
    from pymirrord.session import runner

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        args.parser.error(
            "a COMMAND to run is required, for example: pymirrord exec -t netns/pod -- python app.py"
        )
    overrides = ConfigOverrides(
        target=args.target,
        target_namespace=args.target_namespace,
        steal=args.steal,
        no_outgoing=args.no_outgoing,
        no_tcp_outgoing=args.no_tcp_outgoing,
        no_udp_outgoing=args.no_udp_outgoing,
        no_remote_dns=args.no_remote_dns,
        env=tuple(args.env),
        no_remote_env=args.no_remote_env,
    )
    config, diagnostics = resolve_config(args.config_file, overrides=overrides)
    for diagnostic in diagnostics:
        say(f"warning: {diagnostic.message}")
    return runner.run(config, command)


def _run_demo(args: argparse.Namespace) -> int:
    from pymirrord.demo import run_demo

    return run_demo()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.handler(args)
    except PymirrordError as error:
        say(f"error: {error.render()}")
        return 1
    except KeyboardInterrupt:
        return 130
    return status
