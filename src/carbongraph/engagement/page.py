"""The printable statement page: ``GET /statements/{householdId}?period=...``.

Server-rendered HTML with inline SVG charts (one per unit: each utility's daily and weekly use,
net emissions per week, the two rankings), readable on a phone and printable, in Simplified
Chinese or English (``?lang=``, else ``Accept-Language``; see ``i18n``); no scripts and no
external assets, under a strict Content-Security-Policy (styles only by nonce).

Authentication, in order:

* ``Authorization: Bearer <API token>``, exactly as for ``/graphql``;
* ``?token=<statement link>``: a short-lived link from ``Household.statementLink`` (or
  ``carbongraph statement-link``), signed with the server's engagement key and bound to one
  household. It is exchanged for an HttpOnly, SameSite=Lax cookie scoped to ``/statements``
  and the browser is redirected to the same URL without the token, so the token does not stay
  in the address bar, history or bookmarks;
* that cookie.

The page runs a fixed GraphQL document against the schema with the request's viewer, so its
numbers and its authorization are those of ``Household.statement``.
"""

from __future__ import annotations

import asyncio
import html
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote, urlencode

import jwt
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from carbongraph.authz import InvalidToken, Principal, TokenVerifier
from carbongraph.config import Settings
from carbongraph.cost import query_cost
from carbongraph.db import request_db
from carbongraph.engagement import i18n, keys
from carbongraph.errors import BadUserInput, CodedError
from carbongraph.resolvers.context import build_context
from carbongraph.schema.engagement.types import parse_period_param
from carbongraph.schema.relay import decode_global_id

log = logging.getLogger("carbongraph")

COOKIE = "carbongraph_statement"

QUERY = """
query Statement($id: ID!, $period: PeriodInput) {
  household(id: $id) {
    dwellingType
    community { name }
    statement(period: $period) {
      period { from to }
      previousPeriod { from to }
      weeks { from to gross cleanEnergyOffset net
              usage { activityType unit quantity emissions } }
      days { date gross cleanEnergyOffset net usage { activityType unit quantity } }
      usage { activityType unit quantity emissions cleanEnergyOffset }
      gross cleanEnergyOffset net memberCount perCapita
      previousNet netChange netChangePercent creditsEarned
      ranking { peers peerCommunity rank percentile peerCount peerAverageNet
                peerAveragePerCapita suppressed suppressionReason }
      electricityRanking { activityType unit peerCommunity rank percentile peerCount
                           perCapita peerAveragePerCapita suppressed suppressionReason }
    }
  }
}
"""


class StatementPage:
    def __init__(
        self,
        settings: Settings,
        engine_ref: dict[str, Any],
        schema: Any,
        rate_limiter: Any = None,
    ) -> None:
        self.settings = settings
        self.engine_ref = engine_ref
        self.schema = schema
        self.verifier = TokenVerifier(settings)
        # The /graphql budget (per principal and per IP) is shared, so pages are no way around it.
        self.rate_limiter = rate_limiter
        # A page spends what its GraphQL document would cost on /graphql.
        self.cost = max(
            1,
            query_cost(
                schema._schema,
                QUERY,
                max_tokens=settings.max_tokens,
                default_list_size=settings.max_page_size,
            ),
        )

    async def handle(self, request: Request) -> Response:
        household_id = request.path_params["household_id"]
        link = request.query_params.get("token")
        if link is not None:
            return self._exchange(request, household_id, link)
        try:
            principal, bound = self._authenticate(request)
        except InvalidToken as exc:
            return _page(401, "Sign-in needed", f"Unauthenticated: {exc}.")
        try:
            period = parse_period_param(request.query_params.get("period"))
            if period is not None:
                period.to_period()  # validated before execution, to answer 400 cleanly
        except BadUserInput as exc:
            return _page(400, "Invalid period", exc.message)
        if bound is not None and bound != _household_pk(household_id):
            return _not_found()
        if self.rate_limiter is not None:
            host = request.client.host if request.client else "-"
            decision = await self.rate_limiter.check(
                [f"p:{principal.subject}", f"ip:{host}"], self.cost
            )
            if not decision.allowed:
                response = _page(429, "Too many requests", "Too many requests; retry later.")
                response.headers["Retry-After"] = str(decision.retry_after)
                return response
        variables: dict[str, Any] = {"id": household_id}
        if period is not None:
            variables["period"] = {
                k: v.isoformat() if hasattr(v, "isoformat") else v
                for k, v in (
                    ("month", period.month),
                    ("year", period.year),
                    ("from", period.from_),
                    ("to", period.to),
                )
                if v is not None
            }
        try:
            async with request_db(self.engine_ref["engine"], write=False) as db:
                context = await build_context(self.settings, db, principal, request=request)
                async with asyncio.timeout(self.settings.request_timeout_seconds):
                    result = await self.schema.execute(
                        QUERY, variable_values=variables, context_value=context
                    )
        except TimeoutError:
            return _page(504, "Too slow", "The statement took too long and was stopped.")
        if result.errors:
            codes = {(e.extensions or {}).get("code") for e in result.errors}
            if "BAD_USER_INPUT" in codes:
                return _page(400, "Invalid request", result.errors[0].message)
            if "FORBIDDEN" in codes:
                return _page(403, "Not allowed", "You may not read this statement.")
            if "SUPPRESSED" in codes:
                return _page(403, "Withheld", "This statement covers too few people for you.")
            if codes <= {"NOT_FOUND"}:
                return _not_found()
            log.error("statement page failed: %s", result.errors)
            return _page(500, "Error", "The statement could not be produced.")
        query = {k: v for k, v in request.query_params.items() if k in ("period",)}
        return _render(result.data["household"], language(request), query)

    def _authenticate(self, request: Request) -> tuple[Principal, int | None]:
        """The principal, and the household a statement link is bound to (None: any)."""
        header = request.headers.get("authorization")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise InvalidToken("the Authorization header must be 'Bearer <token>'")
            return self.verifier.verify(token.strip()), None
        cookie = request.cookies.get(COOKIE)
        if cookie:
            try:
                link = keys.verify_statement_link(self.settings, cookie)
            except jwt.PyJWTError as exc:
                raise InvalidToken("the statement link has expired or is invalid") from exc
            return Principal(link.subject), link.household_id
        raise InvalidToken("open a statement link, or send a bearer token")

    def _exchange(self, request: Request, household_id: str, token: str) -> Response:
        try:
            link = keys.verify_statement_link(self.settings, token)
        except jwt.PyJWTError:
            return _page(401, "Link expired", "This statement link has expired or is invalid.")
        if link.household_id != _household_pk(household_id):
            return _not_found()
        rest = {k: v for k, v in request.query_params.items() if k != "token"}
        # Same-origin path only (never a Location from user input), the ID re-encoded.
        target = quote(request.url.path, safe="/") + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        seconds = int((link.expires_at - datetime.now(UTC)).total_seconds())
        response.set_cookie(
            COOKIE,
            token,
            max_age=max(seconds, 1),
            path="/statements",
            httponly=True,
            samesite="lax",
            secure=self.settings.is_production,
        )
        return response


def language(request: Request) -> i18n.Formatter:
    """``?lang=zh-CN|en``, else the best of Accept-Language, else English."""
    return i18n.Formatter(
        i18n.choose(request.query_params.get("lang"), request.headers.get("accept-language"))
    )


def _household_pk(global_id: str) -> int | None:
    try:
        return decode_global_id(global_id, ["Household"])[1]
    except CodedError:
        return None


def _not_found() -> Response:
    return _page(404, "Not found", "There is no such statement.")


# -- rendering ----------------------------------------------------------------------------------


def _csp(nonce: str) -> str:
    return (
        f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )


# Mobile first: one column up to a phone's width, charts drawn at about a phone column's width
# (so their text is read at ~1:1), the daily and weekly chart of a utility side by side from
# 700 px. Nothing has a fixed width wider than 320 px, so the page never scrolls sideways.
STYLE = """
*, *::before, *::after { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body { font: 15px/1.5 system-ui, -apple-system, "PingFang SC", "Noto Sans CJK SC",
       "Microsoft YaHei", sans-serif; color: #1d2b24; margin: 0 auto; padding: 12px;
       max-width: 60rem; overflow-wrap: anywhere; }
h1 { font-size: 1.35rem; margin: .25rem 0; } h2 { font-size: 1.05rem; margin: 1.25rem 0 .4rem; }
p { margin: .4rem 0; }
.muted { color: #5c6e64; } .lang { font-size: .9rem; } .lang a { color: #2f6f9f; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(9rem, 1fr));
           gap: .5rem .75rem; margin: .75rem 0; }
.figures div { background: #f1f5f2; border-radius: 6px; padding: .4rem .6rem; }
.figures b { display: block; font-size: 1.15rem; }
.pair { display: grid; grid-template-columns: 1fr; gap: .5rem 1rem; }
figure { margin: 0; min-width: 0; } figcaption { font-size: .9rem; color: #5c6e64; }
svg { display: block; width: 100%; height: auto; max-width: 100%; }
svg text { font: 11px system-ui, "Noto Sans CJK SC", sans-serif; fill: #1d2b24; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; font-size: .85rem; }
td, th { padding: .25rem .3rem; text-align: right; vertical-align: bottom; }
th:first-child, td:first-child { text-align: left; width: 4.6rem; }
th { font-size: .75rem; padding: .25rem .15rem; overflow-wrap: normal; }
tr { border-bottom: 1px solid #dde5e0; }
@media (min-width: 700px) {
  body { padding: 2rem; }
  .pair { grid-template-columns: 1fr 1fr; }
  table { font-size: .95rem; } th { font-size: .85rem; }
  th:first-child, td:first-child { width: 5.5rem; }
}
@media print { body { padding: 0; max-width: none; } .lang { display: none; } }
"""


def _page(
    status: int,
    title: str,
    message: str,
    body: str | None = None,
    lang: str = i18n.EN,
) -> Response:
    nonce = secrets.token_urlsafe(16)
    content = (
        body if body is not None else f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
    )
    document = (
        f"<!doctype html><html lang='{lang}'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style nonce='{nonce}'>{STYLE}</style></head>"
        f"<body>{content}</body></html>"
    )
    headers = {
        "Content-Security-Policy": _csp(nonce),
        "Content-Language": lang,
        "Vary": "Accept-Language, Authorization, Cookie",
    }
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="carbongraph"'
    return HTMLResponse(document, status_code=status, headers=headers)


@dataclass
class Bar:
    value: float
    label: str  # the x-axis label ("" for none)
    tooltip: str
    attributes: dict[str, str]
    value_label: str | None = None


def _nice(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10ⁿ at or above ``value`` (an axis's end)."""
    if value <= 0:
        return 0.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value * (1 - 1e-12):
            return step * power
    return 10 * power


def _attributes(values: dict[str, str]) -> str:
    return "".join(f" {k}='{html.escape(v)}'" for k, v in values.items())


def _chart(
    *,
    title: str,
    bars: list[Bar],
    fmt: i18n.Formatter,
    colour: str,
    svg_attributes: dict[str, str],
    bar_class: str,
    label_every: int = 1,
    scale: float = 1.0,
) -> str:
    """Bars on one axis of one unit, with 0, the middle and the top marked on the left.
    ``scale`` turns a value into the axis's unit (grams → kg)."""
    width, height, left, right, top, bottom = 360, 190, 46, 6, 16, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [b.value * scale for b in bars]
    high = _nice(max([*values, 0.0]))
    low = -_nice(-min(values)) if values and min(values) < 0 else 0.0
    if high == low:
        high = 1.0
    span = high - low

    def y(value: float) -> float:
        return top + (high - value) / span * plot_h

    ticks = sorted({low, 0.0, high} | ({high / 2} if low == 0 else set()))
    digits = 0 if all(float(t).is_integer() for t in ticks) else 2
    parts = [
        f"<svg role='img' viewBox='0 0 {width} {height}' xmlns='http://www.w3.org/2000/svg'"
        f"{_attributes(svg_attributes)}><title>{html.escape(title)}</title>"
    ]
    for tick in ticks:
        parts.append(
            f"<line x1='{left}' x2='{width - right}' y1='{y(tick):.1f}' y2='{y(tick):.1f}' "
            f"stroke='{'#9aa9a0' if tick == 0 else '#e3e9e5'}'/>"
            f"<text class='tick' x='{left - 4}' y='{y(tick) + 4:.1f}' text-anchor='end'>"
            f"{html.escape(fmt.number(tick, digits))}</text>"
        )
    slot = plot_w / max(len(bars), 1)
    bar_w = max(slot * 0.72, 1.0)
    for index, bar in enumerate(bars):
        x = left + index * slot + (slot - bar_w) / 2
        y0, y1 = sorted((y(0), y(bar.value * scale)))
        parts.append(
            f"<rect class='{bar_class}' x='{x:.1f}' y='{y0:.1f}' width='{bar_w:.1f}' "
            f"height='{max(y1 - y0, 0.5):.1f}' fill='{colour}'{_attributes(bar.attributes)}>"
            f"<title>{html.escape(bar.tooltip)}</title></rect>"
        )
        if bar.value_label is not None:
            parts.append(
                f"<text class='value' x='{x + bar_w / 2:.1f}' y='{y0 - 3:.1f}' "
                f"text-anchor='middle'>{html.escape(bar.value_label)}</text>"
            )
        if bar.label and index % label_every == 0:
            parts.append(
                f"<text class='label' x='{x + bar_w / 2:.1f}' y='{height - bottom + 15}' "
                f"text-anchor='middle'>{html.escape(bar.label)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


COLOURS = {"ELECTRICITY": "#2f6f9f", "WATER": "#3f9f8f", "GASOLINE": "#c08a2f"}
OTHER_COLOURS = ("#8f5fa8", "#a84f4f", "#6f7f3f", "#5f6fa8")


def _label_step(count: int, days: bool) -> int:
    """Label every bar while they fit (about 34 px a label), whole weeks for days."""
    step = max(1, math.ceil(count * 34 / 308))
    return 7 * math.ceil(step / 7) if days and step > 1 else step


def _usage_charts(
    statement: dict[str, Any], activity: str, unit: str, colour: str, fmt: i18n.Formatter
) -> str:
    """A utility's daily and weekly use, each on its own axis in its own unit."""
    name, shown_unit = fmt.utility(activity), fmt.unit(unit)

    def used(bucket: dict[str, Any]) -> str:
        return next((u["quantity"] for u in bucket["usage"] if u["activityType"] == activity), "0")

    def bar(bucket: dict[str, Any], key: str, digits: int, labelled: bool) -> Bar:
        """A day's (``key`` "date") or a week's ("from") use of the utility."""
        quantity = used(bucket)
        on = date.fromisoformat(bucket[key])
        when = fmt.day(on) if key == "date" else fmt.t("week_of", date=fmt.day(on))
        return Bar(
            float(quantity),
            fmt.short_day(on),
            f"{when}: {fmt.quantity(quantity, digits)} {shown_unit}",
            {
                f"data-{key}": bucket[key],
                "data-activity": activity,
                "data-quantity": quantity,
                "data-unit": unit,
            },
            value_label=fmt.quantity(quantity) if labelled else None,
        )

    day_bars = [bar(day, "date", 2, labelled=False) for day in statement["days"]]
    weeks = statement["weeks"]
    week_bars = [bar(week, "from", 1, labelled=len(weeks) <= 8) for week in weeks]

    def figure(message: str, bars: list[Bar], css_class: str, bar_class: str, days: bool) -> str:
        title = fmt.t(message, utility=name, unit=shown_unit)
        return (
            "<figure>"
            + _chart(
                title=title,
                bars=bars,
                fmt=fmt,
                colour=colour,
                svg_attributes={"class": css_class, "data-activity": activity, "data-unit": unit},
                bar_class=bar_class,
                label_every=_label_step(len(bars), days=days),
            )
            + f"<figcaption>{html.escape(title)}</figcaption></figure>"
        )

    return (
        f"<section class='utility' data-activity='{html.escape(activity)}'>"
        f"<h2>{html.escape(name)} ({html.escape(shown_unit)})</h2><div class='pair'>"
        + figure("daily", day_bars, "chart daily-chart", "day", days=True)
        + figure("weekly", week_bars, "chart usage-chart", "use", days=False)
        + "</div></section>"
    )


def _net_chart(weeks: list[dict[str, Any]], fmt: i18n.Formatter) -> str:
    """Net emissions per week in kg CO2e (negative where clean energy exceeded use)."""
    bars = []
    for week in weeks:
        on = date.fromisoformat(week["from"])
        bars.append(
            Bar(
                float(week["net"]),
                fmt.short_day(on),
                f"{fmt.t('week_of', date=fmt.day(on))}: {fmt.kg(week['net'])}",
                {
                    "data-from": week["from"],
                    "data-to": week["to"],
                    "data-net": str(week["net"]),
                    "data-gross": str(week["gross"]),
                    "data-offset": str(week["cleanEnergyOffset"]),
                },
                value_label=fmt.number(week["net"] / 1000) if len(weeks) <= 8 else None,
            )
        )
    return _chart(
        title=fmt.t("net_weekly"),
        bars=bars,
        fmt=fmt,
        colour="#2f7d5b",
        svg_attributes={"id": "weekly-chart", "class": "chart", "data-unit": "kgCO2e"},
        bar_class="week",
        label_every=_label_step(len(bars), days=False),
        scale=1 / 1000,
    )


def _track(
    svg_id: str,
    ranking: dict[str, Any],
    fmt: i18n.Formatter,
    ends: tuple[str, str],
    extra: dict[str, str],
) -> str:
    """A track from the worst to the best of the peers, with this account's place on it."""
    width, height = 360, 64
    rank, count, percentile = ranking["rank"], ranking["peerCount"], ranking["percentile"]
    where = fmt.t("rank_of", rank=rank, count=count) if rank is not None else fmt.t("no_rank")
    parts = [
        f"<svg id='{svg_id}' role='img' viewBox='0 0 {width} {height}' "
        f"xmlns='http://www.w3.org/2000/svg' data-rank='{rank if rank is not None else ''}' "
        f"data-peer-count='{count}' "
        f"data-percentile='{percentile if percentile is not None else ''}'"
        f"{_attributes(extra)}><title>{html.escape(where)}</title>",
        f"<rect x='12' y='26' width='{width - 24}' height='10' rx='5' fill='#dde5e0'/>",
        f"<text x='12' y='54'>{html.escape(ends[0])}</text>",
        f"<text x='{width - 12}' y='54' text-anchor='end'>{html.escape(ends[1])}</text>",
    ]
    if percentile is not None:
        x = 12 + (width - 24) * percentile / 100
        anchor = "start" if x < 80 else "end" if x > width - 80 else "middle"
        parts.append(f"<circle cx='{x:.1f}' cy='31' r='8' fill='#2f7d5b'/>")
        parts.append(f"<text x='{x:.1f}' y='14' text-anchor='{anchor}'>{html.escape(where)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _language_links(fmt: i18n.Formatter, query: dict[str, str]) -> str:
    links = []
    for lang, label in ((i18n.ZH, "中文"), (i18n.EN, "English")):
        if lang == fmt.lang:
            links.append(f"<b lang='{lang}'>{label}</b>")
        else:
            href = "?" + urlencode({**query, "lang": lang})
            links.append(
                f"<a href='{html.escape(href)}' hreflang='{lang}' lang='{lang}'>{label}</a>"
            )
    return f"<p class='lang'>{html.escape(fmt.t('language'))}: {' · '.join(links)}</p>"


def _render(household: dict[str, Any], fmt: i18n.Formatter, query: dict[str, str]) -> Response:
    s = household["statement"]
    e = html.escape
    start, end = (date.fromisoformat(s["period"][k]) for k in ("from", "to"))
    title = fmt.t("title", period=f"{fmt.long_day(start)} – {fmt.long_day(end)}")
    dorm = household["dwellingType"] == "DORM_ROOM"
    out = [
        _language_links(fmt, query),
        f"<h1 data-from='{s['period']['from']}' data-to='{s['period']['to']}'>{e(title)}</h1>",
        "<p class='muted'>"
        + e(
            fmt.t(
                "subtitle",
                dwelling=fmt.dwelling(household["dwellingType"]),
                community=household["community"]["name"],
                people=fmt.number(s["memberCount"], 0),
            )
        )
        + "</p>",
    ]
    if not s["weeks"]:
        out.append(f"<p id='no-data'>{e(fmt.t('no_data'))}</p>")
        return _page(200, title, "", "".join(out), fmt.lang)
    change = s["netChangePercent"]
    electricity = next((u for u in s["usage"] if u["activityType"] == "ELECTRICITY"), None)
    previous = (
        fmt.t("no_previous")
        if s["previousNet"] == 0
        else fmt.kg(s["netChange"])
        + ("" if change is None else f" ({'+' if change >= 0 else '−'}{fmt.number(abs(change))}%)")
    )
    figures = [
        ("net", f"<b id='net' data-grams='{s['net']}'>{e(fmt.kg(s['net']))}</b>"),
        ("per_person", f"<b>{e(fmt.kg(s['perCapita']))}</b>"),
    ]
    if electricity is not None:
        figures.append(
            (
                "electricity_total",
                f"<b id='electricity' data-quantity='{e(electricity['quantity'])}'>"
                f"{e(fmt.quantity(electricity['quantity']))} kWh</b>",
            )
        )
    figures += [
        ("clean_energy", f"<b>{e(fmt.kg(s['cleanEnergyOffset']))}</b>"),
        ("credits", f"<b id='credits'>{e(fmt.number(s['creditsEarned'], 0))}</b>"),
        ("change", f"<b id='change' data-grams='{s['netChange']}'>{e(previous)}</b>"),
    ]
    out.append(
        "<div class='figures'>"
        + "".join(f"<div>{e(fmt.t(key))}{value}</div>" for key, value in figures)
        + "</div>"
    )
    # Electricity first (the dorm bill), each utility in its own section and unit.
    utilities = sorted(
        ((u["activityType"], u["unit"]) for u in s["usage"]),
        key=lambda kind: (kind[0] != "ELECTRICITY", kind[0]),
    )
    others = iter(OTHER_COLOURS * 4)
    sections = [
        _usage_charts(s, activity, unit, COLOURS.get(activity) or next(others), fmt)
        for activity, unit in utilities
    ]
    if sections and utilities[0][0] == "ELECTRICITY":
        out.append(sections.pop(0))
    out.append(_rankings(household, s, fmt, dorm))
    out += sections
    # Net emissions (kg CO2e, an axis of its own) beside the weekly table on a wide screen.
    out.append(
        f"<div class='pair'><div><h2>{e(fmt.t('net_weekly'))}</h2>"
        + _net_chart(s["weeks"], fmt)
        + f"</div><div>{_weekly_table(s, utilities, fmt)}</div></div>"
    )
    return _page(200, title, "", "".join(out), fmt.lang)


def _peers(fmt: i18n.Formatter, ranking: dict[str, Any], dorm: bool) -> str:
    return fmt.t("peers_dorm" if dorm else "peers_home", community=ranking["peerCommunity"])


def _rankings(household: dict[str, Any], s: dict[str, Any], fmt: i18n.Formatter, dorm: bool) -> str:
    e = html.escape
    out = ["<div class='pair rankings'>"]
    power = s["electricityRanking"]
    if power is not None:
        out.append("<div>")
        out.append(f"<h2>{e(fmt.t('electricity_ranking', peers=_peers(fmt, power, dorm)))}</h2>")
        out.append(
            _track(
                "electricity-ranking-chart",
                power,
                fmt,
                (fmt.t("most"), fmt.t("least")),
                {"data-per-capita": power["perCapita"] or ""},
            )
        )
        mine = fmt.quantity(power["perCapita"], 2)
        text = (
            fmt.t("electricity_mine_only", value=mine)
            if power["suppressed"] or power["peerAveragePerCapita"] is None
            else fmt.t(
                "electricity_mine",
                value=mine,
                average=fmt.quantity(power["peerAveragePerCapita"], 2),
            )
        )
        out.append(f"<p id='electricity-per-capita'>{e(text)}</p></div>")
    ranking = s["ranking"]
    if ranking is not None:
        out.append("<div>")
        out.append(f"<h2>{e(fmt.t('emissions_ranking', peers=_peers(fmt, ranking, dorm)))}</h2>")
        out.append(_track("ranking-chart", ranking, fmt, (fmt.t("highest"), fmt.t("lowest")), {}))
        if ranking["suppressed"]:
            out.append(f"<p class='muted'>{e(fmt.t('withheld'))}</p>")
        else:
            out.append(
                "<p id='peer-average'>"
                + e(
                    fmt.t(
                        "peer_average",
                        per_home=fmt.kg(ranking["peerAverageNet"]),
                        home=fmt.t("room" if dorm else "home"),
                        per_person=fmt.kg(ranking["peerAveragePerCapita"]),
                    )
                )
                + "</p>"
            )
        out.append("</div>")
    out.append("</div>")
    return "".join(out)


def _weekly_table(s: dict[str, Any], utilities: list[tuple[str, str]], fmt: i18n.Formatter) -> str:
    e = html.escape
    out = [f"<h2>{e(fmt.t('weekly_table'))}</h2><table id='usage'><tr><th>{e(fmt.t('week'))}</th>"]
    out += [
        f"<th>{e(fmt.utility(activity))}<br>({e(fmt.unit(unit))})</th>"
        for activity, unit in utilities
    ]
    out.append(f"<th>{e(fmt.t('net_column'))}<br>(kg)</th></tr>")
    for week in s["weeks"]:
        by_type = {u["activityType"]: u["quantity"] for u in week["usage"]}
        out.append(f"<tr><td>{e(fmt.day(date.fromisoformat(week['from'])))}</td>")
        out += [f"<td>{e(fmt.quantity(by_type.get(a, '0')))}</td>" for a, _ in utilities]
        out.append(f"<td>{e(fmt.number(week['net'] / 1000))}</td></tr>")
    out.append("</table>")
    return "".join(out)
