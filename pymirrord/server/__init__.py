"""The editor helper (``pymirrord lsp``): a language server for config files plus pymirrord's own requests.

Every feature is a pure function in a small module (diagnostics, completion, hover, code actions, target
listing, launch preparation, filter testing, session bookkeeping); ``server.py`` only wires them to pygls.
The requests are documented in ``docs/helper-protocol.md``.
"""
