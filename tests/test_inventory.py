"""GHG inventory exports: gram-exact reconciliation with `footprint(period: {year})` on the demo
data, the data-quality mix, bad input and who may export (GraphQL and CLI, both backends)."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import sqlalchemy as sa
from typer.testing import CliRunner

from carbongraph.app import create_app
from carbongraph.authz import PLATFORM, Role
from carbongraph.cli import app
from carbongraph.demo.seed import seed_demo
from carbongraph.insights.inventory import CSV_COLUMNS
from carbongraph.resolvers.dataloaders import C, E
from tests.accounting_world import RECORD, build_village, may_2023
from tests.conftest import Api
from tests.world import gid, grant

runner = CliRunner()

FIGURES = "scope1 scope2LocationBased scope2MarketBased scope3 gross cleanEnergyOffset net"
FOOTPRINT_AND_INVENTORY = f"""
query($id: ID!, $year: Int!, $via: RollupPath!) {{
  ghgInventory(nodeId: $id, year: $year, via: $via) {{
    nodeId nodeName year period {{ from to }} {FIGURES} scope3Plus reductionsWithinScopes
    scope3Categories {{ category grams }} recordCount memberCount
    perCapita {{ {FIGURES} scope3Plus reductionsWithinScopes }}
    factors {{ activityType recordCount quantity locationBased marketBased cleanEnergyOffset
      factor {{ regionCode version kgCo2ePerUnit }} marketFactor {{ version }} }}
    dataQuality {{ dataQuality recordCount gross shareOfGross }}
    csv json }}
  node(id: $id) {{
    ... on Enterprise {{ footprint(period: {{year: $year}}, via: $via) {{ ...F }}
      reductions(period: {{year: $year}}, via: $via) {{ ...R }} }}
    ... on Community {{ footprint(period: {{year: $year}}) {{ ...F }}
      reductions(period: {{year: $year}}) {{ ...R }} }} }} }}
fragment F on Footprint {{ {FIGURES} scope3Plus scope3Categories {{ category grams }}
  recordCount memberCount perCapita }}
fragment R on Reductions {{ scope3Plus totalWithinScopes memberCount
  perCapita {{ scope3Plus totalWithinScopes }} }}
"""

CSV_KEYS = {
    "scope_1": "scope1",
    "scope_2_location_based": "scope2LocationBased",
    "scope_2_market_based": "scope2MarketBased",
    "scope_3": "scope3",
    "gross": "gross",
    "clean_energy_offset": "cleanEnergyOffset",
    "net": "net",
}


def _csv_rows(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == CSV_COLUMNS
    return list(reader)


def _check_reconciles(inventory: dict, footprint: dict) -> None:
    """The typed fields, the CSV and the JSON all equal the footprint to the gram."""
    for key in CSV_KEYS.values():
        assert inventory[key] == footprint[key], key
    assert inventory["scope3Plus"] == footprint["scope3Plus"]
    assert inventory["scope3Categories"] == footprint["scope3Categories"]
    assert inventory["memberCount"] == footprint["memberCount"]
    assert inventory["recordCount"] == footprint["recordCount"]
    if footprint["perCapita"] is None:
        assert inventory["perCapita"] is None
    else:
        assert inventory["perCapita"]["net"] == footprint["perCapita"]

    rows = _csv_rows(inventory["csv"])
    totals = {r["item"]: int(r["grams"]) for r in rows if r["section"] == "total"}
    assert totals == {csv_key: footprint[key] for csv_key, key in CSV_KEYS.items()}
    categories = [
        {"category": int(r["category"]), "grams": int(r["grams"])}
        for r in rows
        if r["section"] == "scope_3_category"
    ]
    assert categories == footprint["scope3Categories"]
    (plus,) = [r for r in rows if r["item"] == "scope_3_plus"]
    assert int(plus["grams"]) == footprint["scope3Plus"] and plus["scope"] == "3+"
    (members,) = [r for r in rows if r["item"] == "member_count"]
    assert int(members["record_count"]) == footprint["memberCount"]
    if footprint["perCapita"] is not None:
        (net,) = [r for r in rows if r["item"] == "net"]
        assert int(net["per_capita_grams"]) == footprint["perCapita"]

    document = json.loads(inventory["json"])
    assert document["format"] == "carbongraph-ghg-inventory/1"
    for csv_key, key in CSV_KEYS.items():
        assert document[csv_key] == footprint[key]
    assert document["scope_3_plus"] == footprint["scope3Plus"]
    assert document["member_count"] == footprint["memberCount"]

    # Records here never straddle New Year, so the factor table (by start day) adds up to the
    # scope totals as well, and the data-quality mix to gross.
    by_scope: dict[str, int] = defaultdict(int)
    for r in rows:
        if r["section"] == "factor":
            by_scope[f"{r['scope']}/{r['factor_basis']}"] += int(r["grams"])
    assert by_scope.get("1/location", 0) == footprint["scope1"]
    assert by_scope.get("2/location", 0) == footprint["scope2LocationBased"]
    assert by_scope.get("3/location", 0) == footprint["scope3"]
    assert sum(q["gross"] for q in inventory["dataQuality"]) == footprint["gross"]
    assert sum(q["recordCount"] for q in inventory["dataQuality"]) == footprint["recordCount"]


def _check_reductions(inventory: dict, reductions: dict) -> None:
    """Per-capita reductions: typed, CSV and JSON equal `reductions(period: {year})`."""
    assert inventory["scope3Plus"] == reductions["scope3Plus"]
    assert inventory["reductionsWithinScopes"] == reductions["totalWithinScopes"]
    assert inventory["memberCount"] == reductions["memberCount"]
    per_capita = reductions["perCapita"]
    if per_capita is None:
        assert inventory["perCapita"] is None
        return
    assert inventory["perCapita"]["scope3Plus"] == per_capita["scope3Plus"]
    assert inventory["perCapita"]["reductionsWithinScopes"] == per_capita["totalWithinScopes"]
    (plus,) = [r for r in _csv_rows(inventory["csv"]) if r["item"] == "scope_3_plus"]
    assert int(plus["per_capita_grams"]) == per_capita["scope3Plus"]
    document = json.loads(inventory["json"])
    assert document["per_capita"]["scope_3_plus"] == per_capita["scope3Plus"]
    assert document["per_capita"]["reductions_within_scopes"] == per_capita["totalWithinScopes"]


async def _cli(engine, *args: str):
    url = engine.url.render_as_string(hide_password=False)
    return await asyncio.to_thread(
        runner.invoke, app, ["report", "inventory", *args], env={"CARBONGRAPH_DATABASE_URL": url}
    )


async def test_demo_inventories_reconcile_with_footprints(api, engine):
    await seed_demo(engine)
    await grant(engine, "admin", Role.PLATFORM_ADMIN, PLATFORM, 0)
    async with engine.connect() as conn:
        ids = dict(
            list(await conn.execute(sa.select(E.c.external_ref, E.c.id)))
            + list(await conn.execute(sa.select(C.c.external_ref, C.c.id)))
        )
    today = datetime.now(UTC).date()
    years = sorted({(today - timedelta(days=28)).year, (today - timedelta(days=1)).year})
    cases = [
        ("demo-org-admin", gid("Enterprise", ids["demo:pengcheng"]), "COMMUNITIES"),
        ("demo-esg-analyst", gid("Enterprise", ids["demo:caa"]), "COMMUNITIES"),
        ("demo-esg-analyst", gid("Community", ids["demo:caa:b2"]), "COMMUNITIES"),
        ("demo-community-manager", gid("Community", ids["demo:xinqiao"]), "COMMUNITIES"),
        ("admin", gid("Enterprise", ids["demo:qianhai"]), "EMPLOYEES"),
    ]
    for subject, node, via in cases:
        for year in years:
            body = await api.gql(
                FOOTPRINT_AND_INVENTORY, {"id": node, "year": year, "via": via}, subject=subject
            )
            inventory = body["data"]["ghgInventory"]
            assert inventory["nodeId"] == node and inventory["year"] == year
            assert inventory["period"] == {"from": f"{year}-01-01", "to": f"{year}-12-31"}
            _check_reconciles(inventory, body["data"]["node"]["footprint"])
            _check_reductions(inventory, body["data"]["node"]["reductions"])
        assert inventory["memberCount"] > 0 and inventory["perCapita"] is not None
        # The demo data is really there (the demo records are household meters, so nothing
        # reaches an employer through its employees).
        assert (inventory["gross"] > 0) == (via == "COMMUNITIES"), node

    # The village's rooftop solar is a clean-energy offset, priced by the location factor.
    body = await api.gql(
        FOOTPRINT_AND_INVENTORY,
        {"id": gid("Community", ids["demo:xinqiao"]), "year": years[-1], "via": "COMMUNITIES"},
        subject="demo-community-manager",
    )
    solar = [
        f for f in body["data"]["ghgInventory"]["factors"] if f["activityType"] == "ROOFTOP_SOLAR"
    ]
    assert solar and solar[0]["factor"]["regionCode"] == "CN-SOUTHERN-GRID"

    # The command line writes the same CSV as GraphQL, and JSON to a file.
    node = gid("Enterprise", ids["demo:pengcheng"])
    body = await api.gql(
        FOOTPRINT_AND_INVENTORY,
        {"id": node, "year": years[-1], "via": "COMMUNITIES"},
        subject="demo-org-admin",
    )
    result = await _cli(engine, "--node", node, "--year", str(years[-1]))
    assert result.exit_code == 0, result.output
    assert result.stdout == body["data"]["ghgInventory"]["csv"]
    async with engine.connect() as conn:
        path = await conn.scalar(sa.select(E.c.path).where(E.c.id == ids["demo:pengcheng"]))
    result = await _cli(engine, "--node", path, "--year", str(years[-1]), "--format", "json")
    assert result.exit_code == 0, result.output
    assert result.stdout == body["data"]["ghgInventory"]["json"]


async def test_data_quality_mix_empty_years_and_bad_input(api, engine, tmp_path):
    village = await build_village(engine)
    records = may_2023(village)
    for record in records:
        if record["activityType"] == "NATURAL_GAS":
            record["dataQuality"] = "ESTIMATED"
        elif record["activityType"] == "WATER":
            record["dataQuality"] = "SELF_REPORTED"
    body = await api.gql(RECORD, {"records": records}, subject="manager")
    assert body["data"]["recordActivities"]["userErrors"] == []
    community = gid("Community", village.community)
    variables = {"id": community, "year": 2023, "via": "COMMUNITIES"}
    body = await api.gql(FOOTPRINT_AND_INVENTORY, variables, subject="manager")
    inventory = body["data"]["ghgInventory"]
    _check_reconciles(inventory, body["data"]["node"]["footprint"])
    _check_reductions(inventory, body["data"]["node"]["reductions"])
    # Hand-checked (docs/methodology.md example): 300 kWh × 0.3869; gas 10,811 + 8,649 + 6,487;
    # water 3 × 447; rooftop solar counts no emissions.
    mix = {q["dataQuality"]: (q["recordCount"], q["gross"]) for q in inventory["dataQuality"]}
    assert mix == {
        "METERED": (2, 116_070),
        "ESTIMATED": (3, 25_947),
        "SELF_REPORTED": (3, 1_341),
    }
    shares = [Decimal(q["shareOfGross"]) for q in inventory["dataQuality"]]
    assert shares == [Decimal("0.8097"), Decimal("0.1810"), Decimal("0.0094")]
    assert inventory["cleanEnergyOffset"] == 46_428
    rows = _csv_rows(inventory["csv"])
    assert {r["item"]: r["share"] for r in rows if r["section"] == "data_quality"} == {
        "METERED": "0.8097",
        "ESTIMATED": "0.1810",
        "SELF_REPORTED": "0.0094",
    }
    versions = {
        (r["item"], r["factor_basis"]): (r["factor_region"], r["factor_version"])
        for r in rows
        if r["section"] == "factor"
    }
    assert versions[("ELECTRICITY", "location")] == ("CN-SOUTHERN-GRID", "1")
    assert versions[("ELECTRICITY", "residual")] == ("CN", "1")

    # A year without data: zeros, no data-quality mix, not an error.
    body = await api.gql(FOOTPRINT_AND_INVENTORY, {**variables, "year": 2021}, subject="manager")
    empty = body["data"]["ghgInventory"]
    assert empty["gross"] == empty["scope1"] == empty["scope3Plus"] == 0
    assert empty["dataQuality"] == [] and empty["factors"] == []
    assert [r["section"] for r in _csv_rows(empty["csv"])].count("data_quality") == 0

    # Who may export: reporting roles on the subtree; not partner services, not residents.
    await grant(engine, "esg", Role.ESG_ANALYST, "Enterprise", village.enterprise)
    await grant(engine, "partner", Role.PARTNER_SERVICE, "Enterprise", village.enterprise)
    await grant(engine, "villager", Role.RESIDENT, "Individual", village.members[0])
    await grant(engine, "other-org", Role.ORG_ADMIN, "Enterprise", 999)
    query = "query($id: ID!, $y: Int!) { ghgInventory(nodeId: $id, year: $y) { gross } }"
    # The village holds fewer than k = 10 people: withheld whole from an analyst
    # (docs/privacy.md), shown with k lowered.
    withheld = await api.gql(query, {"id": community, "y": 2023}, subject="esg", allow_errors=True)
    assert withheld["data"]["ghgInventory"] is None
    assert withheld["errors"][0]["extensions"] == {"code": "SUPPRESSED", "reason": "SMALL_CELL"}
    open_app = create_app(dataclasses.replace(api.settings, small_cell_k=1), engine=engine)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=open_app), base_url="http://test"
    ) as client:
        open_api = Api(client, api.settings)
        ok = await open_api.gql(query, {"id": community, "y": 2023}, subject="esg")
        assert ok["data"]["ghgInventory"]["gross"] == inventory["gross"]
        field = "query($id: ID!) { community(id: $id) { inventory(year: 2023) { gross } } }"
        body = await open_api.gql(field, {"id": community}, subject="esg")
        assert body["data"]["community"]["inventory"]["gross"] == inventory["gross"]
    enterprise = gid("Enterprise", village.enterprise)
    for subject, node, year, code in (
        ("partner", community, 2023, "FORBIDDEN"),
        ("villager", community, 2023, "FORBIDDEN"),
        ("other-org", community, 2023, "NOT_FOUND"),
        ("manager", enterprise, 2023, "FORBIDDEN"),  # above the manager's community
        ("manager", gid("Household", village.household), 2023, "BAD_USER_INPUT"),
        ("manager", gid("Individual", village.members[0]), 2023, "BAD_USER_INPUT"),
        ("manager", gid("Community", 99_999), 2023, "NOT_FOUND"),
        ("manager", "not-an-id", 2023, "NOT_FOUND"),
        ("manager", community, 0, "BAD_USER_INPUT"),
    ):
        body = await api.gql(query, {"id": node, "y": year}, subject=subject, allow_errors=True)
        assert body["errors"][0]["extensions"]["code"] == code, (subject, node, year)
        assert body["data"]["ghgInventory"] is None
    field = "query($id: ID!) { community(id: $id) { inventory(year: 2023) { gross } } }"
    body = await api.gql(field, {"id": community}, subject="partner", allow_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    # The command line: clear errors, zeros for an empty year, a file with --output.
    bad = await _cli(engine, "--node", community, "--year", "2023", "--format", "xml")
    assert bad.exit_code == 2 and "--format is one of csv, json" in bad.output
    wrong = await _cli(engine, "--node", f"Household:{village.household}", "--year", "2023")
    assert (
        wrong.exit_code == 1 and "inventories are for enterprises and communities" in wrong.output
    )
    unknown = await _cli(engine, "--node", "e99999/", "--year", "2023")
    assert unknown.exit_code == 1 and "no enterprise or community" in unknown.output
    out = tmp_path / "inventory.json"
    done = await _cli(
        engine, "--node", community, "--year", "2021", "--format", "json", "--output", str(out)
    )
    assert done.exit_code == 0, done.output
    document = json.loads(out.read_text())
    assert document["gross"] == 0 and document["data_quality"] == []
    done = await _cli(engine, "--node", community, "--year", "2023", "--output", str(out))
    assert done.exit_code == 0 and out.read_text() == inventory["csv"]


async def test_scope3_plus_apart_and_records_straddling_new_year(api, engine):
    from datetime import date

    from carbongraph.accounting.ingest import ActivityInput, ingest
    from carbongraph.actions.record import ActionInput
    from tests.test_actions import _partner_post
    from tests.world import build_world

    world = await build_world(engine, communities=2, households=2, members=2)
    people = world.a.all_members
    trips = [
        ActionInput(pk, "SUBWAY_TRIP", 1, date(2025, 3, 1 + d), f"trip-{pk}-{d}")
        for pk in people
        for d in range(3)
    ]
    assert (await _partner_post(engine, trips)).errors == []
    home = world.a.all_households[0]
    async with engine.begin() as conn:
        bill = ActivityInput(
            "Household",
            home,
            "ELECTRICITY",
            "310",
            "kWh",
            date(2024, 12, 17),
            date(2025, 1, 15),
            "METER",
            "bill-dec-jan",
        )
        assert not (await ingest(conn, [bill], today=date(2025, 6, 1))).errors
    node = gid("Enterprise", world.a.enterprise)
    by_year = {}
    for year in (2024, 2025):
        body = await api.gql(
            FOOTPRINT_AND_INVENTORY,
            {"id": node, "year": year, "via": "COMMUNITIES"},
            subject="org-a",
        )
        inventory, footprint = body["data"]["ghgInventory"], body["data"]["node"]["footprint"]
        for key in CSV_KEYS.values():
            assert inventory[key] == footprint[key], (year, key)
        assert inventory["scope3Plus"] == footprint["scope3Plus"]
        by_year[year] = inventory
    # 15 of the bill's 30 days fall in each year: the totals split it, to the gram.
    assert by_year[2024]["scope2LocationBased"] + by_year[2025]["scope2LocationBased"] == sum(
        f["locationBased"] for f in by_year[2024]["factors"]
    )
    # 310 kWh × 0.3869 = 119,939 g over 30 days: 3,998 g on the first 29, 3,997 on the last.
    assert (by_year[2024]["scope2LocationBased"], by_year[2025]["scope2LocationBased"]) == (
        15 * 3_998,
        14 * 3_998 + 3_997,
    )
    # The factor table lists the whole bill under its start year (as `explain` does).
    assert [f["recordCount"] for f in by_year[2024]["factors"]] == [1]
    assert by_year[2025]["factors"] == [] and by_year[2025]["dataQuality"] == []
    # Subway trips are Scope 3+ on the communities path: reported apart, never in gross/net.
    assert by_year[2025]["scope3Plus"] == len(trips) * 554
    assert by_year[2025]["gross"] == by_year[2025]["scope2LocationBased"]
    rows = _csv_rows(by_year[2025]["csv"])
    (plus,) = [r for r in rows if r["item"] == "scope_3_plus"]
    assert int(plus["grams"]) == len(trips) * 554 and plus["section"] == "reported_apart"
    assert json.loads(by_year[2025]["json"])["reported_apart"]["scope_3_plus"] == len(trips) * 554
