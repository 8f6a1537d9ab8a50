"""carbongraph benchmark harness: `make bench` (city scale) and `make bench-quick` (small).

Every comparison is a ratio measured in the same run, on the same machine and the same
PostgreSQL. The product connects as the application role under row-level security, as deployed
(BENCH_AS_OWNER=1: as the owner, for a comparison). Absolute times are reported, never
asserted. Writes bench/results/<timestamp>.json and the table in docs/benchmarks.md.

Scenarios:
  B1  ingest: records/s through the product's set-based import (--jobs 2, and one job) vs raw
      COPY into a bare table; the importer's peak RSS on a file 10x the dataset's activity
  B2  footprint(period: month) at household, community, enterprise and platform level; the
      enterprise's against a raw asyncpg query of the same sums over the totals
  B3  community → 50 households → members → monthly footprints over HTTP (wrk), c = 1, 8, 32
      as a platform admin, and c = 8 as a manager of the community's tenant
  B3-peer  the same data and query shape served by PostGraphile v5, same wrk, same run
  B4  a 1,000-object GraphQL response vs raw asyncpg + orjson of the same rows
  B5  peak RSS of the server during B3 and of the importer during B1
  B6  engagement: a household's statement, leaderboard pages (households, people of the
      largest community; the largest enterprise's communities), ranked in SQL
  B7  partner-verified actions: `carbongraph import actions` (set-based) and
      `recordVerifiedActions` over HTTP in batches of its documented maximum
      (`--only B7` runs it alone on a freshly seeded dataset)

`--only B1 --only B7` runs those two alone (B7 on B1's dataset) and writes their results file
without touching docs/benchmarks.md. `--only reads` runs B1 (it loads the dataset; without the
file ten times as large), then the read scenarios B2, B4 and B3 (with its peer) alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import sqlalchemy as sa

from carbongraph import planner
from carbongraph.authz import PLATFORM, Principal, Role, mint_token
from carbongraph.config import Settings
from carbongraph.db import StatementLog, asyncpg_dsn, create_engine, request_db
from carbongraph.migrate import create_app_role_sql
from carbongraph.models.base import utcnow
from carbongraph.resolvers.context import build_context
from carbongraph.schema.relay import to_global_id
from carbongraph.schema.schema import schema
from carbongraph.services.access import G

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT / "bench" / "peers" / "postgraphile"
PG_BASE = os.environ.get("BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
MONTH = "2026-10"
PRINCIPAL = "bench-admin"
TENANT_PRINCIPAL = "bench-tenant-manager"
APP_ROLE = "carbongraph_app"

PERIOD = {"month": MONTH}
NESTED = """query($c: ID!, $p: PeriodInput!) { community(id: $c) { name households(first: 50) {
  edges { node { id dwellingType
    footprint(period: $p) { scope1 scope2LocationBased scope3 gross cleanEnergyOffset net }
    members(first: 10) { edges { node { id displayName footprint(period: $p) { gross net } } } }
  } } } } }"""
FOOTPRINT = """query($id: ID!, $p: PeriodInput!) { node(id: $id) {
  ... on Household { footprint(period: $p) { gross net } }
  ... on Community { footprint(period: $p) { gross net } }
  ... on Enterprise { footprint(period: $p) { gross net } } } }"""
PLATFORM_FOOTPRINT = "query($p: PeriodInput!) { platformFootprint(period: $p) { gross net } }"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(pct(ms, 0.99), 3),
        "n": len(ms),
    }


def url_for(database: str) -> str:
    return sa.engine.make_url(PG_BASE).set(database=database).render_as_string(hide_password=False)


async def admin(statement: str) -> None:
    dsn = asyncpg_dsn(PG_BASE)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carbongraph.cli", *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )


# -- B1 ------------------------------------------------------------------------------------------
# The importer runs in a child that reports its own peak RSS when it is done, and the seconds
# from the moment its modules were imported (the command's own work: reading the file, the
# migration check, every batch) to the end.
_PROBE = (
    "import resource, sys, time\n"
    "from carbongraph.cli import app\n"
    "import carbongraph.migrate, carbongraph.accounting.importer, carbongraph.actions.importer\n"
    "started = time.perf_counter()\n"
    "try:\n    app(sys.argv[1:])\nexcept SystemExit as done:\n"
    "    code = done.code or 0\n"
    "print('WORK_S', time.perf_counter() - started)\n"
    # VmHWM, not getrusage's ru_maxrss: the latter keeps the high-water mark of the forking
    # parent (the benchmark, holding B1's rows) across exec.
    "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
    "print('RSS_KB', (hwm or [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss])[0])\n"
    "sys.exit(code)\n"
)
B1_BATCH = "20000"


def process_start_seconds() -> float:
    """What an import command pays before its work: starting Python and importing what
    `carbongraph import` imports (the CLI, the migration check, the importers; not the GraphQL
    app, which no import command loads). Measured as it runs here
    (PYTHONDONTWRITEBYTECODE, if set, makes every start compile the sources again); part of
    every wall time below."""
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import carbongraph.cli, carbongraph.migrate, carbongraph.accounting.importer,"
            " carbongraph.actions.importer",
        ],
        check=True,
        env=os.environ,
    )
    return round(time.perf_counter() - started, 2)


def probe(kind: str, path: Path, env: dict[str, str], *options: str) -> dict[str, Any]:
    """`carbongraph import KIND FILE` in a child: wall time (process start included), the
    command's own time after its imports, its peak RSS and what it created."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, "import", kind, str(path), *options],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    if done.returncode:
        raise RuntimeError(f"import {kind} failed: {done.stdout[-2000:]} {done.stderr[-3000:]}")
    seconds = time.perf_counter() - started
    created = int(re.search(r"created (\d+)", done.stdout).group(1))  # type: ignore[union-attr]
    work = float(done.stdout.rsplit("WORK_S", 1)[1].split()[0])
    return {
        "records": created,
        "seconds": round(seconds, 2),
        "records_per_s": round(created / seconds),
        "seconds_after_start": round(work, 2),
        "records_per_s_after_start": round(created / work),
        "peak_rss_mb": round(int(done.stdout.rsplit("RSS_KB", 1)[1].split()[0]) / 1024, 1),
    }


def _import(path: Path, env: dict[str, str], *options: str) -> dict[str, Any]:
    return probe("activities", path, env, *options)


async def _empty_activity(database_url: str) -> None:
    dsn = asyncpg_dsn(database_url)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE activity_record, footprint_total")
        await conn.execute("ANALYZE activity_record, footprint_total")
    finally:
        await conn.close()


def _ten_times(activity: Path, target: Path) -> int:
    """The activity ten times over, each copy 35 days earlier than the one before (so no
    meter's readings overlap) with its own external ids; streamed, line by line."""
    rows = 0
    with target.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        for copy in range(10):
            shift = timedelta(days=35 * copy)
            with activity.open(newline="", encoding="utf-8") as handle:
                reader = csv.reader(handle)
                header = next(reader)
                if copy == 0:
                    writer.writerow(header)
                start, end, ext = (header.index(c) for c in ("period_start", "period_end",
                                                             "external_id"))  # fmt: skip
                for row in reader:
                    if copy:
                        row[start] = (datetime.fromisoformat(row[start]) - shift).date().isoformat()
                        row[end] = (datetime.fromisoformat(row[end]) - shift).date().isoformat()
                        row[ext] = f"{row[ext]}~{copy}"
                    writer.writerow(row)
                    rows += 1
    return rows


async def b1_ingest(scale: str, database_url: str, app_url: str, workdir: Path) -> dict[str, Any]:
    """The hierarchy from `seed --scale`, then its activity through `carbongraph import`:
    the set-based path with one job and with `--jobs 2`, each into empty activity tables, and
    raw COPY of the same rows. The activity file stays in ``workdir`` for ``b1_file_10x``.
    Migrations and the dataset run as the owner (``database_url``), the import as the
    application role."""
    env = {"CARBONGRAPH_MIGRATION_DATABASE_URL": database_url, "CARBONGRAPH_DATABASE_URL": app_url}
    cli("migrate", env=env)
    activity = workdir / "activity.csv"
    # The dataset writes its own ids and moves the sequences on (setval): the owner's job.
    seeded = cli(
        "seed",
        "--scale",
        scale,
        "--activity-file",
        str(activity),
        env={"CARBONGRAPH_DATABASE_URL": database_url},
    )
    counts = dict(re.findall(r"(\w+) (\d+)", seeded.stdout.split(":", 1)[1]))
    single = _import(activity, env, "--batch-size", B1_BATCH)
    await _empty_activity(database_url)
    jobs2 = _import(activity, env, "--batch-size", B1_BATCH, "--jobs", "2")
    with activity.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        rows = [tuple(row[:7]) for row in reader]
    records = int(counts["records"])
    if not single["records"] == jobs2["records"] == records:
        raise RuntimeError(f"B1: the imports did not write every record: {single}, {jobs2}")
    # Raw COPY of the same rows into a bare table without indexes.
    dsn = asyncpg_dsn(database_url)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_raw_copy")
        await conn.execute(
            "CREATE TABLE bench_raw_copy (account text, activity_type text, quantity text,"
            " unit text, period_start text, period_end text, external_id text)"
        )
        copy_started = time.perf_counter()
        await conn.copy_records_to_table("bench_raw_copy", records=rows)
        copy_seconds = time.perf_counter() - copy_started
        await conn.execute("DROP TABLE bench_raw_copy")
    finally:
        await conn.close()
    raw_per_s = len(rows) / copy_seconds
    floor = await _write_floor(dsn, records)
    return {
        "dataset": {k: int(v) for k, v in counts.items()},
        # Wall time of `carbongraph import activities --jobs 2` (process start, CSV parsing,
        # staging COPY, validation, emissions and roll-up totals in SQL), batches of 20,000.
        "product": jobs2,
        "product_single_job": single,
        "raw_copy": {
            "records": len(rows),
            "seconds": round(copy_seconds, 3),
            "records_per_s": round(raw_per_s),
        },
        "write_floor": {
            **floor,
            "ratio_to_raw": round(floor["records_per_s"] / raw_per_s, 4),
        },
        "ratio_product_to_raw": round(jobs2["records_per_s"] / raw_per_s, 4),
        "ratio_single_job_to_raw": round(single["records_per_s"] / raw_per_s, 4),
        "importer_peak_rss_mb": jobs2["peak_rss_mb"],
        "process_start_seconds": process_start_seconds(),
    }


async def _write_floor(dsn: str, records: int) -> dict[str, Any]:
    """How fast the rows the import wrote can be written at all: the same records and totals,
    copied aside and inserted again (``INSERT … SELECT``, the totals with the import's upsert)
    by two sessions at once, as the owner (no row-level security), with nothing to read,
    validate, price or aggregate: a bound on any import into these tables on this machine.
    The tables hold what they held before when it is done."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "DROP TABLE IF EXISTS bench_floor_records, bench_floor_totals;"
            " CREATE UNLOGGED TABLE bench_floor_records AS SELECT * FROM activity_record;"
            " CREATE UNLOGGED TABLE bench_floor_totals AS SELECT * FROM footprint_total;"
            " TRUNCATE activity_record, footprint_total"
        )
        cells = await conn.fetchval("SELECT count(*) FROM bench_floor_totals")
    finally:
        await conn.close()

    async def half(k: int) -> None:
        session = await asyncpg.connect(dsn)
        try:
            async with session.transaction():
                await session.execute(
                    "INSERT INTO activity_record SELECT * FROM bench_floor_records"
                    f" WHERE id % 2 = {k}"
                )
                await session.execute(
                    "INSERT INTO footprint_total SELECT * FROM bench_floor_totals"
                    f" WHERE (hashtext(node || node_id || day::text) & 1) = {k}"
                    " ORDER BY node, node_id, via, day, kind, scope, category"
                    " ON CONFLICT (node, node_id, via, day, kind, scope, category) DO UPDATE SET"
                    " location_g = footprint_total.location_g + excluded.location_g,"
                    " market_g = footprint_total.market_g + excluded.market_g,"
                    " record_count = footprint_total.record_count + excluded.record_count"
                )
        finally:
            await session.close()

    started = time.perf_counter()
    await asyncio.gather(half(0), half(1))
    seconds = time.perf_counter() - started
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "DROP TABLE bench_floor_records, bench_floor_totals;"
            " ANALYZE activity_record, footprint_total"
        )
    finally:
        await conn.close()
    return {
        "records": records,
        "total_cells": cells,
        "sessions": 2,
        "seconds": round(seconds, 2),
        "records_per_s": round(records / seconds),
    }


def _ten_times_limit() -> float | None:
    """BENCH_10X_SECONDS: how long the import of the file ten times as large may run (every
    run that imports it; it used to bound `--only B1` runs alone)."""
    limit = os.environ.get("BENCH_10X_SECONDS")
    return float(limit) if limit else None


async def b1_file_10x(
    database_url: str, app_url: str, workdir: Path, max_seconds: float | None = None
) -> dict[str, Any]:
    """The same import (--jobs 2) of a file ten times B1's activity, into empty activity
    tables: the importer's peak RSS must not grow with the file (it streams). Its VmHWM is
    sampled every 2 s; with ``max_seconds`` (BENCH_10X_SECONDS) an import still running then
    is stopped, and the result says so and how many rows it had written."""
    env = {"CARBONGRAPH_MIGRATION_DATABASE_URL": database_url, "CARBONGRAPH_DATABASE_URL": app_url}
    await _empty_activity(database_url)
    big = workdir / "activity-10x.csv"
    big_rows = _ten_times(workdir / "activity.csv", big)
    big_bytes = big.stat().st_size
    started = time.perf_counter()
    log = workdir / "import-10x.out"  # a file, not a pipe nobody reads until the end
    command = [sys.executable, "-c", _PROBE, "import", "activities", str(big)]
    with log.open("w") as sink:
        child = subprocess.Popen(  # noqa: ASYNC220 - a child timed and sampled as it runs
            [*command, "--batch-size", B1_BATCH, "--jobs", "2"],
            stdout=sink,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **env},
        )
    samples: list[tuple[float, float]] = []
    stopped = False
    while child.poll() is None:
        with contextlib.suppress(OSError):
            samples.append((round(time.perf_counter() - started, 1), peak_rss_mb(child.pid)))
        if max_seconds is not None and time.perf_counter() - started > max_seconds:
            child.terminate()
            stopped = True
            break
        await asyncio.sleep(2)
    child.wait()
    seconds = time.perf_counter() - started
    out = log.read_text()
    big.unlink()
    result: dict[str, Any] = {
        "rows": big_rows,
        "mb": round(big_bytes / 2**20, 1),
        "seconds": round(seconds, 2),
        "peak_rss_mb": max((rss for _, rss in samples), default=0.0),
        # (seconds since start, VmHWM MB), every 2 s: flat once the first batches are in flight.
        "rss_samples": samples[:: max(1, len(samples) // 60)],
        "complete": not stopped,
    }
    if stopped:
        dsn = asyncpg_dsn(database_url)
        conn = await asyncpg.connect(dsn)
        try:
            result["records_written_when_stopped"] = await conn.fetchval(
                "SELECT count(*) FROM activity_record"
            )
        finally:
            await conn.close()
        return result
    if child.returncode:
        raise RuntimeError(f"B1: the 10x import failed: {out[-2000:]}")
    created = int(re.search(r"created (\d+)", out).group(1))  # type: ignore[union-attr]
    if created != big_rows:
        raise RuntimeError(f"B1: the 10x import did not write every record: {created}")
    result["records"] = created
    result["records_per_s"] = round(created / seconds)
    result["peak_rss_mb"] = max(
        result["peak_rss_mb"], round(int(out.rsplit("RSS_KB", 1)[1].split()[0]) / 1024, 1)
    )
    return result


# -- in-process GraphQL timing ---------------------------------------------------------------------
class Executor:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.settings = Settings.from_env(database_url=database_url)
        self.engine = create_engine(self.settings)
        self.planned: dict[str, bool] = {}  # query -> answered by the planner

    async def run(
        self, query: str, variables: dict[str, Any] | None = None
    ) -> tuple[float, Any, int]:
        """One request's server work, as the HTTP endpoint does it: the planned statement on
        the planner's connections, or, when the planner declines, a transaction with the
        grants and Strawberry; ms, data, statements. A planned answer is the response's JSON
        text: it is decoded here only for the caller, after the clock stops."""
        principal = Principal(PRINCIPAL)
        with StatementLog() as log:
            started = time.perf_counter()
            outcome = await planner.try_plan_pooled(
                schema._schema, self.settings, self.engine, principal, query, variables, None
            )
            result = outcome.result
            if result is None:
                async with request_db(self.engine) as db:
                    context = await build_context(self.settings, db, principal)
                    result = await schema.execute(
                        query, variable_values=variables, context_value=context
                    )
            elapsed = (time.perf_counter() - started) * 1000
        if result.errors:
            raise RuntimeError(result.errors)
        self.planned[query] = outcome.planned
        data = orjson.loads(str(result.data)) if outcome.planned else result.data
        return elapsed, data, log.count

    async def timed(
        self, query: str, variables: dict[str, Any] | None, n: int, warmup: int
    ) -> dict[str, Any]:
        for _ in range(warmup):
            await self.run(query, variables)
        times = []
        statements = 0
        for _ in range(n):
            ms, _, statements = await self.run(query, variables)
            times.append(ms)
        return {**summary(times), "sql_statements": statements, "planned": self.planned[query]}


async def pick_nodes(engine: Any) -> dict[str, int]:
    async with engine.connect() as conn:
        household = await conn.scalar(
            sa.text(
                "SELECT household_id FROM household_membership GROUP BY household_id "
                "HAVING count(*) = 1 ORDER BY household_id LIMIT 1"
            )
        )
        building = await conn.scalar(
            sa.text(
                "SELECT community_id FROM household GROUP BY community_id HAVING count(*) >= 50 "
                "ORDER BY community_id LIMIT 1"
            )
        )
        village = await conn.scalar(
            sa.text(
                "SELECT c.id FROM community c JOIN household h ON h.community_id = c.id "
                "WHERE c.kind <> 'BUILDING' GROUP BY c.id ORDER BY count(*) DESC, c.id LIMIT 1"
            )
        )
        enterprise = await conn.scalar(
            sa.text(
                "SELECT e.id FROM enterprise e JOIN community c ON c.enterprise_id = e.id "
                "JOIN household h ON h.community_id = c.id GROUP BY e.id ORDER BY count(*) DESC "
                "LIMIT 1"
            )
        )
    return {
        "household": household,
        "community": village,
        "enterprise": enterprise,
        "building": building,
    }


async def b2_rollups(
    executor: Executor, nodes: dict[str, int], n: int, database_url: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for level, type_name in (("household", "Household"), ("community", "Community")):
        variables = {"id": to_global_id(type_name, nodes[level]), "p": PERIOD}
        out[level] = await executor.timed(FOOTPRINT, variables, n, 20)
    out["enterprise"], out["raw_asyncpg_enterprise"] = await enterprise_against_raw(
        executor.database_url, database_url, nodes["enterprise"], n
    )
    out["platform"] = await executor.timed(PLATFORM_FOOTPRINT, {"p": PERIOD}, n, 20)
    out["ratio_enterprise_to_household_p50"] = round(
        out["enterprise"]["p50_ms"] / out["household"]["p50_ms"], 3
    )
    out["ratio_enterprise_to_raw_p50"] = round(
        out["enterprise"]["p50_ms"] / out["raw_asyncpg_enterprise"]["p50_ms"], 2
    )
    return out


RAW_FOOTPRINT = """
SELECT coalesce(sum(location_g) FILTER (WHERE kind = 'emission' AND scope IN ('1', '2', '3')), 0),
       coalesce(sum(location_g) FILTER (WHERE kind = 'offset'), 0)
FROM footprint_total
WHERE node = 'E' AND node_id = $1 AND via = 'communities' AND day BETWEEN $2 AND $3
"""


async def _paired_rounds(
    app_url: str,
    dsn: str,
    query: str,
    variables: dict[str, Any],
    raw: Callable[[Any], Awaitable[Any]],
    n: int,
    warmup: int,
    rounds: int = 10,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``query`` through the server's code against ``raw`` (a raw asyncpg baseline, given its
    connection), interleaved one sample of each in turn, in ``rounds`` with fresh connections on
    both sides (a new Executor: the planner's own connections; a new raw connection). On this
    machine one connection's round trip differs from another's by up to 1.7x for the life of
    the connection (`SELECT 1`: 0.065-0.11 ms, by where its server process runs), which decides
    a ratio of sub-millisecond reads if each side keeps one connection; and the machine drifts
    between fast and slow phases within minutes, which separate blocks of samples would see
    on one side only. Medians over all rounds' samples."""
    ours: list[float] = []
    times: list[float] = []
    statements = 0
    planned = False
    for _ in range(rounds):
        executor = Executor(app_url)
        conn = await asyncpg.connect(dsn)
        try:
            for i in range(max(1, n // rounds) + warmup):
                ms, _, statements = await executor.run(query, variables)
                started = time.perf_counter()
                await raw(conn)
                if i >= warmup:
                    times.append((time.perf_counter() - started) * 1000)
                    ours.append(ms)
            planned = executor.planned[query]
        finally:
            await conn.close()
            await executor.engine.dispose()
    graphql = {**summary(ours), "sql_statements": statements, "planned": planned}
    return {**graphql, "rounds": rounds}, {**summary(times), "rounds": rounds}


async def enterprise_against_raw(
    app_url: str, database_url: str, enterprise: int, n: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The enterprise's footprint through the server's code, and the B2 baseline: the same
    sums over the totals by raw asyncpg (no transaction, no grants), encoded with orjson;
    ``_paired_rounds``."""
    start = datetime.strptime(MONTH + "-01", "%Y-%m-%d").date()
    end = (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)

    async def raw(conn: Any) -> None:
        row = await conn.fetchrow(RAW_FOOTPRINT, enterprise, start, end)
        gross, offset = int(row[0]), int(row[1])
        orjson.dumps({"data": {"node": {"footprint": {"gross": gross, "net": gross - offset}}}})

    variables = {"id": to_global_id("Enterprise", enterprise), "p": PERIOD}
    return await _paired_rounds(
        app_url, asyncpg_dsn(database_url), FOOTPRINT, variables, raw, n, 20
    )


STATEMENT = """query($id: ID!, $p: PeriodInput) { household(id: $id) { statement(period: $p) {
  weeks { net usage { activityType quantity } } net previousNet creditsEarned
  ranking { rank percentile peerCount peerAverageNet } } } }"""
COMMUNITY_BOARD = """query($id: ID!, $p: PeriodInput, $m: LeaderboardMembers!) {
  community(id: $id) { leaderboard(metric: NET_EMISSIONS_PER_CAPITA, members: $m, period: $p,
    first: 20) { totalCount population edges { node { rank percentile name value } } } } }"""
ENTERPRISE_BOARD = """query($id: ID!, $p: PeriodInput) { enterprise(id: $id) {
  leaderboard(metric: NET_EMISSIONS_PER_CAPITA, period: $p, first: 20) {
    totalCount edges { node { rank name value } } } } }"""


async def b6_engagement(executor: Executor, nodes: dict[str, int], n: int) -> dict[str, Any]:
    """Statements and leaderboard pages: times, statements, and the size of each board."""
    community = to_global_id("Community", nodes["community"])
    cases = {
        "household_statement": (
            STATEMENT,
            {"id": to_global_id("Household", nodes["household"]), "p": PERIOD},
        ),
        "community_households_board": (
            COMMUNITY_BOARD,
            {"id": community, "p": PERIOD, "m": "HOUSEHOLDS"},
        ),
        "community_people_board": (
            COMMUNITY_BOARD,
            {"id": community, "p": PERIOD, "m": "INDIVIDUALS"},
        ),
        "enterprise_communities_board": (
            ENTERPRISE_BOARD,
            {"id": to_global_id("Enterprise", nodes["enterprise"]), "p": PERIOD},
        ),
    }
    out: dict[str, Any] = {}
    for name, (query, variables) in cases.items():
        out[name] = await executor.timed(query, variables, n, 5)
        _, data, _ = await executor.run(query, variables)
        root = next(iter(data.values()))
        if "leaderboard" in root:
            out[name]["board_entries"] = root["leaderboard"]["totalCount"]
    return out


async def b4_overhead(executor: Executor, database_url: str, n: int) -> dict[str, Any]:
    dsn = asyncpg_dsn(database_url)
    # The ids as the owner: the executor's engine is the application role, under row-level
    # security, and outside a request it holds no scope (it read none: B4 measured 0 objects).
    owner = await asyncpg.connect(dsn)
    try:
        ids = [r[0] for r in await owner.fetch("SELECT id FROM household ORDER BY id LIMIT 1000")]
    finally:
        await owner.close()
    if not ids:
        raise RuntimeError("B4 found no households to read")
    query = (
        "query($ids: [ID!]!) { nodes(ids: $ids) { ... on Household { id dwellingType "
        "hasRooftopSolar } } }"
    )
    variables = {"ids": [to_global_id("Household", i) for i in ids]}

    async def raw(conn: Any) -> None:
        rows = await conn.fetch(
            "SELECT id, dwelling_type, has_rooftop_solar FROM household WHERE id = ANY($1::int[])",
            ids,
        )
        orjson.dumps({"data": {"nodes": [dict(r) for r in rows]}})

    graphql, raw_times = await _paired_rounds(
        executor.database_url, dsn, query, variables, raw, n, 5
    )
    return {
        "objects": len(ids),
        "graphql": graphql,
        "raw_asyncpg_orjson": raw_times,
        "ratio_graphql_to_raw_p50": round(graphql["p50_ms"] / raw_times["p50_ms"], 3),
    }


# -- HTTP load (wrk) -----------------------------------------------------------------------------
def wrk(
    url: str, body: dict[str, Any], token: str | None, connections: int, seconds: int
) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115
    headers = 'wrk.headers["Content-Type"] = "application/json"\n'
    if token:
        headers += f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    body_json = json.dumps(json.dumps(body))
    script.write(
        f'wrk.method = "POST"\nwrk.body = {body_json}\n{headers}'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("BENCH %d %d %d %f %f %f\\n", summary.requests, '
        "summary.errors.status + summary.errors.connect + summary.errors.read + "
        "summary.errors.write + summary.errors.timeout, summary.duration, "
        "latency:percentile(50), latency:percentile(99), latency.mean))\nend\n"
    )
    script.close()
    threads = 1 if connections == 1 else 2
    result = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "30s",
            "-s",
            script.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    os.unlink(script.name)
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("BENCH "))
    requests, errors, duration_us, p50_us, p99_us, _mean = line.split()[1:]
    return {
        "connections": connections,
        "requests": int(requests),
        "errors": int(errors),
        "requests_per_s": round(int(requests) / (int(duration_us) / 1e6), 1),
        "p50_ms": round(float(p50_us) / 1000, 2),
        "p99_ms": round(float(p99_us) / 1000, 2),
    }


def wait_http(url: str, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _start_ours(database_url: str, port: int) -> subprocess.Popen[bytes]:
    # Throughput, not the rate limiter: with the default budget every request after the first
    # few dozen would be a 429.
    env = {
        **os.environ,
        "CARBONGRAPH_DATABASE_URL": database_url,
        "CARBONGRAPH_RATE_LIMIT_PER_MINUTE": "0",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "carbongraph.cli", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/readyz")
    return server


def _start_peer(database_url: str, port: int) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    if not (PEER / "node_modules").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PEER, check=True
        )
    request = json.loads((PEER / "request.json").read_text())
    pg = (
        sa.engine.make_url(database_url)
        .set(drivername="postgres")
        .render_as_string(hide_password=False)
    )
    env = {**os.environ, "DATABASE_URL": pg, "NODE_ENV": "production"}
    if (PEER / "setup.mjs").exists():
        subprocess.run(["node", "setup.mjs"], cwd=PEER, env=env, check=True, capture_output=True)
    server = subprocess.Popen(
        ["node", "server.mjs", "--port", str(port)],
        cwd=PEER,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/graphql"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            import urllib.request

            req = urllib.request.Request(
                url,
                data=json.dumps(request).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=5) as answer:
                if "errors" not in json.loads(answer.read()):
                    break
        except OSError:
            time.sleep(0.5)
    return server, request


def _interleaved(
    sides: list[tuple[str, dict[str, Any], str | None]], connections: int, seconds: int
) -> list[dict[str, Any]]:
    """wrk against each side (url, body, token) for ``seconds`` in all, in rounds of about
    5 s taking turns (the order alternating), so that a drift of the machine weighs on every
    side alike. Requests/s over all rounds; p50 the median of the rounds', p99 the highest."""
    rounds = max(1, seconds // 5)
    each = max(1, round(seconds / rounds))
    done: list[list[dict[str, Any]]] = [[] for _ in sides]
    for r in range(rounds):
        order = range(len(sides)) if r % 2 == 0 else reversed(range(len(sides)))
        for i in order:
            url, body, token = sides[i]
            done[i].append(wrk(url, body, token, connections, each))
    out = []
    for runs in done:
        requests = sum(x["requests"] for x in runs)
        seconds_run = sum(x["requests"] / x["requests_per_s"] for x in runs if x["requests_per_s"])
        out.append(
            {
                "connections": connections,
                "requests": requests,
                "errors": sum(x["errors"] for x in runs),
                "requests_per_s": round(requests / seconds_run, 1) if seconds_run else 0.0,
                "p50_ms": round(statistics.median(x["p50_ms"] for x in runs), 3),
                "p99_ms": max(x["p99_ms"] for x in runs),
                "rounds": len(runs),
            }
        )
    return out


def b3_nested_and_peer(
    app_url: str,
    database_url: str,
    nodes: dict[str, int],
    seconds: int,
    token: str,
    statements: int,
    tenant_token: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """B3 against carbongraph (the application role) and its PostGraphile peer (the owner), both
    servers up at once and measured in turns at each concurrency (``_interleaved``)."""
    ours_port, peer_port = 8765, 8766
    ours = _start_ours(app_url, ours_port)
    peer = None
    try:
        peer, request = _start_peer(database_url, peer_port)
        body = {
            "query": NESTED,
            "variables": {"c": to_global_id("Community", nodes["building"]), "p": PERIOD},
        }
        ours_url = f"http://127.0.0.1:{ours_port}/graphql"
        peer_url = f"http://127.0.0.1:{peer_port}/graphql"
        wrk(ours_url, body, token, 8, 2)  # warm-up, same for both sides
        wrk(peer_url, request, None, 8, 2)
        ours_runs, peer_runs = [], []
        for c in (1, 8, 32):
            mine, theirs = _interleaved(
                [(ours_url, body, token), (peer_url, request, None)], c, seconds
            )
            ours_runs.append(mine)
            peer_runs.append(theirs)
        # The platform admin's scope passes every row policy at its first test; a manager of
        # the building's tenant has every person checked against the tenant (docs/security.md).
        tenant_run = wrk(ours_url, body, tenant_token, 8, seconds)
        ours_rss, peer_rss = peak_rss_mb(ours.pid), peak_rss_mb(peer.pid)
    finally:
        for server in (ours, peer):
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
    return (
        {
            "server": "carbongraph (uvicorn, 1 worker)",
            "community_id": nodes["building"],
            "sql_statements_per_request": statements,
            "runs": ours_runs,
            "tenant_manager_run": tenant_run,
            "server_peak_rss_mb": ours_rss,
            "measured": "in turns with the peer, rounds of about 5 s",
        },
        {
            "server": "PostGraphile v5 (Node, 1 process)",
            "runs": peer_runs,
            "server_peak_rss_mb": peer_rss,
        },
    )


# -- B7 ------------------------------------------------------------------------------------------
def _rides(people: list[int], count: int, first_day: datetime, prefix: str) -> list[dict[str, Any]]:
    """``count`` subway trips spread over people and days within the daily cap (6)."""
    out: list[dict[str, Any]] = []
    day = 0
    while len(out) < count:
        on = (first_day + timedelta(days=day)).date().isoformat()
        for pk in people:
            for k in range(6):
                out.append({"individual": pk, "day": on, "external_id": f"{prefix}-{on}-{pk}-{k}"})
        day += 1
    return out[:count]


def _actions_import(imported: dict[str, Any], jobs: int, start_seconds: float) -> dict[str, Any]:
    return {
        "actions": imported["records"],
        "jobs": jobs,
        "seconds": imported["seconds"],
        "actions_per_s": imported["records_per_s"],
        "seconds_after_start": imported["seconds_after_start"],
        "actions_per_s_after_start": imported["records_per_s_after_start"],
        "peak_rss_mb": imported["peak_rss_mb"],
        "batch_size": 20000,
        "process_start_seconds": start_seconds,
    }


async def b7_actions(database_url: str, app_url: str, count: int) -> dict[str, Any]:
    """Partner-verified actions: ``count`` through `carbongraph import actions --jobs 2` and
    ``count`` with one job (as B1's import: a child process, the application role), and
    ``count`` through
    `recordVerifiedActions` over HTTP, in batches of its documented maximum, by a partner
    service whose grants cover the people."""
    from carbongraph.schema.actions.mutations import MAX_BATCH

    owner = create_engine(Settings.from_env(database_url=database_url))
    try:
        async with owner.begin() as conn:
            rows = list(
                await conn.execute(
                    sa.text(
                        "SELECT m.individual_id, split_part(h.path, '/', 1) FROM "
                        "household_membership m JOIN household h ON h.id = m.household_id "
                        "WHERE m.valid_to IS NULL ORDER BY m.individual_id LIMIT 2000"
                    )
                )
            )
            people = [r[0] for r in rows]
            for tenant in sorted({r[1] for r in rows}):
                await conn.execute(
                    sa.insert(G).values(
                        principal="bench-partner",
                        role=Role.PARTNER_SERVICE.value,
                        node_type="Enterprise" if tenant.startswith("e") else "Community",
                        node_id=int(tenant[1:]),
                        created_at=utcnow(),
                        created_by="bench",
                    )
                )
    finally:
        await owner.dispose()
    start = datetime.now(UTC) - timedelta(days=200)
    days = -(-count // (len(people) * 6)) + 1  # the days `count` rides take, and one more
    env = {"CARBONGRAPH_MIGRATION_DATABASE_URL": database_url, "CARBONGRAPH_DATABASE_URL": app_url}
    imported: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # `--jobs 2`, then one job, each on its own days (the caps are not shared).
        for n, jobs in enumerate((2, 1)):
            path = Path(tmp) / f"actions-{jobs}.csv"
            with path.open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(
                    ["individual", "action_type", "units", "occurred_on", "external_id"]
                )
                for r in _rides(people, count, start + timedelta(days=n * days), f"import{jobs}"):
                    writer.writerow(
                        [
                            f"Individual:{r['individual']}",
                            "SUBWAY_TRIP",
                            1,
                            r["day"],
                            r["external_id"],
                        ]
                    )
            imported[jobs] = probe(
                "actions", path, env, "--batch-size", "20000", "--jobs", str(jobs)
            )
    start_seconds = process_start_seconds()
    # recordVerifiedActions over HTTP: days after the imports', so the caps are not shared.
    later = start + timedelta(days=2 * days)
    rides = _rides(people, count, later, "http")
    mutation = (
        "mutation($a: [RecordActionInput!]!) { recordVerifiedActions(input: {actions: $a}) "
        "{ createdCount userErrors { code } } }"
    )
    port = 8766
    server = subprocess.Popen(  # noqa: ASYNC220 - the benchmark's server, like B3's
        [sys.executable, "-m", "carbongraph.cli", "serve", "--port", str(port), "--workers", "1"],
        env={
            **os.environ,
            "CARBONGRAPH_DATABASE_URL": app_url,
            "CARBONGRAPH_RATE_LIMIT_PER_MINUTE": "0",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import httpx

    token = mint_token(Settings.from_env(), "bench-partner", ttl=timedelta(hours=2))
    http_created = 0
    statuses = []
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz")
        async with httpx.AsyncClient(timeout=600) as client:
            started = time.perf_counter()
            for first in range(0, len(rides), MAX_BATCH):
                batch = [
                    {
                        "individualId": to_global_id("Individual", r["individual"]),
                        "actionType": "SUBWAY_TRIP",
                        "units": 1,
                        "occurredOn": r["day"],
                        "externalId": r["external_id"],
                    }
                    for r in rides[first : first + MAX_BATCH]
                ]
                response = await client.post(
                    f"http://127.0.0.1:{port}/graphql",
                    json={"query": mutation, "variables": {"a": batch}},
                    headers={"Authorization": f"Bearer {token}"},
                )
                statuses.append(response.status_code)
                data = response.json().get("data") or {}
                http_created += (data.get("recordVerifiedActions") or {}).get("createdCount", 0)
            http_seconds = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "people": len(people),
        # Wall time of `carbongraph import actions --jobs 2` (process start included).
        "import_actions": _actions_import(imported[2], 2, start_seconds),
        "import_actions_single_job": _actions_import(imported[1], 1, start_seconds),
        "record_verified_actions": {
            "actions": http_created,
            "requests": len(statuses),
            "statuses": sorted(set(statuses)),
            "batch_size": MAX_BATCH,
            "seconds": round(http_seconds, 2),
            "actions_per_s": round(http_created / http_seconds),
        },
        "targets": {"import_actions_per_s": 20000, "record_verified_actions_per_s": 5000},
    }


# -- results ---------------------------------------------------------------------------------------
def write_results(
    results: dict[str, Any], command: str, *, render_docs: bool = True, path: Path | None = None
) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    only = "-" + "-".join(results["only"]).lower() if results.get("only") else ""
    path = path or ROOT / "bench" / "results" / f"{stamp}-{results['scale']}{only}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    docs = ROOT / "docs" / "benchmarks.md"
    if render_docs and (results["scale"] == "city" or not docs.exists()):
        from bench.report import render

        docs.write_text(
            docs_with(
                docs.read_text() if docs.exists() else "", render(results, path.name, command)
            )
        )
    return path


# docs/benchmarks.md: notes written by hand above this line (runs compared, how the harness
# changed), the latest city run's generated table below it, replaced by each city run.
GENERATED = "<!-- bench/run.py: each city run replaces everything below this line -->"


def docs_with(current: str, rendered: str) -> str:
    """``current`` docs/benchmarks.md with its generated part replaced by ``rendered`` (the
    whole page bench/report.py renders); what is above the marker is kept as it is."""
    body = rendered.split("\n", 1)[1].lstrip("\n") if rendered.startswith("# ") else rendered
    head = current.split(GENERATED, 1)[0] if GENERATED in current else "# Benchmarks\n\n"
    return f"{head}{GENERATED}\n\n## Latest city run of bench/run.py\n\n{body}"


def machine() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    pg_version = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "commit": commit,
        "psql": pg_version.strip(),
        "node": subprocess.run(
            ["node", "--version"], capture_output=True, text=True
        ).stdout.strip(),
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["small", "city"], default="small")
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per run")
    parser.add_argument("--iterations", type=int, default=200, help="B2/B4 samples")
    parser.add_argument(
        "--only",
        choices=["B1", "B7", "reads"],
        action="append",
        help="only this scenario (repeat B1 and B7 for both; B7 then runs on B1's dataset, as "
        "in a full run): seeds its dataset, writes bench/results/STAMP-SCALE-B1-B7.json, "
        "leaves docs/benchmarks.md alone; reads: B1 (the dataset), then B2, B4, B3 and its peer",
    )
    parser.add_argument("--actions", type=int, default=0, help="B7 actions (default by scale)")
    args = parser.parse_args()
    only = sorted(set(args.only or []))
    database = f"carbongraph_bench_{args.scale}" + "".join(f"_{o.lower()}" for o in only)
    database_url = url_for(database)
    # The product runs as the application role, under row-level security (docs/security.md);
    # BENCH_AS_OWNER=1 measures the same code as the owner (a superuser: no policies) instead.
    as_owner = os.environ.get("BENCH_AS_OWNER") == "1"
    app_url = (
        database_url
        if as_owner
        else sa.engine.make_url(database_url)
        .set(username=APP_ROLE, password=None)
        .render_as_string()
    )
    await admin(create_app_role_sql(APP_ROLE))
    await admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    await admin(f'CREATE DATABASE "{database}"')
    results: dict[str, Any] = {
        "scale": args.scale,
        "started": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "wrk_seconds": args.seconds,
        "database_role": "owner" if as_owner else f"{APP_ROLE} (row-level security on)",
    }
    b7_count = args.actions or (100_000 if args.scale == "city" else 20_000)
    workdir = Path(tempfile.mkdtemp(prefix="carbongraph-bench-"))
    reads = "reads" in only
    if reads and len(only) > 1:
        parser.error("--only reads runs alone")
    if only and not reads:
        # Results are written after each part (same file), the longest part (B1's 10x file)
        # last: a run cut short keeps what it measured.
        results["only"] = only
        command = f"python -m bench.run --scale {args.scale}" + "".join(
            f" --only {o}" for o in only
        )
        path = None
        if "B1" in only:
            print(f"B1 ingest ({args.scale})", flush=True)
            results["B1"] = await b1_ingest(args.scale, database_url, app_url, workdir)
            print(json.dumps(results["B1"], indent=1), flush=True)
            path = write_results(results, command, render_docs=False)
            print(f"results: {path.relative_to(ROOT)}", flush=True)
        if "B7" in only:
            if "B1" not in only:
                # As B1: migrations as the owner, granting the application role its privileges.
                cli(
                    "migrate",
                    env={
                        "CARBONGRAPH_MIGRATION_DATABASE_URL": database_url,
                        "CARBONGRAPH_DATABASE_URL": app_url,
                    },
                )
                cli("seed", "--scale", args.scale, env={"CARBONGRAPH_DATABASE_URL": database_url})
            print(f"B7 verified actions ({args.scale}, {b7_count})", flush=True)
            results["B7"] = await b7_actions(database_url, app_url, b7_count)
            print(json.dumps(results["B7"], indent=2), flush=True)
            path = write_results(results, command, render_docs=False, path=path)
            print(f"results: {path.relative_to(ROOT)}", flush=True)
        if "B1" in only:
            print("B1 importer peak RSS on a file 10x the activity", flush=True)
            results["B1"]["file_10x"] = await b1_file_10x(
                database_url, app_url, workdir, _ten_times_limit()
            )
            print(json.dumps(results["B1"]["file_10x"], indent=1), flush=True)
        results["finished"] = datetime.now(UTC).isoformat()
        path = write_results(results, command, render_docs=False, path=path)
        print(f"results: {path.relative_to(ROOT)}")
        shutil.rmtree(workdir, ignore_errors=True)
        await admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        return 0
    print(f"B1 ingest ({args.scale})", flush=True)
    results["B1"] = await b1_ingest(args.scale, database_url, app_url, workdir)
    print(json.dumps(results["B1"], indent=1), flush=True)  # kept if a later part fails
    if not reads:
        results["B1"]["file_10x"] = await b1_file_10x(
            database_url, app_url, workdir, _ten_times_limit()
        )
    shutil.rmtree(workdir, ignore_errors=True)
    executor = Executor(app_url)
    owner = create_engine(Settings.from_env(database_url=database_url))
    try:
        async with owner.begin() as conn:
            await conn.execute(
                sa.insert(G).values(
                    principal=PRINCIPAL,
                    role=Role.PLATFORM_ADMIN.value,
                    node_type=PLATFORM,
                    node_id=0,
                    created_at=utcnow(),
                    created_by="bench",
                )
            )
            await conn.execute(sa.text("ANALYZE"))
        nodes = await pick_nodes(owner)
        async with owner.begin() as conn:
            tenant = (
                await conn.scalar(
                    sa.text("SELECT path FROM community WHERE id = :c"), {"c": nodes["building"]}
                )
            ).split("/", 1)[0]
            kind, role = (
                ("Enterprise", Role.ORG_ADMIN)
                if tenant.startswith("e")
                else ("Community", Role.COMMUNITY_MANAGER)
            )
            await conn.execute(
                sa.insert(G).values(
                    principal=TENANT_PRINCIPAL,
                    role=role.value,
                    node_type=kind,
                    node_id=int(tenant[1:]),
                    created_at=utcnow(),
                    created_by="bench",
                )
            )
        results["nodes"] = nodes
        print("B2 roll-up reads", flush=True)
        results["B2"] = await b2_rollups(executor, nodes, args.iterations, database_url)
        if not reads:
            print("B6 statements and leaderboards", flush=True)
            results["B6"] = await b6_engagement(executor, nodes, max(args.iterations // 4, 10))
        print("B4 GraphQL overhead", flush=True)
        results["B4"] = await b4_overhead(executor, database_url, args.iterations)
        _, _, statements = await executor.run(
            NESTED, {"c": to_global_id("Community", nodes["building"]), "p": PERIOD}
        )
    finally:
        await executor.engine.dispose()
        await owner.dispose()
    token = mint_token(Settings.from_env(), PRINCIPAL, ttl=timedelta(hours=2))
    tenant_token = mint_token(Settings.from_env(), TENANT_PRINCIPAL, ttl=timedelta(hours=2))
    print("B3 nested query, carbongraph and PostGraphile in turns", flush=True)
    results["B3"], results["B3_peer"] = b3_nested_and_peer(
        app_url, database_url, nodes, args.seconds, token, statements, tenant_token
    )
    ours = {r["connections"]: r["requests_per_s"] for r in results["B3"]["runs"]}
    theirs = {r["connections"]: r["requests_per_s"] for r in results["B3_peer"]["runs"]}
    results["B3"]["ratio_to_postgraphile"] = {c: round(ours[c] / theirs[c], 3) for c in ours}
    if not reads:
        print("B7 verified actions", flush=True)
        results["B7"] = await b7_actions(database_url, app_url, b7_count)
    results["B5"] = {
        "server_peak_rss_mb_during_B3": results["B3"]["server_peak_rss_mb"],
        "importer_peak_rss_mb_during_B1": results["B1"]["importer_peak_rss_mb"],
    }
    results["finished"] = datetime.now(UTC).isoformat()
    command = f"make {'bench' if args.scale == 'city' else 'bench-quick'}"
    if reads:
        command = f"python -m bench.run --scale {args.scale} --only reads"
    path = write_results(results, command)
    print(f"results: {path.relative_to(ROOT)}")
    print(
        json.dumps(
            {
                "B1": results["B1"]["ratio_product_to_raw"],
                "B2": results["B2"]["ratio_enterprise_to_raw_p50"],
                "B3": results["B3"]["ratio_to_postgraphile"],
                "B4": results["B4"]["ratio_graphql_to_raw_p50"],
            }
        )
    )
    await admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
