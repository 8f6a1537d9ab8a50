"""The accounting core, checked by hand to the gram.

Factors in force for a Guangdong (CN-GD) household on 2023-05-01, as shipped:
- electricity, location-based: Southern grid 2022, 0.3869 kgCO2/kWh (MEE/NBS; no provincial
  Guangdong factor is shipped and the regional one is more specific than the national 0.5306);
- electricity, market-based residual: national excluding market-traded non-fossil, 0.5856;
- natural gas 2.1622 kgCO2/m³; tap water 0.149 kgCO2e/m³ (Scope 3 category 1).
"""

from __future__ import annotations

import sqlalchemy as sa

from carbongraph.models import ActivityRecord, FootprintTotal
from tests.accounting_world import RECORD, activity, build_village, may_2023
from tests.world import gid

FOOTPRINT = """
fragment F on Footprint { scope1 scope2LocationBased scope2MarketBased scope3
  scope3Categories { category grams } gross cleanEnergyOffset net recordCount memberCount
  perCapita }
query($h: ID!, $c: ID!, $e: ID!, $p: PeriodInput!) {
  household(id: $h) { footprint(period: $p) { ...F }
    members { edges { node { footprint(period: $p) { ...F } } } } }
  community(id: $c) { footprint(period: $p) { ...F } }
  enterprise(id: $e) { footprint(period: $p) { ...F } employees: footprint(period: $p,
    via: EMPLOYEES) { gross } }
  platformFootprint(period: $p) { ...F }
}
"""

# Hand-computed, grams, each record rounded half-even:
ELECTRICITY = 116_070  # 300 kWh × 0.3869
ELECTRICITY_MARKET = 175_680  # 300 kWh × 0.5856
SOLAR_OFFSET = 46_428  # 120 kWh × 0.3869
GAS = [10_811, 8_649, 6_487]  # 5, 4, 3 m³ × 2.1622 = 10.8110, 8.6488, 6.4866 kg
WATER = [447, 447, 447]  # 3 m³ × 0.149
SCOPE1 = sum(GAS)  # 25,947
SCOPE3 = sum(WATER)  # 1,341
GROSS = SCOPE1 + ELECTRICITY + SCOPE3  # 143,358
NET = GROSS - SOLAR_OFFSET  # 96,930


async def _record(api, records, subject="manager"):
    body = await api.gql(RECORD, {"records": records}, subject=subject)
    return body["data"]["recordActivities"]


async def _footprints(api, village, period):
    body = await api.gql(
        FOOTPRINT,
        {
            "h": gid("Household", village.household),
            "c": gid("Community", village.community),
            "e": gid("Enterprise", village.enterprise),
            "p": period,
        },
        subject="admin",
    )
    return body["data"]


async def test_guangdong_household_may_2023_to_the_gram(engine, api):
    village = await build_village(engine)
    payload = await _record(api, may_2023(village))
    assert payload["userErrors"] == [] and payload["createdCount"] == 8
    data = await _footprints(api, village, {"month": "2023-05"})
    household = data["household"]["footprint"]
    assert household == {
        "scope1": SCOPE1,
        "scope2LocationBased": ELECTRICITY,
        "scope2MarketBased": ELECTRICITY_MARKET,
        "scope3": SCOPE3,
        "scope3Categories": [{"category": 1, "grams": SCOPE3}],
        "gross": GROSS,
        "cleanEnergyOffset": SOLAR_OFFSET,
        "net": NET,
        "recordCount": 8,
        "memberCount": 3,
        "perCapita": 32_310,  # 96,930 / 3
    }
    # The household is exactly its members plus its own meters (electricity, solar).
    members = [e["node"]["footprint"] for e in data["household"]["members"]["edges"]]
    assert sorted(m["scope1"] for m in members) == sorted(GAS)
    own_meters = {
        "scope1": 0,
        "scope2LocationBased": ELECTRICITY,
        "scope3": 0,
        "cleanEnergyOffset": SOLAR_OFFSET,
    }
    for figure, own in own_meters.items():
        assert household[figure] == sum(m[figure] for m in members) + own
    # Every ancestor sees the same grams: the household is the only one with data.
    for level in (
        data["community"]["footprint"],
        data["enterprise"]["footprint"],
        data["platformFootprint"],
    ):
        assert {k: v for k, v in level.items() if k not in {"memberCount", "perCapita"}} == {
            k: v for k, v in household.items() if k not in {"memberCount", "perCapita"}
        }
        assert level["memberCount"] == 4  # the neighbour's household counts as a member
    assert data["enterprise"]["employees"] == {"gross": 0}  # nobody works for the programme
    # Other months are empty, not errors.
    empty = await _footprints(api, village, {"month": "2023-06"})
    assert empty["household"]["footprint"]["gross"] == 0


async def test_series_explain_and_recalculate(engine, api):
    village = await build_village(engine)
    await _record(api, may_2023(village))
    query = """query($h: ID!) { household(id: $h) { footprint(period: {year: 2023}) {
      gross series(granularity: MONTH) { from to gross net }
      weekly: series(granularity: WEEK) { from gross }
      explain { activityType recordCount quantity unit locationBased
        factor { regionCode kgCo2ePerUnit version validFrom } } } } }"""
    body = await api.gql(query, {"h": gid("Household", village.household)}, subject="admin")
    footprint = body["data"]["household"]["footprint"]
    months = footprint["series"]
    assert len(months) == 12 and months[4] == {
        "from": "2023-05-01",
        "to": "2023-05-31",
        "gross": GROSS,
        "net": NET,
    }
    assert sum(m["gross"] for m in months) == GROSS == footprint["gross"]
    # Monthly readings are spread over their days, exactly: weeks add up to the month.
    assert sum(w["gross"] for w in footprint["weekly"]) == GROSS
    explain = {e["activityType"]: e for e in footprint["explain"]}
    assert explain["ELECTRICITY"]["factor"] == {
        "regionCode": "CN-SOUTHERN-GRID",
        "kgCo2ePerUnit": "0.3869",
        "version": 1,
        "validFrom": "2022-01-01",
    }
    assert explain["NATURAL_GAS"]["recordCount"] == 3
    assert explain["NATURAL_GAS"]["quantity"] == "12" and explain["WATER"]["quantity"] == "9"

    # A corrected factor (version 2) changes nothing until an admin recalculates.
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO emission_factor (factor_key, basis, region_code, unit, valid_from, "
                "ug_per_unit, gwp_set, source, citation, version, created_at) VALUES ("
                "'electricity', 'location', 'CN-SOUTHERN-GRID', 'kWh', '2022-01-01', 400000000, "
                "'AR5', 'test', "
                "'corrected value for the test', 2, CURRENT_TIMESTAMP)"
            )
        )
    recalc = """mutation($n: ID) { recalculateFootprint(input: {nodeId: $n,
      period: {year: 2023}}) { examinedCount changedCount footprint { gross cleanEnergyOffset }
      userErrors { code } } }"""
    denied = await api.gql(recalc, {"n": gid("Community", village.community)}, subject="nobody")
    assert denied["data"]["recalculateFootprint"]["userErrors"] == [{"code": "NOT_FOUND"}]
    body = await api.gql(recalc, {"n": gid("Community", village.community)}, subject="manager")
    result = body["data"]["recalculateFootprint"]
    new_electricity, new_offset = 120_000, 48_000  # 300 and 120 kWh × 0.4
    assert result["examinedCount"] == 8 and result["changedCount"] == 2
    assert result["footprint"] == {
        "gross": GROSS - ELECTRICITY + new_electricity,
        "cleanEnergyOffset": new_offset,
    }
    again = await api.gql(recalc, {"n": gid("Community", village.community)}, subject="manager")
    assert again["data"]["recalculateFootprint"]["changedCount"] == 0
    body = await api.gql(query, {"h": gid("Household", village.household)}, subject="admin")
    explain = {e["activityType"]: e for e in body["data"]["household"]["footprint"]["explain"]}
    assert explain["ELECTRICITY"]["factor"]["version"] == 2
    assert explain["ELECTRICITY"]["locationBased"] == new_electricity


async def _counts(engine):
    async with engine.connect() as conn:
        return (
            await conn.scalar(sa.select(sa.func.count()).select_from(ActivityRecord)),
            await conn.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(FootprintTotal.__table__.c.location_g), 0))
            ),
        )


async def test_bad_records_are_refused_whole_with_stable_codes(engine, api):
    village = await build_village(engine)
    await _record(api, may_2023(village))
    before = await _counts(engine)
    home = gid("Household", village.household)
    person = gid("Individual", village.members[0])
    cases = [
        (
            activity(person, "NATURAL_GAS", "-1", "m3", "2023-06-01", "2023-06-30"),
            "NEGATIVE_QUANTITY",
        ),
        (
            activity(person, "NATURAL_GAS", "1", "furlongs", "2023-06-01", "2023-06-30"),
            "UNKNOWN_UNIT",
        ),
        (activity(person, "NATURAL_GAS", "1", "kWh", "2023-06-01", "2023-06-30"), "UNKNOWN_UNIT"),
        (activity(person, "COAL", "1", "kg", "2023-06-01", "2023-06-30"), "UNKNOWN_ACTIVITY_TYPE"),
        (activity(person, "NATURAL_GAS", "1", "m3", "2099-01-01", "2099-01-31"), "FUTURE_PERIOD"),
        (
            activity(home, "ELECTRICITY", "10", "kWh", "2023-05-20", "2023-06-10"),
            "OVERLAPPING_PERIOD",
        ),
        (activity(person, "NATURAL_GAS", "1", "m3", "2023-06-10", "2023-06-01"), "INVALID_PERIOD"),
        (
            activity(
                home,
                "ELECTRICITY",
                "301",
                "kWh",
                "2023-05-01",
                "2023-05-31",
                externalId="h1-elec-2023-05",
            ),
            "EXTERNAL_ID_CONFLICT",
        ),
    ]
    for bad, code in cases:
        # A valid record travels with each bad one: the batch is refused whole.
        good = activity(person, "WATER", "1", "m3", "2023-07-01", "2023-07-31")
        payload = await _record(api, [good, bad])
        assert [e["code"] for e in payload["userErrors"]] == [code], (code, payload)
        assert payload["userErrors"][0]["field"][:3] == ["input", "records", "1"]
        assert payload["records"] == []
    assert await _counts(engine) == before

    # An archived account takes no new records.
    archive = """mutation($id: ID!) { archiveIndividual(input: {id: $id,
      effectiveOn: "2023-06-01"}) { userErrors { code } } }"""
    body = await api.gql(archive, {"id": person}, subject="manager")
    assert body["data"]["archiveIndividual"]["userErrors"] == []
    payload = await _record(api, [activity(person, "WATER", "1", "m3", "2023-07-01", "2023-07-31")])
    assert [e["code"] for e in payload["userErrors"]] == ["ARCHIVED_ACCOUNT"]


async def test_replaying_records_changes_nothing(engine, api):
    village = await build_village(engine)
    first = await _record(api, may_2023(village))
    before = await _counts(engine)
    again = await _record(api, may_2023(village))
    assert again["createdCount"] == 0 and again["unchangedCount"] == 8
    assert [r["id"] for r in again["records"]] == [r["id"] for r in first["records"]]
    assert await _counts(engine) == before


async def test_who_may_record(engine, api):
    village = await build_village(engine)
    neighbour_home = gid("Household", village.other_household)
    record = activity(neighbour_home, "ELECTRICITY", "1", "kWh", "2023-05-01", "2023-05-01")
    payload = await _record(api, [record], subject="nobody")
    assert [e["code"] for e in payload["userErrors"]] == ["NOT_FOUND"]
    payload = await _record(api, [record], subject="manager")
    assert payload["userErrors"] == []


async def test_a_backdated_move_moves_the_records_totals(engine, api):
    village = await build_village(engine)
    person = village.members[0]
    await _record(
        api,
        [
            activity(
                gid("Individual", person), "NATURAL_GAS", "10", "m3", "2023-06-01", "2023-06-30"
            )
        ],
    )
    move = """mutation($p: ID!, $h: ID!) { moveIndividual(input: {individualId: $p,
      householdId: $h, effectiveFrom: "2023-06-01"}) { userErrors { code } } }"""
    body = await api.gql(
        move,
        {"p": gid("Individual", person), "h": gid("Household", village.other_household)},
        subject="manager",
    )
    assert body["data"]["moveIndividual"]["userErrors"] == []
    query = """query($a: ID!, $b: ID!) {
      a: household(id: $a) { footprint(period: {month: "2023-06"}) { scope1 memberCount } }
      b: household(id: $b) { footprint(period: {month: "2023-06"}) { scope1 memberCount } }
      may: household(id: $a) { footprint(period: {month: "2023-05"}) { memberCount } } }"""
    body = await api.gql(
        query,
        {"a": gid("Household", village.household), "b": gid("Household", village.other_household)},
        subject="admin",
    )
    data = body["data"]
    assert data["a"]["footprint"] == {"scope1": 0, "memberCount": 2}
    assert data["b"]["footprint"] == {"scope1": 21_622, "memberCount": 2}
    assert data["may"]["footprint"]["memberCount"] == 3  # history is not rewritten
