"""graphql-transport-ws clients for tests: over a real socket (``websockets``) or in-process
over ASGI (no server; the app runs in the test's event loop, on the test's engine)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

PROTOCOL = "graphql-transport-ws"


class Closed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed {code}: {reason}")
        self.code = code
        self.reason = reason


class GraphQLSocket:
    """The protocol's client side over any transport with ``_send`` / ``_receive``."""

    async def _send(self, text: str) -> None:
        raise NotImplementedError

    async def _receive(self) -> str:
        raise NotImplementedError

    async def send(self, message: dict[str, Any]) -> None:
        await self._send(json.dumps(message))

    async def receive(self, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
        return json.loads(await asyncio.wait_for(self._receive(), timeout))

    async def init(self, jwt: str | None = None, **payload: Any) -> dict[str, Any]:
        if jwt is not None:
            payload["Authorization"] = f"Bearer {jwt}"
        await self.send({"type": "connection_init", "payload": payload})
        return await self.receive()

    async def subscribe(self, id: str, query: str, variables: dict[str, Any] | None = None) -> None:
        payload = {"query": query, "variables": variables or {}}
        await self.send({"type": "subscribe", "id": id, "payload": payload})

    async def quiet(self, seconds: float) -> list[dict[str, Any]]:
        """Messages that arrive within ``seconds`` (none, when nothing should happen)."""
        received = []
        deadline = asyncio.get_running_loop().time() + seconds
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                received.append(await self.receive(timeout=left))
            except TimeoutError:
                break
        return received


class RemoteSocket(GraphQLSocket):
    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = headers or {}

    async def __aenter__(self) -> RemoteSocket:
        self.ws = await websockets.connect(
            self.url, subprotocols=[PROTOCOL], additional_headers=self.headers
        )
        assert self.ws.subprotocol == PROTOCOL
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()

    async def _send(self, text: str) -> None:
        await self.ws.send(text)

    async def _receive(self) -> str:
        try:
            return str(await self.ws.recv())
        except websockets.ConnectionClosed as exc:
            rcvd = exc.rcvd
            raise Closed(rcvd.code if rcvd else 1006, rcvd.reason if rcvd else "") from exc


class AsgiSocket(GraphQLSocket):
    def __init__(self, app: Any, headers: dict[str, str] | None = None) -> None:
        self.app = app
        self.headers = [(b"host", b"test")] + [
            (k.lower().encode(), v.encode()) for k, v in (headers or {}).items()
        ]
        self.to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def __aenter__(self) -> AsgiSocket:
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "http_version": "1.1",
            "path": "/graphql",
            "raw_path": b"/graphql",
            "root_path": "",
            "query_string": b"",
            "headers": self.headers,
            "subprotocols": [PROTOCOL],
            "client": ("127.0.0.1", 50000),
            "server": ("test", 80),
            "state": {},
        }
        self.to_app.put_nowait({"type": "websocket.connect"})
        self.task = asyncio.create_task(self.app(scope, self.to_app.get, self.from_app.put))
        accepted = await asyncio.wait_for(self.from_app.get(), 5)
        assert accepted["type"] == "websocket.accept", accepted
        assert accepted.get("subprotocol") == PROTOCOL
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.to_app.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(self.task, 10)

    async def _send(self, text: str) -> None:
        self.to_app.put_nowait({"type": "websocket.receive", "text": text})

    async def _receive(self) -> str:
        message = await self.from_app.get()
        if message["type"] == "websocket.close":
            # Answer like a client would, so the server side can finish.
            self.to_app.put_nowait({"type": "websocket.disconnect", "code": message["code"]})
            raise Closed(message["code"], message.get("reason") or "")
        return message.get("text") or message["bytes"].decode()
