"""The emulated API server's HTTP and websocket surface (aiohttp), as the official client expects it.

Paths: ``/api/v1/...`` and ``/apis/GROUP/VERSION/...`` for every kind in ``store.RESOURCES``, namespaced and
cluster-wide lists, get, create, delete (with ``propagationPolicy``), pod ``log``, the pod's
``ephemeralcontainers`` subresource (strategic-merge patch) and the ``portforward`` websocket
(``v4.channel.k8s.io``: channel byte, data on 2i and errors on 2i+1, each channel's first message the port as
2 bytes little-endian). Errors are ``Status`` objects with the codes and messages a real server sends; RBAC
refusals are configured per test with ``Emulator.forbid``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .store import BY_PATH, Conflict, ResourceType, SelectorError

if TYPE_CHECKING:
    from .cluster import Emulator

PORTFORWARD_PROTOCOLS = ("v4.channel.k8s.io",)


def status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure" if code >= 400 else "Success",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return web.json_response(body, status=code)


def not_found(resource: ResourceType, name: str) -> web.Response:
    group = f".{resource.group}" if resource.group else ""
    return status(
        404,
        "NotFound",
        f'{resource.plural}{group} "{name}" not found',
        {"name": name, "group": resource.group, "kind": resource.plural},
    )


def make_app(emulator: Emulator) -> web.Application:
    app = web.Application(middlewares=[_auth_middleware(emulator)], client_max_size=64 * 1024 * 1024)
    handlers = Handlers(emulator)
    add = app.router.add_route
    add("GET", "/version", handlers.version)
    add("GET", "/api/v1/namespaces/{namespace}/pods/{name}/log", handlers.pod_log)
    add("GET", "/api/v1/namespaces/{namespace}/pods/{name}/portforward", handlers.portforward)
    add("POST", "/api/v1/namespaces/{namespace}/pods/{name}/portforward", handlers.portforward)
    add("PATCH", "/api/v1/namespaces/{namespace}/pods/{name}/ephemeralcontainers", handlers.ephemeral)
    for prefix in ("/api/{version}", "/apis/{group}/{version}"):
        add("GET", prefix + "/namespaces/{namespace}/{plural}", handlers.list_objects)
        add("POST", prefix + "/namespaces/{namespace}/{plural}", handlers.create)
        add("GET", prefix + "/namespaces/{namespace}/{plural}/{name}", handlers.get)
        add("DELETE", prefix + "/namespaces/{namespace}/{plural}/{name}", handlers.delete)
        add("GET", prefix + "/{plural}", handlers.list_objects)
        add("GET", prefix + "/{plural}/{name}", handlers.get)
    return app


def _auth_middleware(emulator: Emulator) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def check(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        emulator.requests.append(f"{request.method} {request.path_qs}")
        if request.headers.get("Authorization") != f"Bearer {emulator.token}":
            return status(401, "Unauthorized", "Unauthorized")
        return await handler(request)

    return check


class Handlers:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.store = emulator.store

    def _resource(self, request: web.Request) -> ResourceType | None:
        info = request.match_info
        resource = BY_PATH.get((info.get("group", ""), info["version"], info["plural"]))
        if resource is not None and resource.plural == "rollouts" and not self.emulator.rollouts_installed:
            return None
        return resource

    def _forbidden(self, verb: str, resource: str, group: str, namespace: str | None) -> web.Response | None:
        if not self.emulator.is_forbidden(verb, resource, namespace):
            return None
        where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
        return status(
            403,
            "Forbidden",
            f"{resource}{'.' + group if group else ''} is forbidden: "
            f'User "{self.emulator.user}" cannot {verb} '
            f'resource "{resource}" in API group "{group}"{where}',
            {"kind": resource, "group": group},
        )

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response({"major": "1", "minor": "31", "gitVersion": "v1.31.0-pymirrord-emulator"})

    async def list_objects(self, request: web.Request) -> web.Response:
        resource = self._resource(request)
        if resource is None:
            return status(404, "NotFound", "the server could not find the requested resource")
        namespace = request.match_info.get("namespace")
        denied = self._forbidden("list", resource.plural, resource.group, namespace)
        if denied:
            return denied
        try:
            items = self.store.list(
                resource,
                namespace,
                label_selector=request.query.get("labelSelector"),
                field_selector=request.query.get("fieldSelector"),
            )
        except SelectorError as error:
            return status(400, "BadRequest", str(error))
        return web.json_response(
            {
                "kind": f"{resource.kind}List",
                "apiVersion": resource.api_version,
                "metadata": {"resourceVersion": "1"},
                "items": items,
            }
        )

    async def get(self, request: web.Request) -> web.Response:
        resource = self._resource(request)
        if resource is None:
            return status(404, "NotFound", "the server could not find the requested resource")
        namespace = request.match_info.get("namespace", "")
        name = request.match_info["name"]
        denied = self._forbidden("get", resource.plural, resource.group, namespace or None)
        if denied:
            return denied
        obj = self.store.get(resource, namespace, name)
        if obj is None:
            return not_found(resource, name)
        return web.json_response(obj)

    async def create(self, request: web.Request) -> web.Response:
        resource = self._resource(request)
        if resource is None:
            return status(404, "NotFound", "the server could not find the requested resource")
        namespace = request.match_info["namespace"]
        denied = self._forbidden("create", resource.plural, resource.group, namespace)
        if denied:
            return denied
        try:
            body = await request.json()
        except ValueError:
            return status(400, "BadRequest", "the body is not JSON")
        if not isinstance(body, dict) or not (body.get("metadata") or {}).get("name"):
            return status(422, "Invalid", f"{resource.kind} is invalid: metadata.name: Required value")
        self.emulator.created_bodies.append((resource.kind, json.loads(json.dumps(body))))
        try:
            obj = self.store.create(resource, namespace, body)
        except Conflict as conflict:
            return status(409, "AlreadyExists", f'{resource.plural} "{conflict}" already exists')
        return web.json_response(obj, status=201)

    async def delete(self, request: web.Request) -> web.Response:
        resource = self._resource(request)
        if resource is None:
            return status(404, "NotFound", "the server could not find the requested resource")
        namespace = request.match_info["namespace"]
        name = request.match_info["name"]
        denied = self._forbidden("delete", resource.plural, resource.group, namespace)
        if denied:
            return denied
        propagation = request.query.get("propagationPolicy")
        if request.can_read_body:
            with contextlib.suppress(ValueError):
                options = await request.json()
                if isinstance(options, dict):
                    propagation = options.get("propagationPolicy") or propagation
        obj = self.store.delete(resource, namespace, name, propagation)
        if obj is None:
            return not_found(resource, name)
        self.emulator.deletions.append((resource.kind, namespace, name, propagation))
        return web.json_response(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": name,
                    "group": resource.group,
                    "kind": resource.plural,
                    "uid": obj["metadata"]["uid"],
                },
            }
        )

    async def pod_log(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        denied = self._forbidden("get", "pods/log", "", namespace)
        if denied:
            return denied
        pod = self.store.get(BY_PATH[("", "v1", "pods")], namespace, name)
        if pod is None:
            return not_found(BY_PATH[("", "v1", "pods")], name)
        container = request.query.get("container") or pod["spec"]["containers"][0]["name"]
        lines = self.emulator.logs.get((namespace, name, container), [])
        tail = request.query.get("tailLines")
        if tail:
            lines = lines[-int(tail) :]
        return web.Response(text="".join(line + "\n" for line in lines), content_type="text/plain")

    async def ephemeral(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        denied = self._forbidden("patch", "pods/ephemeralcontainers", "", namespace)
        if denied:
            return denied
        body = await request.json()
        containers = ((body or {}).get("spec") or {}).get("ephemeralContainers") or []
        pod = self.emulator.add_ephemeral_containers(namespace, name, containers)
        if pod is None:
            return not_found(BY_PATH[("", "v1", "pods")], name)
        return web.json_response(pod)

    async def portforward(self, request: web.Request) -> web.StreamResponse:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        denied = self._forbidden("create", "pods/portforward", "", namespace)
        if denied:
            return denied
        pods = BY_PATH[("", "v1", "pods")]
        pod = self.store.get(pods, namespace, name)
        if pod is None:
            return not_found(pods, name)
        if pod.get("status", {}).get("phase") != "Running":
            return status(400, "BadRequest", f"pod {name} is not running and cannot be port-forwarded")
        ports: list[int] = []
        for value in request.query.getall("ports", []):
            ports.extend(int(p) for p in value.split(",") if p.strip())
        if not ports:
            return status(400, "BadRequest", "at least one port must be specified")
        websocket = web.WebSocketResponse(protocols=PORTFORWARD_PROTOCOLS, max_msg_size=0)
        await websocket.prepare(request)
        self.emulator.portforwards.append((namespace, name, tuple(ports), websocket.ws_protocol))
        await PortForwardSession(self.emulator, namespace, name, pod, ports, websocket).run()
        return websocket


class PortForwardSession:
    """One port-forward websocket: per port, a TCP connection to where the pod's port really is."""

    def __init__(
        self,
        emulator: Emulator,
        namespace: str,
        name: str,
        pod: dict[str, Any],
        ports: list[int],
        websocket: web.WebSocketResponse,
    ) -> None:
        self.emulator = emulator
        self.namespace = namespace
        self.name = name
        self.uid = pod["metadata"]["uid"]
        self.ports = ports
        self.websocket = websocket
        self.writers: dict[int, asyncio.StreamWriter] = {}
        self.settled = {index: asyncio.Event() for index in range(len(ports))}
        self.send_lock = asyncio.Lock()

    async def send(self, channel: int, payload: bytes) -> None:
        async with self.send_lock:
            await self.websocket.send_bytes(bytes((channel,)) + payload)

    async def run(self) -> None:
        for index, port in enumerate(self.ports):
            announcement = port.to_bytes(2, "little")
            await self.send(2 * index, announcement)
            await self.send(2 * index + 1, announcement)
        pumps = [
            asyncio.ensure_future(self._connect_and_pump(index, port))
            for index, port in enumerate(self.ports)
        ]
        reader = asyncio.ensure_future(self._from_client())
        try:
            await asyncio.wait([reader, *pumps], return_when=asyncio.FIRST_COMPLETED)
            if not reader.done():
                # Every port's connection ended (or failed): the server closes the websocket.
                await asyncio.wait(pumps)
        finally:
            reader.cancel()
            for pump in pumps:
                pump.cancel()
            for writer in self.writers.values():
                writer.close()
            await self.websocket.close()

    async def _connect_and_pump(self, index: int, port: int) -> None:
        address = self.emulator.forward_address(self.namespace, self.name, port)
        try:
            if address is None:
                raise ConnectionRefusedError("connection refused")
            reader, writer = await asyncio.open_connection(*address)
        except OSError as error:
            self.settled[index].set()
            message = (
                f"error forwarding port {port} to pod {self.name}, uid : "
                f"failed to connect to localhost:{port} "
                f'inside namespace "{self.uid}", IPv4: dial tcp4 127.0.0.1:{port}: connect: '
                f"{getattr(error, 'strerror', None) or 'connection refused'}"
            )
            await self.send(2 * index + 1, message.encode())
            return
        self.writers[index] = writer
        self.settled[index].set()
        while data := await reader.read(256 * 1024):
            await self.send(2 * index, data)

    async def _from_client(self) -> None:
        async for message in self.websocket:
            if message.type != WSMsgType.BINARY or not message.data:
                continue
            channel, payload = message.data[0], message.data[1:]
            if channel % 2 or channel // 2 >= len(self.ports):
                continue  # error channels are read-only
            # Data may come before the connection to the pod's port is up: it waits for it.
            await self.settled[channel // 2].wait()
            writer = self.writers.get(channel // 2)
            if writer is not None:
                writer.write(payload)
                await writer.drain()
