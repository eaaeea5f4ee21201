"""Kubernetes targets: resolve them to a pod and container, deploy the agent next to it, reach it.

- ``targets``: parse ``pod/NAME[/container/C]``, ``deployment/NAME``, ... and resolve them to one running,
  ready pod and container (pure decisions over API objects, plus a thin fetching shell).
- ``listing``: what ``pymirrord ls`` and the editor helper's ``listTargets`` show.
- ``agent_job``: the Job, ephemeral container and Secret specs (pure builders).
- ``deploy``: create them, wait with progress, explain failures with the cluster's words, delete them.
- ``portforward``: a local TCP listener tunnelled through the API server's port-forward websocket.
- ``client``: the API client from kubeconfig and context; ``progress``: progress reporting.
"""
