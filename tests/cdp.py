"""Headless Chromium driven over the DevTools protocol, for page tests.

The statement page forbids every script (CSP ``default-src 'none'``), so a test cannot put
one in the page to measure it; DevTools' ``Runtime.evaluate`` runs outside the page's policy
and reads the laid-out document: widths, boxes, the DOM. Only the standard protocol over a
loopback WebSocket (``websockets``, which uvicorn[standard] already installs).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.processes import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class Browser:
    """One headless Chromium with one page; ``async with Browser(profile) as b: ...``."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.socket: ClientConnection | None = None
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def __aenter__(self) -> Browser:
        await asyncio.to_thread(self._start)
        target = await asyncio.to_thread(self._page_target)
        self.socket = await connect(target, max_size=64 * 1024 * 1024)
        await self.send("Page.enable")
        await self.send("Network.enable")
        return self

    def _start(self) -> None:
        self.process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
                f"--user-data-dir={self.profile}",
                f"--remote-debugging-port={self.port}",
                "--remote-allow-origins=*",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _page_target(self) -> str:
        for _ in range(200):
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/json/list", timeout=2
                ) as answer:
                    pages = [t for t in json.load(answer) if t["type"] == "page"]
                if pages:
                    return str(pages[0]["webSocketDebuggerUrl"])
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("chromium did not open its DevTools port")

    async def __aexit__(self, *exc: object) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        assert self.socket is not None
        message_id = next(self.ids)
        await self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(await asyncio.wait_for(self.socket.recv(), timeout=60))
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self.events.append(message)

    async def viewport(self, width: int, height: int, *, mobile: bool) -> None:
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=mobile,
        )

    async def open(self, url: str, headers: dict[str, str] | None = None) -> None:
        """Navigate and wait for the load event (redirects and cookies as a browser does)."""
        await self.send("Network.setExtraHTTPHeaders", headers=headers or {})
        self.events.clear()
        await self.send("Page.navigate", url=url)
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            assert self.socket is not None
            self.events.append(json.loads(await asyncio.wait_for(self.socket.recv(), timeout=60)))

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    async def screenshot(self, path: Path, *, full_page: bool = True) -> None:
        result = await self.send(
            "Page.captureScreenshot", format="png", captureBeyondViewport=full_page
        )
        await asyncio.to_thread(path.write_bytes, base64.b64decode(result["data"]))


# What a layout check needs from a page, measured by the browser after layout.
LAYOUT = """(() => {
  const width = window.innerWidth;
  const doc = document.documentElement;
  const outside = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && (box.right > width + 0.5 || box.left < -0.5)) {
      outside.push(el.tagName + (el.id ? '#' + el.id : '') + ' ' + Math.round(box.left) +
                   '..' + Math.round(box.right));
    }
  }
  const texts = [...document.querySelectorAll('svg text')].map(
    t => t.getBoundingClientRect().height);
  const figures = [...document.querySelectorAll('section.utility figure')].map(f => {
    const b = f.getBoundingClientRect();
    return {left: b.left, top: b.top, width: b.width};
  });
  return {
    lang: doc.lang,
    innerWidth: width,
    scrollWidth: Math.max(doc.scrollWidth, document.body.scrollWidth),
    outside: outside,
    smallestChartText: texts.length ? Math.min(...texts) : null,
    figures: figures,
    html: doc.outerHTML,
  };
})()"""
