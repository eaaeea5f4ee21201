"""Entry point of the layer: Python imports this at start-up because its folder is on ``PYTHONPATH``.

It starts the layer when ``PYMIRRORD_LAYER_SOCKET`` is set, then runs the ``sitecustomize`` that this one
hides (the next one on ``sys.path``), whose errors stay visible as they would without us.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback
from types import ModuleType

_HERE = os.path.dirname(os.path.abspath(__file__))
# The folder that holds the ``pymirrord`` package: pymirrord/layer/sitecustomize.py is three levels down.
_INSTALL_DIR = os.path.dirname(os.path.dirname(_HERE))


def _start_layer() -> None:
    if not os.environ.get("PYMIRRORD_LAYER_SOCKET"):
        return
    try:
        boot = _import_boot()
        boot.start(os.environ)
    except Exception as error:
        # A bug of ours must not stop the app; one line, no traceback.
        line = (
            f"pymirrord: the layer failed to start ({type(error).__name__}: {error});"
            " the app runs without pymirrord\n"
        )
        with contextlib.suppress(Exception):
            sys.stderr.write(line)


def _import_boot() -> ModuleType:
    """Imports the layer with ``pymirrord.protocol`` importable, for the duration of the import only.

    The install folder goes to the end of ``sys.path`` so that an importable ``pymirrord`` of the user's
    environment wins, and leaves again so nothing else from there (tests, scripts) shadows user modules.
    """
    added = _INSTALL_DIR not in sys.path
    if added:
        sys.path.append(_INSTALL_DIR)
    try:
        return importlib.import_module("pymirrord_layer_boot")
    finally:
        if added:
            for index in range(len(sys.path) - 1, -1, -1):
                if sys.path[index] == _INSTALL_DIR:
                    del sys.path[index]
                    break


def _same_folder(entry: str) -> bool:
    try:
        return os.path.realpath(entry or os.curdir) == os.path.realpath(_HERE)
    except (OSError, ValueError):
        return False


def _chain() -> ModuleType | None:
    """Imports the next ``sitecustomize`` on ``sys.path``, with our folder hidden while it loads."""
    ours = sys.modules.get("sitecustomize")
    hidden = [(index, entry) for index, entry in enumerate(sys.path) if _same_folder(entry)]
    for index, _entry in reversed(hidden):
        del sys.path[index]
    sys.modules.pop("sitecustomize", None)
    try:
        return importlib.import_module("sitecustomize")
    except ImportError as error:
        if error.name != "sitecustomize":
            traceback.print_exc()
        return None
    except Exception:
        # The user's own sitecustomize failed: show it as Python would, and carry on like Python does.
        traceback.print_exc()
        return None
    finally:
        for index, entry in hidden:
            sys.path.insert(index, entry)
        if ours is not None:
            sys.modules["sitecustomize"] = ours


_start_layer()
chained_sitecustomize = _chain()
