"""The printable statement page: ``GET /statements/{householdId}?period=...``.

Server-rendered HTML with an inline SVG chart, no scripts and no external assets, under a
strict Content-Security-Policy (styles only by nonce, nothing else loads).

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
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import jwt
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from carbongraph.authz import InvalidToken, Principal, TokenVerifier
from carbongraph.config import Settings
from carbongraph.cost import query_cost
from carbongraph.db import request_db
from carbongraph.engagement import keys
from carbongraph.errors import BadUserInput, CodedError
from carbongraph.resolvers.context import build_context
from carbongraph.schema.engagement import parse_period_param
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
      usage { activityType unit quantity emissions cleanEnergyOffset }
      gross cleanEnergyOffset net memberCount perCapita
      previousNet netChange netChangePercent creditsEarned
      ranking { peers rank percentile peerCount peerAverageNet peerAveragePerCapita
                suppressed suppressionReason }
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
        return _render(result.data["household"])

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


def _household_pk(global_id: str) -> int | None:
    try:
        return decode_global_id(global_id, ["Household"])[1]
    except CodedError:
        return None


def _not_found() -> Response:
    return _page(404, "Not found", "There is no such statement.")


# -- rendering ----------------------------------------------------------------------------------


def _kg(grams: int | None) -> str:
    if grams is None:
        return "–"
    return f"{grams / 1000:,.1f} kg"


def _csp(nonce: str) -> str:
    return (
        f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #1d2b24; margin: 2rem auto;
       max-width: 46rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; } h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
table { border-collapse: collapse; width: 100%; }
td, th { padding: .25rem .5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; } tr { border-bottom: 1px solid #dde5e0; }
.muted { color: #5c6e64; } .figures { display: flex; gap: 1.5rem; flex-wrap: wrap; }
.figures div { min-width: 8rem; } .figures b { display: block; font-size: 1.25rem; }
svg text { font: 11px system-ui, sans-serif; fill: #1d2b24; }
@media print { body { margin: 0; } }
"""


def _page(status: int, title: str, message: str, body: str | None = None) -> Response:
    nonce = secrets.token_urlsafe(16)
    content = (
        body if body is not None else f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
    )
    document = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style nonce='{nonce}'>{STYLE}</style></head>"
        f"<body>{content}</body></html>"
    )
    headers = {"Content-Security-Policy": _csp(nonce)}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="carbongraph"'
    return HTMLResponse(document, status_code=status, headers=headers)


def _weekly_chart(weeks: list[dict[str, Any]]) -> str:
    """Bars of net emissions per week, with the week's figures as data attributes."""
    width, height, left, bottom = 640, 220, 56, 40
    top = 16
    values = [w["net"] for w in weeks]
    high = max([*values, 1])
    low = min([*values, 0])
    span = high - low
    plot_h = height - top - bottom
    slot = (width - left - 8) / max(len(weeks), 1)

    def y(value: int) -> float:
        return top + (high - value) / span * plot_h

    parts = [
        f"<svg id='weekly-chart' role='img' viewBox='0 0 {width} {height}' width='100%' "
        "xmlns='http://www.w3.org/2000/svg' aria-labelledby='weekly-title'>",
        "<title id='weekly-title'>Net emissions per week</title>",
        f"<line x1='{left}' x2='{width - 8}' y1='{y(0):.1f}' y2='{y(0):.1f}' stroke='#9aa9a0'/>",
        f"<text x='{left - 6}' y='{y(high) + 4:.1f}' text-anchor='end'>"
        f"{html.escape(_kg(high))}</text>",
    ]
    for index, week in enumerate(weeks):
        x = left + index * slot + slot * 0.15
        bar_w = slot * 0.7
        y0, y1 = sorted((y(0), y(week["net"])))
        usage = " ".join(f"{u['activityType']}={u['quantity']}{u['unit']}" for u in week["usage"])
        parts.append(
            f"<rect class='week' x='{x:.1f}' y='{y0:.1f}' width='{bar_w:.1f}' "
            f"height='{max(y1 - y0, 0.5):.1f}' fill='#2f7d5b' data-from='{week['from']}' "
            f"data-to='{week['to']}' data-net='{week['net']}' data-gross='{week['gross']}' "
            f"data-offset='{week['cleanEnergyOffset']}' data-usage='{html.escape(usage)}'>"
            f"<title>{html.escape(week['from'])}: {html.escape(_kg(week['net']))}</title></rect>"
        )
        parts.append(
            f"<text x='{x + bar_w / 2:.1f}' y='{height - bottom + 16}' text-anchor='middle'>"
            f"{html.escape(week['from'][5:])}</text>"
        )
        parts.append(
            f"<text x='{x + bar_w / 2:.1f}' y='{y0 - 4:.1f}' text-anchor='middle'>"
            f"{html.escape(_kg(week['net']))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


COLOURS = ("#2f6f9f", "#3f9f8f", "#c08a2f", "#8f5fa8", "#a84f4f", "#6f7f3f")


def _usage_chart(weeks: list[dict[str, Any]], usage: list[dict[str, Any]]) -> str:
    """Use per week, one bar per utility; each utility on its own scale (units differ), with
    the quantity written above the bar and kept in data attributes."""
    width, height, left, bottom, top = 640, 230, 8, 56, 18
    plot_h = height - top - bottom
    kinds = [(u["activityType"], u["unit"]) for u in usage]
    highs = {
        kind: max(
            [float(x["quantity"]) for w in weeks for x in w["usage"] if x["activityType"] == kind]
            + [1e-9]
        )
        for kind, _ in kinds
    }
    slot = (width - left - 8) / max(len(weeks), 1)
    bar_w = slot * 0.8 / max(len(kinds), 1)
    parts = [
        f"<svg id='usage-chart' role='img' viewBox='0 0 {width} {height}' width='100%' "
        "xmlns='http://www.w3.org/2000/svg' aria-labelledby='usage-title'>",
        "<title id='usage-title'>Use per week, by utility</title>",
        f"<line x1='{left}' x2='{width - 8}' y1='{top + plot_h}' y2='{top + plot_h}' "
        "stroke='#9aa9a0'/>",
    ]
    for index, week in enumerate(weeks):
        by_kind = {x["activityType"]: x["quantity"] for x in week["usage"]}
        for n, (kind, unit) in enumerate(kinds):
            quantity = by_kind.get(kind, "0")
            bar_h = float(quantity) / highs[kind] * plot_h
            x = left + index * slot + slot * 0.1 + n * bar_w
            y = top + plot_h - bar_h
            parts.append(
                f"<rect class='use' x='{x:.1f}' y='{y:.1f}' width='{bar_w * 0.9:.1f}' "
                f"height='{max(bar_h, 0.5):.1f}' fill='{COLOURS[n % len(COLOURS)]}' "
                f"data-from='{week['from']}' data-activity='{html.escape(kind)}' "
                f"data-quantity='{html.escape(quantity)}' data-unit='{html.escape(unit)}'>"
                f"<title>{html.escape(kind)}: {html.escape(quantity)} {html.escape(unit)}"
                "</title></rect>"
                f"<text x='{x + bar_w * 0.45:.1f}' y='{y - 4:.1f}' text-anchor='middle'>"
                f"{html.escape(quantity)}</text>"
            )
        parts.append(
            f"<text x='{left + index * slot + slot / 2:.1f}' y='{top + plot_h + 16}' "
            f"text-anchor='middle'>{html.escape(week['from'][5:])}</text>"
        )
    for n, (kind, unit) in enumerate(kinds):
        x = left + n * 150
        parts.append(
            f"<rect x='{x}' y='{height - 18}' width='10' height='10' "
            f"fill='{COLOURS[n % len(COLOURS)]}'/><text x='{x + 14}' y='{height - 9}'>"
            f"{html.escape(kind.lower().replace('_', ' '))} ({html.escape(unit)})</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _ranking_chart(ranking: dict[str, Any]) -> str:
    """A track from the worst to the best of the peers, with this household's place on it."""
    width, height = 640, 70
    rank, count, percentile = ranking["rank"], ranking["peerCount"], ranking["percentile"]
    parts = [
        f"<svg id='ranking-chart' role='img' viewBox='0 0 {width} {height}' width='100%' "
        f"xmlns='http://www.w3.org/2000/svg' data-rank='{rank if rank is not None else ''}' "
        f"data-peer-count='{count}' "
        f"data-percentile='{percentile if percentile is not None else ''}' "
        "aria-labelledby='ranking-title'>",
        f"<title id='ranking-title'>Rank {rank} of {count}</title>",
        "<rect x='20' y='28' width='600' height='10' rx='5' fill='#dde5e0'/>",
        "<text x='20' y='58'>highest emissions</text>",
        "<text x='620' y='58' text-anchor='end'>lowest emissions</text>",
    ]
    if percentile is not None:
        x = 20 + 600 * percentile / 100
        parts.append(f"<circle cx='{x:.1f}' cy='33' r='9' fill='#2f7d5b'/>")
        parts.append(f"<text x='{x:.1f}' y='16' text-anchor='middle'>rank {rank} of {count}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _render(household: dict[str, Any]) -> Response:
    s = household["statement"]
    period = f"{s['period']['from']} – {s['period']['to']}"
    title = f"Statement, {period}"
    e = html.escape
    out = [
        f"<h1>{e(title)}</h1>",
        f"<p class='muted'>{e(household['dwellingType'].replace('_', ' ').lower())} in "
        f"{e(household['community']['name'])}; {s['memberCount']} people</p>",
    ]
    if not s["weeks"]:
        out.append("<p id='no-data'>No readings in this period.</p>")
        return _page(200, title, "", "".join(out))
    change = s["netChangePercent"]
    out.append(
        "<div class='figures'>"
        f"<div>Net emissions<b id='net' data-grams='{s['net']}'>{e(_kg(s['net']))}</b></div>"
        f"<div>Per person<b>{e(_kg(s['perCapita']))}</b></div>"
        f"<div>Clean energy<b>{e(_kg(s['cleanEnergyOffset']))}</b></div>"
        f"<div>Credits earned<b id='credits'>{s['creditsEarned']}</b></div>"
        f"<div>vs previous period<b id='change' data-grams='{s['netChange']}'>"
        + (
            "no data before"
            if s["previousNet"] == 0
            else f"{e(_kg(s['netChange']))}{'' if change is None else f' ({change:+.1f}%)'}"
        )
        + "</b></div></div>"
    )
    out.append("<h2>Use per week</h2>")
    out.append(_usage_chart(s["weeks"], s["usage"]))
    out.append("<h2>Net emissions per week</h2>")
    out.append(_weekly_chart(s["weeks"]))
    activities = [u["activityType"] for u in s["usage"]]
    out.append("<h2>Weekly use</h2><table id='usage'><tr><th>week</th>")
    out += [
        f"<th>{e(a.lower().replace('_', ' '))} ({e(u['unit'])})</th>"
        for a, u in zip(activities, s["usage"], strict=True)
    ]
    out.append("<th>net CO2e</th></tr>")
    for week in s["weeks"]:
        by_type = {u["activityType"]: u["quantity"] for u in week["usage"]}
        out.append(f"<tr><td>{e(week['from'])}</td>")
        out += [f"<td>{e(by_type.get(a, '0'))}</td>" for a in activities]
        out.append(f"<td>{e(_kg(week['net']))}</td></tr>")
    out.append("</table>")
    ranking = s["ranking"]
    if ranking is not None:
        out.append(f"<h2>Among the {e(ranking['peers'])}</h2>")
        out.append(_ranking_chart(ranking))
        if ranking["suppressed"]:
            out.append("<p class='muted'>Peer averages withheld: the peers are too few people.</p>")
        else:
            out.append(
                f"<p>Peer average: <span id='peer-average'>{e(_kg(ranking['peerAverageNet']))}"
                f"</span> per {e('room' if household['dwellingType'] == 'DORM_ROOM' else 'home')}, "
                f"{e(_kg(ranking['peerAveragePerCapita']))} per person.</p>"
            )
    return _page(200, title, "", "".join(out))
