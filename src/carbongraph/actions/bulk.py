"""Verified actions in bulk on PostgreSQL, set-based: the rules of ``record.record_actions``
for a trusted operator (``viewer`` None: every action counts as partner-verified), with the
database doing the work per batch instead of per row.

1. Row checks that need no database (type known and valid that day, units, date) and
   duplicate externalIds in the batch: as in ``record_actions``.
2. The batch's people are locked (locks.py: the same per-person lock, ascending ids, as every
   other writer of credits and caps); then the batch is COPYed into a temporary staging table.
3. One statement each reads what decides the outcome: accounts, stored externalIds, the
   household on each day, and the units already used against the daily caps. The decisions
   (in input order, as the reference makes them) are a loop over those facts in memory.
4. Records, ledger GRANT entries and the Scope 3+ roll-up to every ancestor are one
   statement: an ``INSERT … SELECT`` from the staging table (``ON CONFLICT DO NOTHING`` on the
   externalId) whose RETURNING rows feed the ledger's ``INSERT`` and the roll-up (``GROUP BY``
   into ``footprint_total``, upserted in key order). Campaign bonuses and live notifications
   go through the same functions as the reference.

``record_actions`` stays the reference (and the SQLite path); tests/test_actions_import.py
checks on generated batches that both leave identical records, ledger entries and totals.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from carbongraph.actions.catalog import Catalog
from carbongraph.actions.record import ActionError, ActionInput, ActionResult, insert_entries
from carbongraph.live import publish as live
from carbongraph.locks import lock_people

_STAGE = "stage_verified_action"
_CREATE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (n integer, individual_id bigint, "
    "action_type_id bigint, units integer, occurred_on date, external_id text) "
    "ON COMMIT DELETE ROWS"
)
_HOUSEHOLD_ON = (
    "(SELECT m.household_id FROM household_membership m WHERE m.individual_id = s.individual_id "
    "AND m.valid_from <= s.occurred_on AND (m.valid_to IS NULL OR m.valid_to > s.occurred_on) "
    "LIMIT 1)"
)
_FACTS = f"""
SELECT s.n, i.id IS NOT NULL AS found, i.archived_at IS NOT NULL AS archived,
       ar.id AS known_id, ar.individual_id AS known_individual, ar.action_type_id AS known_type,
       ar.units AS known_units, ar.occurred_on AS known_day, {_HOUSEHOLD_ON} AS household_id
FROM {_STAGE} s
-- By key, row by row (OFFSET 0 keeps the planner from flattening it into a join): under
-- row-level security it guesses a few dozen people and would loop over all of them for every
-- row (measured: 3.8 s for 20,000 rows of 2,000 people).
LEFT JOIN LATERAL (
  SELECT i.id, i.archived_at FROM individual i WHERE i.id = s.individual_id OFFSET 0
) i ON true
-- The same for the stored externalIds (its unique index): joined, the planner trusted
-- statistics taken before the previous batches were written (the application role cannot
-- ANALYZE) and scanned the whole table for every row (a second batch of 5,000 after a
-- DELETE ran past the statement timeout).
LEFT JOIN LATERAL (
  SELECT ar.id, ar.individual_id, ar.action_type_id, ar.units, ar.occurred_on
  FROM action_record ar WHERE ar.external_id = s.external_id OFFSET 0
) ar ON true
"""
_USED = f"""
SELECT k.individual_id, ar.action_type_id, k.occurred_on, sum(ar.units)
FROM (SELECT DISTINCT individual_id, occurred_on FROM {_STAGE}) k
-- Per person and day, by index, as the look-ups above: with the statistics of an emptier
-- table, joined, the planner scanned every stored action for every key (measured: past the
-- statement timeout with two workers importing 100,000 actions, each waiting on the
-- visibility of the other's uncommitted rows).
CROSS JOIN LATERAL (
  SELECT ar.action_type_id, ar.units FROM action_record ar
  WHERE ar.individual_id = k.individual_id AND ar.occurred_on = k.occurred_on
    AND ar.status <> 'REJECTED'
  OFFSET 0
) ar
GROUP BY k.individual_id, ar.action_type_id, k.occurred_on
"""
# Records, ledger GRANT entries and the Scope 3+ roll-up in one statement: the ledger and the
# roll-up read the inserted rows as RETURNING gives them (not action_record again by id: a
# scan of the table per statement; nor arrays of them sent back by the client: encoding
# 140,000 elements a statement cost asyncpg ~0.07 s for 20,000 actions). The accepted rows and
# their households arrive as two comma-separated texts, for the same reason. A row another
# writer took meanwhile (ON CONFLICT DO NOTHING) leaves fewer rows than accepted: the caller
# then refuses the batch and rolls all of it back.
_WRITE = f"""
WITH accepted AS (
  SELECT a.n, a.household_id
  FROM unnest(string_to_array($1::text, ',')::integer[],
              string_to_array($3::text, ',', '')::bigint[]) AS a(n, household_id)
), ar AS (
  INSERT INTO action_record (individual_id, action_type_id, units, occurred_on, status, source,
      external_id, credits, avoided_g, household_id, evidence_id, recorded_by, decided_by,
      decided_at, created_at)
  SELECT s.individual_id, s.action_type_id, s.units, s.occurred_on, 'APPROVED', 'PARTNER',
      s.external_id, s.units * t.credits_per_unit, s.units * t.avoided_g_per_unit,
      a.household_id, NULL, $2, 'auto', now(), now()
  FROM accepted a JOIN {_STAGE} s ON s.n = a.n JOIN action_type t ON t.id = s.action_type_id
  ORDER BY s.n
  ON CONFLICT (external_id) DO NOTHING
  RETURNING id, external_id, individual_id, action_type_id, occurred_on, credits, household_id,
    avoided_g
), ledger AS (
  INSERT INTO credit_entry (individual_id, kind, amount, action_record_id, campaign_id, note,
      created_by, created_at)
  SELECT ar.individual_id, 'GRANT', ar.credits, ar.id, NULL, t.code, $2, now()
  FROM ar JOIN action_type t ON t.id = ar.action_type_id
  ORDER BY ar.id
),
-- The roll-up of ``rollup.Attribution.targets`` in SQL: the platform, the person, the
-- household's chain (its path: e…/c…/h…/) and the employers of that day (via employees, with
-- the action type's employer scope).
per_day AS (
  -- One row per person, day, home and action type before the fan-out to ancestors (a
  -- partner's file has several trips a person a day: measured 6x fewer rows to fan out).
  SELECT ar.individual_id, ar.occurred_on AS day, ar.household_id, t.scope, t.category,
         t.employer_scope, t.employer_category, sum(ar.avoided_g) AS avoided_g, count(*) AS n
  FROM ar JOIN action_type t ON t.id = ar.action_type_id
  GROUP BY ar.individual_id, ar.occurred_on, ar.household_id, t.id
), targets AS (
  SELECT 'P' AS node, 0::bigint AS node_id, '' AS via, day, scope, category, avoided_g, n
  FROM per_day
  UNION ALL
  SELECT 'I', individual_id, '', day, scope, category, avoided_g, n FROM per_day
  UNION ALL
  SELECT upper(left(seg, 1)), substr(seg, 2)::bigint,
         CASE WHEN left(seg, 1) = 'e' THEN 'communities' ELSE '' END,
         day, scope, category, avoided_g, n
  FROM per_day a JOIN household h ON h.id = a.household_id
  CROSS JOIN LATERAL unnest(string_to_array(trim(both '/' from h.path), '/')) AS seg
  UNION ALL
  SELECT 'E', em.enterprise_id, 'employees', day, employer_scope, employer_category, avoided_g, n
  FROM per_day a JOIN employment em ON em.individual_id = a.individual_id
   AND em.valid_from <= a.day AND (em.valid_to IS NULL OR em.valid_to > a.day)
), rolled AS (
  INSERT INTO footprint_total (node, node_id, via, day, kind, scope, category, location_g,
      market_g, record_count)
  SELECT node, node_id, via, day, 'reduction', scope, category, sum(avoided_g), sum(avoided_g),
         sum(n)
  FROM targets
  GROUP BY node, node_id, via, day, scope, category
  ORDER BY node, node_id, via, day, scope, category
  ON CONFLICT (node, node_id, via, day, kind, scope, category) DO UPDATE SET
    location_g = footprint_total.location_g + excluded.location_g,
    market_g = footprint_total.market_g + excluded.market_g,
    record_count = footprint_total.record_count + excluded.record_count
  RETURNING node, node_id
)
-- The inserted actions, then the communities whose reductions changed (node_id, else null).
SELECT id, external_id, individual_id, action_type_id, occurred_on, credits, household_id,
       NULL::bigint AS community_id
FROM ar
UNION ALL
SELECT DISTINCT NULL::bigint, NULL, NULL::bigint, NULL::bigint, NULL::date, NULL::bigint,
       NULL::bigint, node_id
FROM rolled WHERE node = 'C'
"""


def check_items(
    catalog: Catalog, inputs: list[ActionInput], today: date, result: ActionResult
) -> list[Any]:
    """The row checks of ``record_actions`` that need no database; the action type of each."""
    actions: list[Any] = []
    for n, item in enumerate(inputs):
        action = catalog.valid_on(item.action_type, item.occurred_on)
        actions.append(action)
        if item.action_type not in catalog.by_code:
            result.errors.append(
                ActionError(
                    n,
                    "actionType",
                    "ACTION_NOT_ALLOWED",
                    f"unknown action type {item.action_type!r}",
                )
            )
        elif action is None:
            result.errors.append(
                ActionError(
                    n, "occurredOn", "ACTION_NOT_ALLOWED", "the action type is not valid that day"
                )
            )
        if item.units <= 0:
            result.errors.append(ActionError(n, "units", "INVALID", "units must be positive"))
        if item.occurred_on > today:
            result.errors.append(
                ActionError(n, "occurredOn", "INVALID_DATE", "the action has not happened yet")
            )
    return actions


async def record_verified_set_based(
    conn: Any, inputs: list[ActionInput], *, today: date, recorded_by: str | None
) -> ActionResult:
    """Like ``record_actions(conn, inputs, viewer=None, …)`` on PostgreSQL (see the module)."""
    result = ActionResult()
    catalog = await Catalog.load(conn)
    actions = check_items(catalog, inputs, today, result)
    if result.errors:
        return result
    external = [i.external_id for i in inputs if i.external_id]
    if len(set(external)) != len(external):
        result.errors.append(
            ActionError(
                0, "externalId", "EXTERNAL_ID_CONFLICT", "an externalId appears twice in the batch"
            )
        )
        return result
    await lock_people(conn, (item.individual_id for item in inputs))
    raw = (await conn.get_raw_connection()).driver_connection
    # The roll-up groups ~5 cells an action: in memory, not in temporary files (the default
    # work_mem spilled 100,000 rows to disk).
    await raw.execute(f"SET LOCAL work_mem = '64MB'; {_CREATE}")
    await raw.copy_records_to_table(
        _STAGE,
        records=[
            (n, item.individual_id, actions[n].id, item.units, item.occurred_on, item.external_id)
            for n, item in enumerate(inputs)
        ],
        columns=["n", "individual_id", "action_type_id", "units", "occurred_on", "external_id"],
    )
    # Statistics for the fresh rows, so the look-ups below probe indexes rather than hash
    # whole tables (a temporary table has none until analysed).
    await raw.execute(f"ANALYZE {_STAGE}")
    facts = {row["n"]: row for row in await raw.fetch(_FACTS)}
    used: dict[tuple[int, int, date], int] = defaultdict(int)
    for individual_id, type_id, day, units in await raw.fetch(_USED):
        used[(individual_id, type_id, day)] += int(units)

    def fail(n: int, name: str, code: str, message: str) -> None:
        result.errors.append(ActionError(n, name, code, message))

    accepted: list[int] = []
    for n, item in enumerate(inputs):
        fact, action = facts[n], actions[n]
        if not fact["found"]:
            fail(n, "individualId", "NOT_FOUND", "no such person")
            continue
        if fact["household_id"] is None:
            result.warnings.append(
                ActionError(
                    n,
                    "occurredOn",
                    "NOT_ATTRIBUTED",
                    f"the person has no household on {item.occurred_on.isoformat()}: counted "
                    "for the person, not for any household or community",
                )
            )
        if fact["known_id"] is not None:
            stored = (
                fact["known_individual"],
                fact["known_type"],
                fact["known_units"],
                fact["known_day"],
            )
            if stored == (item.individual_id, action.id, item.units, item.occurred_on):
                result.unchanged.append(fact["known_id"])
            else:
                fail(
                    n,
                    "externalId",
                    "EXTERNAL_ID_CONFLICT",
                    "externalId was recorded before with different values",
                )
            continue
        if fact["archived"]:
            fail(n, "individualId", "ARCHIVED_ACCOUNT", "the account is archived")
            continue
        key = (item.individual_id, action.id, item.occurred_on)
        if used[key] + item.units > action.daily_cap:
            fail(
                n,
                "units",
                "DAILY_CAP_REACHED",
                f"at most {action.daily_cap} {action.unit} of {action.code} a day",
            )
            continue
        used[key] += item.units
        accepted.append(n)
    if result.errors or not accepted:
        return result

    # The household of each accepted action's day, as read with the facts above.
    households = ",".join(
        "" if (h := facts[n]["household_id"]) is None else str(h) for n in accepted
    )
    rows = await raw.fetch(_WRITE, ",".join(map(str, accepted)), recorded_by, households)
    inserted = [r for r in rows if r["id"] is not None]
    if len(inserted) != len(accepted):
        # Taken since the lock by a row of someone else (another person's batch): refused.
        taken = {r["external_id"] for r in inserted}
        for n in accepted:
            if inputs[n].external_id not in taken:
                fail(n, "externalId", "EXTERNAL_ID_CONFLICT", "externalId is already in use")
        return result
    result.created.extend(r["id"] for r in inserted)
    by_id = {a.id: a for versions in catalog.by_code.values() for a in versions}
    from carbongraph.actions.campaigns import bonus_entries  # campaigns build on records

    approved = [
        (
            {
                "id": r["id"],
                "individual_id": r["individual_id"],
                "occurred_on": r["occurred_on"],
                "credits": r["credits"],
                "household_id": r["household_id"],
            },
            by_id[r["action_type_id"]],
        )
        for r in inserted
    ]
    await insert_entries(conn, await bonus_entries(conn, approved, recorded_by))
    await live.credits_changed(conn, {r["individual_id"] for r in inserted})
    await live.rankings_changed(
        conn, live.REDUCTIONS, {r["community_id"] for r in rows if r["community_id"] is not None}
    )
    return result
