"""Set-based ingest on PostgreSQL: one batch of ``carbongraph import activities`` in SQL.

The batch is COPYed into a temporary staging table; then a handful of statements validate it,
price it (unit conversion, factor selection by region, day and basis, integer grams rounded
half-even) and write the records and the roll-up totals (``INSERT … SELECT`` joining the
factors and a household → ancestors mapping, ``GROUP BY`` into ``footprint_total`` with
``ON CONFLICT`` upserts), in the caller's transaction: all or nothing.

It gives the same answers as the per-record path (ingest.py, the reference, which SQLite
uses), error for error and gram for gram — tests/test_bulk_differential.py checks that on
generated batches. Python does only what is per-row text handling anyway (reading the file,
the account and date syntax of importer._parse, units' spelling) and hands quantities that are
not plain decimals to the reference conversion, so odd spellings ("1e3", "1_000") and their
error messages cannot drift. The phases and their errors follow ingest():

1. parse (the file's syntax; an unknown ``Type/ref:`` is looked up here),
2. each row on its own (activity type, unit, quantity, period, source, data quality),
3. externalIds repeated in the batch,
4. — the batch's accounts are locked, people then households, ascending ids (the lock
   discipline of the per-record path, so both serialise on an account) —
   accounts, replays and conflicts of known externalIds, archived accounts, missing factors,
5. overlaps of one meter's readings, in the batch and with recorded ones,

each phase answering only if the previous one found nothing. Row errors come back by line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from carbongraph.accounting.activities import (
    ACTIVITY_TYPES,
    ActivityKind,
    UnitError,
    conversion_factor,
    known_units,
    normalise_unit,
    to_canonical_milli,
)
from carbongraph.accounting.ingest import (
    DATA_QUALITIES,
    NOT_ATTRIBUTED,
    SOURCES,
    RecordErrorCode,
)
from carbongraph.accounting.regions import GRID_REGION
from carbongraph.clock import LocalDays
from carbongraph.errors import CodedError
from carbongraph.globalids import decode_global_id
from carbongraph.live import publish as live
from carbongraph.live.hub import leaderboard_channel
from carbongraph.locks import lock_accounts

# A plain decimal whose conversion to thousandths of any canonical unit is exact both in
# PostgreSQL's numeric and in Python's 28-digit Decimal context, and fits a bigint. Anything
# else (exponents, underscores, other digits, NaN, very long numbers) is converted by the
# reference code in Python.
_PLAIN = re.compile(r"[+-]?(?:[0-9]{1,12}(?:\.[0-9]{0,6})?|\.[0-9]{1,6})")

_REF_TYPES = ("Individual", "Household")  # importer.REF_TABLES
_STAGE = "cg_bulk_stage"
_WORK = "cg_bulk_work"

_STAGE_COLUMNS = (
    "pos",  # 0-based position in the batch (ingest()'s row index)
    "line",  # line in the file
    "perr_field",  # the parse error of importer._parse, if any
    "perr_code",
    "perr_msg",
    "ref_type",  # account given as Type/ref:REF, resolved in SQL
    "ref",
    "ref_msg",
    "account_type",
    "account_id",
    "activity_type",
    "activity_msg",  # the UNKNOWN_ACTIVITY_TYPE message, or null
    "quantity",  # as entered (stripped)
    "qty",  # the plain decimal, converted in SQL
    "milli_py",  # or thousandths converted in Python
    "qerr_field",  # or the conversion's error in Python
    "qerr_code",
    "qerr_msg",
    "unit",
    "unit_norm",
    "unit_repr",
    "period_start",
    "period_end",
    "external_id",
    "source",
    "meter_ref",
    "data_quality",
)

_CREATE_STAGE = f"""
CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (
  pos int NOT NULL, line int NOT NULL,
  perr_field text, perr_code text, perr_msg text,
  ref_type text, ref text, ref_msg text,
  account_type text, account_id bigint,
  activity_type text, activity_msg text,
  quantity text, qty text, milli_py text, qerr_field text, qerr_code text, qerr_msg text,
  unit text, unit_norm text, unit_repr text,
  period_start date, period_end date, external_id text, source text, meter_ref text,
  data_quality text
) ON COMMIT DELETE ROWS
"""

_CREATE_WORK = f"""
CREATE TEMP TABLE IF NOT EXISTS {_WORK} (
  pos int NOT NULL, line int NOT NULL, status text NOT NULL,
  account_type text, account_id bigint, household_id bigint, activity_type text,
  quantity_milli bigint, entered_quantity text, entered_unit text,
  period_start date, period_end date, meter_ref text, source text, external_id text,
  data_quality text, scope text, category int,
  location_g bigint, market_g bigint, offset_g bigint, factor_id bigint, market_factor_id bigint,
  factor_key text, region text
) ON COMMIT DELETE ROWS
"""


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _activity_values() -> str:
    rows = []
    for t in ACTIVITY_TYPES.values():
        rows.append(
            f"({_literal(t.code)}, {_literal(t.factor_key)}, {_literal(t.scope)}, {t.category}, "
            f"{'true' if t.kind is ActivityKind.CLEAN_ENERGY else 'false'}, "
            f"{'true' if t.market_instrument else 'false'}, {_literal(t.unit)})"
        )
    return ", ".join(rows)


def _unit_values() -> str:
    rows = []
    for t in ACTIVITY_TYPES.values():
        for unit in known_units():
            factor = conversion_factor(unit, t)
            if factor is not None:
                rows.append(f"({_literal(t.code)}, {_literal(unit)}, {factor}::numeric)")
    return ", ".join(rows)


def _grid_values() -> str:
    return ", ".join(f"({_literal(p)}, {_literal(g)})" for p, g in sorted(GRID_REGION.items()))


def _grams(milli: str, ug: str) -> str:
    """compute.grams in SQL: milli × µg is nanograms; to grams, rounded half-even (numeric:
    PostgreSQL's round() rounds halves away from zero). Both are ≥ 0 here."""
    p = f"({milli}::numeric * {ug})"
    whole = f"div({p}, 1000000000)"
    rest = f"({p} - {whole} * 1000000000)"
    return (
        f"({whole} + CASE WHEN {rest} > 500000000 OR ({rest} = 500000000 AND mod({whole}, 2) = 1)"
        " THEN 1 ELSE 0 END)::bigint"
    )


def _half_even(x: str) -> str:
    """Decimal.to_integral_value() (ROUND_HALF_EVEN) of numeric ``x`` (a column name)."""
    return (
        f"CASE WHEN {x} - floor({x}) > 0.5 THEN floor({x}) + 1"
        f" WHEN {x} - floor({x}) < 0.5 THEN floor({x})"
        f" WHEN mod(floor({x}), 2) = 0 THEN floor({x}) ELSE floor({x}) + 1 END"
    )


_SOURCES = ", ".join(_literal(s) for s in SOURCES)
_QUALITIES = ", ".join(_literal(s) for s in DATA_QUALITIES)

# Parse errors (phase 1): a Type/ref: that names no account comes before the date syntax, as in
# importer._parse (whose other checks come before the reference look-up).
_PARSE_ERRORS = f"""
SELECT line,
  CASE WHEN ref IS NOT NULL AND account_id IS NULL AND (perr_code IS NULL OR perr_field = 'period')
       THEN 'account' ELSE perr_field END,
  CASE WHEN ref IS NOT NULL AND account_id IS NULL AND (perr_code IS NULL OR perr_field = 'period')
       THEN 'NOT_FOUND' ELSE perr_code END,
  CASE WHEN ref IS NOT NULL AND account_id IS NULL AND (perr_code IS NULL OR perr_field = 'period')
       THEN ref_msg ELSE perr_msg END
FROM {_STAGE}
WHERE perr_code IS NOT NULL OR (ref IS NOT NULL AND account_id IS NULL)
ORDER BY pos
"""

# Each row on its own (ingest's step 1), in ingest's order of checks, then externalIds
# repeated in the batch (step 2), which only count when step 1 found nothing.
_ROW_ERRORS = f"""
WITH activity(code, factor_key, scope, category, clean, market, unit) AS (
  VALUES {_activity_values()}
), units(code, unit, factor) AS (VALUES {_unit_values()}),
converted AS (
  SELECT s.*, a.code AS known_type, a.unit AS canonical, u.factor,
         s.qty::numeric * u.factor * 1000 AS x
  FROM {_STAGE} s
  LEFT JOIN activity a ON a.code = s.activity_type
  LEFT JOIN units u ON u.code = s.activity_type AND u.unit = s.unit_norm
), checked AS (
  SELECT c.*,
    CASE WHEN c.milli_py IS NOT NULL THEN c.milli_py::numeric
         WHEN c.x IS NOT NULL THEN {_half_even("c.x")} END AS milli,
    CASE WHEN c.known_type IS NOT NULL AND c.qerr_code IS NULL AND c.milli_py IS NULL
              AND c.factor IS NULL
         THEN 'unit ' || c.unit_repr || ' does not measure ' || c.activity_type
              || ' (in ' || c.canonical || ')' END AS unit_msg
  FROM converted c
), found(line, pos, n, field, code, message) AS (
  SELECT line, pos, 1, 'activityType', 'UNKNOWN_ACTIVITY_TYPE', activity_msg
    FROM checked WHERE known_type IS NULL
  UNION ALL
  SELECT line, pos, 2, qerr_field, qerr_code, qerr_msg FROM checked
    WHERE known_type IS NOT NULL AND qerr_code IS NOT NULL
  UNION ALL
  SELECT line, pos, 2,
    CASE WHEN unit_msg LIKE '%number%' THEN 'quantity' ELSE 'unit' END,
    CASE WHEN unit_msg LIKE '%number%' THEN 'INVALID_QUANTITY' ELSE 'UNKNOWN_UNIT' END,
    unit_msg FROM checked WHERE unit_msg IS NOT NULL
  UNION ALL
  SELECT line, pos, 3, 'quantity', 'NEGATIVE_QUANTITY', 'quantity must not be negative'
    FROM checked WHERE known_type IS NOT NULL AND milli < 0
  UNION ALL
  SELECT line, pos, 4, 'periodEnd', 'INVALID_PERIOD',
    CASE WHEN period_end < period_start THEN 'periodEnd is before periodStart'
         ELSE 'a record covers at most one year' END
    FROM checked WHERE period_end < period_start OR period_end - period_start > 366
  UNION ALL
  SELECT line, pos, 5, 'periodEnd', 'FUTURE_PERIOD',
    'the period has not ended yet: record it when it has'
    FROM checked WHERE period_end > $1::date  -- the latest local day anywhere
  UNION ALL
  SELECT line, pos, 6, 'source', 'INVALID', 'source is one of {", ".join(SOURCES)}'
    FROM checked WHERE source NOT IN ({_SOURCES})
  UNION ALL
  SELECT line, pos, 7, 'dataQuality', 'INVALID',
    'dataQuality is one of {", ".join(DATA_QUALITIES)}'
    FROM checked WHERE data_quality NOT IN ({_QUALITIES})
  UNION ALL
  SELECT line, pos, 100, 'externalId', 'EXTERNAL_ID_CONFLICT',
    'externalId appears twice in this batch'
    FROM (SELECT line, pos, row_number() OVER (PARTITION BY external_id ORDER BY pos) AS k
          FROM {_STAGE}) d WHERE k > 1
)
SELECT line, field, code, message, n FROM found ORDER BY pos, n
"""

# Step 3: every row priced and judged. One statement: accounts, the household of the day
# (a person's membership then), its region, the factors, and the stored record of the
# externalId. Factors are selected once per distinct (factor, region, day).
_WORK_FILL = f"""
INSERT INTO {_WORK}
WITH activity(code, factor_key, scope, category, clean, market, unit) AS (
  VALUES {_activity_values()}
), units(code, unit, factor) AS (VALUES {_unit_values()}),
grid(province, grid) AS (VALUES {_grid_values()}),
base AS (
  SELECT s.pos, s.line, s.account_type, s.account_id, s.activity_type, s.quantity, s.unit,
    s.period_start, s.period_end, s.meter_ref, s.source, s.external_id, s.data_quality,
    a.factor_key, a.scope AS a_scope, a.category AS a_category, a.clean, a.market,
    coalesce(s.milli_py::numeric, s.qty::numeric * u.factor * 1000) AS x,
    CASE WHEN s.account_type = 'Individual' THEN i.id ELSE hh.id END AS found_id,
    CASE WHEN s.account_type = 'Individual' THEN i.archived_at ELSE hh.archived_at END
      AS archived_at,
    CASE WHEN s.account_type = 'Individual' THEN m.household_id ELSE s.account_id END
      AS household_id,
    (($1::timestamptz) AT TIME ZONE coalesce(
      CASE WHEN s.account_type = 'Individual' THEN z.timezone ELSE hh.timezone END, 'UTC'
    ))::date AS local_today
  FROM {_STAGE} s
  JOIN activity a ON a.code = s.activity_type
  LEFT JOIN units u ON u.code = s.activity_type AND u.unit = s.unit_norm
  LEFT JOIN individual i ON s.account_type = 'Individual' AND i.id = s.account_id
  LEFT JOIN (SELECT hh0.id, hh0.archived_at, hc.timezone FROM household hh0
               JOIN community hc ON hc.id = hh0.community_id) hh
    ON s.account_type = 'Household' AND hh.id = s.account_id
  LEFT JOIN LATERAL (
    -- A person's local calendar: their household's on the period's last day, else their
    -- last household's (Attribution.zone_of); none: UTC.
    SELECT zc.timezone FROM household_membership zm
    JOIN household zh ON zh.id = zm.household_id JOIN community zc ON zc.id = zh.community_id
    WHERE s.account_type = 'Individual' AND zm.individual_id = s.account_id
    ORDER BY (zm.valid_from <= s.period_end
              AND (zm.valid_to IS NULL OR zm.valid_to > s.period_end)) DESC,
             zm.valid_from DESC
    LIMIT 1
  ) z ON true
  LEFT JOIN LATERAL (
    SELECT mm.household_id FROM household_membership mm
    WHERE s.account_type = 'Individual' AND mm.individual_id = s.account_id
      AND mm.valid_from <= s.period_start
      AND (mm.valid_to IS NULL OR mm.valid_to > s.period_start)
    ORDER BY mm.valid_from DESC LIMIT 1
  ) m ON true
), placed AS (
  SELECT b.*, {_half_even("b.x")} AS milli,
    CASE WHEN b.household_id IS NULL THEN 'CN' ELSE c.region_code END AS region,
    h.id IS NOT NULL AS household_found, h.archived_at AS household_archived
  FROM base b
  LEFT JOIN household h ON h.id = b.household_id
  LEFT JOIN community c ON c.id = h.community_id
), keys AS (
  SELECT DISTINCT factor_key, region, period_start AS day FROM placed WHERE region IS NOT NULL
), chain(region, rank, chain_region) AS (
  SELECT DISTINCT k.region, r.rank, r.chain_region FROM keys k
  CROSS JOIN LATERAL (
    SELECT 0 AS rank, k.region AS chain_region
    UNION ALL SELECT 1, g.grid FROM grid g WHERE g.province = k.region
    UNION ALL SELECT 2, split_part(k.region, '-', 1) WHERE split_part(k.region, '-', 1) <> k.region
    UNION ALL SELECT 3, '*'
  ) r
), priced AS (
  SELECT k.factor_key, k.region, k.day, loc.id AS loc_id, loc.ug AS loc_ug,
         res.id AS res_id, res.ug AS res_ug
  FROM keys k
  LEFT JOIN LATERAL (
    SELECT f.id, f.ug_per_unit AS ug FROM chain ch JOIN emission_factor f
      ON f.region_code = ch.chain_region AND f.factor_key = k.factor_key
     AND f.basis = 'location' AND f.valid_from <= k.day
     AND (f.valid_to IS NULL OR f.valid_to > k.day)
    WHERE ch.region = k.region
    ORDER BY ch.rank, f.valid_from DESC, f.version DESC LIMIT 1
  ) loc ON true
  LEFT JOIN LATERAL (
    SELECT f.id, f.ug_per_unit AS ug FROM chain ch JOIN emission_factor f
      ON f.region_code = ch.chain_region AND f.factor_key = k.factor_key
     AND f.basis = 'residual' AND f.valid_from <= k.day
     AND (f.valid_to IS NULL OR f.valid_to > k.day)
    WHERE ch.region = k.region AND k.factor_key = 'electricity'
    ORDER BY ch.rank, f.valid_from DESC, f.version DESC LIMIT 1
  ) res ON true
)
SELECT p.pos, p.line,
  CASE WHEN p.found_id IS NULL OR (p.account_type = 'Household' AND NOT p.household_found)
         THEN 'not_found'
       WHEN x.id IS NOT NULL AND x.account_type = p.account_type
         AND x.account_id = p.account_id AND x.activity_type = p.activity_type
         AND x.quantity_milli = p.milli AND x.period_start = p.period_start
         AND x.period_end = p.period_end AND x.meter_ref IS NOT DISTINCT FROM p.meter_ref
         THEN 'replay'
       WHEN x.id IS NOT NULL THEN 'conflict'
       WHEN p.period_end > p.local_today THEN 'future'
       WHEN (CASE WHEN p.account_type = 'Household' THEN p.household_archived
                  ELSE p.archived_at END) IS NOT NULL THEN 'archived'
       WHEN pr.loc_id IS NULL THEN 'no_factor'
       ELSE 'fresh' END,
  p.account_type, p.account_id, p.household_id, p.activity_type, p.milli,
  left(p.quantity, 40), p.unit, p.period_start, p.period_end, p.meter_ref, p.source,
  p.external_id, p.data_quality,
  CASE WHEN p.clean THEN 'CLEAN' ELSE p.a_scope END,
  CASE WHEN p.clean OR (p.a_scope = '2' AND pr.res_id IS NOT NULL) THEN 0 ELSE p.a_category END,
  CASE WHEN p.clean THEN 0 ELSE {_grams("p.milli", "pr.loc_ug")} END,
  CASE WHEN p.clean AND p.market THEN -{_grams("p.milli", "coalesce(pr.res_ug, pr.loc_ug)")}
       WHEN p.clean THEN 0
       WHEN p.a_scope = '2' AND pr.res_id IS NOT NULL THEN {_grams("p.milli", "pr.res_ug")}
       ELSE {_grams("p.milli", "pr.loc_ug")} END,
  CASE WHEN p.clean THEN {_grams("p.milli", "pr.loc_ug")} ELSE 0 END,
  pr.loc_id,
  CASE WHEN p.clean AND p.market THEN coalesce(pr.res_id, pr.loc_id)
       WHEN p.clean THEN NULL
       WHEN p.a_scope = '2' THEN pr.res_id END,
  p.factor_key, p.region
FROM placed p
LEFT JOIN priced pr ON pr.factor_key = p.factor_key AND pr.region = p.region
  AND pr.day = p.period_start
-- The stored record of each externalId, by its unique index, row by row (OFFSET 0: not
-- flattened into a join). Under row-level security the planner underestimates the table and
-- would hash all of it for every batch: a cost growing with everything imported before.
LEFT JOIN LATERAL (
  SELECT r.id, r.account_type, r.account_id, r.activity_type, r.quantity_milli, r.period_start,
         r.period_end, r.meter_ref
  FROM activity_record r WHERE r.external_id = p.external_id OFFSET 0
) x ON true
"""

_JUDGED_ERRORS = f"""
SELECT line,
  CASE status WHEN 'no_factor' THEN 'activityType' WHEN 'conflict' THEN 'externalId'
       WHEN 'future' THEN 'periodEnd' ELSE 'accountId' END,
  CASE status WHEN 'not_found' THEN 'NOT_FOUND' WHEN 'conflict' THEN 'EXTERNAL_ID_CONFLICT'
       WHEN 'future' THEN 'FUTURE_PERIOD'
       WHEN 'archived' THEN 'ARCHIVED_ACCOUNT' ELSE 'NO_EMISSION_FACTOR' END,
  CASE status WHEN 'not_found' THEN 'no such account'
       WHEN 'conflict' THEN 'externalId was recorded before with different values'
       WHEN 'future'
         THEN 'the period has not ended yet where the account lives: record it when it has'
       WHEN 'archived' THEN 'the account is archived'
       ELSE 'no ' || factor_key || ' factor for ' || region || ' on '
            || to_char(period_start, 'YYYY-MM-DD') END
FROM {_WORK} WHERE status NOT IN ('fresh', 'replay') ORDER BY pos
"""

# Accepted with a warning (ingest's NOT_ATTRIBUTED): a person's record dated where they have
# no household counts for the person only.
_WARNINGS = f"""
SELECT line, 'periodStart', '{NOT_ATTRIBUTED}',
  'the person has no household on ' || to_char(period_start, 'YYYY-MM-DD')
  || ': counted for the person, not for any household or community (memberFrom is later, or'
  || ' they had moved out)'
FROM {_WORK} WHERE account_type = 'Individual' AND household_id IS NULL ORDER BY pos
"""

# Step 4: overlaps of one meter (account, activity type, meter_ref) with the batch's earlier
# rows in start order, and with recorded readings. A meter's recorded readings never overlap
# (this rule), so sorted by start their ends rise too: the latest one starting by a row's end
# overlaps it if any does. One index probe per row finds the rows to report; only those get
# the full list of the readings they overlap.
_OVERLAPS = f"""
WITH fresh AS (SELECT * FROM {_WORK} WHERE status = 'fresh'),
in_batch AS (
  SELECT line, pos, lag(pos) OVER w AS before_pos, lag(period_end) OVER w AS before_end,
         period_start
  FROM fresh
  WINDOW w AS (PARTITION BY account_type, account_id, activity_type, meter_ref
               ORDER BY period_start, pos)
), probed AS (
  SELECT f.* FROM fresh f
  CROSS JOIN LATERAL (
    (SELECT r.period_end FROM activity_record r
      WHERE f.meter_ref IS NOT NULL AND r.account_type = f.account_type
        AND r.account_id = f.account_id AND r.activity_type = f.activity_type
        AND r.meter_ref = f.meter_ref AND r.period_start <= f.period_end
      ORDER BY r.period_start DESC LIMIT 1)
    UNION ALL
    (SELECT r.period_end FROM activity_record r
      WHERE f.meter_ref IS NULL AND r.account_type = f.account_type
        AND r.account_id = f.account_id AND r.activity_type = f.activity_type
        AND r.meter_ref IS NULL AND r.period_start <= f.period_end
      ORDER BY r.period_start DESC LIMIT 1)
  ) last
  WHERE last.period_end >= f.period_start
)
SELECT line, 'periodStart', 'OVERLAPPING_PERIOD',
       'overlaps row ' || before_pos || ' of the same meter', pos, 0, NULL::date
FROM in_batch WHERE before_pos IS NOT NULL AND period_start <= before_end
UNION ALL
SELECT p.line, 'periodStart', 'OVERLAPPING_PERIOD',
       'overlaps a recorded period ' || to_char(r.period_start, 'YYYY-MM-DD') || '..'
       || to_char(r.period_end, 'YYYY-MM-DD') || ' of the same meter', p.pos, 1, r.period_start
FROM probed p JOIN activity_record r
  ON r.account_type = p.account_type AND r.account_id = p.account_id
 AND r.activity_type = p.activity_type AND r.meter_ref IS NOT DISTINCT FROM p.meter_ref
 AND r.period_start <= p.period_end AND r.period_end >= p.period_start
ORDER BY 5, 6, 7
"""

_RECORD_COLUMNS = (
    "account_type, account_id, household_id, activity_type, quantity_milli, entered_quantity,"
    " entered_unit, period_start, period_end, meter_ref, source, external_id, data_quality,"
    " scope, category, location_g, market_g, offset_g, factor_id, market_factor_id"
)

# Step 5a: the records (row-level security checks each one: COPY into the table itself would
# be refused under its policies).
_INSERT_RECORDS = f"""
INSERT INTO activity_record ({_RECORD_COLUMNS}, recorded_by, recorded_at)
SELECT {_RECORD_COLUMNS}, $1::text, $2::timestamptz FROM {_WORK} WHERE status = 'fresh'
ORDER BY pos
"""

# Step 5b: the totals. Each record's grams are split over its days (apportion: the remainder
# to the first days), clean energy's market-based credit as a second part in Scope 2, and
# added to every ancestor of the account on its first day: the platform, the household's path
# (enterprise via communities, communities, household), the person, and the enterprises that
# employed them (via employees). Keys in order: concurrent writers lock rows in one order.
_UPSERT_TOTALS = f"""
WITH rec AS (
  SELECT pos, account_type, account_id, household_id, period_start,
         (period_end - period_start + 1) AS n, scope, category, location_g, market_g, offset_g
  FROM {_WORK} WHERE status = 'fresh'
), parts AS (
  SELECT pos, period_start, n, true AS first_part,
    CASE WHEN scope = 'CLEAN' THEN 'offset' ELSE 'emission' END AS kind, scope,
    CASE WHEN scope = 'CLEAN' THEN 0 ELSE category END AS category,
    CASE WHEN scope = 'CLEAN' THEN offset_g ELSE location_g END AS loc,
    CASE WHEN scope = 'CLEAN' THEN 0 ELSE market_g END AS mkt
  FROM rec
  UNION ALL
  SELECT pos, period_start, n, false, 'emission', '2', 0, 0, market_g
  FROM rec WHERE scope = 'CLEAN' AND market_g <> 0
), daily AS (
  -- One-day records (most: daily meter readings) as they are; longer ones split by day.
  SELECT pos, period_start AS day, kind, scope, category, loc, mkt,
    CASE WHEN first_part THEN 1 ELSE 0 END AS counted
  FROM parts WHERE n = 1
  UNION ALL
  SELECT p.pos, p.period_start + k AS day, p.kind, p.scope, p.category,
    CASE WHEN p.loc < 0 THEN -1 ELSE 1 END
      * (abs(p.loc) / p.n + CASE WHEN k < abs(p.loc) % p.n THEN 1 ELSE 0 END) AS loc,
    CASE WHEN p.mkt < 0 THEN -1 ELSE 1 END
      * (abs(p.mkt) / p.n + CASE WHEN k < abs(p.mkt) % p.n THEN 1 ELSE 0 END) AS mkt,
    CASE WHEN p.first_part AND k = 0 THEN 1 ELSE 0 END AS counted
  FROM parts p CROSS JOIN LATERAL generate_series(0, p.n - 1) AS k WHERE p.n > 1
), households AS (
  SELECT DISTINCT household_id FROM rec WHERE household_id IS NOT NULL
), ancestors AS MATERIALIZED (
  -- Once per household of the batch (a few hundred), not per record: inlined, the planner
  -- joined the records to their homes first and split a path per record (~85 ms a batch).
  SELECT h.id AS household_id,
    CASE left(seg, 1) WHEN 'e' THEN 'E' WHEN 'c' THEN 'C' ELSE 'H' END AS node,
    substr(seg, 2)::bigint AS node_id,
    CASE left(seg, 1) WHEN 'e' THEN 'communities' ELSE '' END AS via
  FROM household h JOIN households hs ON hs.household_id = h.id
  CROSS JOIN LATERAL unnest(string_to_array(btrim(h.path, '/'), '/')) AS seg
  WHERE left(seg, 1) IN ('e', 'c', 'h')
), targets AS (
  SELECT pos, 'P' AS node, 0::bigint AS node_id, '' AS via FROM rec
  UNION ALL
  SELECT r.pos, a.node, a.node_id, a.via FROM rec r JOIN ancestors a USING (household_id)
  UNION ALL
  SELECT pos, 'I', account_id, '' FROM rec WHERE account_type = 'Individual'
  UNION ALL
  SELECT r.pos, 'E', e.enterprise_id, 'employees' FROM rec r
  JOIN employment e ON r.account_type = 'Individual' AND e.individual_id = r.account_id
   AND e.valid_from <= r.period_start AND (e.valid_to IS NULL OR e.valid_to > r.period_start)
), cells AS MATERIALIZED (
  -- Hashed, not sorted: only the (far fewer) cells are sorted, for the upsert's lock order.
  SELECT t.node, t.node_id, t.via, d.day, d.kind, d.scope, d.category,
         sum(d.loc) AS loc, sum(d.mkt) AS mkt, sum(d.counted) AS counted
  FROM daily d JOIN targets t USING (pos)
  WHERE d.loc <> 0 OR d.mkt <> 0 OR d.counted <> 0
  GROUP BY t.node, t.node_id, t.via, d.day, d.kind, d.scope, d.category
), written AS (
INSERT INTO footprint_total
  (node, node_id, via, day, kind, scope, category, location_g, market_g, record_count)
SELECT node, node_id, via, day, kind, scope, category, loc, mkt, counted FROM cells
WHERE loc <> 0 OR mkt <> 0 OR counted <> 0
ORDER BY node COLLATE "C", node_id, via COLLATE "C", day, kind COLLATE "C", scope COLLATE "C",
  category
ON CONFLICT (node, node_id, via, day, kind, scope, category) DO UPDATE SET
  location_g = footprint_total.location_g + excluded.location_g,
  market_g = footprint_total.market_g + excluded.market_g,
  record_count = footprint_total.record_count + excluded.record_count
RETURNING node, node_id, kind
), communities AS (
  -- Only the communities' cells matter to the caller (leaderboards), not every cell.
  SELECT DISTINCT node_id, kind FROM written WHERE node = 'C'
)
SELECT n.cells, c.node_id, c.kind
FROM (SELECT count(*) AS cells FROM written) n LEFT JOIN communities c ON true
"""


@dataclass
class BulkResult:
    created_count: int = 0
    unchanged_count: int = 0
    errors: list[tuple[int, str, str, str]] = field(default_factory=list)  # line, field, code, msg
    warnings: list[tuple[int, str, str, str]] = field(default_factory=list)  # NOT_ATTRIBUTED
    total_cells: int = 0


@dataclass
class StageCaches:
    units: dict[str, tuple[str, str]] = field(default_factory=dict)


def stage_row(pos: int, line: int, d: dict[str, Any], caches: StageCaches) -> tuple[Any, ...]:
    """One row of the file as a staging tuple: the syntax checks of importer._parse (same
    order, same messages) and, for quantities that are not plain decimals, the reference
    conversion. Everything else is judged in SQL."""
    empty = (None,) * (len(_STAGE_COLUMNS) - 5)

    def error(name: str, message: str, code: RecordErrorCode = RecordErrorCode.INVALID) -> Any:
        return (pos, line, name, code.value, message, *empty)

    if "_error" in d:
        return error("line", d["_error"])
    for name in (
        "account",
        "activity_type",
        "quantity",
        "unit",
        "period_start",
        "period_end",
        "external_id",
    ):
        if not str(d.get(name) or "").strip():
            return error(name, f"{name} is required (external_id makes re-imports safe)")
    account = str(d["account"]).strip()
    ref_type = ref = ref_msg = None
    pk: int | None = None
    try:
        if "/ref:" in account:
            type_name, ref = account.split("/ref:", 1)
            if type_name not in _REF_TYPES:
                return error(
                    "account", f"no {type_name} with externalRef {ref!r}", RecordErrorCode.NOT_FOUND
                )
            ref_type, ref_msg = type_name, f"no {type_name} with externalRef {ref!r}"
        elif ":" in account and account.split(":", 1)[1].isdigit():
            type_name, raw = account.split(":", 1)
            pk = int(raw)
        else:
            type_name, pk = decode_global_id(account)
    except CodedError:
        type_name = ""
    perr: tuple[Any, Any, Any] = (None, None, None)
    if type_name not in _REF_TYPES:
        return error(
            "account",
            "account is Individual:ID, Household:ID, a global ID or Type/ref:EXTERNAL_REF",
            RecordErrorCode.NOT_FOUND,
        )
    start = end = None
    try:
        start = date.fromisoformat(str(d["period_start"]).strip())
        end = date.fromisoformat(str(d["period_end"]).strip())
    except ValueError as exc:
        perr = ("period", RecordErrorCode.INVALID_PERIOD.value, f"dates are YYYY-MM-DD: {exc}")
        if ref is None:
            return error(perr[0], perr[2], RecordErrorCode.INVALID_PERIOD)
    activity_type = str(d["activity_type"]).strip()
    quantity = str(d["quantity"]).strip()
    unit = str(d["unit"]).strip()
    activity = ACTIVITY_TYPES.get(activity_type)
    activity_msg = None
    qty = milli_py = qerr_field = qerr_code = qerr_msg = None
    if activity is None:
        activity_msg = (
            f"unknown activity type {activity_type!r}; one of {', '.join(ACTIVITY_TYPES)}"
        )
    elif _PLAIN.fullmatch(quantity):
        qty = quantity
    else:
        try:
            milli_py = str(to_canonical_milli(quantity, unit, activity))
        except UnitError as exc:
            number = "number" in str(exc)
            qerr_field = "quantity" if number else "unit"
            qerr_code = (
                RecordErrorCode.INVALID_QUANTITY if number else RecordErrorCode.UNKNOWN_UNIT
            ).value
            qerr_msg = str(exc)
    spelled = caches.units.get(unit)
    if spelled is None:
        norm = normalise_unit(unit)
        spelled = caches.units[unit] = (norm, repr(norm))
    meter_ref = (str(d["meter_ref"]).strip() or None) if d.get("meter_ref") else None
    return (
        pos,
        line,
        *perr,
        ref_type,
        ref,
        ref_msg,
        type_name,
        pk,
        activity_type,
        activity_msg,
        quantity,
        qty,
        milli_py,
        qerr_field,
        qerr_code,
        qerr_msg,
        unit,
        spelled[0],
        spelled[1],
        start,
        end,
        str(d["external_id"]).strip(),
        str(d.get("source") or "IMPORT").strip(),
        meter_ref,
        str(d.get("data_quality") or "METERED").strip(),
    )


async def ingest_batch(
    conn: Any,
    rows: list[tuple[Any, ...]],
    *,
    now: datetime,
    recorded_by: str | None,
    recorded_at: datetime,
) -> BulkResult:
    """Validate and, if every row is valid, write the staged ``rows`` (from ``stage_row``)
    in ``conn``'s transaction (a SQLAlchemy AsyncConnection on PostgreSQL). With errors,
    nothing is written (the caller rolls back) and ``result.errors`` says why, by line."""
    result = BulkResult()
    # SQLAlchemy opens the driver's transaction at its first statement: until then, statements
    # on the raw connection would each commit on their own.
    await conn.execute(sa.text("SELECT 1"))
    raw = (await conn.get_raw_connection()).driver_connection
    # A batch's statements sort and hash tens of thousands of rows (in memory, not on disk),
    # and a big batch on a busy server may take longer than the API's statement timeout,
    # which is meant for requests, not for a trusted bulk job.
    await raw.execute(
        "SET LOCAL work_mem = '64MB'; SET LOCAL statement_timeout = '10min';"
        f" {_CREATE_STAGE}; {_CREATE_WORK}; TRUNCATE {_STAGE}, {_WORK}"
    )
    # Quantities travel as text (exact) and are cast to numeric in SQL.
    await raw.copy_records_to_table(_STAGE, records=rows, columns=_STAGE_COLUMNS)
    # A temporary table has no statistics until analysed: the planner would take a batch for a
    # few hundred rows and join it by nested loops (measured: 1.3 s instead of 0.2 s for 20,000).
    await raw.execute(f"ANALYZE {_STAGE}")

    # Account references by externalRef (the last parse check that needs the database).
    for kind, table in (("Individual", "individual"), ("Household", "household")):
        await raw.execute(
            f"UPDATE {_STAGE} s SET account_id = t.id FROM {table} t "
            f"WHERE s.ref_type = '{kind}' AND t.external_ref = s.ref"
        )
    errors = await raw.fetch(_PARSE_ERRORS)
    if errors:
        result.errors = [tuple(e) for e in errors]
        return result

    errors = await raw.fetch(_ROW_ERRORS, LocalDays(now).latest)
    if errors:
        first = [e for e in errors if e["n"] < 100] or list(errors)
        result.errors = [(e[0], e[1], e[2], e[3]) for e in first]
        return result

    # What is read from here on decides what is written: writers of one account take turns
    # (locks.py: the lock every writer of an account takes, in the same order).
    accounts = {
        kind: ids
        for kind, ids in await raw.fetch(
            f"SELECT account_type, array_agg(DISTINCT account_id) FROM {_STAGE}"
            " WHERE account_id IS NOT NULL GROUP BY account_type"
        )
    }
    await lock_accounts(conn, accounts.get("Individual", ()), accounts.get("Household", ()))

    await raw.execute(_WORK_FILL, now)
    errors = await raw.fetch(_JUDGED_ERRORS)
    counts = dict(await raw.fetch(f"SELECT status, count(*) FROM {_WORK} GROUP BY status"))
    if errors:
        result.errors = [tuple(e) for e in errors]
        return result
    result.warnings = [tuple(w) for w in await raw.fetch(_WARNINGS)]
    fresh = counts.get("fresh", 0)
    if not fresh:
        result.unchanged_count = counts.get("replay", 0)
        return result
    errors = await raw.fetch(_OVERLAPS)
    if errors:
        result.errors = [(e[0], e[1], e[2], e[3]) for e in errors]
        return result

    await raw.execute(_INSERT_RECORDS, recorded_by, recorded_at)
    # The planner cannot estimate the days of the records or the ancestors of their homes (it
    # guesses ~10^9 cells), so it would sort the fan-out to group it; hashing is 2-3x faster.
    await raw.execute("SET LOCAL enable_sort = off; SET LOCAL enable_mergejoin = off")
    cells = await raw.fetch(_UPSERT_TOTALS)
    await raw.execute("RESET enable_sort; RESET enable_mergejoin")
    result.created_count = fresh
    result.unchanged_count = counts.get("replay", 0)
    result.total_cells = cells[0]["cells"] if cells else 0
    # Every change of a community's totals is a change of its leaderboards' inputs.
    await live.publish(
        conn,
        (
            leaderboard_channel(
                c["node_id"],
                live.REDUCTIONS if c["kind"] == "reduction" else live.NET_EMISSIONS_PER_CAPITA,
            )
            for c in cells
            if c["node_id"] is not None
        ),
    )
    return result
