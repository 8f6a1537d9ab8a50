"""What row-level security costs: EXPLAIN ANALYZE of three reads as the application role.

Run against a database seeded with ``carbongraph seed --scale small`` (as the owner) and
migrated; the application role must exist and hold its grants (``carbongraph migrate`` with
both URLs, or ``migrate.grant_app_role``). Each read runs under three scopes — a tenant's
(``carbongraph.paths``), the platform flag (``carbongraph.unrestricted``), and as the owner
(a superuser skips the policies: the floor) — ``--repeat`` times; the median execution time
is reported with its plan's top node. Results go to ``bench/results/<stamp>-rls-<label>.json``.

    .venv/bin/python -m bench.rls --app-url postgresql://carbongraph_app@127.0.0.1/db \
        --owner-url postgresql://postgres@127.0.0.1/db --label before

The reads: every person in the tenant; one person by id; and the B3 shape of bench/run.py
(a community's first 50 households with their footprints, their current members with names
and footprints) as one statement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg

B3 = """
WITH homes AS (
  SELECT h.id, h.dwelling_type FROM household h
  WHERE h.community_id = $1 AND h.archived_at IS NULL ORDER BY h.id LIMIT 50
), home_totals AS (
  SELECT t.node_id, sum(t.location_g) FILTER (WHERE t.kind = 'emission') AS gross,
         sum(t.location_g) FILTER (WHERE t.kind = 'offset') AS offset_g
  FROM footprint_total t
  WHERE t.node = 'H' AND t.via = '' AND t.node_id IN (SELECT id FROM homes)
    AND t.day BETWEEN $2 AND $3
  GROUP BY t.node_id
), members AS (
  SELECT m.household_id, i.id, i.display_name FROM household_membership m
  JOIN individual i ON i.id = m.individual_id
  WHERE m.household_id IN (SELECT id FROM homes) AND m.valid_from <= $3
    AND (m.valid_to IS NULL OR m.valid_to > $3)
), member_totals AS (
  SELECT t.node_id, sum(t.location_g) FILTER (WHERE t.kind = 'emission') AS gross
  FROM footprint_total t
  WHERE t.node = 'I' AND t.via = '' AND t.node_id IN (SELECT id FROM members)
    AND t.day BETWEEN $2 AND $3
  GROUP BY t.node_id
)
SELECT json_agg(json_build_object(
  'id', homes.id, 'dwellingType', homes.dwelling_type, 'gross', ht.gross, 'offset', ht.offset_g,
  'members', (SELECT json_agg(json_build_object('id', m.id, 'name', m.display_name,
                                                'gross', mt.gross) ORDER BY m.id)
              FROM members m LEFT JOIN member_totals mt ON mt.node_id = m.id
              WHERE m.household_id = homes.id)) ORDER BY homes.id)
FROM homes LEFT JOIN home_totals ht ON ht.node_id = homes.id
"""

SCOPES = {
    "tenant": {"carbongraph.unrestricted": "", "carbongraph.individuals": "{}"},
    "platform": {"carbongraph.unrestricted": "on"},
}


async def _scope(conn: asyncpg.Connection, scope: str, tenant: str, today: date) -> None:
    settings = dict(SCOPES.get(scope, {}))
    if scope == "tenant":
        settings["carbongraph.paths"] = "{" + tenant + "%}"
        settings["carbongraph.tenants"] = "{" + tenant + "}"
    settings["carbongraph.today"] = today.isoformat()
    for name, value in settings.items():
        await conn.execute("SELECT set_config($1, $2, true)", name, value)


async def _explain(
    conn: asyncpg.Connection, sql: str, args: list[Any], scope: str, tenant: str, today: date
) -> tuple[float, float, str, int]:
    async with conn.transaction():
        await _scope(conn, scope, tenant, today)
        plan = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args))
    top = plan[0]
    node = top["Plan"]
    return top["Execution Time"], top["Planning Time"], node["Node Type"], node["Actual Rows"]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--app-url", required=True)
    parser.add_argument("--owner-url", required=True)
    parser.add_argument("--label", default="run")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    owner = await asyncpg.connect(args.owner_url)
    tenant = await owner.fetchval("SELECT path FROM enterprise ORDER BY id LIMIT 1")
    community, today = (
        await owner.fetchrow(
            "SELECT c.id, (SELECT max(day) FROM footprint_total) FROM community c "
            "WHERE c.path LIKE $1 || '%' ORDER BY (SELECT count(*) FROM household h "
            "WHERE h.community_id = c.id) DESC, c.id LIMIT 1",
            tenant,
        )
    ).values()
    person = await owner.fetchval(
        "SELECT m.individual_id FROM household_membership m JOIN household h "
        "ON h.id = m.household_id WHERE h.path LIKE $1 || '%' ORDER BY m.id LIMIT 1",
        tenant,
    )
    start = today.replace(day=1)
    reads = {
        "all_people": ("SELECT id, display_name, email FROM individual", []),
        "one_person": ("SELECT id, display_name, email FROM individual WHERE id = $1", [person]),
        "b3_nested": (B3, [community, start, today]),
    }
    app = await asyncpg.connect(args.app_url, server_settings={"jit": "off"})
    await owner.execute("SET jit = off")
    results: dict[str, Any] = {
        "label": args.label,
        "tenant": tenant,
        "community": community,
        "period": [start.isoformat(), today.isoformat()],
        "repeat": args.repeat,
        "reads": {},
    }
    for name, (sql, params) in reads.items():
        row: dict[str, Any] = {}
        for scope, conn in (("tenant", app), ("platform", app), ("owner", owner)):
            runs = [
                await _explain(conn, sql, params, scope, tenant, today) for _ in range(args.repeat)
            ]
            row[scope] = {
                "execution_ms_p50": round(statistics.median(r[0] for r in runs), 3),
                "planning_ms_p50": round(statistics.median(r[1] for r in runs), 3),
                "rows": runs[0][3],
            }
        results["reads"][name] = row
    await app.close()
    await owner.close()
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"{stamp}-rls-{args.label}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"| read | tenant ms | platform ms | owner (no policies) ms | rows (tenant) |  {path}")
    for name, row in results["reads"].items():
        print(
            f"| {name} | {row['tenant']['execution_ms_p50']} | "
            f"{row['platform']['execution_ms_p50']} | {row['owner']['execution_ms_p50']} | "
            f"{row['tenant']['rows']} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
