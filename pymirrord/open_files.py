"""The open-file limit of pymirrord's own processes (agent, session, editor helper).

Every relayed connection holds several descriptors in the agent: the client's socket, its tunnel or the
pod's, and a pipe per direction (plus one per mirrored copy). The usual soft limit of 1,024 would end a pod
with a few hundred busy connections in ``EMFILE``; the hard limit is the system's real bound, and a
process may raise its soft limit up to it.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("pymirrord")

OPEN_FILES_WANTED = 1 << 20
"""The soft limit asked for, where the hard limit allows it."""


def raise_open_files_limit(wanted: int = OPEN_FILES_WANTED) -> int:
    """Raises this process's soft ``RLIMIT_NOFILE`` towards ``wanted`` (never above the hard limit, never
    down); the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:
            log.debug("could not raise the open-file limit from %d to %d: %s", soft, target, error)
            return soft
        return target
    return soft
