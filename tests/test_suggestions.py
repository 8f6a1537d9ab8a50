"""Suggestions: each rule's threshold and arithmetic (pure), the demo village's rooftop solar,
a dorm's night register, and who may read them (both backends)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib import resources

import pytest

from carbongraph.accounting.compute import grams
from carbongraph.accounting.factors import Factor, FactorLibrary
from carbongraph.accounting.ingest import ActivityInput, ingest
from carbongraph.demo.seed import seed_demo
from carbongraph.insights.suggestions import Account, Usage, evaluate, rule_book
from carbongraph.resolvers.dataloaders import H
from tests.world import build_world, gid

TODAY = date(2026, 6, 30)
YEAR_AGO = TODAY - timedelta(days=365)


def _factor(pk: int, key: str, region: str, kg: str, unit: str = "kWh") -> Factor:
    ug = int(Decimal(kg) * 1_000_000_000)
    return Factor(pk, key, "location", region, unit, date(2000, 1, 1), None, ug, 1)


LIBRARY = FactorLibrary(
    [
        _factor(1, "electricity", "CN", "0.5"),
        _factor(2, "electricity", "CN-SOUTHERN-GRID", "0.4"),
        _factor(3, "water_supply", "*", "0.149", "m3"),
        _factor(4, "natural_gas", "CN", "2.1622", "m3"),
        _factor(5, "gasoline", "*", "2.27179", "L"),
    ]
)


def _year(quantity: str, night: str = "0") -> Usage:
    """A whole year of records (365 days), so annualised = recorded."""
    return Usage(
        int(Decimal(quantity) * 1000),
        int(Decimal(night) * 1000),
        YEAR_AGO,
        YEAR_AGO + timedelta(days=364),
    )


def _house(
    region: str = "CN-GD", solar: bool = False, members: int = 3, dwelling: str = "HOUSE"
) -> Account:
    return Account("Household", 1, region, dwelling, solar, members)


def _codes(found: list) -> list[str]:
    return [s.code for s in found]


def test_rules_file_is_cited_and_every_rule_has_code():
    book = rule_book()
    assert book["format"] == "carbongraph-suggestion-rules/1"
    assert {r["code"] for r in book["rules"]} == {
        "ROOFTOP_SOLAR",
        "RAINWATER_HARVESTING",
        "NIGHT_BASELOAD",
        "SUBWAY_COMMUTE",
        "HEAT_PUMP_WATER_HEATER",
    }
    for rule in book["rules"]:
        assert rule["sources"], rule["code"]
        for name, param in rule["parameters"].items():
            assert isinstance(param["assumption"], bool), name
            assert param["basis"].strip(), name
            Decimal(param["value"])  # every number parses


def test_rooftop_solar_threshold_yield_and_money():
    below = evaluate(_house(), {"ELECTRICITY": _year("2699")}, LIBRARY, TODAY)
    assert "ROOFTOP_SOLAR" not in _codes(below)
    found = evaluate(_house(), {"ELECTRICITY": _year("4000")}, LIBRARY, TODAY)
    solar = next(s for s in found if s.code == "ROOFTOP_SOLAR")
    # 3 kWp × 1,000 kWh/kWp in Guangdong → 3,000 kWh at the Southern grid factor 0.4.
    assert solar.annual_co2e_g == 1_200_000
    # Half used at home at 0.59 CNY/kWh, half exported at 0.453.
    assert solar.annual_money == Decimal("1564.50")
    assert "4,000 kWh" in solar.why and "no rooftop solar" in solar.why
    assert any("system_kwp" in a for a in solar.assumptions)
    # Not for homes that have solar, nor for flats without a roof of their own.
    assert "ROOFTOP_SOLAR" not in _codes(
        evaluate(_house(solar=True), {"ELECTRICITY": _year("4000")}, LIBRARY, TODAY)
    )
    assert "ROOFTOP_SOLAR" not in _codes(
        evaluate(_house(dwelling="APARTMENT"), {"ELECTRICITY": _year("4000")}, LIBRARY, TODAY)
    )
    # Self-consumption is capped at the home's own use; elsewhere the national defaults apply.
    small = evaluate(_house(region="CN-HB"), {"ELECTRICITY": _year("2800")}, LIBRARY, TODAY)
    solar = next(s for s in small if s.code == "ROOFTOP_SOLAR")
    assert solar.annual_co2e_g == 1_500_000  # 3,000 kWh × 0.5 (national factor)
    assert solar.annual_money == Decimal("1395.00")  # 1,500 × 0.56 + 1,500 × 0.37


def test_too_little_data_suggests_nothing():
    short = Usage(400_000, 0, TODAY - timedelta(days=13), TODAY - timedelta(days=1))
    assert evaluate(_house(), {"ELECTRICITY": short}, LIBRARY, TODAY) == []


def test_rainwater_uses_members_and_caps_at_non_potable_share():
    # 3 people × 140 L/day = 153.3 m³: below 150 L per person and day.
    assert "RAINWATER_HARVESTING" not in _codes(
        evaluate(_house(), {"WATER": _year("153.3")}, LIBRARY, TODAY)
    )
    found = evaluate(_house(), {"WATER": _year("200")}, LIBRARY, TODAY)
    rain = next(s for s in found if s.code == "RAINWATER_HARVESTING")
    # Guangdong: 80 m² × 1.7 m × 0.5 = 68 m³ collectable, capped at 30 % of 200 = 60 m³.
    assert rain.annual_co2e_g == grams(60_000, LIBRARY.select("water_supply", "CN-GD", TODAY))
    assert rain.annual_co2e_g == 8_940
    assert rain.annual_money == Decimal("180.00")


def test_night_baseload_reads_the_night_register_of_dorm_rooms():
    dorm = _house(region="CN-HB", dwelling="DORM_ROOM", members=4)
    assert "NIGHT_BASELOAD" not in _codes(
        evaluate(dorm, {"ELECTRICITY": _year("1000", night="399")}, LIBRARY, TODAY)
    )
    found = evaluate(dorm, {"ELECTRICITY": _year("1000", night="500")}, LIBRARY, TODAY)
    night = next(s for s in found if s.code == "NIGHT_BASELOAD")
    assert night.annual_co2e_g == 75_000  # 30 % of 500 kWh × 0.5 kg
    assert night.annual_money == Decimal("84.00")  # 150 kWh × 0.56
    assert "50 %" in night.why
    # Houses are not in the rule's dwelling types.
    assert "NIGHT_BASELOAD" not in _codes(
        evaluate(_house(), {"ELECTRICITY": _year("1000", night="500")}, LIBRARY, TODAY)
    )


def test_subway_for_a_frequent_driver_nets_metro_electricity():
    person = Account("Individual", 9, "CN-HB", None, False, 1)
    assert evaluate(person, {"GASOLINE": _year("499")}, LIBRARY, TODAY) == []
    found = evaluate(person, {"GASOLINE": _year("700")}, LIBRARY, TODAY)
    (subway,) = found
    assert subway.code == "SUBWAY_COMMUTE"
    # 280 L replaced = 4,000 km; metro 4,000 × 0.06 = 240 kWh at 0.5 kg.
    petrol = LIBRARY.select("gasoline", "CN-HB", TODAY)
    assert subway.annual_co2e_g == grams(280_000, petrol) - 120_000
    # 280 L × 7.8 − 333 trips × 5 CNY.
    assert subway.annual_money == Decimal("519.00")


def test_heat_pump_is_suggested_only_where_it_saves():
    found = evaluate(_house(), {"NATURAL_GAS": _year("300")}, LIBRARY, TODAY)
    pump = next(s for s in found if s.code == "HEAT_PUMP_WATER_HEATER")
    kwh = Decimal(150) * Decimal("38.931") * Decimal("0.86") / Decimal("3.6") / Decimal(3)
    gas = LIBRARY.select("natural_gas", "CN-GD", TODAY)
    electricity = LIBRARY.select("electricity", "CN-GD", TODAY)
    expected = grams(150_000, gas) - grams(int((kwh * 1000).quantize(1)), electricity)
    assert pump.annual_co2e_g == expected > 0
    # On a grid dirtier than burning the gas, a heat pump saves nothing: no suggestion.
    dirty = FactorLibrary(
        [_factor(1, "electricity", "CN", "1.5"), _factor(4, "natural_gas", "CN", "2.1622", "m3")]
    )
    assert evaluate(_house(), {"NATURAL_GAS": _year("300")}, dirty, TODAY) == []


def test_largest_saving_first():
    usage = {"ELECTRICITY": _year("4000"), "WATER": _year("200"), "NATURAL_GAS": _year("300")}
    found = evaluate(_house(), usage, LIBRARY, TODAY)
    assert _codes(found) == ["ROOFTOP_SOLAR", "HEAT_PUMP_WATER_HEATER", "RAINWATER_HARVESTING"]
    assert [s.annual_co2e_g for s in found] == sorted(
        (s.annual_co2e_g for s in found), reverse=True
    )


SUGGESTIONS = """
query($id: ID!) { household(id: $id) { suggestions {
  code ruleVersion title why annualCo2eSaved annualKgCo2eSaved annualMoneySaved currency
  evidence { label value unit } assumptions sources observedFrom observedTo daysObserved } } }
"""


async def test_demo_village_homes_get_rooftop_solar(api, engine):
    await seed_demo(engine)
    async with engine.connect() as conn:
        homes = {
            row.external_ref: row
            for row in await conn.execute(
                H.select().where(H.c.external_ref.in_(["demo:xinqiao:h1", "demo:xinqiao:h6"]))
            )
        }
        library = await FactorLibrary.load(conn)
    today = datetime.now(UTC).date()
    # The demo resident's own home (a house without solar, ~4,000 kWh a year).
    body = await api.gql(
        SUGGESTIONS, {"id": gid("Household", homes["demo:xinqiao:h1"].id)}, subject="demo-resident"
    )
    found = {s["code"]: s for s in body["data"]["household"]["suggestions"]}
    assert {"ROOFTOP_SOLAR", "RAINWATER_HARVESTING", "HEAT_PUMP_WATER_HEATER"} <= set(found)
    solar = found["ROOFTOP_SOLAR"]
    factor = library.select("electricity", "CN-GD", today)
    assert factor is not None and factor.region_code == "CN-SOUTHERN-GRID"
    assert solar["annualCo2eSaved"] == grams(3_000_000, factor) == 1_160_700
    assert solar["annualKgCo2eSaved"] == "1160.700"
    assert solar["annualMoneySaved"] == "1564.50" and solar["currency"] == "CNY"
    assert solar["daysObserved"] == 28 and "28 days of records" in solar["why"]
    assert solar["observedTo"] == (today - timedelta(days=1)).isoformat()
    # The community manager sees every home; those with rooftop solar get no such suggestion.
    body = await api.gql(
        SUGGESTIONS,
        {"id": gid("Household", homes["demo:xinqiao:h6"].id)},
        subject="demo-community-manager",
    )
    assert "ROOFTOP_SOLAR" not in {s["code"] for s in body["data"]["household"]["suggestions"]}


async def test_dorm_night_register_and_who_may_read(api, engine):
    world = await build_world(engine, communities=1, households=2, members=2)
    home = world.a.households[world.a.communities[0]][0]
    other = world.a.households[world.a.communities[0]][1]
    today = datetime.now(UTC).date()
    async with engine.begin() as conn:
        await conn.execute(H.update().where(H.c.id == home).values(dwelling_type="DORM_ROOM"))
        inputs = []
        for n in range(1, 31):
            day = today - timedelta(days=n)
            for register, kwh in (("day", "3"), ("night", "2")):
                inputs.append(
                    ActivityInput(
                        "Household",
                        home,
                        "ELECTRICITY",
                        kwh,
                        "kWh",
                        day,
                        day,
                        "METER",
                        f"dorm:{register}:{day}",
                        register,
                    )
                )
        result = await ingest(conn, inputs, today=today)
        assert not result.errors
        library = await FactorLibrary.load(conn)
    body = await api.gql(SUGGESTIONS, {"id": gid("Household", home)}, subject="cm-a0")
    (night,) = body["data"]["household"]["suggestions"]
    assert night["code"] == "NIGHT_BASELOAD"
    # 60 of 150 kWh at night (40 %); 60 kWh × 365/30 = 730 kWh a year, 30 % of it cut.
    assert night["annualCo2eSaved"] == grams(219_000, library.select("electricity", "CN-GD", today))
    assert "40 %" in night["why"]

    # The resident sees their own household only; ESG analysts and partner services never
    # (suggestions are personal); another tenant's admin gets NOT_FOUND.
    resident = await api.gql(SUGGESTIONS, {"id": gid("Household", home)}, subject="resident-a")
    assert resident["data"]["household"]["suggestions"][0]["code"] == "NIGHT_BASELOAD"
    for subject, household, code in (
        ("resident-a", other, "FORBIDDEN"),
        ("esg-a", home, "FORBIDDEN"),
        ("partner-a", home, "FORBIDDEN"),
        ("org-b", home, "NOT_FOUND"),
    ):
        body = await api.gql(
            SUGGESTIONS, {"id": gid("Household", household)}, subject=subject, allow_errors=True
        )
        assert body["errors"][0]["extensions"]["code"] == code, subject
        assert not (body["data"]["household"] or {}).get("suggestions")


async def test_individual_suggestions_from_own_petrol(api, engine):
    world = await build_world(engine, communities=1, households=1, members=1)
    home = world.a.households[world.a.communities[0]][0]
    person = world.a.members[home][0]
    today = datetime.now(UTC).date()
    start = today - timedelta(days=60)
    async with engine.begin() as conn:
        result = await ingest(
            conn,
            [
                ActivityInput(
                    "Individual",
                    person,
                    "GASOLINE",
                    "120",
                    "L",
                    start,
                    today - timedelta(days=1),
                    "APP",
                    "petrol-1",
                )
            ],
            today=today,
        )
        assert not result.errors
    query = "query($id: ID!) { individual(id: $id) { suggestions { code why annualCo2eSaved } } }"
    body = await api.gql(query, {"id": gid("Individual", person)}, subject="resident-a")
    (subway,) = body["data"]["individual"]["suggestions"]
    assert subway["code"] == "SUBWAY_COMMUTE" and subway["annualCo2eSaved"] > 0
    assert "730 L of petrol" in subway["why"]  # 120 L over 60 days → 730 L a year
    # The household has the same record (it rolls up), so the home is told too.
    body = await api.gql(SUGGESTIONS, {"id": gid("Household", home)}, subject="resident-a")
    assert "SUBWAY_COMMUTE" in {s["code"] for s in body["data"]["household"]["suggestions"]}
    none = await api.gql(
        query, {"id": gid("Individual", person)}, subject="esg-a", allow_errors=True
    )
    assert none["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_rule_file_is_shipped_as_package_data():
    text = resources.files("carbongraph").joinpath("data/suggestion_rules.json").read_text()
    assert json.loads(text)["version"] == rule_book()["version"]


@pytest.mark.parametrize("code", ["ROOFTOP_SOLAR", "SUBWAY_COMMUTE"])
def test_every_assumption_is_listed_on_the_suggestion(code):
    rule = next(r for r in rule_book()["rules"] if r["code"] == code)
    usage = {"ELECTRICITY": _year("5000"), "GASOLINE": _year("900")}
    account = (
        _house() if code == "ROOFTOP_SOLAR" else Account("Individual", 1, "CN", None, False, 1)
    )
    found = next(s for s in evaluate(account, usage, LIBRARY, TODAY) if s.code == code)
    marked = [n for n, p in rule["parameters"].items() if p["assumption"]]
    assert len(found.assumptions) == len(marked) + 1  # + the dwelling basis
    for name in marked:
        assert any(a.startswith(f"{name} = ") for a in found.assumptions)
