"""An emulated Kubernetes API server for the tests: the real ``kubernetes`` client talks to it through a
kubeconfig, over HTTP and websockets, and its Job controller runs the real agent on this machine."""

from .cluster import Emulator, running_emulator
from .store import BY_KIND, Store

__all__ = ["BY_KIND", "Emulator", "Store", "running_emulator"]
