"""The leak matrix: every viewer × every object × own / sibling / foreign place, through every
read path (``node``, ``nodes``, the typed root fields and lists, ``_entities``, nested lists,
personal and aggregate fields, actions, credits, rewards, campaigns, grants) and every mutation,
checked against the oracle in tests/leak_oracle.py (written from docs/authorization.md).

One world per backend (tests/leak_world.py), built once for this module. Mismatches are
collected and reported together; the number of checks is asserted so the matrix cannot shrink.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
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
    KINDS,
    ORGANISATIONS,
    PERSONAL,
    PERSONAL_FIELDS,
    PLACES,
    VIEWERS,
    ViewerSpec,
    expected_list,
    level,
    read_refusal,
    relation,
    visible,
)
from tests.leak_world import MISSING_PK, Client, LeakWorld, build_leak_world
from tests.world import gid

ENTITIES = list(PLACES)
MAX_ALIASES = 15  # docs/security.md


@pytest.fixture(scope="module")
async def leak_world(
    migrated_engine: AsyncEngine, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LeakWorld]:
    """Built once per backend. It does not use the ``engine`` fixture (which empties the
    database per test); it empties it once itself."""
    await _wipe(migrated_engine)
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("CARBONGRAPH_EVIDENCE_DIR", str(tmp_path_factory.mktemp("leak-evidence")))
    # Rate limiting is tested elsewhere; here it would only throttle the matrix.
    settings = Settings.from_env(
        database_url=migrated_engine.url.render_as_string(hide_password=False),
        rate_limit_per_minute=0,
    )
    app = create_app(settings, engine=migrated_engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        client = Client(http, settings)
        yield await build_leak_world(migrated_engine, client, datetime.now(UTC).date())
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

    def report(self, title: str, minimum: int) -> None:
        total = sum(self.checks.values())
        print(f"\n{title}: {total} checks ({dict(sorted(self.checks.items()))})")
        assert not self.failures, f"{len(self.failures)} mismatches:\n" + "\n".join(
            self.failures[:80]
        )
        assert total >= minimum, f"the matrix shrank: {total} < {minimum} checks"


def field_name(kind: str) -> str:
    return kind[0].lower() + kind[1:]


def selection(kind: str) -> str:
    return "id " + " ".join(PERSONAL_FIELDS.get(kind, ("name",)))


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
                parts.append(f'{alias}: {field_name(kind)}(id: "{node_id}") {{ {selection(kind)} }}')
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
                data[f"missing{kind}"] is None and [e["extensions"]["code"] for e in missing]
                == ["NOT_FOUND"],
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
                fields = PERSONAL_FIELDS.get(kind, ()) if root == "typed" or kind != "Household" else ()
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

    reps = [{"__typename": PLACES[n].kind, "id": w.gid(n)} for n in ENTITIES]
    reps += [{"__typename": k, "id": missing_id(k)} for k in KINDS]
    query = (
        "query($r: [_Any!]!) { _entities(representations: $r) { __typename "
        + " ".join(f"... on {k} {{ id }}" for k in KINDS)
        + " } }"
    )
    status, body = await w.client.post(viewer.subject, query, {"r": reps})
    assert status == 200, body
    got = body["data"]["_entities"]
    missing = {k: errors_at(body, "_entities", len(ENTITIES) + i) for i, k in enumerate(KINDS)}
    for n, name in enumerate(ENTITIES):
        kind, errors = PLACES[name].kind, errors_at(body, "_entities", n)
        where = f"{viewer.subject} _entities[{name}, {relation(name)}]"
        if visible(viewer, name):
            m.check(
                "_entities:visible",
                got[n] == {"__typename": kind, "id": w.gid(name)} and not errors,
                f"{where}: {got[n]} {errors}",
            )
        else:
            code = read_refusal(viewer, name)
            m.check(
                "_entities:refused",
                got[n] is None and [e["extensions"]["code"] for e in errors] == [code],
                f"{where}: expected null + {code}, got {got[n]} {errors}",
            )
            if code == "NOT_FOUND" and errors:
                m.check(
                    "_entities:foreign-like-missing",
                    same_error(errors[0], missing[kind][0]),
                    f"{where}: {errors[0]} differs from {missing[kind][0]}",
                )


async def check_deep_fields(m: Matrix, w: LeakWorld, viewer: ViewerSpec) -> None:
    """Aggregates (footprint) at AGGREGATE, credits and household history at PERSONAL, and the
    objects a visible node links to (household, community, enterprise)."""
    year = w.today.year
    parts: list[tuple[str, str, str]] = []  # (alias, place, probe)
    for name in ENTITIES:
        if not visible(viewer, name):
            continue
        kind = PLACES[name].kind
        parts.append((f"f_{len(parts)}", name, "footprint"))
        if kind == "Individual":
            parts.append((f"c_{len(parts)}", name, "credits"))
            parts.append((f"h_{len(parts)}", name, "history"))
            parts.append((f"l_{len(parts)}", name, "link"))
        elif kind in ("Household", "Community"):
            parts.append((f"l_{len(parts)}", name, "link"))
    probes = {
        "footprint": f"footprint(period: {{year: {year}}}) {{ gross }}",
        "credits": "credits { balance ledger(first: 50) { id amount } }",
        "history": "householdHistory { validFrom household { id } }",
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
            if probe == "footprint":
                # Footprint is non-null: a refusal nulls the whole object.
                ok = (got is not None and not errors) if have >= AGGREGATE else (
                    got is None and codes == ["FORBIDDEN"]
                )
                m.check("aggregate", ok, f"{where}: level {have}, got {got} {codes}")
            elif probe == "credits":
                credits = (got or {}).get("credits")
                ok = (
                    (credits is not None and not errors)
                    if have >= PERSONAL
                    else (got is not None and credits is None and codes == ["FORBIDDEN"])
                )
                m.check("credits", ok, f"{where}: level {have}, got {got} {codes}")
            elif probe == "history":
                if have < PERSONAL:
                    m.check("history", got is None and codes == ["FORBIDDEN"], f"{where}: {got}")
                    continue
                home = PLACES[name].parent or ""
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
                if want is None:
                    m.check(
                        "linked-object",
                        codes == [read_refusal(viewer, linked)],
                        f"{where}: {codes}",
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
    status, body = await w.client.post(
        viewer.subject, f"{{ enterprises{conn} communities{conn} }}"
    )
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
    from tests.leak_oracle import manages

    communities = [n for n in ENTITIES if PLACES[n].kind == "Community"]
    for community in [*communities, None]:
        node_id = w.gid(community) if community else missing_id("Community")
        status, body = await w.client.post(
            viewer.subject,
            """query($c: ID!) { actionReviewQueue(communityId: $c) {
              id individualId evidence { sha256 } } }""",
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
                if PLACES[p].kind == "Individual" and community in (PLACES[PLACES[p].parent or ""].parent,)
            }
            got = {a["id"] for a in (body["data"] or {}).get("actionReviewQueue") or []}
            m.check("review-queue", got == want and not codes, f"{where}: {got} != {want} {codes}")
        else:
            code = "FORBIDDEN" if visible(viewer, community) else read_refusal(viewer, community)
            m.check("review-queue", body["data"] is None and codes == [code], f"{where}: {body}")
    for community in communities:  # compare after the loop has seen the missing ID
        if not manages(viewer, community) and read_refusal(viewer, community) == "NOT_FOUND":
            status, body = await w.client.post(
                viewer.subject,
                "query($c: ID!) { actionReviewQueue(communityId: $c) { id } }",
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
            "query($o: ID!) { rewards(ownerId: $o) { id } }",
            {"o": owner_id},
        )
        status2, board = await w.client.post(
            viewer.subject,
            """query($o: ID!) { campaigns(ownerId: $o) { id
              topParticipants(first: 50) { name individualId } } }""",
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
                and [r["id"] for r in body["data"]["rewards"]] == [w.rewards[owner]],
                f"{where}: {body}",
            )
            [campaign] = board["data"]["campaigns"]
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
        else:
            code = read_refusal(viewer, owner)
            for kind, answer in (("rewards", body), ("campaigns", board)):
                codes = [e["extensions"]["code"] for e in answer.get("errors", [])]
                m.check(kind, answer["data"] is None and codes == [code], f"{where}: {answer}")
    for owner in w.rewards:
        if not visible(viewer, owner) and read_refusal(viewer, owner) == "NOT_FOUND":
            for query, missing in (
                ("query($o: ID!) { rewards(ownerId: $o) { id } }", missing_rewards),
                ("query($o: ID!) { campaigns(ownerId: $o) { id } }", missing_campaigns),
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
    reference = await w.client.post("admin", "{ emissionFactors { id } actionTypes { code } "
                                     "activityTypes { code } }")
    m.check(
        "reference-data",
        status == 200 and body == reference[1] and len(body["data"]["emissionFactors"]) > 0,
        f"{viewer.subject} reference data differs from the admin's",
    )

    status, body = await w.client.post(
        viewer.subject, "{ me { subject grants { role nodeId } individual { id } } }"
    )
    me = body["data"]["me"]
    want = sorted(
        (role, w.gid(anchor) if anchor else None) for role, anchor in viewer.grants
    )
    got = sorted((g["role"], g["nodeId"]) for g in me["grants"])
    resident = viewer.resident_of
    m.check(
        "me",
        me["subject"] == viewer.subject
        and got == want
        and me["individual"] == ({"id": w.gid(resident)} if resident else None),
        f"{viewer.subject} me: {me}",
    )


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
    assert nodes == entities == set(KINDS)
    assert {PLACES[n].kind for n in ENTITIES} == set(KINDS)


async def test_read_leak_matrix(leak_world: LeakWorld) -> None:
    m = Matrix()
    for viewer in VIEWERS:
        await check_single_reads(m, leak_world, viewer, "typed")
        await check_single_reads(m, leak_world, viewer, "node")
        await check_nodes_and_entities(m, leak_world, viewer)
        await check_deep_fields(m, leak_world, viewer)
        await check_lists(m, leak_world, viewer)
        await check_actions_rewards_campaigns(m, leak_world, viewer)
    await check_anonymous_reads(m, leak_world)
    # At least: 2 root paths × viewers × entities, nodes and _entities the same, anonymous 4 each.
    minimum = len(VIEWERS) * len(ENTITIES) * 4 + len(ENTITIES) * 4
    m.report(f"read leak matrix ({leak_world.engine.dialect.name})", minimum)
