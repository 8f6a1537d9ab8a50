"""The printable statement page: authentication (bearer, statement link → cookie), 401/404,
no external assets under a strict CSP, and, in headless Chromium against a real server, a
chart whose numbers are the GraphQL statement's."""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from carbongraph.engagement.keys import mint_statement_link
from tests.cdp import CHROMIUM, LAYOUT, Browser
from tests.engagement_world import PERIOD, build_campus
from tests.processes import Processes, free_port
from tests.world import gid

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
        for name in ("src", "xlink:href"):
            assert name not in attrs, (tag, attrs)
        # The only links: this page in the other language (a query on the same path).
        if "href" in attrs:
            assert tag == "a" and (attrs["href"] or "").startswith("?"), (tag, attrs)
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
    charts = {a.get("id") for tag, a in _elements(page.text) if tag == "svg"}
    assert {"weekly-chart", "ranking-chart", "electricity-ranking-chart"} <= charts
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


def _check_numbers(document: str, expected: dict) -> None:
    """The charts' bars carry exactly the GraphQL statement's figures, one unit per chart."""
    elements = _elements(document)
    # Weekly net emissions.
    bars = [a for tag, a in elements if tag == "rect" and a.get("class") == "week"]
    assert [(b["data-from"], int(b["data-net"]), int(b["data-gross"])) for b in bars] == [
        (w["from"], w["net"], w["gross"]) for w in expected["weeks"]
    ]
    # Daily electricity: one bar per day of the period, each the day's quantity.
    daily = [
        a
        for tag, a in elements
        if tag == "rect" and a.get("class") == "day" and a.get("data-activity") == "ELECTRICITY"
    ]
    assert [(d["data-date"], d["data-quantity"]) for d in daily] == [
        (
            day["date"],
            next(u["quantity"] for u in day["usage"] if u["activityType"] == "ELECTRICITY"),
        )
        for day in expected["days"]
    ]
    assert len(daily) == 28
    # Weekly use per utility (zero where a week had none of it).
    uses = [a for tag, a in elements if tag == "rect" and a.get("class") == "use"]
    assert len(uses) == len(expected["weeks"]) * 3
    drawn = {(u["data-from"], u["data-activity"], u["data-quantity"]) for u in uses}
    assert {d for d in drawn if d[2] != "0"} == {
        (w["from"], u["activityType"], u["quantity"]) for w in expected["weeks"] for u in w["usage"]
    }
    # One chart per utility and unit: a daily and a weekly one each, never two units on an axis.
    charts = _charts(document)
    assert sorted((c["activity"], c["kind"]) for c in charts) == sorted(
        (a, k) for a in ("ELECTRICITY", "GASOLINE", "WATER") for k in ("daily", "weekly")
    )
    for chart in charts:
        assert {unit for unit in chart["bar_units"]} == {chart["unit"]}, chart
        assert {activity for activity in chart["bar_activities"]} == {chart["activity"]}, chart
    assert {c["unit"] for c in charts if c["activity"] == "WATER"} == {"m3"}
    # Rankings: by net emissions and by electricity per person, as the API ranks.
    ranking = _attrs(elements, "svg", "ranking-chart")
    assert int(ranking["data-rank"]) == expected["ranking"]["rank"] == 3
    assert int(ranking["data-peer-count"]) == expected["ranking"]["peerCount"]
    assert float(ranking["data-percentile"]) == expected["ranking"]["percentile"]
    power = _attrs(elements, "svg", "electricity-ranking-chart")
    assert int(power["data-rank"]) == expected["electricityRanking"]["rank"]
    assert int(power["data-peer-count"]) == expected["electricityRanking"]["peerCount"] == 6
    assert power["data-per-capita"] == expected["electricityRanking"]["perCapita"] == "56"
    net = _attrs(elements, None, "net")
    assert int(net["data-grams"]) == expected["net"]
    _assert_self_contained(document)


def _attrs(elements: list, tag: str | None, element_id: str) -> dict:
    return next(a for t, a in elements if (tag is None or t == tag) and a.get("id") == element_id)


class _Charts(HTMLParser):
    """Each chart <svg> with the units and activities of the bars inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: list[dict] = []
        self.current: dict | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "svg" and ("daily-chart" in classes or "usage-chart" in classes):
            self.current = {
                "kind": "daily" if "daily-chart" in classes else "weekly",
                "activity": a["data-activity"],
                "unit": a["data-unit"],
                "bar_units": [],
                "bar_activities": [],
            }
            self.charts.append(self.current)
        elif tag == "rect" and self.current is not None and "data-unit" in a:
            self.current["bar_units"].append(a["data-unit"])
            self.current["bar_activities"].append(a["data-activity"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.current = None


def _charts(document: str) -> list[dict]:
    parser = _Charts()
    parser.feed(document)
    return parser.charts


PAGE_STATEMENT = """query($id: ID!, $p: PeriodInput) { household(id: $id) { statement(period: $p) {
  net creditsEarned weeks { from net gross usage { activityType quantity } }
  days { date usage { activityType quantity } }
  ranking { rank peerCount percentile }
  electricityRanking { rank peerCount perCapita } } } }"""


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium package")
async def test_headless_chromium_renders_the_graphql_numbers_in_both_languages(
    engine, api, tmp_path
):
    """In a real browser: the numbers are the API's (daily, weekly, per unit, rankings), in
    English and Simplified Chinese, and a 390 px phone needs no sideways scrolling, with chart
    text no smaller than on paper; on a desktop the daily chart stands beside the weekly one."""
    world = await build_campus(engine)
    room = world.rooms["r1"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = engine.url.render_as_string(hide_password=False)
    processes = Processes(tmp_path)
    pages: dict[str, dict] = {}
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
                "/graphql", json={"query": PAGE_STATEMENT, "variables": variables}
            )
        link_url = link.json()["data"]["household"]["statementLink"]["url"]
        expected = statement.json()["data"]["household"]["statement"]
        page_url = f"{base}{_path(room)}?period={quote(PAGE_PERIOD)}"
        async with Browser(tmp_path / "profile") as browser:
            await browser.viewport(390, 844, mobile=True)
            # The link sets the cookie and lands on the page (no Accept-Language: English).
            await browser.open(base + link_url)
            pages["en-phone"] = await browser.evaluate(LAYOUT)
            await browser.screenshot(tmp_path / "en-phone.png")
            # Chinese, chosen by the browser's Accept-Language ...
            await browser.open(page_url, {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
            pages["zh-phone"] = await browser.evaluate(LAYOUT)
            await browser.screenshot(tmp_path / "zh-phone.png")
            # ... and English again by ?lang=, whatever the browser prefers.
            await browser.open(page_url + "&lang=en", {"Accept-Language": "zh-CN"})
            pages["en-by-query"] = await browser.evaluate(LAYOUT)
            await browser.viewport(1280, 900, mobile=False)
            await browser.open(page_url + "&lang=zh-CN")
            pages["zh-desktop"] = await browser.evaluate(LAYOUT)
            await browser.screenshot(tmp_path / "zh-desktop.png")
    finally:
        processes.stop_all()

    for name, page in pages.items():
        _check_numbers(page["html"], expected)
        assert page["lang"] == ("zh-CN" if name.startswith("zh") else "en"), name
    english, chinese = pages["en-phone"]["html"], pages["zh-phone"]["html"]
    # Words, numbers and dates of each language.
    assert "Electricity ranking: dorm rooms of Lakeside Campus" in english
    assert "用电排名：Lakeside Campus的全部宿舍" in chinese
    assert "Oct 5, 2026 – Nov 1, 2026" in english and "2026年10月5日 – 2026年11月1日" in chinese
    assert f"rank {expected['ranking']['rank']} of {expected['ranking']['peerCount']}" in english
    assert f"第 {expected['ranking']['rank']} 名，共 {expected['ranking']['peerCount']} 个" in (
        chinese
    )
    assert "每日用电（kWh）" in chinese and "Electricity per day (kWh)" in english
    assert "Oct 12" in english and "10月12日" in chinese  # the weekly table's first column
    # A phone: nothing wider than the screen, no sideways scrolling, chart text still legible.
    for name in ("en-phone", "zh-phone"):
        page = pages[name]
        assert page["innerWidth"] == 390, page["innerWidth"]
        assert page["scrollWidth"] <= 390, (name, page["scrollWidth"])
        assert page["outside"] == [], (name, page["outside"])
        assert page["smallestChartText"] >= 10, (name, page["smallestChartText"])
        # On a phone the charts stack: one column.
        assert len({round(f["left"]) for f in page["figures"]}) == 1, page["figures"]
    # A desktop: each utility's daily chart beside its weekly one.
    figures = pages["zh-desktop"]["figures"]
    for daily, weekly in zip(figures[::2], figures[1::2], strict=True):
        assert round(daily["top"]) == round(weekly["top"]) and weekly["left"] > daily["left"]
    assert (tmp_path / "zh-phone.png").stat().st_size > 10_000


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
        assert page.status_code == 200 and "Oct 1, 2026 – Oct 31, 2026" in page.text
    missing = await asyncio.to_thread(
        CliRunner().invoke, app, ["statement-link", "--sub", "x", "--household", "t:nowhere"]
    )
    assert missing.exit_code == 1


async def test_pages_spend_the_api_rate_limit_budget(engine):
    from carbongraph.app import create_app
    from carbongraph.authz import mint_token
    from carbongraph.config import Settings
    from carbongraph.cost import query_cost
    from carbongraph.engagement.page import QUERY
    from carbongraph.schema.schema import schema

    world = await build_campus(engine)
    base = Settings.from_env(database_url=engine.url.render_as_string(hide_password=False))
    # A budget for one page and a half: the page's document costs what it would on /graphql.
    page_cost = query_cost(
        schema._schema, QUERY, max_tokens=base.max_tokens, default_list_size=base.max_page_size
    )
    settings = Settings.from_env(
        database_url=engine.url.render_as_string(hide_password=False),
        rate_limit_per_minute=page_cost * 3 // 2,
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


async def test_language_from_lang_then_accept_language(engine, api):
    """``?lang=`` first, then Accept-Language by q-value (any zh tag: Simplified Chinese),
    then English; the response says which, and caches keep the languages apart."""
    world = await build_campus(engine)
    bearer = {"Authorization": f"Bearer {api.token('student')}"}
    cases = [
        ({}, None, "en"),
        ({"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}, None, "zh-CN"),
        ({"Accept-Language": "en;q=0.5, zh-TW;q=0.9"}, None, "zh-CN"),
        ({"Accept-Language": "fr-FR, en;q=0.2"}, None, "en"),
        ({"Accept-Language": "zh;q=0, en;q=0.1"}, None, "en"),
        ({"Accept-Language": "zh-CN"}, "en", "en"),
        ({"Accept-Language": "zh-CN"}, "xx", "zh-CN"),
        ({}, "zh", "zh-CN"),
    ]
    for headers, lang, expected in cases:
        params = {"period": PAGE_PERIOD, **({"lang": lang} if lang else {})}
        page = await api.client.get(
            _path(world.rooms["r1"]), params=params, headers={**bearer, **headers}
        )
        assert page.status_code == 200, page.text
        assert page.headers["content-language"] == expected, (headers, lang)
        assert "Accept-Language" in page.headers["vary"]
        assert f"<html lang='{expected}'>" in page.text
        if expected == "zh-CN":
            assert "2026年10月5日" in page.text and "用电排名" in page.text
            assert "Electricity ranking" not in page.text and "Oct 5" not in page.text
        else:
            assert "Oct 5, 2026" in page.text and "Electricity ranking" in page.text
            assert "用电排名" not in page.text


def test_every_sentence_and_utility_is_in_both_languages():
    from carbongraph.accounting.activities import ACTIVITY_TYPES
    from carbongraph.engagement import i18n

    assert set(i18n.MESSAGES[i18n.ZH]) == set(i18n.MESSAGES[i18n.EN])
    for lang in i18n.LANGUAGES:
        assert set(ACTIVITY_TYPES) <= set(i18n.UTILITIES[lang]), lang
    # Numbers follow the locale's grouping and decimals.
    assert i18n.Formatter(i18n.EN).number(1234567.891, 2) == "1,234,567.89"
    assert i18n.Formatter(i18n.ZH).kg(98_150) == "98.2 千克"
