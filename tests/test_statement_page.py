"""The printable statement page: authentication (bearer, statement link → cookie), 401/404,
no external assets under a strict CSP, and, in headless Chromium against a real server, a
chart whose numbers are the GraphQL statement's."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from carbongraph.engagement.keys import mint_statement_link
from tests.engagement_world import PERIOD, build_campus
from tests.processes import Processes, free_port
from tests.world import gid

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PAGE_PERIOD = f"{PERIOD['from']}..{PERIOD['to']}"
LINK = """query($id: ID!, $p: PeriodInput) { household(id: $id) {
  statementLink(period: $p) { url expiresAt } } }"""
STATEMENT = """query($id: ID!, $p: PeriodInput) { household(id: $id) { statement(period: $p) {
  net creditsEarned weeks { from net gross usage { activityType quantity } }
  ranking { rank peerCount percentile } } } }"""


def _path(household: int) -> str:
    return f"/statements/{quote(gid('Household', household), safe='')}"


class _Elements(HTMLParser):
    """Every element's tag and attributes, for checks on the rendered document."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def _elements(document: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(document)
    return parser.elements


def _assert_self_contained(document: str) -> None:
    for tag, attrs in _elements(document):
        assert tag not in {"script", "link", "img", "iframe", "object", "embed"}, tag
        for name in ("src", "href", "xlink:href"):
            assert name not in attrs, (tag, attrs)
    assert "@import" not in document and "url(" not in document


async def test_link_sets_a_cookie_and_the_page_renders(engine, api):
    world = await build_campus(engine)
    room = world.rooms["r1"]
    client = api.client
    # No credentials at all: 401, as an HTML page.
    anonymous = await client.get(_path(room))
    assert anonymous.status_code == 401 and "text/html" in anonymous.headers["content-type"]
    # The student asks for a link to their room's statement...
    body = await api.gql(LINK, {"id": gid("Household", room), "p": PERIOD}, subject="student")
    link = body["data"]["household"]["statementLink"]
    assert link["url"].startswith(_path(room) + "?token=")
    assert f"period={quote(PAGE_PERIOD)}" in link["url"]
    # ... which trades the token for an HttpOnly cookie and drops it from the address.
    opened = await client.get(link["url"])
    assert opened.status_code == 303
    assert opened.headers["location"] == f"{_path(room)}?period={quote(PAGE_PERIOD)}"
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Path=/statements" in cookie and "SameSite=lax" in cookie
    page = await client.get(opened.headers["location"])
    assert page.status_code == 200, page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert f"<style nonce='{nonce}'>" in page.text
    _assert_self_contained(page.text)
    assert "<svg id='weekly-chart'" in page.text and "<svg id='ranking-chart'" in page.text
    assert "dorm rooms of Lakeside Campus" in page.text
    # The cookie only opens the household it was issued for.
    other = await client.get(_path(world.rooms["r2"]))
    assert other.status_code == 404


async def test_page_answers_401_and_404_like_the_api(engine, api):
    world = await build_campus(engine)
    client = api.client
    room = world.rooms["r1"]
    bearer = {"Authorization": f"Bearer {api.token('student')}"}
    ok = await client.get(_path(room), params={"period": PAGE_PERIOD}, headers=bearer)
    assert ok.status_code == 200
    # Another tenant's household and a missing one look the same: 404.
    foreign = await client.get(
        _path(room), headers={"Authorization": f"Bearer {api.token('other-admin')}"}
    )
    missing = await client.get(
        _path(999_999), headers={"Authorization": f"Bearer {api.token('other-admin')}"}
    )
    assert foreign.status_code == missing.status_code == 404
    assert foreign.text.split("<body>")[1] == missing.text.split("<body>")[1]
    assert (await client.get("/statements/not-an-id", headers=bearer)).status_code == 404
    # Forged, expired and misdirected links.
    forged = await client.get(_path(room), params={"token": "a.b.c"})
    assert forged.status_code == 401
    past = datetime.now(UTC) - timedelta(hours=1)
    expired, _ = mint_statement_link(api.settings, "student", room, now=past)
    assert (await client.get(_path(room), params={"token": expired})).status_code == 401
    elsewhere, _ = mint_statement_link(api.settings, "student", world.rooms["r2"])
    assert (await client.get(_path(room), params={"token": elsewhere})).status_code == 404
    # A link minted for someone without access opens nothing.
    outsider, _ = mint_statement_link(api.settings, "other-admin", room)
    opened = await client.get(_path(room), params={"token": outsider})
    assert opened.status_code == 303
    assert (await client.get(opened.headers["location"])).status_code == 404
    # A bad period is the viewer's error, not ours.
    bad = await client.get(_path(room), params={"period": "2026-13"}, headers=bearer)
    assert bad.status_code == 400
    # No data in the period: a page that says so.
    empty = await client.get(
        _path(room), params={"period": "2020-01-01..2020-01-28"}, headers=bearer
    )
    assert empty.status_code == 200 and "id='no-data'" in empty.text


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium package")
async def test_headless_chromium_renders_the_graphql_numbers(engine, api, tmp_path):
    world = await build_campus(engine)
    room = world.rooms["r1"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = engine.url.render_as_string(hide_password=False)
    processes = Processes(tmp_path)
    try:
        processes.start(
            "carbongraph",
            [sys.executable, "-m", "carbongraph.cli", "serve", "--port", str(port)],
            health=f"{base}/healthz",
            env={"CARBONGRAPH_DATABASE_URL": url},
            timeout=60,
        )
        headers = {"Authorization": f"Bearer {api.token('student')}"}
        variables = {"id": gid("Household", room), "p": PERIOD}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
            link = await client.post("/graphql", json={"query": LINK, "variables": variables})
            statement = await client.post(
                "/graphql", json={"query": STATEMENT, "variables": variables}
            )
        link_url = link.json()["data"]["household"]["statementLink"]["url"]
        expected = statement.json()["data"]["household"]["statement"]
        dom = await asyncio.to_thread(
            subprocess.run,
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--dump-dom",
                base + link_url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        processes.stop_all()
    assert dom.returncode == 0, dom.stderr[-2000:]
    document = dom.stdout
    elements = _elements(document)
    bars = [a for tag, a in elements if tag == "rect" and a.get("class") == "week"]
    assert [(b["data-from"], int(b["data-net"]), int(b["data-gross"])) for b in bars] == [
        (w["from"], w["net"], w["gross"]) for w in expected["weeks"]
    ]
    uses = [a for tag, a in elements if tag == "rect" and a.get("class") == "use"]
    # One bar per week and utility (zero where a week had none of it).
    assert len(uses) == len(expected["weeks"]) * 3
    drawn = {(u["data-from"], u["data-activity"], u["data-quantity"]) for u in uses}
    assert {d for d in drawn if d[2] != "0"} == {
        (w["from"], u["activityType"], u["quantity"]) for w in expected["weeks"] for u in w["usage"]
    }
    assert {u["data-activity"] for u in uses} == {"ELECTRICITY", "GASOLINE", "WATER"}
    ranking = next(a for tag, a in elements if tag == "svg" and a.get("id") == "ranking-chart")
    assert int(ranking["data-rank"]) == expected["ranking"]["rank"] == 3
    assert int(ranking["data-peer-count"]) == expected["ranking"]["peerCount"]
    assert float(ranking["data-percentile"]) == expected["ranking"]["percentile"]
    net = next(a for tag, a in elements if a.get("id") == "net")
    assert int(net["data-grams"]) == expected["net"]
    assert f"rank {expected['ranking']['rank']} of {expected['ranking']['peerCount']}" in document
    _assert_self_contained(document)


async def test_cli_statement_link_opens_the_page(engine, api, monkeypatch):
    from typer.testing import CliRunner

    from carbongraph.cli import app

    world = await build_campus(engine)
    monkeypatch.setenv("CARBONGRAPH_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    for household in (
        "t:r1",
        f"Household:{world.rooms['r1']}",
        gid("Household", world.rooms["r1"]),
    ):
        result = await asyncio.to_thread(
            CliRunner().invoke,
            app,
            [
                "statement-link",
                "--sub",
                "student",
                "--household",
                household,
                "--base-url",
                "http://test/",
                "--period",
                "2026-10",
            ],
        )
        assert result.exit_code == 0, result.output
        url = result.stdout.strip()
        assert url.startswith(f"http://test{_path(world.rooms['r1'])}?token=")
        opened = await api.client.get(url)
        assert opened.status_code == 303
        page = await api.client.get(opened.headers["location"])
        assert page.status_code == 200 and "2026-10-01 – 2026-10-31" in page.text
    missing = await asyncio.to_thread(
        CliRunner().invoke, app, ["statement-link", "--sub", "x", "--household", "t:nowhere"]
    )
    assert missing.exit_code == 1


async def test_pages_spend_the_api_rate_limit_budget(engine):
    from carbongraph.app import create_app
    from carbongraph.authz import mint_token
    from carbongraph.config import Settings

    world = await build_campus(engine)
    settings = Settings.from_env(
        database_url=engine.url.render_as_string(hide_password=False), rate_limit_per_minute=12
    )
    app = create_app(settings, engine=engine)
    bearer = {"Authorization": f"Bearer {mint_token(settings, 'student')}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        first = await client.get(_path(world.rooms["r1"]), headers=bearer)
        second = await client.get(_path(world.rooms["r1"]), headers=bearer)
    assert first.status_code == 200
    assert second.status_code == 429 and int(second.headers["retry-after"]) > 0
