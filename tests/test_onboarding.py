"""Onboarding in bulk: `import hierarchy`, createHouseholds / createIndividuals, and the
NOT_ATTRIBUTED warning for records dated where a person has no household."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from carbongraph.accounting.importer import import_activities
from carbongraph.audit import A
from carbongraph.models import ActionRecordRow, metadata
from carbongraph.resolvers.dataloaders import M
from carbongraph.services.hierarchy_import import import_hierarchy
from tests.world import SINCE, build_world, gid

AR = ActionRecordRow.__table__
REPO = Path(__file__).resolve().parents[1]
JOINED = date(2025, 3, 1)
VILLAGERS = 589
HOMES = 150


def village(people: int = VILLAGERS, homes: int = HOMES) -> list[dict[str, str]]:
    """A programme → township → village with ``homes`` houses and ``people`` villagers, all
    living there since JOINED (generated, so no blob is committed)."""
    rows = [
        {
            "type": "enterprise",
            "external_ref": "v:prog",
            "name": "Village programme",
            "kind": "CITY_PROGRAMME",
        },
        {
            "type": "community",
            "external_ref": "v:town",
            "name": "Township",
            "kind": "DISTRICT",
            "enterprise": "v:prog",
            "region_code": "CN-ZJ",
            "timezone": "Asia/Shanghai",
        },
        {
            "type": "community",
            "external_ref": "v:village",
            "name": "Village",
            "kind": "VILLAGE",
            "parent": "v:town",
        },
    ]
    rows += [
        {
            "type": "household",
            "external_ref": f"v:h{h}",
            "name": f"House {h}",
            "community": "v:village",
            "dwelling_type": "HOUSE",
            "has_rooftop_solar": "true" if h % 5 == 0 else "false",
        }
        for h in range(homes)
    ]
    rows += [
        {
            "type": "individual",
            "external_ref": f"v:p{p}",
            "name": f"Villager {p}",
            "email": f"villager{p}@example.org",
            "household": f"v:h{p % homes}",
            "member_from": JOINED.isoformat(),
        }
        for p in range(people)
    ]
    return rows


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


async def row_counts(engine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            t.name: await conn.scalar(sa.select(sa.func.count()).select_from(t))
            for t in metadata.sorted_tables
            if t.name != "audit_event"
        }


async def population(engine) -> list[tuple]:
    async with engine.connect() as conn:
        return sorted(
            tuple(r) for r in await conn.execute(sa.text("SELECT * FROM population_change"))
        )


# -- import hierarchy -------------------------------------------------------------------------
async def test_import_hierarchy_onboards_a_589_person_village_and_a_rerun_changes_nothing(
    engine, settings, tmp_path
):
    path = write_csv(tmp_path / "village.csv", village())
    before = await row_counts(engine)
    report = await import_hierarchy(engine, settings, path)
    assert report.errors == [] and report.committed
    assert report.created == {
        "enterprise": 1,
        "community": 2,
        "household": HOMES,
        "individual": VILLAGERS,
        "membership": 0,
        "employment": 0,
    }
    after = await row_counts(engine)
    assert after["individual"] - before["individual"] == VILLAGERS
    assert after["household"] - before["household"] == HOMES
    async with engine.connect() as conn:
        starts = list(
            await conn.execute(sa.select(M.c.valid_from, sa.func.count()).group_by(M.c.valid_from))
        )
    assert starts == [(JOINED, VILLAGERS)]
    people = await population(engine)

    again = await import_hierarchy(engine, settings, path)
    assert again.errors == [] and again.unchanged == 3 + HOMES + VILLAGERS
    assert sum(again.created.values()) == 0
    assert await row_counts(engine) == after
    assert await population(engine) == people


async def test_import_hierarchy_jsonl_with_moves_and_employments(engine, settings, tmp_path):
    rows = [
        *village(people=4, homes=2),
        {
            "type": "membership",
            "individual": "v:p0",
            "household": "v:h1",
            "valid_from": "2025-06-01",
        },
        {
            "type": "employment",
            "individual": "v:p1",
            "employer": "v:prog",
            "valid_from": "2025-04-01",
        },
    ]
    path = tmp_path / "village.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = await import_hierarchy(engine, settings, path)
    assert report.errors == [] and report.created["membership"] == 1
    assert report.created["employment"] == 1
    async with engine.connect() as conn:
        history = list(
            await conn.execute(
                sa.text(
                    "SELECT m.valid_from, m.valid_to, h.external_ref FROM household_membership m "
                    "JOIN household h ON h.id = m.household_id JOIN individual i "
                    "ON i.id = m.individual_id WHERE i.external_ref = 'v:p0' ORDER BY m.valid_from"
                )
            )
        )
    assert [tuple(str(v) if v else None for v in r) for r in history] == [
        ("2025-03-01", "2025-06-01", "v:h0"),
        ("2025-06-01", None, "v:h1"),
    ]
    counts = await row_counts(engine)
    again = await import_hierarchy(engine, settings, path)
    assert again.errors == [] and sum(again.created.values()) == 0
    assert await row_counts(engine) == counts


async def test_dry_run_reports_every_bad_line_and_writes_nothing(engine, settings, tmp_path):
    rows = [
        *village(people=3, homes=2),
        {"type": "household", "external_ref": "v:bad1", "name": "X", "community": "v:nowhere"},
        {
            "type": "individual",
            "external_ref": "v:bad2",
            "name": "Y",
            "email": "not-an-email",
            "household": "v:h0",
        },
        {
            "type": "individual",
            "external_ref": "v:bad3",
            "name": "Z",
            "household": "v:h0",
            "member_from": "2025-13-01",
        },
        {
            "type": "community",
            "external_ref": "v:bad4",
            "name": "W",
            "kind": "PLANET",
            "parent": "v:town",
        },
        {"type": "person", "external_ref": "v:bad5"},
        {"type": "individual", "name": "no ref", "household": "v:h0"},
    ]
    path = write_csv(tmp_path / "bad.csv", rows)
    before = await row_counts(engine)
    first_bad = len(village(people=3, homes=2)) + 2  # header is line 1
    for dry_run in (True, False):
        report = await import_hierarchy(engine, settings, path, dry_run=dry_run)
        assert not report.committed
        found = {(e.line, e.field, e.code) for e in report.errors}
        assert found == {
            (first_bad, "community", "NOT_FOUND"),
            (first_bad + 1, "email", "INVALID"),
            (first_bad + 2, "member_from", "INVALID_DATE"),
            (first_bad + 3, "kind", "INVALID"),
            (first_bad + 4, "type", "INVALID"),
            (first_bad + 5, "external_ref", "REQUIRED"),
        }
        assert await row_counts(engine) == before
    # The good lines alone would have gone through: the dry run checked them against each other.
    good = write_csv(tmp_path / "good.csv", village(people=3, homes=2))
    assert (await import_hierarchy(engine, settings, good, dry_run=True)).errors == []
    assert await row_counts(engine) == before


def test_the_hierarchy_command_writes_a_json_report(tmp_path):
    env = dict(os.environ, CARBONGRAPH_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'h.db'}")
    cli = [sys.executable, "-m", "carbongraph.cli"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True, timeout=120)
    example = REPO / "examples" / "onboarding" / "village.csv"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, "import", "hierarchy", str(example), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    checked = run("--dry-run", "--report", str(tmp_path / "dry.json"))
    assert checked.returncode == 0, checked.stderr
    assert "would create" in checked.stdout
    dry = json.loads((tmp_path / "dry.json").read_text())
    assert dry["dryRun"] and not dry["committed"] and dry["created"]["individual"] == 4
    done = run("--report", str(tmp_path / "r.json"))
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["committed"] and report["created"]["membership"] == 1
    assert run("--report", str(tmp_path / "again.json")).returncode == 0
    assert json.loads((tmp_path / "again.json").read_text())["unchanged"] == report["rows"]
    bad = tmp_path / "bad.csv"
    bad.write_text("type,external_ref,name,community\nhousehold,x,X,nowhere\n")
    failed = subprocess.run(
        [*cli, "import", "hierarchy", str(bad), "--report", str(tmp_path / "bad.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 1 and "NOT_FOUND" in failed.stderr
    errors = json.loads((tmp_path / "bad.json").read_text())["errors"]
    assert errors == [
        {"line": 2, "field": "community", "code": "NOT_FOUND", "message": errors[0]["message"]}
    ]


# -- createHouseholds / createIndividuals -----------------------------------------------------
CREATE_HOUSEHOLDS = """
mutation($items: [CreateHouseholdInput!]!) { createHouseholds(input: {items: $items}) {
  households { id externalRef } createdCount unchangedCount
  userErrors { field code message } } }
"""
CREATE_INDIVIDUALS = """
mutation($items: [CreateIndividualInput!]!) { createIndividuals(input: {items: $items}) {
  individuals { id externalRef household { id } } createdCount unchangedCount
  userErrors { field code message } } }
"""


async def _onboard_by_graphql(api, community: str, subject: str) -> tuple[dict, dict]:
    homes = [
        {
            "communityId": community,
            "name": f"House {h}",
            "dwellingType": "HOUSE",
            "externalRef": f"g:h{h}",
            "hasRooftopSolar": h % 5 == 0,
        }
        for h in range(HOMES)
    ]
    body = await api.gql(CREATE_HOUSEHOLDS, {"items": homes}, subject=subject)
    houses = body["data"]["createHouseholds"]
    assert houses["userErrors"] == [], houses["userErrors"][:3]
    ids = [h["id"] for h in houses["households"]]
    people = [
        {
            "displayName": f"Villager {p}",
            "email": f"v{p}@example.org",
            "householdId": ids[p % HOMES],
            "memberFrom": JOINED.isoformat(),
            "externalRef": f"g:p{p}",
        }
        for p in range(VILLAGERS)
    ]
    body = await api.gql(CREATE_INDIVIDUALS, {"items": people}, subject=subject)
    return houses, body["data"]["createIndividuals"]


async def test_a_589_person_village_in_one_create_individuals_request_and_a_rerun(engine, api):
    world = await build_world(engine)
    community = gid("Community", world.a.communities[0])
    before = await row_counts(engine)
    houses, people = await _onboard_by_graphql(api, community, "cm-a0")
    assert people["userErrors"] == [] and people["createdCount"] == VILLAGERS
    assert houses["createdCount"] == HOMES and houses["unchangedCount"] == 0
    assert [p["externalRef"] for p in people["individuals"]] == [
        f"g:p{p}" for p in range(VILLAGERS)
    ]
    assert people["individuals"][7]["household"]["id"] == houses["households"][7]["id"]
    after = await row_counts(engine)
    assert after["individual"] - before["individual"] == VILLAGERS
    assert after["household_membership"] - before["household_membership"] == VILLAGERS
    pop = await population(engine)

    houses2, people2 = await _onboard_by_graphql(api, community, "cm-a0")
    assert (houses2["createdCount"], houses2["unchangedCount"]) == (0, HOMES)
    assert (people2["createdCount"], people2["unchangedCount"]) == (0, VILLAGERS)
    assert [p["id"] for p in people2["individuals"]] == [p["id"] for p in people["individuals"]]
    assert await row_counts(engine) == after
    assert await population(engine) == pop
    async with engine.connect() as conn:
        events = list(
            await conn.execute(
                sa.select(A.c.operation, A.c.outcome, A.c.actor_subject)
                .where(A.c.operation.in_(["createHouseholds", "createIndividuals"]))
                .order_by(A.c.id)
            )
        )
    assert [tuple(e) for e in events] == [
        ("createHouseholds", "OK", "cm-a0"),
        ("createIndividuals", "OK", "cm-a0"),
    ] * 2


async def test_bad_items_are_reported_by_index_and_nothing_is_written(engine, api):
    world = await build_world(engine)
    mine = gid("Household", world.a.households[world.a.communities[0]][0])
    foreign = gid("Household", world.b.all_households[0])
    items = [
        {"displayName": f"P{n}", "householdId": mine, "externalRef": f"ok:{n}"} for n in range(6)
    ]
    items[3]["email"] = "nope"
    items[4]["householdId"] = foreign  # another tenant: answered like an unknown id
    items[5]["externalRef"] = "ok:0"  # twice in the batch
    before = await row_counts(engine)
    body = await api.gql(CREATE_INDIVIDUALS, {"items": items}, subject="cm-a0")
    payload = body["data"]["createIndividuals"]
    assert payload["individuals"] == [] and payload["createdCount"] == 0
    assert sorted((e["field"], e["code"]) for e in payload["userErrors"]) == [
        (["input", "items", "3", "email"], "INVALID"),
        (["input", "items", "4", "householdId"], "NOT_FOUND"),
        (["input", "items", "5", "externalRef"], "DUPLICATE"),
    ]
    assert await row_counts(engine) == before
    # An externalRef that names an existing person with other values is not silently changed.
    body = await api.gql(CREATE_INDIVIDUALS, {"items": items[:2]}, subject="cm-a0")
    assert body["data"]["createIndividuals"]["createdCount"] == 2
    changed = [{**items[0], "displayName": "Someone else"}]
    body = await api.gql(CREATE_INDIVIDUALS, {"items": changed}, subject="cm-a0")
    assert [(e["field"], e["code"]) for e in body["data"]["createIndividuals"]["userErrors"]] == [
        (["input", "items", "0", "externalRef"], "DUPLICATE")
    ]
    # A resident may not create households, like createHousehold.
    body = await api.gql(
        CREATE_HOUSEHOLDS,
        {
            "items": [
                {
                    "communityId": gid("Community", world.a.communities[0]),
                    "name": "X",
                    "dwellingType": "HOUSE",
                }
            ]
        },
        subject="resident-a",
    )
    errors = body["data"]["createHouseholds"]["userErrors"]
    assert [e["field"][:3] for e in errors] == [["input", "items", "0"]]
    assert errors[0]["code"] in {"FORBIDDEN", "NOT_FOUND"}


async def test_more_than_1000_items_are_refused(engine, api):
    world = await build_world(engine)
    home = gid("Household", world.a.all_households[0])
    items = [{"displayName": f"P{n}", "householdId": home} for n in range(1001)]
    body = await api.gql(CREATE_INDIVIDUALS, {"items": items}, subject="admin")
    assert body["data"]["createIndividuals"]["userErrors"][0]["field"] == ["input", "items"]


# -- NOT_ATTRIBUTED ---------------------------------------------------------------------------
RECORD_ACTIVITIES = """
mutation($records: [RecordActivityInput!]!) { recordActivities(input: {records: $records}) {
  createdCount warnings { field code message } userErrors { field code } } }
"""
RECORD_ACTION = """
mutation($input: RecordActionInput!) { recordAction(input: $input) {
  createdCount warnings { field code } userErrors { field code } } }
"""


async def test_records_and_actions_before_membership_are_not_attributed(engine, api):
    world = await build_world(engine)  # everyone lives in a household since SINCE
    person = world.a.all_members[0]
    early, later = date(SINCE.year - 1, 12, 1), SINCE
    records = [
        {
            "accountId": gid("Individual", person),
            "activityType": "NATURAL_GAS",
            "quantity": "1",
            "unit": "m3",
            "periodStart": d.isoformat(),
            "periodEnd": d.isoformat(),
            "externalId": f"gas-{d}",
        }
        for d in (later, early)
    ]
    for _ in range(2):  # a replay answers the same
        body = await api.gql(RECORD_ACTIVITIES, {"records": records}, subject="admin")
        payload = body["data"]["recordActivities"]
        assert payload["userErrors"] == []
        assert [(w["field"], w["code"]) for w in payload["warnings"]] == [
            (["input", "records", "1", "periodStart"], "NOT_ATTRIBUTED")
        ]
    for day, warned in ((later, False), (early, True)):
        body = await api.gql(
            RECORD_ACTION,
            {
                "input": {
                    "individualId": gid("Individual", person),
                    "actionType": "SUBWAY_TRIP",
                    "occurredOn": day.isoformat(),
                    "externalId": f"ride-{day}",
                }
            },
            subject="partner-a",
        )
        payload = body["data"]["recordAction"]
        assert payload["userErrors"] == [], payload
        expected = [(["input", "actions", "0", "occurredOn"], "NOT_ATTRIBUTED")] if warned else []
        assert [(w["field"], w["code"]) for w in payload["warnings"]] == expected
    async with engine.connect() as conn:
        stored = dict(list(await conn.execute(sa.select(AR.c.occurred_on, AR.c.household_id))))
    assert stored[early] is None and stored[later] is not None


async def test_the_activity_import_reports_not_attributed_rows(engine, tmp_path):
    world = await build_world(engine)
    person = world.a.all_members[0]
    rows = [
        {
            "account": f"Individual:{person}",
            "activity_type": "NATURAL_GAS",
            "quantity": "1",
            "unit": "m3",
            "period_start": d,
            "period_end": d,
            "external_id": f"g-{d}",
        }
        for d in ("2023-06-01", "2024-06-01")
    ]
    path = write_csv(tmp_path / "gas.csv", rows)
    report = await import_activities(engine, path)
    assert report.created == 2
    assert [(w[0], w[1], w[2]) for w in report.warnings] == [(2, "periodStart", "NOT_ATTRIBUTED")]


# -- recordVerifiedActions at its documented maximum -------------------------------------------
RECORD_VERIFIED = """
mutation($actions: [RecordActionInput!]!) { recordVerifiedActions(input: {actions: $actions}) {
  createdCount unchangedCount userErrors { field code } } }
"""


def _rides(people: list[int], count: int) -> list[dict]:
    days = -(-count // (len(people) * 6))
    return [
        {
            "individualId": gid("Individual", pk),
            "actionType": "SUBWAY_TRIP",
            "units": 1,
            "occurredOn": date(2024, 3, 1 + d).isoformat(),
            "externalId": f"metro-2024-03-{1 + d:02d}-{pk}-{k}",
        }
        for d in range(days)
        for pk in people
        for k in range(6)
    ][:count]


async def test_record_verified_actions_takes_its_documented_maximum_at_default_limits(
    engine, api, settings
):
    from carbongraph.schema.actions.mutations import MAX_BATCH

    world = await build_world(engine, communities=2, households=10, members=3)  # 60 in A
    actions = _rides(world.a.all_members, MAX_BATCH)
    body = json.dumps({"query": RECORD_VERIFIED, "variables": {"actions": actions}})
    # The documented maximum is over the ordinary body limit (the defect: refused with 413).
    assert settings.max_body_bytes < len(body) <= settings.max_bulk_body_bytes
    response = await api.post(RECORD_VERIFIED, {"actions": actions}, subject="partner-a")
    assert response.status_code == 200, response.text[:300]
    payload = response.json()["data"]["recordVerifiedActions"]
    assert payload == {"createdCount": MAX_BATCH, "unchangedCount": 0, "userErrors": []}
    # The larger limit is for bulk mutations alone: the same bytes in any other operation 413.
    padded = "query { __typename }"
    other = await api.post(padded, {"actions": actions}, subject="partner-a")
    assert other.status_code == 413
    mixed = RECORD_VERIFIED.replace("} } }", "} } __typename }")
    assert (await api.post(mixed, {"actions": actions}, subject="partner-a")).status_code == 413
    # One more than the maximum is refused, as documented.
    more = _rides(world.a.all_members, MAX_BATCH + 1)
    response = await api.post(RECORD_VERIFIED, {"actions": more}, subject="partner-a")
    assert response.json()["data"]["recordVerifiedActions"]["userErrors"][0]["field"] == [
        "input",
        "actions",
    ]
