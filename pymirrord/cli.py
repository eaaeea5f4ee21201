"""The ``pymirrord`` command line: argument parsing and dispatch only.

Each subcommand's work lives in the package that owns it; this module turns arguments into calls and
``PymirrordError`` into a clear message with a hint and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pymirrord import __version__
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
    return parser


def _run_verify_config(args: argparse.Namespace) -> int:
    from pymirrord.config.verify import run_verify_config

    status: int = run_verify_config(args.path, ide=args.ide, out=sys.stdout)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.handler(args)
    except PymirrordError as error:
        print(f"pymirrord: error: {error.render()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status
