"""The leak matrix: every viewer × every object × own / sibling / foreign place, through every
read path (``node``, ``nodes``, the typed root fields and lists, ``_entities``, nested lists,
personal and aggregate fields, actions, credits, rewards, campaigns, grants) and every mutation,
checked against the oracle in tests/leak_oracle.py (written from docs/authorization.md).

One world per backend (tests/leak_world.py), built once for this module. Mismatches are
collected and reported together; the number of checks is asserted so the matrix cannot shrink.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from graphql import GraphQLNonNull, GraphQLObjectType, GraphQLScalarType
from sqlalchemy.ext.asyncio import AsyncEngine

from carbongraph.app import create_app
from carbongraph.config import Settings
from carbongraph.schema.schema import schema
from tests.conftest import _wipe
from tests.leak_oracle import (
    AGGREGATE,
    FIELD_LEVELS,
    KINDS,
    ORGANISATIONS,
    PERSONAL,
    PERSONAL_FIELDS,
    PLACES,
    PUBLIC,
    VIEWERS,
    ViewerSpec,
    campaign_withheld,
    chain,
    edits_profile,
    expected_list,
    level,
    manages,
    manages_key,
    may_grant,
    minimum,
    part_withheld,
    people_in,
    read_refusal,
    records_for,
    relation,
    reports,
    seen,
    shows_figures,
    tenants_of,
    verifies_for,
    visible,
    withheld_cells,
)
from tests.leak_world import MISSING_PK, Client, LeakWorld, build_leak_world, photo
from tests.live_client import AsgiSocket, Closed
from tests.world import SINCE, gid

ENTITIES = list(PLACES)
MAX_ALIASES = 15  # docs/security.md
# The matrix's size when it was written (docs/security.md quotes it); it may only grow.
READ_CHECKS_AT_LEAST = 4299  # SQLite 4,300: one more history check (see hidden_by_rls)
MUTATION_CHECKS_AT_LEAST = 3949
SUBSCRIPTION_CHECKS_AT_LEAST = 110


@pytest.fixture(scope="module")
async def leak_world(
    migrated_engine: AsyncEngine, app_engine: AsyncEngine, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LeakWorld]:
    """Built once per backend. It does not use the ``engine`` fixture (which empties the
    database per test); it empties it once itself. The apps connect as the application role
    (on PostgreSQL: under row-level security); checksums read as the owner."""
    await _wipe(migrated_engine)
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("CARBONGRAPH_EVIDENCE_DIR", str(tmp_path_factory.mktemp("leak-evidence")))
    # Rate limiting is tested elsewhere; here it would only throttle the matrix.
    settings = Settings.from_env(
        database_url=migrated_engine.url.render_as_string(hide_password=False),
        rate_limit_per_minute=0,
    )
    # The same data behind a production app, as the gateway reaches it (with the secret).
    production = Settings.from_env(
        database_url=settings.database_url,
        env="production",
        jwt_secret=settings.effective_jwt_secret,
        gateway_secret="leak-matrix-gateway",
        rate_limit_per_minute=0,
    )
    development = httpx.ASGITransport(app=create_app(settings, engine=app_engine))
    gateway = httpx.ASGITransport(app=create_app(production, engine=app_engine))
    # Every cell of this world is small: with suppression off (k = 1) boards show their
    # entries to everyone, which is where pseudonyms (and names) can be checked.
    whole = httpx.ASGITransport(
        app=create_app(replace(settings, small_cell_k=1), engine=app_engine)
    )
    # With k = 2 the world has small cells and complements (check_complementary_suppression).
    straddled = httpx.ASGITransport(
        app=create_app(replace(settings, small_cell_k=COMPLEMENTARY_K), engine=app_engine)
    )
    async with (
        httpx.AsyncClient(transport=development, base_url="http://test") as http,
        httpx.AsyncClient(transport=gateway, base_url="http://test") as gateway_http,
        httpx.AsyncClient(transport=whole, base_url="http://test") as whole_http,
        httpx.AsyncClient(transport=straddled, base_url="http://test") as straddled_http,
    ):
        world = await build_leak_world(
            migrated_engine, Client(http, settings), datetime.now(UTC).date()
        )
        world.gateway = Client(
            gateway_http,
            production,
            {"X-Carbongraph-Gateway-Secret": "leak-matrix-gateway"},
            world.client.keys,
        )
        world.app_engine = app_engine
        world.unsuppressed = Client(whole_http, settings, keys=world.client.keys)
        world.complementary = Client(straddled_http, settings, keys=world.client.keys)
        yield world
    monkeypatch.undo()


class Matrix:
    """Counts checks and collects mismatches, so one run shows every leak at once."""

    def __init__(self) -> None:
        self.checks: Counter[str] = Counter()
        self.failures: list[str] = []

    def check(self, kind: str, ok: bool, message: str) -> None:
        self.checks[kind] += 1
        if not ok:
            self.failures.append(f"[{kind}] {message}")

    def report(self, title: str, grid: dict[tuple[str, ...], int], minimum: int) -> None:
        """``grid``: check kinds that together must count exactly the product of the tables
        (viewers × objects, viewers × mutation cases); ``minimum``: all checks together."""
        total = sum(self.checks.values())
        print(f"\n{title}: {total} checks ({dict(sorted(self.checks.items()))})")
        assert not self.failures, f"{len(self.failures)} mismatches:\n" + "\n".join(
            self.failures[:80]
        )
        for kinds, product in grid.items():
            counted = sum(self.checks[k] for k in kinds)
            assert counted == product, f"{kinds}: {counted} checks, expected {product}"
        assert total >= minimum, f"the matrix shrank: {total} < {minimum} checks"


def field_name(kind: str) -> str:
    return kind[0].lower() + kind[1:]


# How the single reads select each personal field of a node (statements: check_deep_fields).
PERSONAL_SELECTIONS = {
    "name": "name",
    "displayName": "displayName",
    "email": "email",
    "credits": "credits { balance }",
    "householdHistory": "householdHistory { validFrom }",
    "suggestions": "suggestions { code }",
}
# Fields above their node's minimum level probed by check_deep_fields.
DEEP_PROBES = {"footprint", "reductions", "inventory", "statement", "statementLink"}


def personal_fields(kind: str) -> list[str]:
    return [
        f
        for f, lvl in FIELD_LEVELS.get(kind, {}).items()
        if lvl == PERSONAL and f in PERSONAL_SELECTIONS
    ]


def selection(kind: str) -> str:
    fields = personal_fields(kind) or ["name"]
    return "id " + " ".join(PERSONAL_SELECTIONS[f] for f in fields)


def errors_at(body: dict[str, Any], *path: Any) -> list[dict[str, Any]]:
    return [e for e in body.get("errors", []) if tuple(e.get("path", ()))[: len(path)] == path]


def same_error(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two refusals answer alike: message and extensions (the path names the alias)."""
    return (a["message"], a.get("extensions")) == (b["message"], b.get("extensions"))


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def missing_id(kind: str) -> str:
    return gid(kind, MISSING_PK)


# -- reads ----------------------------------------------------------------------------------
async def check_single_reads(m: Matrix, w: LeakWorld, viewer: ViewerSpec, root: str) -> None:
    """``root`` is ``typed`` (enterprise(id), …) or ``node``: each entity's object or refusal,
    personal fields only at PERSONAL, and a refusal outside the tenants exactly like a
    missing ID of the same type (asked in the same request)."""
    per_request = MAX_ALIASES - len(KINDS)
    for batch in chunks(ENTITIES, per_request):
        fields = []
        for kind in KINDS:
            fields.append((f"missing{kind}", kind, missing_id(kind)))
        for n, name in enumerate(batch):
            fields.append((f"e{n}", PLACES[name].kind, w.gid(name)))
        parts = []
        for alias, kind, node_id in fields:
            if root == "typed":
                parts.append(
                    f'{alias}: {field_name(kind)}(id: "{node_id}") {{ {selection(kind)} }}'
                )
            else:
                parts.append(
                    f'{alias}: node(id: "{node_id}") {{ __typename id '
                    "... on Enterprise { name } ... on Community { name } "
                    "... on Individual { displayName email } }"
                )
        status, body = await w.client.post(viewer.subject, "{ " + " ".join(parts) + " }")
        assert status == 200, body
        data = body["data"]
        for kind in KINDS:
            missing = errors_at(body, f"missing{kind}")
            m.check(
                f"{root}:missing",
                data[f"missing{kind}"] is None
                and [e["extensions"]["code"] for e in missing] == ["NOT_FOUND"],
                f"{viewer.subject} {root} missing {kind}: {body}",
            )
        for n, name in enumerate(batch):
            alias, kind = f"e{n}", PLACES[name].kind
            where = f"{viewer.subject} {root}({name}, {relation(name)})"
            got, errors = data[alias], errors_at(body, alias)
            if visible(viewer, name):
                personal = level(viewer, name) >= PERSONAL
                m.check(
                    f"{root}:visible",
                    got is not None and got["id"] == w.gid(name),
                    f"{where}: expected the object, got {got} {errors}",
                )
                # (node() leaves Household.name out: String vs String! would conflict.)
                fields = (
                    personal_fields(kind)
                    if root == "typed"
                    else PERSONAL_FIELDS.get(kind, ())
                    if kind != "Household"
                    else ()
                )
                for field in fields:
                    value = None if got is None else got.get(field)
                    codes = [e["extensions"]["code"] for e in errors_at(body, alias, field)]
                    m.check(
                        f"{root}:personal-field",
                        (value is not None and codes == [])
                        if personal
                        else (value is None and codes == ["FORBIDDEN"]),
                        f"{where}.{field}: personal={personal}, got {value!r} {codes}",
                    )
                if kind in ORGANISATIONS:
                    m.check(
                        f"{root}:organisation-name",
                        got is not None and got["name"] == f"{kind} {name}" and errors == [],
                        f"{where}: {got} {errors}",
                    )
            else:
                code = read_refusal(viewer, name)
                m.check(
                    f"{root}:refused",
                    got is None and [e["extensions"]["code"] for e in errors] == [code],
                    f"{where}: expected null + {code}, got {got} {errors}",
                )
                if code == "NOT_FOUND" and errors:
                    m.check(
                        f"{root}:foreign-like-missing",
                        same_error(errors[0], errors_at(body, f"missing{kind}")[0]),
                        f"{where}: {errors[0]} differs from a missing ID",
                    )


async def check_nodes_and_entities(m: Matrix, w: LeakWorld, viewer: ViewerSpec) -> None:
    ids = [w.gid(n) for n in ENTITIES] + [missing_id(k) for k in KINDS]
    status, body = await w.client.post(
        viewer.subject, "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids}
    )
    assert status == 200 and "errors" not in body, body
    got = body["data"]["nodes"]
    for n, name in enumerate(ENTITIES):
        want = {"id": w.gid(name)} if visible(viewer, name) else None
        m.check("nodes", got[n] == want, f"{viewer.subject} nodes[{name}]: {got[n]} != {want}")
    m.check("nodes:missing", got[len(ENTITIES) :] == [None] * len(KINDS), f"{got}")

    # IDs of objects that are not nodes (actions, rewards, campaigns, grants): node() answers
    # by the ID's type alone, the same for one that exists and one that does not.
    others = [
        ("ActionRecord", w.approved["b1x.p"]),
        ("Reward", w.rewards["b1"]),
        ("Campaign", w.campaigns["b1"]),
        ("RoleGrant", w.revocable[(viewer.subject, "foreign")]),
    ]
    text = []
    for n, (type_name, real) in enumerate(others):
        text.append(f'real{n}: node(id: "{real}") {{ id }}')
        text.append(f'missing{n}: node(id: "{gid(type_name, MISSING_PK)}") {{ id }}')
    status, body = await w.client.post(viewer.subject, "{ " + " ".join(text) + " }")
    assert status == 200, body
    for n, (type_name, _) in enumerate(others):
        real, missing = errors_at(body, f"real{n}"), errors_at(body, f"missing{n}")
        m.check(
            "node:not-a-node",
            body["data"][f"real{n}"] is None
            and len(real) == len(missing) == 1
            and same_error(real[0], missing[0]),
            f"{viewer.subject} node({type_name}): {real} vs {missing}",
        )

    await check_entities(m, w, viewer, w.client, "_entities")


async def check_entities(
    m: Matrix, w: LeakWorld, viewer: ViewerSpec, client: Client, label: str
) -> None:
    """``_entities`` as the gateway calls it (in production: only with the shared secret)."""
    reps = [{"__typename": PLACES[n].kind, "id": w.gid(n)} for n in ENTITIES]
    reps += [{"__typename": k, "id": missing_id(k)} for k in KINDS]
    query = (
        "query($r: [_Any!]!) { _entities(representations: $r) { __typename "
        + " ".join(f"... on {k} {{ id }}" for k in KINDS)
        + " } }"
    )
    status, body = await client.post(viewer.subject, query, {"r": reps})
    assert status == 200, body
    got = body["data"]["_entities"]
    missing = {k: errors_at(body, "_entities", len(ENTITIES) + i) for i, k in enumerate(KINDS)}
    for n, name in enumerate(ENTITIES):
        kind, errors = PLACES[name].kind, errors_at(body, "_entities", n)
        where = f"{viewer.subject} {label}[{name}, {relation(name)}]"
        if visible(viewer, name):
            m.check(
                f"{label}:visible",
                got[n] == {"__typename": kind, "id": w.gid(name)} and not errors,
                f"{where}: {got[n]} {errors}",
            )
        else:
            code = read_refusal(viewer, name)
            m.check(
                f"{label}:refused",
                got[n] is None and [e["extensions"]["code"] for e in errors] == [code],
                f"{where}: expected null + {code}, got {got[n]} {errors}",
            )
            if code == "NOT_FOUND" and errors:
                m.check(
                    f"{label}:foreign-like-missing",
                    same_error(errors[0], missing[kind][0]),
                    f"{where}: {errors[0]} differs from {missing[kind][0]}",
                )


async def check_production_gateway(m: Matrix, w: LeakWorld, viewer: ViewerSpec) -> None:
    """Production: without the gateway's secret ``_entities`` is refused outright (403); with
    it, the same matrix as in development."""
    assert w.gateway is not None
    query = '{ _entities(representations: [{__typename: "Enterprise", id: "x"}]) { __typename } }'
    status, body = await w.gateway.post(viewer.subject, query, headers={})
    codes = [e["extensions"]["code"] for e in body.get("errors", [])]
    m.check(
        "gateway:no-secret",
        status == 403 and body.get("data") is None and codes == ["FORBIDDEN"],
        f"{viewer.subject}: {status} {body}",
    )
    await check_entities(m, w, viewer, w.gateway, "gateway:_entities")


async def check_deep_fields(m: Matrix, w: LeakWorld, viewer: ViewerSpec) -> None:
    """Aggregates (footprint, reductions) at AGGREGATE with small cells withheld from
    aggregate-level viewers, credits, household history and suggestions at PERSONAL,
    statements, GHG inventories (reporting roles), and the objects a visible node links to."""
    year = w.today.year
    parts: list[tuple[str, str, str]] = []  # (alias, place, probe)
    for name in ENTITIES:
        if not visible(viewer, name):
            continue
        kind = PLACES[name].kind
        parts.append((f"f_{len(parts)}", name, "footprint"))
        parts.append((f"r_{len(parts)}", name, "reductions"))
        if kind == "Individual":
            parts.append((f"c_{len(parts)}", name, "credits"))
            parts.append((f"h_{len(parts)}", name, "history"))
        if kind in ("Individual", "Household"):
            parts.append((f"s_{len(parts)}", name, "suggestions"))
            parts.append((f"t_{len(parts)}", name, "statement"))
        if kind == "Household":
            parts.append((f"k_{len(parts)}", name, "statementLink"))
        if kind in ORGANISATIONS:
            parts.append((f"i_{len(parts)}", name, "inventory"))
        if kind != "Enterprise":
            parts.append((f"l_{len(parts)}", name, "link"))
    probes = {
        "footprint": f"footprint(period: {{year: {year}}}) {{ suppressed gross memberCount }}",
        "reductions": f"reductions(period: {{year: {year}}}) {{ suppressed totalWithinScopes "
        "memberCount perCapita { total } }",
        "credits": "credits { balance ledger(first: 50) { id amount } }",
        "history": "householdHistory { validFrom household { id } }",
        "suggestions": "suggestions { code }",
        "statement": "statement { gross net memberCount weeks { net } days { net } "
        "ranking { suppressed peerAverageNet peerCommunity } "
        "electricityRanking { suppressed peerAveragePerCapita peerCommunity } }",
        "statementLink": "statementLink { url }",
        "inventory": f"inventory(year: {year}) {{ net memberCount csv }}",
        "link": {
            "Individual": "household { id }",
            "Household": "community { id }",
            "Community": "enterprise { id }",
        },
    }
    for batch in chunks(parts, MAX_ALIASES):
        text = []
        for alias, name, probe in batch:
            kind = PLACES[name].kind
            body_text = probes[probe][kind] if probe == "link" else probes[probe]
            text.append(f'{alias}: {field_name(kind)}(id: "{w.gid(name)}") {{ {body_text} }}')
        status, body = await w.client.post(viewer.subject, "{ " + " ".join(text) + " }")
        assert status == 200, body
        for alias, name, probe in batch:
            got, errors = body["data"][alias], errors_at(body, alias)
            codes = [e["extensions"]["code"] for e in errors]
            where = f"{viewer.subject} {name}.{probe} ({relation(name)})"
            have = level(viewer, name)
            if probe in ("footprint", "reductions"):
                # Non-null fields: a refusal nulls the whole object.
                if have < AGGREGATE:
                    m.check("aggregate", got is None and codes == ["FORBIDDEN"], f"{where}: {got}")
                    continue
                figures = shows_figures(viewer, name)
                value = (got or {}).get(probe, {})
                figure = value.get("gross" if probe == "footprint" else "totalWithinScopes")
                if figures is None:
                    ok = value.get("suppressed") is not None
                elif figures:
                    ok = value.get("suppressed") is False and figure is not None
                    ok = ok and value.get("memberCount") is not None
                else:
                    ok = value.get("suppressed") is True and figure is None
                    ok = ok and value.get("memberCount", None) is None
                    ok = ok and value.get("perCapita", None) is None
                m.check(
                    "aggregate:small-cell",
                    ok and not errors,
                    f"{where}: level {have}, figures {figures}, got {got} {codes}",
                )
            elif probe == "credits":
                credits = (got or {}).get("credits")
                ok = (
                    (credits is not None and not errors)
                    if have >= PERSONAL
                    else (got is not None and credits is None and codes == ["FORBIDDEN"])
                )
                m.check("credits", ok, f"{where}: level {have}, got {got} {codes}")
            elif probe == "suggestions":
                advice = (got or {}).get("suggestions")
                ok = (
                    (isinstance(advice, list) and not errors)
                    if have >= PERSONAL
                    else (got is not None and advice is None and codes == ["FORBIDDEN"])
                )
                m.check("suggestions", ok, f"{where}: level {have}, got {got} {codes}")
            elif probe in ("statement", "inventory"):
                value = (got or {}).get(probe)
                if probe == "statement" and PLACES[name].kind == "Individual":
                    allowed, figures = have >= PERSONAL, True  # personal data
                elif probe == "statement":
                    allowed, figures = have >= AGGREGATE, shows_figures(viewer, name)
                else:
                    allowed, figures = reports(viewer, name), shows_figures(viewer, name)
                if not allowed:
                    ok = got is not None and value is None and codes == ["FORBIDDEN"]
                elif figures is None:
                    ok = got is not None and (value is not None or codes == ["SUPPRESSED"])
                elif figures:
                    ok = value is not None and value["net"] is not None and not errors
                else:
                    ok = got is not None and value is None and codes == ["SUPPRESSED"]
                m.check(
                    f"{probe}", ok, f"{where}: allowed {allowed}, figures {figures}: {got} {codes}"
                )
                if probe == "statement" and value is not None:
                    # Peers are the homes (people) of the same community, fewer than k: their
                    # averages only for viewers with personal access to all of them.
                    home = name if PLACES[name].kind == "Household" else PLACES[name].parent
                    community = PLACES[home or ""].parent or ""
                    withheld = level(viewer, community) < PERSONAL
                    ranking = value["ranking"] or {}
                    # The same peers by electricity per person (everyone here has some).
                    usage = value["electricityRanking"] or {}
                    if not visible(viewer, home or ""):
                        # An employee living in another tenant: no ranking among homes the
                        # viewer may not see (it would name their community).
                        ok = value["ranking"] is None and value["electricityRanking"] is None
                    else:
                        ok = ranking.get("suppressed") is withheld
                        ok = ok and (ranking.get("peerAverageNet") is None) is withheld
                        ok = ok and usage.get("suppressed") is withheld
                        ok = ok and (usage.get("peerAveragePerCapita") is None) is withheld
                    m.check(
                        "statement:peers", ok, f"{where}: ranking {ranking}, withheld {withheld}"
                    )
            elif probe == "statementLink":
                link = (got or {}).get("statementLink")
                ok = (
                    (link is not None and not errors)
                    if have >= AGGREGATE
                    else (got is None or link is None) and codes == ["FORBIDDEN"]
                )
                m.check("statement-link", ok, f"{where}: level {have}, got {got} {codes}")
            elif probe == "history":
                if have < PERSONAL:
                    # The field is nullable: refused, it is null (and the person still there).
                    ok = (got or {}).get("householdHistory") is None and codes == ["FORBIDDEN"]
                    m.check("history", ok, f"{where}: {got}")
                    continue
                home = PLACES[name].parent or ""
                if hidden_by_rls(w, viewer, home):
                    ok = got == {"householdHistory": []} and not codes
                    m.check("history", ok, f"{where}: {got} {codes} (row-level security)")
                    continue
                if got is None or len(got["householdHistory"]) != 1:
                    m.check("history", False, f"{where}: {got} {codes}")
                    continue
                [period] = got["householdHistory"]
                want = {"id": w.gid(home)} if visible(viewer, home) else None
                m.check("history", period["household"] == want, f"{where}: {period} != {want}")
                if want is None:
                    m.check("history", codes == [read_refusal(viewer, home)], f"{where}: {codes}")
            else:
                linked = PLACES[name].parent or ""
                key = next(iter(got)) if got else None
                want = {"id": w.gid(linked)} if visible(viewer, linked) else None
                m.check(
                    "linked-object",
                    got is not None and got[key] == want,
                    f"{where}: {got} != {want}",
                )
                if want is None and hidden_by_rls(w, viewer, linked):
                    m.check("linked-object", codes == [], f"{where}: {codes} (row-level security)")
                elif want is None:
                    m.check(
                        "linked-object",
                        codes == [read_refusal(viewer, linked)],
                        f"{where}: {codes}",
                    )


def hidden_by_rls(w: LeakWorld, viewer: ViewerSpec, home: str) -> bool:
    """On PostgreSQL row-level security hides another tenant's household memberships from the
    request: the employer's viewers of an employee living in another tenant get no household
    history and a null household without an error, where SQLite (no row-level security)
    answers a period whose household is refused NOT_FOUND. Both withhold the household."""
    return (
        w.engine.dialect.name == "postgresql"
        and not viewer.is_admin
        and not visible(viewer, home)
        and not tenants_of(home) & viewer.tenants
    )


LIST_FIELDS = {
    "Enterprise": ("communities", "employees"),
    "Community": ("households", "members", "subCommunities"),
    "Household": ("members",),
}


async def check_lists(m: Matrix, w: LeakWorld, viewer: ViewerSpec) -> None:
    """Root lists and every connection of every visible node: exactly the oracle's set, and a
    ``totalCount`` that counts only those."""
    conn = "(first: 50) { totalCount edges { node { id } } }"
    status, body = await w.client.post(viewer.subject, f"{{ enterprises{conn} communities{conn} }}")
    assert status == 200 and "errors" not in body, body
    for field, kind in (("enterprises", "Enterprise"), ("communities", "Community")):
        want = {w.gid(n) for n in ENTITIES if PLACES[n].kind == kind and visible(viewer, n)}
        got = body["data"][field]
        ids = {e["node"]["id"] for e in got["edges"]}
        m.check(
            "root-list",
            ids == want and got["totalCount"] == len(want),
            f"{viewer.subject} {field}: {sorted(ids)} ({got['totalCount']}) != {sorted(want)}",
        )
    # communities(enterpriseId:): a foreign enterprise lists nothing, like a missing one.
    enterprises = [n for n in ENTITIES if PLACES[n].kind == "Enterprise"]
    text = [
        f'p{n}: communities(first: 50, enterpriseId: "{w.gid(e)}") {{ totalCount }}'
        for n, e in enumerate(enterprises)
    ]
    text.append(
        f'missing: communities(first: 50, enterpriseId: "{missing_id("Enterprise")}") '
        "{ totalCount }"
    )
    status, body = await w.client.post(viewer.subject, "{ " + " ".join(text) + " }")
    assert status == 200 and "errors" not in body, body
    m.check("list:communities-of", body["data"]["missing"] == {"totalCount": 0}, f"{body}")
    for n, e in enumerate(enterprises):
        want = len(expected_list(viewer, e, "communities"))
        m.check(
            "list:communities-of",
            body["data"][f"p{n}"] == {"totalCount": want},
            f"{viewer.subject} communities(enterpriseId: {e}): {body['data'][f'p{n}']} != {want}",
        )

    probes = [
        (name, field)
        for name in ENTITIES
        if PLACES[name].kind in LIST_FIELDS and visible(viewer, name)
        for field in LIST_FIELDS[PLACES[name].kind]
    ]
    for batch in chunks(probes, 10):  # 10 connections of 50: within the cost limit
        text = [
            f'p{n}: {field_name(PLACES[name].kind)}(id: "{w.gid(name)}") {{ {field}{conn} }}'
            for n, (name, field) in enumerate(batch)
        ]
        status, body = await w.client.post(viewer.subject, "{ " + " ".join(text) + " }")
        assert status == 200 and "errors" not in body, body
        for n, (name, field) in enumerate(batch):
            got = body["data"][f"p{n}"][field]
            ids = {w.place_of(e["node"]["id"]) for e in got["edges"]}
            want = expected_list(viewer, name, field)
            m.check(
                f"list:{field}",
                ids == want and got["totalCount"] == len(want),
                f"{viewer.subject} {name}.{field} ({relation(name)}): "
                f"{sorted(ids)} ({got['totalCount']}) != {sorted(want)}",
            )


async def check_actions_rewards_campaigns(m: Matrix, w: LeakWorld, viewer: ViewerSpec) -> None:
    """The review queue (managers of the community), rewards and campaigns (anyone who sees
    the owner; names on the board only with PERSONAL access to the owner), and ``me``."""
    communities = [n for n in ENTITIES if PLACES[n].kind == "Community"]
    for community in [*communities, None]:
        node_id = w.gid(community) if community else missing_id("Community")
        status, body = await w.client.post(
            viewer.subject,
            """query($c: ID!) { actionReviewQueue(communityId: $c) { totalCount
              edges { node { id individualId evidence { sha256 } } } } }""",
            {"c": node_id},
        )
        codes = [e["extensions"]["code"] for e in body.get("errors", [])]
        if community is None:
            missing_queue = body["errors"][0]
            continue
        where = f"{viewer.subject} actionReviewQueue({community}, {relation(community)})"
        if manages(viewer, community):
            want = {
                w.pending[p]
                for p in ENTITIES
                if PLACES[p].kind == "Individual"
                and community in (PLACES[PLACES[p].parent or ""].parent,)
            }
            queue = (body["data"] or {}).get("actionReviewQueue") or {}
            got = {e["node"]["id"] for e in queue.get("edges", [])}
            ok = got == want and queue.get("totalCount") == len(want) and not codes
            m.check("review-queue", ok, f"{where}: {got} != {want} {codes}")
        else:
            code = "FORBIDDEN" if visible(viewer, community) else read_refusal(viewer, community)
            m.check("review-queue", body["data"] is None and codes == [code], f"{where}: {body}")
    for community in communities:  # compare after the loop has seen the missing ID
        if not manages(viewer, community) and read_refusal(viewer, community) == "NOT_FOUND":
            status, body = await w.client.post(
                viewer.subject,
                "query($c: ID!) { actionReviewQueue(communityId: $c) { totalCount } }",
                {"c": w.gid(community)},
            )
            m.check(
                "review-queue:foreign-like-missing",
                same_error(body["errors"][0], missing_queue),
                f"{viewer.subject} {community}: {body['errors'][0]} vs {missing_queue}",
            )

    for owner in [*w.rewards, None]:
        owner_id = w.gid(owner) if owner else missing_id("Community")
        status, body = await w.client.post(
            viewer.subject,
            "query($o: ID!) { rewards(ownerId: $o) { totalCount edges { node { id } } } }",
            {"o": owner_id},
        )
        _status2, board = await w.client.post(
            viewer.subject,
            """query($o: ID!) { campaigns(ownerId: $o, first: 5) { totalCount edges { node { id
              progress { suppressed avoidedGrams participants }
              topParticipants(first: 50) { name individualId avoidedGrams suppressed } } } } }""",
            {"o": owner_id},
        )
        if owner is None:
            missing_rewards, missing_campaigns = body["errors"][0], board["errors"][0]
            continue
        where = f"{viewer.subject} rewards/campaigns({owner}, {relation(owner)})"
        if visible(viewer, owner):
            m.check(
                "rewards",
                body.get("errors") is None
                and body["data"]["rewards"]["totalCount"] == 1
                and [e["node"]["id"] for e in body["data"]["rewards"]["edges"]]
                == [w.rewards[owner]],
                f"{where}: {body}",
            )
            m.check(
                "campaigns:total-count",
                board["data"]["campaigns"]["totalCount"] == 1,
                f"{where}: {board}",
            )
            [campaign] = [e["node"] for e in board["data"]["campaigns"]["edges"]]
            standings = campaign["topParticipants"]
            m.check("campaigns", campaign["id"] == w.campaigns[owner], f"{where}: {campaign}")
            personal = level(viewer, owner) >= PERSONAL
            people = w.participants[owner]
            real_names = set(w.names.values())
            if personal:
                ok = {s["individualId"] for s in standings} == {w.gid(p) for p in people} and {
                    s["name"] for s in standings
                } == {w.names[p] for p in people}
            else:
                ok = len(standings) == len(people) and all(
                    s["individualId"] is None and s["name"] not in real_names for s in standings
                )
            m.check("campaign-board", ok, f"{where}: personal={personal} {standings}")
            # docs/privacy.md: every campaign here has fewer than k participants; outside the
            # owner's management only the viewer's own standing shows its figure.
            progress = campaign["progress"]
            if personal:
                ok = progress["suppressed"] is False and progress["avoidedGrams"] is not None
                ok = ok and all(s["avoidedGrams"] is not None for s in standings)
            else:
                mine = viewer.resident_of in people
                shown = [s for s in standings if not s["suppressed"]]
                ok = progress == {"suppressed": True, "avoidedGrams": None, "participants": None}
                ok = ok and len(shown) == (1 if mine else 0)
                ok = ok and all(s["avoidedGrams"] is None for s in standings if s["suppressed"])
            m.check("campaign:small-cell", ok, f"{where}: personal={personal} {campaign}")
        else:
            code = read_refusal(viewer, owner)
            for kind, answer in (("rewards", body), ("campaigns", board)):
                codes = [e["extensions"]["code"] for e in answer.get("errors", [])]
                m.check(kind, answer["data"] is None and codes == [code], f"{where}: {answer}")
    for owner in w.rewards:
        if not visible(viewer, owner) and read_refusal(viewer, owner) == "NOT_FOUND":
            for query, missing in (
                ("query($o: ID!) { rewards(ownerId: $o) { totalCount } }", missing_rewards),
                ("query($o: ID!) { campaigns(ownerId: $o) { totalCount } }", missing_campaigns),
            ):
                status, body = await w.client.post(viewer.subject, query, {"o": w.gid(owner)})
                m.check(
                    "owner:foreign-like-missing",
                    same_error(body["errors"][0], missing),
                    f"{viewer.subject} {owner}: {body['errors'][0]} vs {missing}",
                )

    # Reference data belongs to no tenant: every viewer reads the same library and catalog.
    status, body = await w.client.post(
        viewer.subject, "{ emissionFactors { id } actionTypes { code } activityTypes { code } }"
    )
    reference = await w.client.post(
        "admin", "{ emissionFactors { id } actionTypes { code } activityTypes { code } }"
    )
    m.check(
        "reference-data",
        status == 200 and body == reference[1] and len(body["data"]["emissionFactors"]) > 0,
        f"{viewer.subject} reference data differs from the admin's",
    )

    status, body = await w.client.post(
        viewer.subject, "{ me { subject grants { role nodeId } individual { id } } }"
    )
    me = body["data"]["me"]
    # An API key's scopes are not role grants: they are listed on the key (apiKeys).
    want = sorted(
        (role, w.gid(anchor) if anchor else None)
        for role, anchor in viewer.grants
        if not viewer.api_key
    )
    got = sorted((g["role"], g["nodeId"]) for g in me["grants"])
    resident = viewer.resident_of
    m.check(
        "me",
        me["subject"] == w.actor(viewer.subject)
        and got == want
        and me["individual"] == ({"id": w.gid(resident)} if resident else None),
        f"{viewer.subject} me: {me}",
    )


async def check_keys_and_audit(m: Matrix, w: LeakWorld, viewer: ViewerSpec) -> None:
    """API keys: ``node``/``nodes`` and ``apiKeys`` show a key exactly to the managers of every
    scope's node, anyone else gets what a missing ID gets; never the secret. The audit log:
    platform admins only (``auditEvents`` FORBIDDEN, an ``AuditEvent`` ID like a missing one)."""
    keys = sorted(w.key_scope)
    missing_key, missing_event = gid("ApiKey", MISSING_PK), gid("AuditEvent", MISSING_PK)
    for batch in chunks(keys, MAX_ALIASES - 2):
        text = [f'missing: node(id: "{missing_key}") {{ id }}']
        text += [f'k{n}: node(id: "{k}") {{ id }}' for n, k in enumerate(batch)]
        status, body = await w.client.post(viewer.subject, "{ " + " ".join(text) + " }")
        assert status == 200, body
        [missing] = errors_at(body, "missing")
        for n, key in enumerate(batch):
            got, errors = body["data"][f"k{n}"], errors_at(body, f"k{n}")
            where = f"{viewer.subject} node(ApiKey on {w.key_scope[key]})"
            if manages_key(viewer, [w.key_scope[key]]):
                m.check("api-key:visible", got == {"id": key} and not errors, f"{where}: {got}")
            else:
                m.check(
                    "api-key:refused",
                    got is None and len(errors) == 1 and same_error(errors[0], missing),
                    f"{where}: {got} {errors} vs {missing}",
                )
    ids = [*keys, w.audit_event, missing_key, missing_event]
    status, body = await w.client.post(
        viewer.subject, "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids}
    )
    assert status == 200 and "errors" not in body, body
    got = body["data"]["nodes"]
    want = [{"id": k} if manages_key(viewer, [w.key_scope[k]]) else None for k in keys]
    want += [{"id": w.audit_event} if viewer.is_admin else None, None, None]
    m.check("api-key:nodes", got == want, f"{viewer.subject} nodes: {got} != {want}")

    for inactive in ("false", "true"):
        status, body = await w.client.post(
            viewer.subject,
            f"{{ apiKeys(first: 100, includeInactive: {inactive}) {{ totalCount "
            "edges { node { id scopes { role nodeId } } } } }",
        )
        assert status == 200 and "errors" not in body, body
        listed = body["data"]["apiKeys"]
        revoked = {k for (_v, _r, state), k in w.keys.items() if state == "revoked"}
        expected = {
            k
            for k in keys
            if manages_key(viewer, [w.key_scope[k]]) and (inactive == "true" or k not in revoked)
        }
        ids_listed = {e["node"]["id"] for e in listed["edges"]}
        m.check(
            "api-key:list",
            ids_listed == expected and listed["totalCount"] == len(expected),
            f"{viewer.subject} apiKeys(includeInactive: {inactive}): {len(ids_listed)} "
            f"({listed['totalCount']}) != {len(expected)}",
        )

    status, body = await w.client.post(
        viewer.subject,
        f"{{ log: auditEvents(first: 5) {{ edges {{ node {{ id actor }} }} }} "
        f'event: node(id: "{w.audit_event}") {{ id }} missing: node(id: "{missing_event}") '
        "{ id } }",
    )
    codes = [e["extensions"]["code"] for e in errors_at(body, "log")]
    where = f"{viewer.subject} auditEvents"
    if viewer.is_admin:
        ok = len(body["data"]["log"]["edges"]) == 5 and body["data"]["event"] is not None
        m.check("audit:read", ok and errors_at(body, "log") == [], f"{where}: {body}")
    else:
        [event], [missing] = errors_at(body, "event"), errors_at(body, "missing")
        m.check(
            "audit:refused",
            body["data"] is None or (body["data"].get("log") is None and codes == ["FORBIDDEN"]),
            f"{where}: {body}",
        )
        m.check("audit:node-like-missing", same_error(event, missing), f"{where}: {body}")


async def check_reports_and_boards(m: Matrix, w: LeakWorld, viewer: ViewerSpec) -> None:
    """``ghgInventory`` for every organisation (refused like a missing ID outside the tenants),
    and the leaderboards of every visible organisation: shown to anyone who sees it; names,
    IDs and values only with PERSONAL access over it, a board under k people withheld whole
    from everyone else."""
    year = w.today.year
    orgs = [n for n in ENTITIES if PLACES[n].kind in ORGANISATIONS]
    text = [f'missing: ghgInventory(nodeId: "{missing_id("Community")}", year: {year}) {{ net }}']
    text += [
        f'g{n}: ghgInventory(nodeId: "{w.gid(o)}", year: {year}) {{ net }}'
        for n, o in enumerate(orgs)
    ]
    status, body = await w.client.post(viewer.subject, "{ " + " ".join(text) + " }")
    assert status == 200, body
    [missing] = errors_at(body, "missing")
    for n, org in enumerate(orgs):
        got, errors = body["data"][f"g{n}"], errors_at(body, f"g{n}")
        codes = [e["extensions"]["code"] for e in errors]
        where = f"{viewer.subject} ghgInventory({org}, {relation(org)})"
        if not visible(viewer, org):
            code = read_refusal(viewer, org)
            ok = got is None and codes == [code]
            if code == "NOT_FOUND":
                ok = ok and same_error(errors[0], missing)
        elif not reports(viewer, org):
            ok = got is None and codes == ["FORBIDDEN"]
        elif shows_figures(viewer, org):
            ok = got is not None and not errors
        else:
            ok = got is None and codes == ["SUPPRESSED"]
        m.check("ghg-inventory", ok, f"{where}: {got} {codes}")

    # The platform's totals: platform admins only (FORBIDDEN for everyone else; the fields
    # are non-null, so each is asked alone).
    for query in (
        f"{{ platformFootprint(period: {{year: {year}}}) {{ gross }} }}",
        f"{{ platformReductions(period: {{year: {year}}}) {{ totalWithinScopes }} }}",
    ):
        status, body = await w.client.post(viewer.subject, query)
        codes = [e["extensions"]["code"] for e in body.get("errors", [])]
        if viewer.is_admin:
            ok = body.get("data") is not None and not codes
        else:
            ok = body.get("data") is None and codes == ["FORBIDDEN"]
        m.check("platform-totals", ok, f"{viewer.subject} {query}: {body}")

    entry = "rank name pseudonymous memberId value memberCount suppressed"
    board = f"{{ totalCount population suppressed edges {{ node {{ {entry} }} }} }}"
    probes: list[tuple[str, str]] = []
    for org in orgs:
        if PLACES[org].kind == "Enterprise":
            probes.append((org, f"leaderboard(metric: REDUCTIONS) {board}"))
        else:
            probes.append((org, f"leaderboard(metric: REDUCTIONS) {board}"))
            probes.append((org, f"leaderboard(metric: REDUCTIONS, members: INDIVIDUALS) {board}"))
    text = [
        f'b{n}: {field_name(PLACES[o].kind)}(id: "{w.gid(o)}") {{ {q} }}'
        for n, (o, q) in enumerate(probes)
        if visible(viewer, o)
    ]
    status, body = await w.client.post(viewer.subject, "{ " + " ".join(text) + " }")
    assert status == 200 and "errors" not in body, body
    for n, (org, query) in enumerate(probes):
        if not visible(viewer, org):
            continue
        got = body["data"][f"b{n}"]["leaderboard"]
        members = "people" if "INDIVIDUALS" in query else "members"
        where = f"{viewer.subject} {org}.leaderboard({members}, {relation(org)})"
        if PLACES[org].kind == "Enterprise":
            expected = {w.gid(c) for c in ENTITIES if PLACES[c].parent == org}
        elif members == "people":
            expected = {
                w.gid(p)
                for p in ENTITIES
                if PLACES[p].kind == "Individual" and org in chain(PLACES[p].parent or "")
            }
        else:
            expected = {w.gid(h) for h in ENTITIES if PLACES[h].parent == org}
        edges = [e["node"] for e in got["edges"]]
        if level(viewer, org) >= PERSONAL:
            names = {w.gid(p): w.names.get(p, f"{PLACES[p].kind} {p}") for p in ENTITIES}
            names.update({w.gid(h): f"Home {h}" for h in ENTITIES if PLACES[h].kind == "Household"})
            ok = (
                got["suppressed"] is False
                and len(edges) > 0
                and all(
                    e["memberId"] in expected
                    and e["name"] == names[e["memberId"]]
                    and not e["pseudonymous"]
                    and not e["suppressed"]
                    and e["value"] is not None
                    for e in edges
                )
            )
        else:
            # Every board of this world covers fewer than k people.
            ok = got == {"totalCount": 0, "population": None, "suppressed": True, "edges": []}
        m.check("leaderboard", ok, f"{where}: {got}")

    # With k = 1 nothing is withheld: each entry's name and ID only with PERSONAL access to
    # the household or person (PUBLIC for a community), a pseudonym otherwise.
    assert w.unsuppressed is not None
    status, body = await w.unsuppressed.post(viewer.subject, "{ " + " ".join(text) + " }")
    assert status == 200 and "errors" not in body, body
    real_names = {w.gid(p): w.names[p] for p in w.names}
    real_names |= {w.gid(n): f"{PLACES[n].kind} {n}" for n in orgs}
    real_names |= {w.gid(h): f"Home {h}" for h in ENTITIES if PLACES[h].kind == "Household"}
    for n, (org, query) in enumerate(probes):
        if not visible(viewer, org):
            continue
        got = body["data"][f"b{n}"]["leaderboard"]
        members = [
            p
            for p in ENTITIES
            if (PLACES[p].kind == "Individual" and "INDIVIDUALS" in query and org in chain(p))
            or (
                (PLACES[p].kind != "Individual" and "INDIVIDUALS" not in query)
                and PLACES[p].parent == org
            )
        ]
        where = f"{viewer.subject} {org}.leaderboard({query.split(')')[0]}) k=1"
        named = set()
        for p in members:
            if PLACES[p].kind == "Community":
                named_p = level(viewer, p) >= PUBLIC
            elif PLACES[p].kind == "Individual":
                named_p = level(viewer, p, via=[PLACES[p].parent or ""]) >= PERSONAL
            else:
                named_p = level(viewer, p) >= PERSONAL
            if named_p:
                named.add(w.gid(p))
        edges = [e["node"] for e in got["edges"]]
        shown = {e["memberId"] for e in edges if not e["pseudonymous"]}
        ok = (
            not got["suppressed"]
            and len(edges) == len(members)
            and shown == named
            and all(
                (e["memberId"] is None and e["name"] not in real_names.values())
                if e["pseudonymous"]
                else e["name"] == real_names[e["memberId"]]
                for e in edges
            )
            and all(e["value"] is not None for e in edges)
        )
        m.check("leaderboard:pseudonyms", ok, f"{where}: named {sorted(named)}: {edges}")


COMPLEMENTARY_K = 2  # the world's cells straddle it: small ones and their complements


async def check_complementary_suppression(m: Matrix, w: LeakWorld, viewer: ViewerSpec) -> None:
    """docs/privacy.md with k = 2, where a community of 3 is the complement of one of 1: every
    figure about people — footprints, a household statement's peers, whole boards and their
    entries, campaign progress — is withheld exactly where the oracle's restated rules say,
    with their reason, from every viewer below PERSONAL on it."""
    assert w.complementary is not None
    k = COMPLEMENTARY_K
    cells = withheld_cells(k)
    year = w.today.year
    organisations = [n for n in ENTITIES if PLACES[n].kind in ORGANISATIONS]
    homes = [n for n in ENTITIES if PLACES[n].kind == "Household"]
    probes: list[tuple[str, str, str]] = []
    for name in organisations + homes:
        if level(viewer, name) >= AGGREGATE:
            probes.append((name, "footprint", f"footprint(period: {{year: {year}}}) {{ {{F}} }}"))
    for home in homes:
        if level(viewer, home) >= AGGREGATE:
            probes.append((home, "peers", "statement { ranking { peerAverageNet {F} } }"))
    board = "{ population {F} edges { node { value {F} } } }"
    for org in organisations:
        if visible(viewer, org):
            probes.append((org, "board", f"leaderboard(metric: REDUCTIONS) {board}"))
    for owner in w.campaigns:
        if visible(viewer, owner):
            progress = "edges { node { progress { {F} } } }"
            probes.append((owner, "campaign", f"campaigns(ownerId: $o) {{ {progress} }}"))
    fields = "suppressed suppressionReason"
    for batch in chunks(probes, MAX_ALIASES):
        parts = []
        for n, (name, probe, text) in enumerate(batch):
            text = text.replace("{F}", fields)
            if probe == "campaign":
                parts.append(f"q{n}: {text.replace('$o', chr(34) + w.gid(name) + chr(34))}")
            else:
                kind = PLACES[name].kind
                parts.append(f'q{n}: {field_name(kind)}(id: "{w.gid(name)}") {{ {text} }}')
        status, body = await w.complementary.post(viewer.subject, "{ " + " ".join(parts) + " }")
        assert status == 200, body
        for n, (name, probe, _text) in enumerate(batch):
            got = body["data"][f"q{n}"] if body.get("data") else None
            codes = [e["extensions"]["code"] for e in errors_at(body, f"q{n}")]
            personal = level(viewer, name) >= PERSONAL
            where = f"{viewer.subject} {name}.{probe} ({relation(name)}) k={k}"
            if probe == "footprint":
                expected = None if personal else cells[name]
                value = (got or {}).get("footprint") or {}
                ok = value.get("suppressionReason") == expected and not codes
                ok = ok and value.get("suppressed") is (expected is not None)
            elif probe == "peers":
                community = PLACES[name].parent or ""
                if not personal and cells[name]:
                    # The household's own figures are withheld: its statement is refused whole.
                    ok, expected = (got or {}).get("statement") is None, "SUPPRESSED"
                    ok = ok and codes == ["SUPPRESSED"]
                else:
                    # Peers: every home of the community (all have data), people_in of it.
                    exempt = level(viewer, community) >= PERSONAL
                    expected = (
                        None if exempt else part_withheld(community, people_in(community), k)[1]
                    )
                    ranking = ((got or {}).get("statement") or {}).get("ranking") or {}
                    ok = ranking.get("suppressionReason") == expected and not codes
                    ok = ok and (ranking.get("peerAverageNet") is None) is (expected is not None)
            elif probe == "board":
                value = (got or {}).get("leaderboard") or {}
                whole, figures = (
                    (None, None) if personal else part_withheld(name, people_in(name), k)
                )
                expected = whole
                members = [
                    c
                    for c in ENTITIES
                    if PLACES[c].parent == name and PLACES[c].kind != "Individual"
                ]
                entries = sorted(
                    str(None if level(viewer, c) >= PERSONAL else cells[c]) for c in members
                )
                edges = [e["node"] for e in value.get("edges", [])]
                ok = value.get("suppressionReason") == whole and not codes
                ok = ok and (value.get("population") is None) is (figures is not None)
                if whole is None:
                    ok = ok and sorted(str(e["suppressionReason"]) for e in edges) == entries
                    ok = ok and all((e["value"] is None) is e["suppressed"] for e in edges)
                else:
                    ok = ok and edges == []
                expected = (whole, figures, entries)
            else:
                expected = None if personal else campaign_withheld(name, list(w.campaigns), k)
                # The root field's connection, under its alias.
                [campaign] = [e["node"] for e in (got or {}).get("edges", [])] or [{}]
                progress = campaign.get("progress") or {}
                ok = progress.get("suppressionReason") == expected and not codes
            m.check(
                f"complementary:{probe}", ok, f"{where}: expected {expected}, got {got} {codes}"
            )


def _page_text(response: httpx.Response) -> str:
    return re.sub(r"nonce='[^']*'", "nonce", response.text)


async def check_statement_pages(m: Matrix, w: LeakWorld, viewer: ViewerSpec) -> None:
    """``/statements/{id}`` authorizes as ``Household.statement``: 200 with figures the viewer
    may see, 403 when withheld or in the tenant but not readable, and outside the tenants the
    very page a missing household gets (404)."""

    async def page(node_id: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {w.client.bearer(viewer.subject)}"}
        return await w.client.http.get(f"/statements/{node_id}", headers=headers)

    if viewer.api_key:
        # The page authenticates JWTs and statement links only: a key gets the 401 page.
        for node_id in [missing_id("Household"), w.gid("a1x")]:
            answer = await page(node_id)
            m.check("statement-page", answer.status_code == 401, f"{viewer.subject}: {answer}")
        return
    missing = await page(missing_id("Household"))
    m.check("statement-page", missing.status_code == 404, f"{viewer.subject}: {missing}")
    for home in [n for n in ENTITIES if PLACES[n].kind == "Household"]:
        answer = await page(w.gid(home))
        where = f"{viewer.subject} /statements/{home} ({relation(home)})"
        if not visible(viewer, home):
            code = read_refusal(viewer, home)
            ok = answer.status_code == (403 if code == "FORBIDDEN" else 404)
            if code == "NOT_FOUND":  # the same page, but for its fresh CSP nonce
                ok = ok and _page_text(answer) == _page_text(missing)
        else:
            ok = answer.status_code == (200 if shows_figures(viewer, home) else 403)
        m.check("statement-page", ok, f"{where}: {answer.status_code}")


async def check_anonymous_reads(m: Matrix, w: LeakWorld) -> None:
    """Without a token every read is HTTP 401 UNAUTHENTICATED, and says nothing else."""
    for name in ENTITIES:
        kind = PLACES[name].kind
        for query in (
            f'{{ {field_name(kind)}(id: "{w.gid(name)}") {{ id }} }}',
            f'{{ node(id: "{w.gid(name)}") {{ id }} }}',
            f'{{ nodes(ids: ["{w.gid(name)}"]) {{ id }} }}',
            f'{{ _entities(representations: [{{__typename: "{kind}", id: "{w.gid(name)}"}}]) '
            f"{{ __typename }} }}",
        ):
            status, body = await w.client.post(None, query)
            codes = [e["extensions"]["code"] for e in body.get("errors", [])]
            m.check(
                "anonymous-read",
                status == 401 and body.get("data") is None and codes == ["UNAUTHENTICATED"],
                f"anonymous {query}: {status} {body}",
            )


# -- every object type with an ID is covered ------------------------------------------------
# How the matrix reaches each object type that has an ID. A new type makes
# test_every_identified_type_is_in_the_matrix fail until it is added here (and checked).
COVERAGE = {
    "Enterprise": "node, nodes, enterprise, enterprises, _entities, lists, footprint",
    "Community": "node, nodes, community, communities, _entities, lists, footprint",
    "Household": "node, nodes, household, _entities, lists, name, footprint",
    "Individual": "node, nodes, individual, _entities, lists, personal fields, footprint",
    "ActionRecord": "actionReviewQueue; recordAction/reviewAction/reverseAction payloads",
    "EvidenceInfo": "actionReviewQueue evidence; uploadEvidence",
    "CreditEntry": "Individual.credits.ledger",
    "RewardInfo": "rewards; createReward; redeemReward",
    "Redemption": "redeemReward",
    "CampaignInfo": "campaigns (with the board); createCampaign",
    "RoleGrant": "me.grants; grantRole; revokeRole",
    "ActivityRecord": "recordActivity payloads, replays included",
    "EmissionFactor": "emissionFactors: the public factor library, the same for every viewer",
    "ApiKey": "node, nodes, apiKeys (active and inactive); createApiKey/rotateApiKey/revokeApiKey",
    "AuditEvent": "node, nodes, auditEvents; one event per mutation in the mutation matrix",
}


def _identified_types() -> set[str]:
    out = set()
    for name, type_ in schema._schema.type_map.items():
        if name.startswith("_") or not isinstance(type_, GraphQLObjectType):
            continue
        id_field = type_.fields.get("id")
        if id_field is None:
            continue
        inner = id_field.type.of_type if isinstance(id_field.type, GraphQLNonNull) else None
        if isinstance(inner, GraphQLScalarType) and inner.name == "ID":
            out.add(name)
    return out


def test_every_identified_type_is_in_the_matrix() -> None:
    assert _identified_types() == set(COVERAGE)
    nodes = {t.name for t in schema._schema.get_possible_types(schema._schema.type_map["Node"])}
    entities = {t.name for t in schema._schema.type_map["_Entity"].types}
    assert entities == set(KINDS)
    assert nodes == set(KINDS) | {"ApiKey", "AuditEvent"}
    assert {PLACES[n].kind for n in ENTITIES} == set(KINDS)


# How the matrix reaches each root field of Query and Subscription; a new one fails
# test_every_root_field_is_in_the_matrix until it is checked and named here.
ROOT_FIELDS = {
    "_entities": "every node type, development and production (with and without the secret)",
    "_service": "the SDL: no data",
    "me": "check_actions_rewards_campaigns",
    "node": "check_single_reads, check_nodes_and_entities, check_keys_and_audit",
    "nodes": "check_nodes_and_entities, check_keys_and_audit",
    "enterprise": "check_single_reads and every probe on enterprises",
    "community": "check_single_reads and every probe on communities",
    "household": "check_single_reads and every probe on households",
    "individual": "check_single_reads and every probe on people",
    "enterprises": "check_lists",
    "communities": "check_lists (also with enterpriseId)",
    "platformFootprint": "check_reports_and_boards",
    "platformReductions": "check_reports_and_boards",
    "ghgInventory": "check_reports_and_boards",
    "actionTypes": "reference data, the same for every viewer",
    "activityTypes": "reference data, the same for every viewer",
    "emissionFactors": "reference data, the same for every viewer",
    "actionReviewQueue": "check_actions_rewards_campaigns",
    "campaigns": "check_actions_rewards_campaigns",
    "rewards": "check_actions_rewards_campaigns",
    "apiKeys": "check_keys_and_audit",
    "auditEvents": "check_keys_and_audit",
    "creditsChanged": "test_subscription_leak_matrix",
    "leaderboardChanged": "test_subscription_leak_matrix",
}


def test_every_node_field_is_classified_by_the_oracle() -> None:
    """A new field of a node type fails here until the oracle (tests/leak_oracle.py, restated
    from docs/authorization.md) says which level it needs, and one above the node's own
    minimum until the matrix probes it."""
    for kind in KINDS:
        gql_type = schema._schema.type_map[kind]
        assert isinstance(gql_type, GraphQLObjectType)
        assert set(gql_type.fields) == set(FIELD_LEVELS[kind]), kind
        above = {f for f, lvl in FIELD_LEVELS[kind].items() if lvl > minimum(kind)}
        assert above <= set(PERSONAL_SELECTIONS) | DEEP_PROBES, (kind, above)


def test_every_root_field_is_in_the_matrix() -> None:
    query = set(schema._schema.query_type.fields)  # type: ignore[union-attr]
    subscription = set(schema._schema.subscription_type.fields)  # type: ignore[union-attr]
    assert query | subscription == set(ROOT_FIELDS)


def test_every_mutation_is_in_the_matrix() -> None:
    """A new mutation fails here until the matrix has a case for it."""
    mutations = set(schema._schema.mutation_type.fields)  # type: ignore[union-attr]
    # The cases only touch the world when they run.
    assert {c.field for c in mutation_cases(None)} == mutations  # type: ignore[arg-type]


async def test_read_leak_matrix(leak_world: LeakWorld) -> None:
    m = Matrix()
    for viewer in VIEWERS:
        await check_single_reads(m, leak_world, viewer, "typed")
        await check_single_reads(m, leak_world, viewer, "node")
        await check_nodes_and_entities(m, leak_world, viewer)
        await check_production_gateway(m, leak_world, viewer)
        await check_deep_fields(m, leak_world, viewer)
        await check_lists(m, leak_world, viewer)
        await check_actions_rewards_campaigns(m, leak_world, viewer)
        await check_keys_and_audit(m, leak_world, viewer)
        await check_reports_and_boards(m, leak_world, viewer)
        await check_statement_pages(m, leak_world, viewer)
        await check_complementary_suppression(m, leak_world, viewer)
    await check_anonymous_reads(m, leak_world)
    grid = len(VIEWERS) * len(ENTITIES)  # every viewer × every object, per read path
    m.report(
        f"read leak matrix ({leak_world.engine.dialect.name})",
        {
            ("typed:visible", "typed:refused"): grid,
            ("node:visible", "node:refused"): grid,
            ("nodes",): grid,
            ("_entities:visible", "_entities:refused"): grid,
            ("gateway:_entities:visible", "gateway:_entities:refused"): grid,
            ("anonymous-read",): 4 * len(ENTITIES),
            ("api-key:visible", "api-key:refused"): len(VIEWERS) * len(leak_world.key_scope),
            ("ghg-inventory",): len(VIEWERS)
            * len([n for n in ENTITIES if PLACES[n].kind in ORGANISATIONS]),
        },
        READ_CHECKS_AT_LEAST,
    )


# -- mutations ------------------------------------------------------------------------------
# The targets of each relation. Viewers hold grants on enterprise A, community a1 or the
# resident a1x.p, so "self" is the resident's own home and person, "own" their neighbours in a1.
TARGETS = {
    "self": {"ent": "a", "com": "a1", "hh": "a1x", "person": "a1x.p"},
    "own": {"ent": "a", "com": "a1", "hh": "a1y", "person": "a1y.p"},
    "sibling": {"ent": "a", "com": "a2", "hh": "a2x", "person": "a2x.p"},
    "foreign": {"ent": "b", "com": "b1", "hh": "b1x", "person": "b1x.p"},
}
ORG_RELATIONS = ("own", "sibling", "foreign")
PERSON_RELATIONS = ("self", "own", "sibling", "foreign")
NO_TARGET = ("-",)
AUTH_CODES = {"NOT_FOUND", "FORBIDDEN"}


class Ids:
    """Global IDs for mutation input: real ones, or (``missing=True``) IDs that exist nowhere,
    to compare a refusal of a foreign object with the answer for a missing one."""

    def __init__(self, world: LeakWorld, viewer: ViewerSpec, missing: bool = False) -> None:
        self.w, self.viewer, self.missing = world, viewer, missing

    def _pick(self, type_name: str, real: str) -> str:
        return gid(type_name, MISSING_PK) if self.missing else real

    def node(self, place: str) -> str:
        return self._pick(PLACES[place].kind, self.w.gid(place))

    def pending(self, person: str) -> str:
        return self._pick("ActionRecord", self.w.pending[person])

    def approved(self, person: str) -> str:
        return self._pick("ActionRecord", self.w.approved[person])

    def reward(self, owner: str) -> str:
        return self._pick("Reward", self.w.rewards[owner])

    def grant(self, rel: str) -> str:
        return self._pick("RoleGrant", self.w.revocable[(self.viewer.subject, rel)])

    def key(self, community: str, state: str) -> str:
        return self._pick("ApiKey", self.w.keys[(self.viewer.subject, relation(community), state)])


@dataclass(frozen=True)
class MCase:
    label: str
    field: str
    input_type: str
    payload: str
    make: Callable[[Ids, dict[str, str], int, date], dict[str, Any]]
    targets: Callable[[dict[str, str]], list[str]]
    allowed: Callable[[ViewerSpec, dict[str, str]], bool]
    relations: tuple[str, ...] = ORG_RELATIONS
    ok_codes: frozenset[str] = frozenset()
    upload: bool = False
    replays: str | None = None  # "activity" / "action": the payload must return the seeded one
    # The one refusal code, when the default (FORBIDDEN for targets the viewer sees) is wrong.
    refusal: Callable[[ViewerSpec, dict[str, str]], str] | None = None

    def document(self) -> str:
        return (
            f"mutation($input: {self.input_type}!) {{ {self.field}(input: $input) "
            f"{{ {self.payload} userErrors {{ field code message }} }} }}"
        )


def _past(today: date, n: int) -> str:
    return (today - timedelta(days=3 + n % 1000)).isoformat()


def _activity(ids: Ids, account: str, n: int, today: date) -> dict[str, Any]:
    day = _past(today, n)
    return {
        "accountId": ids.node(account),
        "activityType": "ELECTRICITY",
        "quantity": "1",
        "unit": "kWh",
        "periodStart": day,
        "periodEnd": day,
        "externalId": f"leak-matrix-activity:{n}",
    }


def _action(ids: Ids, person: str, n: int, today: date) -> dict[str, Any]:
    return {
        "individualId": ids.node(person),
        "actionType": "SUBWAY_TRIP",
        "units": 1,
        "occurredOn": _past(today, n),
    }


def _seeded_activity(ids: Ids, t: dict[str, str], world: LeakWorld) -> dict[str, Any]:
    seeded = {k: v for k, v in world.activity[t["person"]].items() if k != "id"}
    return {**seeded, "accountId": ids.node(t["person"])}


ENT_PAYLOAD, COM_PAYLOAD = "enterprise { id }", "community { id }"
HH_PAYLOAD, PERSON_PAYLOAD = "household { id }", "individual { id }"
RECORDS = "records { id } createdCount unchangedCount warnings { field code }"
ACTIONS = "actions { id } createdCount unchangedCount warnings { field code }"
HOUSEHOLDS = "households { id } createdCount unchangedCount"
PEOPLE = "individuals { id } createdCount unchangedCount"
KEY_PAYLOAD = "apiKey { id } secret"
ROTATED_PAYLOAD = "apiKey { id } secret replacedApiKey { id }"
PLACE_KIND = {"ent": "Enterprise", "com": "Community", "hh": "Household", "person": "Individual"}


def _admin(v: ViewerSpec, _t: dict[str, str]) -> bool:
    return v.is_admin


def _manages(*keys: str) -> Callable[[ViewerSpec, dict[str, str]], bool]:
    return lambda v, t: all(manages(v, t[k]) for k in keys)


def _on(*keys: str) -> Callable[[dict[str, str]], list[str]]:
    return lambda t: [t[k] for k in keys]


def _too_late(today: date) -> str:
    """Further ahead than any date input accepts (a year's slack): INVALID_DATE."""
    return (today + timedelta(days=400)).isoformat()


def mutation_cases(world: LeakWorld) -> list[MCase]:
    kinds = {"kind": "VILLAGE", "regionCode": "CN-GD", "timezone": "Asia/Shanghai"}
    return [
        MCase(
            "createEnterprise",
            "createEnterprise",
            "CreateEnterpriseInput",
            ENT_PAYLOAD,
            lambda i, t, n, d: {"name": f"Leak enterprise {n}", "kind": "COMPANY"},
            _on(),
            _admin,
            NO_TARGET,
        ),
        MCase(
            "updateEnterprise",
            "updateEnterprise",
            "UpdateEnterpriseInput",
            ENT_PAYLOAD,
            lambda i, t, n, d: {"id": i.node(t["ent"]), "name": f"Enterprise {t['ent']}"},
            _on("ent"),
            _manages("ent"),
        ),
        MCase(
            "archiveEnterprise",
            "archiveEnterprise",
            "ArchiveInput",
            ENT_PAYLOAD,
            lambda i, t, n, d: {"id": i.node(t["ent"])},
            _on("ent"),
            _manages("ent"),
            ok_codes=frozenset({"HAS_ACTIVE_CHILDREN"}),
        ),
        MCase(
            "createCommunity(enterprise)",
            "createCommunity",
            "CreateCommunityInput",
            COM_PAYLOAD,
            lambda i, t, n, d: {"name": f"Leak c{n}", **kinds, "enterpriseId": i.node(t["ent"])},
            _on("ent"),
            _manages("ent"),
        ),
        MCase(
            "createCommunity(parent)",
            "createCommunity",
            "CreateCommunityInput",
            COM_PAYLOAD,
            lambda i, t, n, d: {
                "name": f"Leak c{n}",
                "kind": "VILLAGE",
                "parentId": i.node(t["com"]),
            },
            _on("com"),
            _manages("com"),
        ),
        MCase(
            "createCommunity(root)",
            "createCommunity",
            "CreateCommunityInput",
            COM_PAYLOAD,
            lambda i, t, n, d: {"name": f"Leak root c{n}", **kinds},
            _on(),
            _admin,
            NO_TARGET,
        ),
        MCase(
            "updateCommunity",
            "updateCommunity",
            "UpdateCommunityInput",
            COM_PAYLOAD,
            lambda i, t, n, d: {"id": i.node(t["com"]), "name": f"Community {t['com']}"},
            _on("com"),
            _manages("com"),
        ),
        MCase(
            "archiveCommunity",
            "archiveCommunity",
            "ArchiveInput",
            COM_PAYLOAD,
            lambda i, t, n, d: {"id": i.node(t["com"])},
            _on("com"),
            _manages("com"),
            ok_codes=frozenset({"HAS_ACTIVE_CHILDREN"}),
        ),
        MCase(
            "createHousehold",
            "createHousehold",
            "CreateHouseholdInput",
            HH_PAYLOAD,
            lambda i, t, n, d: {
                "communityId": i.node(t["com"]),
                "name": f"Leak h{n}",
                "dwellingType": "APARTMENT",
            },
            _on("com"),
            _manages("com"),
        ),
        MCase(
            "createHouseholds",
            "createHouseholds",
            "CreateHouseholdsInput",
            HOUSEHOLDS,
            lambda i, t, n, d: {
                "items": [
                    {
                        "communityId": i.node(t["com"]),
                        "name": f"Leak hs{n}",
                        "dwellingType": "APARTMENT",
                        "externalRef": f"leak-matrix-household:{n}",
                    }
                ]
            },
            _on("com"),
            _manages("com"),
        ),
        MCase(
            "updateHousehold",
            "updateHousehold",
            "UpdateHouseholdInput",
            HH_PAYLOAD,
            lambda i, t, n, d: {"id": i.node(t["hh"]), "name": f"Home {t['hh']}"},
            _on("hh"),
            _manages("hh"),
            PERSON_RELATIONS,
        ),
        MCase(
            "archiveHousehold",
            "archiveHousehold",
            "ArchiveInput",
            HH_PAYLOAD,
            lambda i, t, n, d: {"id": i.node(t["hh"])},
            _on("hh"),
            _manages("hh"),
            PERSON_RELATIONS,
            ok_codes=frozenset({"HAS_ACTIVE_CHILDREN"}),
        ),
        MCase(
            "createIndividual",
            "createIndividual",
            "CreateIndividualInput",
            PERSON_PAYLOAD,
            lambda i, t, n, d: {"displayName": f"Leak person {n}", "householdId": i.node(t["hh"])},
            _on("hh"),
            _manages("hh"),
            PERSON_RELATIONS,
        ),
        MCase(
            "createIndividuals",
            "createIndividuals",
            "CreateIndividualsInput",
            PEOPLE,
            lambda i, t, n, d: {
                "items": [
                    {
                        "displayName": f"Leak people {n}",
                        "householdId": i.node(t["hh"]),
                        "memberFrom": SINCE.isoformat(),
                        "externalRef": f"leak-matrix-person:{n}",
                    }
                ]
            },
            _on("hh"),
            _manages("hh"),
            PERSON_RELATIONS,
        ),
        MCase(
            "updateIndividual",
            "updateIndividual",
            "UpdateIndividualInput",
            PERSON_PAYLOAD,
            lambda i, t, n, d: {"id": i.node(t["person"]), "email": f"{t['person']}@example.org"},
            _on("person"),
            lambda v, t: edits_profile(v, t["person"]),
            PERSON_RELATIONS,
        ),
        # Domain checks that come after authorization keep allowed calls from writing.
        MCase(
            "archiveIndividual",
            "archiveIndividual",
            "ArchiveIndividualInput",
            PERSON_PAYLOAD,
            lambda i, t, n, d: {"id": i.node(t["person"]), "effectiveOn": SINCE.isoformat()},
            _on("person"),
            _manages("person"),
            PERSON_RELATIONS,
            ok_codes=frozenset({"INVALID_DATE"}),
        ),
        MCase(
            "moveIndividual",
            "moveIndividual",
            "MoveIndividualInput",
            PERSON_PAYLOAD,
            lambda i, t, n, d: {
                "individualId": i.node(t["person"]),
                "householdId": i.node(t["hh"]),
                "effectiveFrom": SINCE.isoformat(),
            },
            _on("person", "hh"),
            _manages("person", "hh"),
            PERSON_RELATIONS,
            ok_codes=frozenset({"OVERLAPPING_MEMBERSHIP"}),
        ),
        MCase(
            "linkEmployee",
            "linkEmployee",
            "EmploymentInput",
            PERSON_PAYLOAD,
            lambda i, t, n, d: {
                "individualId": i.node(t["person"]),
                "enterpriseId": i.node(t["ent"]),
                "effectiveFrom": _too_late(d),
            },
            _on("person", "ent"),
            lambda v, t: seen(v, t["person"]) and manages(v, t["ent"]),
            PERSON_RELATIONS,
            ok_codes=frozenset({"INVALID_DATE"}),
        ),
        MCase(
            "endEmployment",
            "endEmployment",
            "EmploymentInput",
            PERSON_PAYLOAD,
            lambda i, t, n, d: {
                "individualId": i.node(t["person"]),
                "enterpriseId": i.node(t["ent"]),
                "effectiveFrom": _too_late(d),
            },
            _on("person", "ent"),
            lambda v, t: seen(v, t["person"]) and manages(v, t["ent"]),
            PERSON_RELATIONS,
            ok_codes=frozenset({"INVALID_DATE", "NOT_FOUND"}),
        ),
        MCase(
            "recordActivity(person)",
            "recordActivity",
            "RecordActivityInput",
            RECORDS,
            lambda i, t, n, d: _activity(i, t["person"], n, d),
            _on("person"),
            lambda v, t: records_for(v, t["person"]),
            PERSON_RELATIONS,
        ),
        MCase(
            "recordActivity(household)",
            "recordActivity",
            "RecordActivityInput",
            RECORDS,
            lambda i, t, n, d: _activity(i, t["hh"], n, d),
            _on("hh"),
            lambda v, t: records_for(v, t["hh"]),
            PERSON_RELATIONS,
        ),
        MCase(
            "recordActivities",
            "recordActivities",
            "RecordActivitiesInput",
            RECORDS,
            lambda i, t, n, d: {"records": [_activity(i, t["person"], n, d)]},
            _on("person"),
            lambda v, t: records_for(v, t["person"]),
            PERSON_RELATIONS,
        ),
        MCase(
            "recordActivity(replay)",
            "recordActivity",
            "RecordActivityInput",
            RECORDS,
            lambda i, t, n, d: _seeded_activity(i, t, world),
            _on("person"),
            lambda v, t: records_for(v, t["person"]),
            PERSON_RELATIONS,
            replays="activity",
        ),
        MCase(
            "recalculateFootprint",
            "recalculateFootprint",
            "RecalculateFootprintInput",
            "examinedCount changedCount footprint { gross }",
            lambda i, t, n, d: {"nodeId": i.node(t["com"]), "period": {"year": d.year}},
            _on("com"),
            _manages("com"),
        ),
        MCase(
            "uploadEvidence",
            "uploadEvidence",
            "UploadEvidenceInput",
            "evidence { id }",
            lambda i, t, n, d: {"individualId": i.node(t["person"]), "file": None},
            _on("person"),
            lambda v, t: records_for(v, t["person"]),
            PERSON_RELATIONS,
            upload=True,
        ),
        MCase(
            "reviewAction",
            "reviewAction",
            "ReviewActionInput",
            "action { id }",
            lambda i, t, n, d: {"actionId": i.pending(t["person"]), "decision": "REJECT"},
            _on("hh"),
            _manages("hh"),
            PERSON_RELATIONS,
            ok_codes=frozenset({"REQUIRED"}),
        ),
        MCase(
            "reverseAction",
            "reverseAction",
            "ReviewActionInput",
            "action { id }",
            lambda i, t, n, d: {"actionId": i.approved(t["person"]), "decision": "APPROVE"},
            _on("hh"),
            _manages("hh"),
            PERSON_RELATIONS,
            ok_codes=frozenset({"REQUIRED"}),
        ),
        MCase(
            "recordAction",
            "recordAction",
            "RecordActionInput",
            ACTIONS,
            lambda i, t, n, d: _action(i, t["person"], n, d),
            _on("person"),
            lambda v, t: records_for(v, t["person"]),
            PERSON_RELATIONS,
        ),
        MCase(
            "recordVerifiedActions",
            "recordVerifiedActions",
            "RecordActionsInput",
            ACTIONS,
            lambda i, t, n, d: {"actions": [_action(i, t["person"], n, d)]},
            _on("person"),
            lambda v, t: verifies_for(v, t["person"]),
            PERSON_RELATIONS,
        ),
        MCase(
            "recordAction(replay)",
            "recordAction",
            "RecordActionInput",
            ACTIONS,
            lambda i, t, n, d: {
                **world.approved_input[t["person"]],
                "individualId": i.node(t["person"]),
            },
            _on("person"),
            lambda v, t: records_for(v, t["person"]),
            PERSON_RELATIONS,
            replays="action",
        ),
        MCase(
            "createReward",
            "createReward",
            "CreateRewardInput",
            "reward { id }",
            lambda i, t, n, d: {
                "ownerId": i.node(t["com"]),
                "name": f"Leak reward {n}",
                "costCredits": 1,
                "stock": 1,
                "validFrom": _past(d, 0),
            },
            _on("com"),
            _manages("com"),
        ),
        MCase(
            "createCampaign",
            "createCampaign",
            "CreateCampaignInput",
            "campaign { id }",
            lambda i, t, n, d: {
                "ownerId": i.node(t["com"]),
                "name": f"Leak campaign {n}",
                "startsOn": _past(d, 0),
                "endsOn": (d + timedelta(days=1)).isoformat(),
                "actionTypes": ["BUS_TRIP"],
            },
            _on("com"),
            _manages("com"),
        ),
        MCase(
            "redeemReward",
            "redeemReward",
            "RedeemRewardInput",
            "redemption { id } balance",
            lambda i, t, n, d: {
                "rewardId": i.reward(t["com"]),
                "idempotencyKey": f"leak-matrix-{n}",
            },
            _on("com"),
            lambda v, t: (
                v.resident_of is not None and t["com"] in chain(PLACES[v.resident_of].parent or "")
            ),
            PERSON_RELATIONS,
        ),
        MCase(
            "setCreditPolicy",
            "setCreditPolicy",
            "SetCreditPolicyInput",
            "policy { programmeId }",
            lambda i, t, n, d: {"programmeId": i.node(t["ent"]), "expiryMonths": 24},
            _on("ent"),
            _manages("ent"),
        ),
        MCase(
            "publishActionType",
            "publishActionType",
            "PublishActionTypeInput",
            "actionType { code }",
            lambda i, t, n, d: {
                "code": f"LEAK_{n}",
                "methodology": "leak-matrix",
                "name": "Leak",
                "unit": "item",
                "creditsPerUnit": 1,
                "avoidedGramsPerUnit": 1,
                "scope": "SCOPE_3_PLUS",
                "validFrom": _past(d, 0),
                "citation": "test",
            },
            _on(),
            _admin,
            NO_TARGET,
        ),
        MCase(
            "grantRole(COMMUNITY_MANAGER)",
            "grantRole",
            "GrantRoleInput",
            "grant { id }",
            lambda i, t, n, d: {
                "principal": f"leak-grantee-{n}",
                "role": "COMMUNITY_MANAGER",
                "nodeId": i.node(t["com"]),
            },
            _on("com"),
            lambda v, t: may_grant(v, "COMMUNITY_MANAGER", t["com"]),
        ),
        MCase(
            "grantRole(ESG_ANALYST)",
            "grantRole",
            "GrantRoleInput",
            "grant { id }",
            lambda i, t, n, d: {
                "principal": f"leak-grantee-{n}",
                "role": "ESG_ANALYST",
                "nodeId": i.node(t["ent"]),
            },
            _on("ent"),
            lambda v, t: may_grant(v, "ESG_ANALYST", t["ent"]),
        ),
        MCase(
            "grantRole(RESIDENT)",
            "grantRole",
            "GrantRoleInput",
            "grant { id }",
            lambda i, t, n, d: {
                "principal": f"leak-grantee-{n}",
                "role": "RESIDENT",
                "nodeId": i.node(t["person"]),
            },
            _on("person"),
            lambda v, t: may_grant(v, "RESIDENT", t["person"]),
            PERSON_RELATIONS,
        ),
        MCase(
            "grantRole(PLATFORM_ADMIN)",
            "grantRole",
            "GrantRoleInput",
            "grant { id }",
            lambda i, t, n, d: {"principal": f"leak-grantee-{n}", "role": "PLATFORM_ADMIN"},
            _on(),
            _admin,
            NO_TARGET,
        ),
        # API keys: the key's node must be one where the viewer may grant the scope's role;
        # a second scope with a role keys never carry steers allowed calls into NOT_GRANTABLE.
        MCase(
            "createApiKey",
            "createApiKey",
            "CreateApiKeyInput",
            KEY_PAYLOAD,
            lambda i, t, n, d: {
                "name": f"Leak key {n}",
                "scopes": [
                    {"role": "PARTNER_SERVICE", "nodeId": i.node(t["com"])},
                    {"role": "RESIDENT", "nodeId": i.node(t["com"])},
                ],
            },
            _on("com"),
            lambda v, t: may_grant(v, "PARTNER_SERVICE", t["com"]),
            ok_codes=frozenset({"NOT_GRANTABLE"}),
        ),
        # Keys are seen by the managers of their nodes; anyone else is answered like for a
        # missing key. A revoked key cannot be rotated (INVALID, after authorization).
        MCase(
            "rotateApiKey(revoked)",
            "rotateApiKey",
            "RotateApiKeyInput",
            ROTATED_PAYLOAD,
            lambda i, t, n, d: {"apiKeyId": i.key(t["com"], "revoked")},
            _on("com"),
            _manages("com"),
            ok_codes=frozenset({"INVALID"}),
            refusal=lambda v, t: "NOT_FOUND",
        ),
        # Rotating mints a secret: the right to grant the scope, as for creating (a community
        # manager sees the key but may not grant PARTNER_SERVICE). Allowed calls rotate the
        # viewer's own test key.
        MCase(
            "rotateApiKey(active)",
            "rotateApiKey",
            "RotateApiKeyInput",
            ROTATED_PAYLOAD,
            lambda i, t, n, d: {"apiKeyId": i.key(t["com"], "active")},
            _on("com"),
            lambda v, t: may_grant(v, "PARTNER_SERVICE", t["com"]),
            refusal=lambda v, t: "FORBIDDEN" if manages(v, t["com"]) else "NOT_FOUND",
        ),
        # Revoking a revoked key changes nothing (a no-op for those allowed).
        MCase(
            "revokeApiKey",
            "revokeApiKey",
            "RevokeApiKeyInput",
            "apiKey { id }",
            lambda i, t, n, d: {"apiKeyId": i.key(t["com"], "revoked")},
            _on("com"),
            _manages("com"),
            refusal=lambda v, t: "NOT_FOUND",
        ),
        MCase(
            "revokeRole",
            "revokeRole",
            "RevokeRoleInput",
            "revokedGrantId",
            lambda i, t, n, d: {"grantId": i.grant(relation(t["com"]))},
            _on("com"),
            lambda v, t: may_grant(v, "COMMUNITY_MANAGER", t["com"]),
        ),
    ]


def _nothing_returned(payload: dict[str, Any]) -> bool:
    return all(v in (None, [], 0) for k, v in payload.items() if k != "userErrors")


async def _send(
    w: LeakWorld, subject: str | None, case: MCase, variables: dict[str, Any], n: int
) -> tuple[int, dict[str, Any]]:
    if case.upload:
        return await w.client.upload(subject, case.document(), variables, photo(n))
    return await w.client.post(subject, case.document(), variables)


def _outcome(codes: set[str]) -> str:
    """The audit outcome docs/security.md gives a payload's userErrors."""
    if not codes:
        return "OK"
    return next((c for c in ("FORBIDDEN", "NOT_FOUND") if c in codes), "USER_ERROR")


async def _audited(
    m: Matrix,
    w: LeakWorld,
    subject: str,
    case: MCase,
    variables: dict[str, Any],
    n: int,
    where: str,
) -> tuple[int, dict[str, Any]]:
    """Sends the mutation; it must write exactly one audit event, with the caller as actor and
    the outcome its payload implies (refusals included)."""
    mark = await w.audit_mark()
    status, body = await _send(w, subject, case, variables, n)
    events = await w.audit_since(mark)
    payload = (body.get("data") or {}).get(case.field) or {}
    want = _outcome({e["code"] for e in payload.get("userErrors", [])})
    got = [(e.operation, e.outcome, e.actor_subject) for e in events]
    m.check(
        "mutation:audit-event",
        got == [(case.field, want, w.actor(subject))],
        f"{where}: audit events {got}, expected one {want} by {w.actor(subject)}",
    )
    return status, body


async def test_mutation_leak_matrix(leak_world: LeakWorld) -> None:
    w, m = leak_world, Matrix()
    cases = mutation_cases(w)
    counter = iter(range(10_000, 100_000))
    for viewer in VIEWERS:
        plan = []
        for case in cases:
            for rel in case.relations:
                t = TARGETS.get(rel, TARGETS["own"])
                plan.append((case, rel, t, case.allowed(viewer, t)))
        # Refusals first, fenced by fingerprints of the whole database: they write nothing.
        plan.sort(key=lambda item: item[3])
        before = await w.fingerprint()
        fenced = True
        for case, rel, t, allowed in plan:
            if allowed and fenced:
                m.check(
                    "refusals-wrote-nothing",
                    await w.fingerprint() == before,
                    f"{viewer.subject}: a refused mutation changed the database",
                )
                fenced = False
            n = next(counter)
            variables = {"input": case.make(Ids(w, viewer), t, n, w.today)}
            where = f"{viewer.subject} {case.label} [{rel}]"
            status, body = await _audited(m, w, viewer.subject, case, variables, n, where)
            if status != 200 or "errors" in body:
                m.check("mutation", False, f"{where}: {status} {body}")
                continue
            payload = body["data"][case.field]
            codes = {e["code"] for e in payload["userErrors"]}
            if allowed:
                ok = codes == case.ok_codes
                if case.replays == "activity":
                    ok = ok and payload["records"] == [{"id": w.activity[t["person"]]["id"]}]
                if case.replays == "action":
                    ok = ok and payload["actions"] == [{"id": w.approved[t["person"]]}]
                m.check("mutation:allowed", ok, f"{where}: expected {case.ok_codes}: {payload}")
                continue
            targets = case.targets(t)
            code_ok = bool(codes) and codes <= AUTH_CODES
            if case.refusal is not None:
                code_ok = codes == {case.refusal(viewer, t)}
            elif all(seen(viewer, p) for p in targets):
                code_ok = codes == {"FORBIDDEN"}
            m.check(
                "mutation:refused",
                code_ok and _nothing_returned(payload),
                f"{where}: expected a refusal, got {payload}",
            )
            # Another tenant's object is answered like a missing one, for viewers who may not
            # know it exists (a platform admin has no other tenant: refused, it says FORBIDDEN).
            if rel == "foreign" and not all(seen(viewer, p) for p in targets):
                missing = {"input": case.make(Ids(w, viewer, missing=True), t, n, w.today)}
                _, answer = await _audited(
                    m, w, viewer.subject, case, missing, n + 500_000, f"{where} (missing)"
                )
                m.check(
                    "mutation:foreign-like-missing",
                    answer.get("data", {}).get(case.field) == payload,
                    f"{where}: {payload} differs from a missing ID's {answer}",
                )
        if fenced:
            m.check("refusals-wrote-nothing", await w.fingerprint() == before, viewer.subject)

    # Without a token nothing runs: 401, and nothing written, not even an audit event.
    before, mark = await w.fingerprint(), await w.audit_mark()
    for case in cases:
        for rel in case.relations:
            n = next(counter)
            variables = {
                "input": case.make(Ids(w, VIEWERS[0]), TARGETS.get(rel, TARGETS["own"]), n, w.today)
            }
            status, body = await _send(w, None, case, variables, n)
            codes = [e["extensions"]["code"] for e in body.get("errors", [])]
            m.check(
                "mutation:anonymous",
                status == 401 and body.get("data") is None and codes == ["UNAUTHENTICATED"],
                f"anonymous {case.label} [{rel}]: {status} {body}",
            )
    m.check("refusals-wrote-nothing", await w.fingerprint() == before, "anonymous")
    m.check("mutation:audit-event", await w.audit_since(mark) == [], "anonymous: audited")
    per_viewer = sum(len(c.relations) for c in cases)
    m.report(
        f"mutation leak matrix ({w.engine.dialect.name}, {len(cases)} mutation cases)",
        {
            ("mutation:allowed", "mutation:refused"): per_viewer * len(VIEWERS),
            ("mutation:anonymous",): per_viewer,
            # One event per authenticated call (the missing-ID twins included), none without
            # a token (one check for all of those).
            ("mutation:audit-event",): m.checks["mutation:allowed"]
            + m.checks["mutation:refused"]
            + m.checks["mutation:foreign-like-missing"]
            + 1,
        },
        MUTATION_CHECKS_AT_LEAST,
    )


# -- subscriptions --------------------------------------------------------------------------
CREDITS_CHANGED = """subscription($i: ID!) { creditsChanged(individualId: $i) { balance } }"""
BOARD_CHANGED = """subscription($c: ID!) { leaderboardChanged(communityId: $c, metric: REDUCTIONS)
  { communityId } }"""


async def test_subscription_leak_matrix(leak_world: LeakWorld) -> None:
    """Every viewer subscribes to ``creditsChanged`` of every person (the right to read their
    credits: PERSONAL) and ``leaderboardChanged`` of every community (anyone who sees it):
    the first event, or the read's refusal code — outside the tenants exactly the error a
    missing ID gets. In-process over ASGI, with the app's lifespan (PostgreSQL's listener)."""
    w, m = leak_world, Matrix()
    app = create_app(w.client.settings, engine=w.app_engine)
    people = [n for n in ENTITIES if PLACES[n].kind == "Individual"]
    communities = [n for n in ENTITIES if PLACES[n].kind == "Community"]
    jwt_viewers = [v for v in VIEWERS if not v.api_key]
    async with app.router.lifespan_context(app):
        for viewer in VIEWERS:
            if viewer.api_key:
                # The live endpoint verifies JWTs only (docs/live-updates.md): a key is
                # refused at connection_init, before any subscription.
                async with AsgiSocket(app, None) as ws:
                    try:
                        answer: Any = await ws.init(w.client.bearer(viewer.subject))
                    except Closed as closed:
                        answer = closed.code
                m.check("subscription:api-key", answer == 4403, f"{viewer.subject}: {answer}")
                continue
            async with AsgiSocket(app, None) as ws:
                ack = await ws.init(w.client.bearer(viewer.subject))
                assert ack["type"] == "connection_ack", (viewer.subject, ack)
                missing: dict[str, dict[str, Any]] = {}
                subscriptions = [
                    ("credits", None, CREDITS_CHANGED, {"i": missing_id("Individual")}),
                    ("board", None, BOARD_CHANGED, {"c": missing_id("Community")}),
                    *[("credits", p, CREDITS_CHANGED, {"i": w.gid(p)}) for p in people],
                    *[("board", c, BOARD_CHANGED, {"c": w.gid(c)}) for c in communities],
                ]
                for n, (kind, name, query, variables) in enumerate(subscriptions):
                    await ws.subscribe(str(n), query, variables)
                    message = await ws.receive()
                    if name is None:
                        missing[kind] = message
                        continue
                    where = f"{viewer.subject} {kind}({name}, {relation(name)})"
                    allowed = level(viewer, name) >= PERSONAL if kind == "credits" else True
                    if visible(viewer, name) and allowed:
                        m.check(
                            f"subscription:{kind}", message["type"] == "next", f"{where}: {message}"
                        )
                        await ws.send({"type": "complete", "id": str(n)})
                        continue
                    code = "FORBIDDEN" if visible(viewer, name) else read_refusal(viewer, name)
                    errors = message.get("payload") or [{}]
                    ok = message["type"] == "error" and [
                        e.get("extensions", {}).get("code") for e in errors
                    ] == [code]
                    if ok and code == "NOT_FOUND":
                        ok = same_error(errors[0], missing[kind]["payload"][0])
                    m.check(f"subscription:{kind}", ok, f"{where}: expected {code}, got {message}")
    m.report(
        f"subscription leak matrix ({w.engine.dialect.name})",
        {
            ("subscription:credits",): len(jwt_viewers) * len(people),
            ("subscription:board",): len(jwt_viewers) * len(communities),
            ("subscription:api-key",): len(VIEWERS) - len(jwt_viewers),
        },
        SUBSCRIPTION_CHECKS_AT_LEAST,
    )
