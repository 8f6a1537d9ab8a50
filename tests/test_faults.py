"""Faults: the importer killed mid-import, PostgreSQL restarted under traffic, a full evidence
store. Each leaves the data consistent and the service answering cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest
import sqlalchemy as sa

from carbongraph.config import Settings
from carbongraph.db import create_engine
from carbongraph.models import ActivityRecord, Enterprise, FootprintTotal
from tests.processes import Processes, free_port
from tests.test_actions_import import _rides
from tests.test_evidence import upload
from tests.test_import import _gas_rows, _write_csv
from tests.test_reconciliation import _recompute
from tests.world import build_world, gid

CLI = [sys.executable, "-m", "carbongraph.cli"]
PG_BIN = Path("/usr/lib/postgresql/15/bin")


# -- the importer, killed with SIGKILL between batches ------------------------------------------


async def _records(engine) -> tuple[int, int]:
    async with engine.connect() as conn:
        count = await conn.scalar(sa.select(sa.func.count()).select_from(ActivityRecord))
        distinct = await conn.scalar(
            sa.select(sa.func.count(sa.distinct(ActivityRecord.__table__.c.external_id)))
        )
    return count, distinct


async def _assert_totals_reconcile(engine) -> None:
    T = FootprintTotal.__table__
    async with engine.connect() as conn:
        stored = {
            (r.node, r.node_id, r.via, r.day, r.kind, r.scope, r.category): (
                r.location_g,
                r.market_g,
            )
            for r in await conn.execute(sa.select(T))
            if r.location_g or r.market_g
        }
        assert stored == await _recompute(conn)


def _import(
    settings: Settings, path: Path, batch_size: int, *options: str
) -> subprocess.Popen[str]:
    env = {**os.environ, "CARBONGRAPH_DATABASE_URL": settings.database_url}
    return subprocess.Popen(
        [*CLI, "import", "activities", str(path), "--batch-size", str(batch_size), *options],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _kill_after(
    importer: subprocess.Popen[str], rows: int, stored: Callable[[], Awaitable[tuple[int, ...]]]
) -> None:
    """SIGKILL ``importer`` once ``stored()`` counts ``rows`` (its first batch committed)."""
    deadline = time.monotonic() + 120
    committed = 0
    while committed < rows and time.monotonic() < deadline:
        assert importer.poll() is None, importer.communicate()
        committed = (await stored())[0]
        await asyncio.sleep(0.02)
    importer.send_signal(signal.SIGKILL)
    importer.communicate(timeout=30)
    assert importer.returncode == -signal.SIGKILL


@pytest.mark.parametrize("jobs", ["1", "2"])
async def test_killed_import_keeps_whole_batches_and_resumes(engine, settings, tmp_path, jobs):
    """On PostgreSQL the set-based path (with one worker or two), on SQLite the per-record."""
    world = await build_world(engine, communities=4, households=5, members=2)
    rows = _gas_rows(world.a.all_members, 400)  # 40 people × 400 days: 16,000 rows
    batch = 500
    path = tmp_path / "gas.csv"
    _write_csv(path, rows)

    importer = _import(settings, path, batch, "--jobs", jobs)
    await _kill_after(importer, batch, lambda: _records(engine))

    count, distinct = await _records(engine)
    assert batch <= count < len(rows), "the kill must land mid-import"
    assert count % batch == 0 and distinct == count  # whole batches only; the cut one left nothing
    await _assert_totals_reconcile(engine)

    rerun = _import(settings, path, batch, "--jobs", jobs)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"created {len(rows) - count}, unchanged {count}" in out
    assert await _records(engine) == (len(rows), len(rows))
    await _assert_totals_reconcile(engine)


async def _actions(engine) -> tuple[int, int, int, int]:
    """Actions, distinct externalIds, ledger GRANT entries, and the platform's Scope 3+
    reductions less the actions' avoided grams (0 when the roll-up matches the records)."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text(
                    "SELECT (SELECT count(*) FROM action_record),"
                    " (SELECT count(DISTINCT external_id) FROM action_record),"
                    " (SELECT count(*) FROM credit_entry WHERE kind = 'GRANT'),"
                    " (SELECT coalesce(sum(location_g), 0) FROM footprint_total"
                    "   WHERE node = 'P' AND kind = 'reduction')"
                    " - (SELECT coalesce(sum(avoided_g), 0) FROM action_record)"
                )
            )
        ).one()
        return (int(row[0]), int(row[1]), int(row[2]), int(row[3]))


@pytest.mark.parametrize("jobs", ["1", "2"])
async def test_killed_actions_import_keeps_whole_batches_and_resumes(
    engine, settings, tmp_path, jobs
):
    """`carbongraph import actions`: on PostgreSQL set-based (one worker or two), on SQLite
    the reference path. Whole batches of actions, their ledger entries and roll-ups stay."""
    world = await build_world(engine, communities=4, households=5, members=2)
    rows = _rides(world.a.all_members, 70)  # six trips a person a day: the cap
    batch = 500
    path = tmp_path / "rides.csv"
    _write_csv(path, rows)

    def run() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*CLI, "import", "actions", str(path), "--batch-size", str(batch), "--jobs", jobs],
            env={**os.environ, "CARBONGRAPH_DATABASE_URL": settings.database_url},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    importer = run()
    await _kill_after(importer, batch, lambda: _actions(engine))

    count, distinct, grants, unreconciled = await _actions(engine)
    assert batch <= count < len(rows), "the kill must land mid-import"
    # Whole batches only (the cut one left nothing), each action with its ledger entry and
    # its roll-up.
    assert count % batch == 0 and distinct == count == grants and unreconciled == 0

    rerun = run()
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"created {len(rows) - count}, unchanged {count}" in out
    assert await _actions(engine) == (len(rows), len(rows), len(rows), 0)


# -- PostgreSQL restarted while the server runs ------------------------------------------------


class PrivateCluster:
    """A throwaway PostgreSQL 15 cluster on a free port: the shared one is never touched.
    initdb refuses to run as root, so as root the cluster belongs to the postgres user."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="carbongraph-pg-"))
        self.data = self.dir / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"),
            "-o", options, "-w", "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_cluster() -> Iterator[PrivateCluster]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL 15 binaries are not at {PG_BIN}")
    cluster = PrivateCluster()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


QUERY = "{ me { subject } enterprises(first: 5) { totalCount edges { node { id name } } } }"


# Alone (make test's serial phase): it asserts recovery within two seconds of the restart. The
# other faults run beside other tests: their cluster is private, and a slower import only makes
# the kill or the restart likelier to land mid-import.
@pytest.mark.serial
def test_postgres_restart_fails_cleanly_and_recovers(private_cluster, tmp_path):
    async def create() -> None:
        conn = await asyncpg.connect(
            host="127.0.0.1", port=private_cluster.port, user="postgres", database="postgres"
        )
        await conn.execute("CREATE DATABASE carbongraph")
        await conn.close()

    asyncio.run(create())
    env = {
        "CARBONGRAPH_DATABASE_URL": private_cluster.url("carbongraph"),
        "CARBONGRAPH_ENV": "production",
        "CARBONGRAPH_JWT_SECRET": "fault-injection-secret-0123456789abcdef",
        "CARBONGRAPH_RATE_LIMIT_PER_MINUTE": "0",
    }
    subprocess.run(
        [*CLI, "migrate"], env={**os.environ, **env}, check=True, capture_output=True, timeout=300
    )
    from carbongraph.authz import mint_token

    token = mint_token(
        Settings(env="production", jwt_secret=env["CARBONGRAPH_JWT_SECRET"]), "fault"
    )
    port = free_port()
    processes = Processes(tmp_path)
    processes.start(
        "carbongraph",
        [*CLI, "serve", "--port", str(port)],
        env=env,
        health=f"http://127.0.0.1:{port}/readyz",
    )
    server = processes.running["carbongraph"]
    outcomes: list[tuple[float, int, str | None]] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                response = client.post(
                    f"http://127.0.0.1:{port}/graphql",
                    json={"query": QUERY},
                    headers={"Authorization": f"Bearer {token}"},
                )
                try:
                    errors = response.json().get("errors") or [{}]
                    code = errors[0].get("extensions", {}).get("code")
                except ValueError:
                    code = f"not JSON: {response.text[:60]}"
                if response.status_code == 503 and response.headers.get("retry-after") != "1":
                    code = "no Retry-After"
                outcomes.append((time.monotonic(), response.status_code, code))

    threads = [threading.Thread(target=traffic) for _ in range(3)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        private_cluster.stop()
        stopped = time.monotonic()
        time.sleep(1.5)
        private_cluster.start()
        restarted = time.monotonic()
        time.sleep(3.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        alive = server.poll() is None
        processes.stop_all()

    kinds = Counter((status, code) for _, status, code in outcomes)
    print(f"\nPostgreSQL restart: {dict(kinds)}")
    assert alive, "the server must survive the outage without a restart"
    # Every answer is either a full success or a clean 503 (never a 500, never a partial result).
    assert set(kinds) <= {(200, None), (503, "SERVICE_UNAVAILABLE")}, kinds
    assert kinds[(503, "SERVICE_UNAVAILABLE")] >= 1, kinds
    assert any(t < stopped and s == 200 for t, s, _ in outcomes)
    # Recovered by itself: within two seconds of the restart every answer is a success again.
    after = [(t, s) for t, s, _ in outcomes if t > restarted + 2.0]
    assert after and all(s == 200 for _, s in after), kinds


# -- PostgreSQL restarted under the set-based import ------------------------------------------


def test_postgres_restart_mid_import_fails_cleanly_and_a_rerun_completes(private_cluster, tmp_path):
    async def create() -> None:
        conn = await asyncpg.connect(
            host="127.0.0.1", port=private_cluster.port, user="postgres", database="postgres"
        )
        await conn.execute("CREATE DATABASE carbongraph")
        await conn.close()

    asyncio.run(create())
    url = private_cluster.url("carbongraph")
    env = {**os.environ, "CARBONGRAPH_DATABASE_URL": url}
    subprocess.run([*CLI, "migrate"], env=env, check=True, capture_output=True, timeout=300)
    settings = Settings.from_env(database_url=url)
    batch = 500

    async def prepare() -> list[dict[str, str]]:
        engine = create_engine(settings)
        try:
            world = await build_world(engine, communities=4, households=5, members=2)
        finally:
            await engine.dispose()
        return _gas_rows(world.a.all_members, 400)  # 16,000 rows

    async def records() -> tuple[int, int]:
        engine = create_engine(settings)
        try:
            return await _records(engine)
        finally:
            await engine.dispose()

    async def reconciled() -> None:
        engine = create_engine(settings)
        try:
            await _assert_totals_reconcile(engine)
        finally:
            await engine.dispose()

    rows = asyncio.run(prepare())
    path = tmp_path / "gas.csv"
    _write_csv(path, rows)
    importer = _import(settings, path, batch, "--jobs", "2")
    deadline = time.monotonic() + 120
    while asyncio.run(records())[0] < batch and time.monotonic() < deadline:
        assert importer.poll() is None, importer.communicate()
        time.sleep(0.05)
    private_cluster.stop()
    out, err = importer.communicate(timeout=120)
    private_cluster.start()
    # A clean failure: its own exit code and one line, no traceback, no half batch.
    assert importer.returncode == 3, (out, err)
    assert "database became unavailable" in err and "Traceback" not in err, err
    count, distinct = asyncio.run(records())
    assert batch <= count < len(rows), "the restart must land mid-import"
    assert count % batch == 0 and distinct == count
    asyncio.run(reconciled())

    rerun = _import(settings, path, batch, "--jobs", "2")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"created {len(rows) - count}, unchanged {count}" in out
    assert asyncio.run(records()) == (len(rows), len(rows))
    asyncio.run(reconciled())


# -- the evidence store runs out of space --------------------------------------------------------


@contextlib.contextmanager
def _full_disk(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A tmpfs of 64 KB mounted on ``directory`` (as root), or, where mounting is not allowed,
    a write that stops half-way with ENOSPC like a full disk would."""
    directory.mkdir(parents=True)
    mounted = False
    if os.geteuid() == 0:
        mounted = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(directory)],
                capture_output=True,
            ).returncode
            == 0
        )
    if not mounted:
        real_write = Path.write_bytes

        def half_then_full(self: Path, data: bytes) -> int:
            real_write(self, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", str(self))

        monkeypatch.setattr(Path, "write_bytes", half_then_full)
    try:
        yield "tmpfs" if mounted else "ENOSPC stub"
    finally:
        if mounted:
            subprocess.run(["umount", str(directory)], check=True)
        else:
            monkeypatch.undo()


def _noise_jpeg(size: int) -> bytes:
    """A photo that does not compress: bigger than the space left on the small tmpfs."""
    import io
    import random

    from PIL import Image

    rng = random.Random(3)
    image = Image.frombytes(
        "RGB", (size, size), bytes(rng.randrange(256) for _ in range(size * size * 3))
    )
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


async def test_full_evidence_store_fails_cleanly(engine, api, tmp_path, monkeypatch):
    store = tmp_path / "evidence"
    monkeypatch.setenv("CARBONGRAPH_EVIDENCE_DIR", str(store))
    world = await build_world(engine)
    student = gid("Individual", world.a.members[world.a.households[world.a.communities[0]][0]][0])
    photo = _noise_jpeg(300)
    assert len(photo) > 64 * 1024
    with _full_disk(store, monkeypatch) as how:
        response = await upload(api, "resident-a", student, photo)
        left = sorted(p.name for p in store.rglob("*") if p.is_file())
    payload = response.json()["data"]["uploadEvidence"]
    assert payload["evidence"] is None, how
    assert [e["code"] for e in payload["userErrors"]] == ["EVIDENCE_NOT_STORED"], how
    assert left == [], f"{how}: a half-written file remains: {left}"
    async with engine.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM evidence")) == 0
        assert await conn.scalar(sa.text("SELECT count(*) FROM credit_entry")) == 0

    # With room again, the same photo is accepted: the failure was the disk, not the photo.
    response = await upload(api, "resident-a", student, photo)
    assert response.json()["data"]["uploadEvidence"]["userErrors"] == []
    assert len([p for p in store.rglob("*") if p.is_file()]) == 1


async def test_connection_lost_inside_a_resolver_is_a_503(production, api, monkeypatch):
    """The deterministic half of the restart test: a connection dying while a resolver runs
    (not only while the request starts) is a 503, also when production masks errors."""
    from carbongraph.resolvers import hierarchy

    def lost(*_args: object) -> object:
        raise sa.exc.DBAPIError(
            "SELECT 1", None, ConnectionResetError("connection reset"), connection_invalidated=True
        )

    monkeypatch.setattr(hierarchy, "visible_enterprises", lost)
    response = await production.post(
        "/graphql",
        json={"query": "{ enterprises { totalCount } }"},
        headers={"Authorization": f"Bearer {api.token('anyone')}"},
    )
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.json() == {
        "errors": [
            {
                "message": "The database is unavailable; retry shortly.",
                "extensions": {"code": "SERVICE_UNAVAILABLE"},
            }
        ]
    }


async def test_an_abandoned_resolver_leaves_the_transaction_usable(engine):
    """Found by the fuzzer (a 500 on SQLite): when an error nulls a parent, GraphQL cancels the
    siblings' resolvers; a statement cancelled mid-flight invalidated the request's connection,
    so the mutation already answered as done could not be committed. Now the statement
    finishes first; ending the request waits for any statement still running, and a statement
    after the end is refused instead of opening a transaction nobody would end."""
    from carbongraph.db import RequestDB, RequestFinished

    slow_query = sa.text(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
        "WHERE x < 1000000) SELECT count(*) FROM c"
    )
    db = RequestDB(engine, write=True)
    now = datetime.now(UTC)
    await db.execute(
        sa.insert(Enterprise).values(
            name="Kept", kind="COMPANY", path="/x/", created_at=now, updated_at=now
        )
    )
    cancelled = asyncio.create_task(db.scalar(slow_query))
    await asyncio.sleep(0.05)  # the statement is running
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await db.scalar(sa.text("SELECT 1")) == 1  # the connection is still usable
    left_over = asyncio.create_task(db.scalar(slow_query))
    await asyncio.sleep(0.05)
    await db.close(commit=True)  # waits for the left-over statement, then commits
    assert await left_over == 1_000_000
    with pytest.raises(RequestFinished):
        await db.execute(sa.text("SELECT 1"))
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(Enterprise)) == 1


def test_a_full_server_is_unavailable_not_an_internal_error():
    """PostgreSQL refusing a connection because every slot is taken (53300) is answered 503
    with Retry-After, like a server restarting, not 500."""
    import asyncpg

    from carbongraph.db import is_database_unavailable

    full = asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already")
    assert full.sqlstate == "53300"
    assert is_database_unavailable(full)
    assert not is_database_unavailable(asyncpg.exceptions.UniqueViolationError("duplicate"))
