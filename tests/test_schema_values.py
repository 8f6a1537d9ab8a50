"""The schema's closed sets, exact decimals, error codes and the action lists' connections.

Stored values stay as they were ("3+", "location", "image/jpeg"); the schema maps them to
enums at its edge. Decimals travel as strings in positional notation. One ``ErrorCode`` lists
every code of a GraphQL error and of a ``UserError``.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from graphql import GraphQLEnumType

from carbongraph.actions.record import ActionInput
from carbongraph.errors import ErrorCode
from carbongraph.schema.common import DECIMAL_SCALAR
from carbongraph.schema.schema import schema
from tests.accounting_world import RECORD, activity, build_village
from tests.test_actions import _partner_post
from tests.world import build_world, gid

REPO = Path(__file__).resolve().parents[1]

REWARD = """mutation($o: ID!, $name: String!) { createReward(input: {ownerId: $o, name: $name,
  costCredits: 5, stock: 1, validFrom: "2025-01-01"}) { reward { id } userErrors { code } } }"""
REWARDS = """query($o: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  rewards(ownerId: $o, first: $first, after: $after, last: $last, before: $before) {
  totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  edges { cursor node { name } } } }"""


def _names(body: dict) -> list[str]:
    return [e["node"]["name"] for e in body["data"]["rewards"]["edges"]]


async def test_rewards_page_by_keyset_both_ways(engine, api):
    world = await build_world(engine)
    owner = gid("Community", world.a.communities[0])
    for name in ("cup", "bag", "pen", "mug", "hat"):
        body = await api.gql(REWARD, {"o": owner, "name": name}, subject="cm-a0")
        assert body["data"]["createReward"]["userErrors"] == []

    page = await api.gql(REWARDS, {"o": owner, "first": 2}, subject="resident-a")
    info = page["data"]["rewards"]["pageInfo"]
    assert _names(page) == ["cup", "bag"] and page["data"]["rewards"]["totalCount"] == 5
    assert info["hasNextPage"] and not info["hasPreviousPage"]
    rest = await api.gql(
        REWARDS, {"o": owner, "first": 10, "after": info["endCursor"]}, subject="resident-a"
    )
    assert _names(rest) == ["pen", "mug", "hat"]
    assert not rest["data"]["rewards"]["pageInfo"]["hasNextPage"]
    assert rest["data"]["rewards"]["totalCount"] == 5  # the whole list, not the page

    last = await api.gql(REWARDS, {"o": owner, "last": 2}, subject="resident-a")
    assert _names(last) == ["mug", "hat"]
    before = last["data"]["rewards"]["pageInfo"]["startCursor"]
    earlier = await api.gql(
        REWARDS, {"o": owner, "last": 2, "before": before}, subject="resident-a"
    )
    assert _names(earlier) == ["bag", "pen"]
    assert earlier["data"]["rewards"]["pageInfo"]["hasPreviousPage"]

    # Another owner's list is its own; a page is never larger than the settings allow.
    other = gid("Community", world.a.communities[1])
    assert (await api.gql(REWARDS, {"o": other}, subject="org-a"))["data"]["rewards"][
        "totalCount"
    ] == 0
    big = await api.gql(REWARDS, {"o": owner, "first": 101}, subject="cm-a0", allow_errors=True)
    assert big["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


QUEUE = """query($c: ID!, $status: ActionStatus, $first: Int, $after: String) {
  actionReviewQueue(communityId: $c, status: $status, first: $first, after: $after) {
  totalCount pageInfo { hasNextPage endCursor } edges { node { id status source } } } }"""


async def test_the_review_queue_filters_by_status_and_pages(engine, api):
    world = await build_world(engine)
    community = world.a.communities[0]
    people = [p for h in world.a.households[community] for p in world.a.members[h]]
    outside = world.a.members[world.a.households[world.a.communities[1]][0]][0]
    result = await _partner_post(
        engine,
        [
            *(
                ActionInput(p, "SUBWAY_TRIP", 1, date(2025, 6, 3), f"q{n}")
                for n, p in enumerate(people[:3])
            ),
            ActionInput(outside, "SUBWAY_TRIP", 1, date(2025, 6, 3), "q-out"),
        ],
    )
    assert result.errors == []
    c = gid("Community", community)
    pending = await api.gql(QUEUE, {"c": c}, subject="cm-a0")  # PENDING by default
    assert pending["data"]["actionReviewQueue"]["totalCount"] == 0
    approved = await api.gql(QUEUE, {"c": c, "status": "APPROVED", "first": 2}, subject="cm-a0")
    queue = approved["data"]["actionReviewQueue"]
    assert queue["totalCount"] == 3 and queue["pageInfo"]["hasNextPage"]
    assert {(e["node"]["status"], e["node"]["source"]) for e in queue["edges"]} == {
        ("APPROVED", "PARTNER")
    }
    rest = await api.gql(
        QUEUE,
        {"c": c, "status": "APPROVED", "after": queue["pageInfo"]["endCursor"]},
        subject="cm-a0",
    )
    ids = [e["node"]["id"] for e in queue["edges"] + rest["data"]["actionReviewQueue"]["edges"]]
    assert len(ids) == len(set(ids)) == 3  # the other community's action is not in it
    # A status outside the enum is refused before anything runs.
    bad = await api.gql(QUEUE, {"c": c, "status": "approved"}, subject="cm-a0", allow_errors=True)
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


FACTORS = """query($basis: FactorBasis) { emissionFactors(basis: $basis) { basis kgCo2ePerUnit }
  activityTypes { code kind scope } actionTypes { code scope employerScope evidence } }"""


async def test_stored_values_are_enums_at_the_edge(engine, api):
    await build_world(engine)
    body = await api.gql(FACTORS, {"basis": "RESIDUAL"}, subject="org-a")
    factors = body["data"]["emissionFactors"]
    assert factors and {f["basis"] for f in factors} == {"RESIDUAL"}
    assert all(re.fullmatch(r"\d+(\.\d+)?", f["kgCo2ePerUnit"]) for f in factors)
    kinds = {t["code"]: (t["kind"], t["scope"]) for t in body["data"]["activityTypes"]}
    assert kinds["ELECTRICITY"] == ("CONSUMPTION", "SCOPE_2")
    assert kinds["ROOFTOP_SOLAR"] == ("CLEAN_ENERGY", "CLEAN_ENERGY")
    actions = {t["code"]: t for t in body["data"]["actionTypes"]}
    assert actions["SUBWAY_TRIP"]["scope"] == "SCOPE_3_PLUS"
    assert actions["SUBWAY_TRIP"]["employerScope"] == "SCOPE_3"
    assert actions["SUBWAY_TRIP"]["evidence"] == "PARTNER"
    assert actions["CLEAN_PLATE"]["evidence"] == "PHOTO"
    everything = await api.gql(FACTORS, {}, subject="org-a")
    assert {f["basis"] for f in everything["data"]["emissionFactors"]} == {"LOCATION", "RESIDUAL"}


RECORDED = """mutation($records: [RecordActivityInput!]!) { recordActivities(input: {records:
  $records}) { records { quantity unit source dataQuality scope } userErrors { code } } }"""


async def test_quantities_are_exact_decimals_in_and_out(engine, api):
    village = await build_village(engine)
    home = gid("Household", village.household)
    start, end = "2023-05-01", "2023-05-31"
    records = [
        activity(home, "ELECTRICITY", "0.000125", "MWh", start, end, externalId="d1"),
        {**activity(home, "WATER", "9", "m3", start, end, externalId="d2"), "quantity": 9},
        {
            **activity(home, "NATURAL_GAS", "1.50", "m3", start, end, externalId="d3"),
            "source": "METER",
            "dataQuality": "ESTIMATED",
        },
    ]
    body = await api.gql(RECORDED, {"records": records}, subject="manager")
    payload = body["data"]["recordActivities"]
    assert payload["userErrors"] == []
    got = [(r["quantity"], r["unit"], r["scope"]) for r in payload["records"]]
    # 0.125 kWh; never an exponent (1.25E-4 MWh), never a float.
    assert got == [("0.125", "kWh", "SCOPE_2"), ("9", "m3", "SCOPE_3"), ("1.5", "m3", "SCOPE_1")]
    assert (payload["records"][2]["source"], payload["records"][2]["dataQuality"]) == (
        "METER",
        "ESTIMATED",
    )
    for bad in ("abc", "NaN", "Infinity", 1.5, True):
        wrong = [activity(home, "WATER", "1", "m3", start, end, externalId="bad")]
        wrong[0]["quantity"] = bad
        refused = await api.gql(RECORDED, {"records": wrong}, subject="manager", allow_errors=True)
        assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", bad
        assert refused.get("data") is None
    # A negative decimal is a decimal: the service says why it is refused, at its index.
    negative = [activity(home, "WATER", "-1", "m3", start, end, externalId="neg")]
    body = await api.gql(RECORDED, {"records": negative}, subject="manager")
    assert body["data"]["recordActivities"]["userErrors"] == [{"code": "NEGATIVE_QUANTITY"}]
    # The record the acceptance example reads back is unchanged by the scalar.
    check = await api.gql(RECORD, {"records": records[:1]}, subject="manager")
    assert check["data"]["recordActivities"]["unchangedCount"] == 1


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1E-7"), "0.0000001"),
        (Decimal("3E+2"), "300"),
        (Decimal("0.2500"), "0.2500"),  # a resolver's places are kept
        (Decimal("-12.5"), "-12.5"),
    ],
)
def test_decimals_serialise_in_positional_notation(value, text):
    assert DECIMAL_SCALAR.serialize(value) == text
    assert DECIMAL_SCALAR.parse_value(text) == value


def test_one_error_code_enum_lists_every_code():
    exposed = schema._schema.type_map["ErrorCode"]
    assert isinstance(exposed, GraphQLEnumType)
    assert set(exposed.values) == {c.name for c in ErrorCode}
    assert all(v.description for v in exposed.values.values())
    assert "UserErrorCode" not in schema._schema.type_map
    user_error = schema._schema.type_map["UserError"]
    assert str(user_error.fields["code"].type) == "ErrorCode!"
    # Every code of docs/security.md's table of limits is one of them.
    text = (REPO / "docs/security.md").read_text()
    table = text.split("## Limits on every request", 1)[1].split("\n\n")[2]
    promised = {
        code
        for row in table.splitlines()[2:]
        for code in re.findall(r"`([A-Z][A-Z_]+)`", row.rsplit("|", 2)[1])
    }
    assert {"QUERY_TOO_DEEP", "COST_LIMIT_EXCEEDED", "RATE_LIMITED"} <= promised
    assert promised <= {c.value for c in ErrorCode}, promised - {c.value for c in ErrorCode}


def test_the_sources_raise_no_code_outside_the_enum():
    """A code written as a literal (``extensions={"code": "X"}``, ``LimitExceeded("X", …)``,
    ``_error(…, "X")``) is the enum's member instead: grep for the old spelling."""
    source = REPO / "src" / "carbongraph"
    pattern = re.compile(
        r'"code":\s*"[A-Z_]+"|LimitExceeded\(\s*"|graphql_code = "'
        r'|(?:error_response|_error)\([^)]*?"[A-Z][A-Z_]{4,}"\s*[,)]'
    )
    offenders = [
        f"{path.relative_to(REPO)}: {match.group(0)}"
        for path in source.rglob("*.py")
        for match in pattern.finditer(path.read_text())
    ]
    assert offenders == []


async def test_a_malformed_decimal_is_the_clients_mistake_in_production(api, production):
    """Found by the fuzzer: a literal the scalar refused was masked as an internal error."""
    headers = {"Authorization": f"Bearer {api.token('anyone')}"}
    record = """mutation($q: Decimal!) { recordActivity(input: {accountId: "x",
      activityType: "WATER", quantity: $q, unit: "m3", periodStart: "2023-05-01",
      periodEnd: "2023-05-31"}) { userErrors { code } } }"""
    for query, variables, code in (
        (
            record.replace("($q: Decimal!)", "").replace("$q", '"¶X"'),
            None,
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            record.replace("($q: Decimal!)", "").replace("$q", "1.5"),
            None,
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (record, {"q": "NaN"}, "BAD_USER_INPUT"),
        (record, {"q": ""}, "BAD_USER_INPUT"),
    ):
        response = await production.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
        body = response.json()
        assert response.status_code == 400, body
        assert [e["extensions"]["code"] for e in body["errors"]] == [code], body
        assert "Decimal" in body["errors"][0]["message"]
