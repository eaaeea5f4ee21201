"""Stand-in for ``pymirrord agent --container-id ID`` while the agent's CLI lacks that option.

The emulator runs this only when ``pymirrord agent`` does not accept ``--container-id`` yet: it does what the
option is specified to do, through the same function (``pymirrord.agent.container.find_container_pid``), and
then becomes the real agent with ``--target pid/PID``. Once the agent accepts the option, the emulator runs
the
agent directly and this file is unused.
"""

from __future__ import annotations

import os
import sys

from pymirrord.agent.container import find_container_pid
from pymirrord.errors import PymirrordError


def main(args: list[str]) -> int:
    if "--targetless" in args:
        print("pymirrord: error: this agent has no --targetless mode yet", file=sys.stderr)
        return 2
    if "--container-id" in args:
        index = args.index("--container-id")
        try:
            pid = find_container_pid(args[index + 1])
        except PymirrordError as error:
            print(f"pymirrord: error: {error.render()}", file=sys.stderr, flush=True)
            return 1
        args = [*args[:index], "--target", f"pid/{pid}", *args[index + 2 :]]
    os.execv(sys.executable, [sys.executable, "-m", "pymirrord", "agent", *args])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
