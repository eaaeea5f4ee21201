"""The layer: injected into the user's Python process through ``sitecustomize`` on ``PYTHONPATH``.

This folder is what goes on the user's ``PYTHONPATH``, so it holds nothing but ``sitecustomize.py``, this
file, and modules whose names start with ``pymirrord_layer_`` (a user's own ``server.py`` or ``config.py``
must never be shadowed). Everything here is stdlib only and runs on Python 3.9+. The modules import each
other by their top-level names when injected, and through this package when tests import them.
"""
