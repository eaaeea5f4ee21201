"""Start an agent in the (emulated) cluster like ``pymirrord exec`` does, as a process a test can Ctrl-C.

Usage: start_agent.py KUBECONFIG TARGET IMAGE. Exits 0 once the agent is ready (after stopping it again),
1 with the error on failure, 130 on Ctrl-C: like the CLI, never with a traceback.
"""

from __future__ import annotations

import asyncio
import sys

from pymirrord.config.model import AgentConfig, ResolvedConfig, TargetConfig
from pymirrord.errors import PymirrordError
from pymirrord.kube.deploy import KubeAgent


async def main(kubeconfig: str, target: str, image: str) -> None:
    config = ResolvedConfig(
        target=TargetConfig(path=target),
        agent=AgentConfig(image=image, startup_timeout=60),
        kubeconfig=kubeconfig,
    )
    agent = await KubeAgent.start(config)
    await agent.stop()


if __name__ == "__main__":
    try:
        asyncio.run(main(*sys.argv[1:4]))
    except PymirrordError as error:
        print(f"pymirrord: error: {error.render()}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
