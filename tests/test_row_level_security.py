"""Row-level security on PostgreSQL: tenants stay apart even when a resolver forgets to check.

The API under test connects as the application role (conftest APP_ROLE); these tests also open
request-scoped sessions as that role and run raw SQL, with no resolver in the way. SQLite has no
row-level security: there the resolvers' checks are the only line (docs/security.md), and these
tests run on PostgreSQL only.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from carbongraph.authz import Access, Principal, Viewer
from carbongraph.config import Settings
from carbongraph.db import create_engine, request_db
from carbongraph.models import metadata
from carbongraph.models.base import utcnow
from carbongraph.models.personal import BY_TABLE, REGISTRY
from carbongraph.resolvers.context import build_context
from carbongraph.services import periods
from tests.conftest import APP_ROLE
from tests.world import World, build_world, gid

# Every table holding personal data, from the one registry the migrations build policies from.
PERSONAL = tuple(entry.table for entry in REGISTRY)


def _key(table: str) -> str:
    """What identifies a personal row of ``table`` in these tests (a person's own totals: the
    person's id)."""
    return "node_id" if table == "footprint_total" else "id"


def _personal_only(table: str) -> str:
    rows = BY_TABLE[table].rows
    return f" WHERE {rows[0]} = '{rows[1]}'" if rows else ""


pytestmark = pytest.mark.postgresql_only


def _table(name: str) -> sa.Table:
    return metadata.tables[name]


async def _personal_rows(engine: AsyncEngine, world: World) -> dict[str, dict[str, set[int]]]:
    """Give both tenants a row in every personal table (as the owner); return, per table, the
    ids of rows that belong to A and of rows that belong to B only."""
    a_person = world.a.all_members[0]
    # employees_a[0] lives in B and works for A: A may see them, so not "B only".
    b_person = next(p for p in world.b.all_members if p not in world.employees_a)
    a_home = world.a.all_households[0]
    b_home = next(h for h, people in world.b.members.items() if b_person in people)
    ids: dict[str, dict[str, set[int]]] = {t: {"a": set(), "b": set()} for t in PERSONAL}
    now = utcnow()
    day = date(2024, 3, 1)
    async with engine.begin() as conn:
        await periods.open_employment(conn, a_person, world.a.enterprise, day)
        await periods.open_employment(conn, b_person, world.b.enterprise, day)
        action_type = await conn.scalar(sa.select(_table("action_type").c.id).limit(1))
        reward = (
            await conn.execute(
                sa.insert(_table("reward"))
                .values(
                    owner_type="Enterprise",
                    owner_id=world.b.enterprise,
                    owner_path=f"e{world.b.enterprise}/",
                    name="Tote bag",
                    cost_credits=10,
                    stock=5,
                    valid_from=day,
                    created_at=now,
                )
                .returning(sa.column("id"))
            )
        ).scalar_one()
        for tenant, person, home in (("a", a_person, a_home), ("b", b_person, b_home)):

            async def add(table: str, tenant: str = tenant, **values: Any) -> int:
                pk = (
                    await conn.execute(
                        sa.insert(_table(table)).values(**values).returning(sa.column("id"))
                    )
                ).scalar_one()
                ids[table][tenant].add(pk)
                return pk

            for account_type, account_id in (("Individual", person), ("Household", home)):
                await add(
                    "activity_record",
                    account_type=account_type,
                    account_id=account_id,
                    household_id=home,
                    activity_type="electricity",
                    quantity_milli=1000,
                    entered_quantity="1",
                    entered_unit="kWh",
                    period_start=day,
                    period_end=day,
                    source="MANUAL",
                    data_quality="METERED",
                    scope="2",
                    category=0,
                    location_g=500,
                    market_g=500,
                    offset_g=0,
                    recorded_at=now,
                )
            await add(
                "action_record",
                individual_id=person,
                action_type_id=action_type,
                units=1,
                occurred_on=day,
                status="APPROVED",
                source="SELF",
                credits=100,
                avoided_g=100,
                household_id=home,
                created_at=now,
            )
            entry = await add(
                "credit_entry", individual_id=person, kind="GRANT", amount=100, created_at=now
            )
            await add(
                "evidence",
                sha256=f"{tenant}" * 64,
                content_type="image/png",
                size_bytes=10,
                storage_key=f"{tenant}.png",
                individual_id=person,
                created_at=now,
            )
            await add(
                "redemption",
                reward_id=reward,
                individual_id=person,
                idempotency_key=f"key-{tenant}",
                credit_entry_id=entry,
                created_at=now,
            )
            ids["household"][tenant].add(home)
            # A person's own totals (node "I"), as the roll-up writes them.
            await conn.execute(
                sa.insert(_table("footprint_total")).values(
                    node="I",
                    node_id=person,
                    via="",
                    day=day,
                    kind="emission",
                    scope="2",
                    category=0,
                    location_g=500,
                    market_g=500,
                    record_count=1,
                )
            )
            ids["footprint_total"][tenant].add(person)
        for table, column in (
            ("individual", "id"),
            ("household_membership", "individual_id"),
            ("employment", "individual_id"),
        ):
            t = _table(table)
            for tenant, person in (("a", a_person), ("b", b_person)):
                rows = await conn.execute(sa.select(t.c.id).where(t.c[column] == person))
                ids[table][tenant].update(rows.scalars())
    assert all(ids[t]["a"] and ids[t]["b"] for t in PERSONAL), ids
    return ids


async def _visible(engine: AsyncEngine, settings: Settings, subject: str | None) -> dict[str, set]:
    """Every personal row a request of ``subject`` can see with raw SQL, no resolver involved."""
    seen: dict[str, set[int]] = {}
    async with request_db(engine) as db:
        await build_context(settings, db, Principal(subject) if subject else None)
        for table in PERSONAL:
            rows = await db.execute(
                sa.text(f"SELECT {_key(table)} FROM {table}{_personal_only(table)}")
            )
            seen[table] = set(rows.scalars())
    return seen


async def test_the_app_role_owns_nothing_and_cannot_bypass(engine, app_engine):
    async with app_engine.connect() as conn:
        assert await conn.scalar(sa.text("SELECT current_user")) == APP_ROLE
        role = (
            await conn.execute(
                sa.text(
                    "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb "
                    "FROM pg_roles WHERE rolname = current_user"
                )
            )
        ).one()
        assert tuple(role) == (False, False, False, False)
        owned = await conn.scalar(
            sa.text(
                "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
                "WHERE r.rolname = current_user"
            )
        )
        assert owned == 0
        tables = set(
            (
                await conn.execute(
                    sa.text("SELECT tablename FROM pg_tables WHERE tableowner = current_user")
                )
            ).scalars()
        )
        assert tables == set()


async def _uncovered(conn: Any) -> list[str]:
    """What of the personal-data registry PostgreSQL does not hold to a policy: row-level
    security off or not forced, no policy for reading or writing, or a policy that does not
    look at the columns the registry maps its rows by."""
    flags = dict(
        (
            await conn.execute(
                sa.text(
                    "SELECT relname, relrowsecurity AND relforcerowsecurity FROM pg_class "
                    "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
                )
            )
        ).all()
    )
    policies = (
        await conn.execute(
            sa.text(
                "SELECT tablename, cmd, coalesce(qual, ''), coalesce(with_check, '') "
                "FROM pg_policies WHERE schemaname = 'public'"
            )
        )
    ).all()
    missing = []
    for entry in REGISTRY:
        table = entry.table
        if not flags.get(table):
            missing.append(f"{table}: row-level security off or not forced")
        mine = [p for p in policies if p[0] == table]
        columns = [o.column for o in entry.owners] + ([entry.rows[0]] if entry.rows else [])
        for command, text in (("SELECT", 2), ("UPDATE", 2), ("DELETE", 2), ("INSERT", 3)):
            applying = [p for p in mine if p[1] in ("ALL", command)]
            if not applying:
                missing.append(f"{table}: no {command} policy")
            elif command != "INSERT" or not entry.open_insert:
                for column in columns:
                    if not any(column in p[text] for p in applying):
                        missing.append(f"{table}: {command} policy ignores {column}")
    return missing


async def test_every_registered_personal_table_is_under_a_policy(engine):
    async with engine.connect() as conn:
        assert await _uncovered(conn) == []
    # A table added later that refers to a person is personal too, and must be registered.
    about_people = {
        t.name for t in metadata.sorted_tables if "individual_id" in t.c or "account_id" in t.c
    }
    assert about_people <= set(PERSONAL), about_people - set(PERSONAL)
    # The registry's columns exist (a renamed column would otherwise drop out of the policy).
    for entry in REGISTRY:
        table = metadata.tables[entry.table]
        named = [*entry.columns, *(o.column for o in entry.owners)]
        named += [o.when[0] for o in entry.owners if o.when]
        named += [entry.rows[0]] if entry.rows else []
        assert set(named) <= set(table.c.keys()), (entry.table, set(named) - set(table.c.keys()))


async def test_the_coverage_check_sees_an_uncovered_table(engine):
    """The check above fails when a registered table, or the person-level totals, lose their
    policy (tried in a transaction that is rolled back)."""
    async with engine.connect() as conn:
        async with conn.begin() as transaction:
            await conn.execute(sa.text("ALTER TABLE household NO FORCE ROW LEVEL SECURITY"))
            await conn.execute(sa.text("DROP POLICY footprint_total_personal ON footprint_total"))
            found = await _uncovered(conn)
            await transaction.rollback()
        assert "household: row-level security off or not forced" in found
        assert "footprint_total: no SELECT policy" in found
        assert await _uncovered(conn) == []


async def test_the_membership_rule_is_explicit_on_both_sides(engine, app_engine, settings, api):
    """models/personal.py: the database admits a person to a tenant by any membership there,
    past or present; the Python policy, inside that boundary, by the current one only. A
    person who moved from A to B is B's; to A's admin the API answers NOT_FOUND, while the
    database still hands A its household's history (the old membership) and the person row
    (so that writes ending a person's time in a tenant can return them)."""
    world = await build_world(engine)
    mover = world.a.all_members[-1]
    a_home = next(h for h, people in world.a.members.items() if mover in people)
    b_home = world.b.all_households[0]
    moved_on = date(2025, 1, 1)
    m = _table("household_membership")
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(m)
            .where(m.c.individual_id == mover, m.c.valid_to.is_(None))
            .values(valid_to=moved_on)
        )
        await conn.execute(
            sa.insert(m).values(
                individual_id=mover, household_id=b_home, valid_from=moved_on, created_at=utcnow()
            )
        )
        old = await conn.scalar(
            sa.select(m.c.id).where(m.c.individual_id == mover, m.c.household_id == a_home)
        )
    seen_a = await _visible(app_engine, settings, "org-a")
    assert mover in seen_a["individual"] and old in seen_a["household_membership"]
    seen_b = await _visible(app_engine, settings, "org-b")
    assert mover in seen_b["individual"] and old not in seen_b["household_membership"]
    query = "query($p: ID!) { individual(id: $p) { displayName } }"
    body = await api.gql(query, {"p": gid("Individual", mover)}, subject="org-a", allow_errors=True)
    assert body["data"]["individual"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"]
    body = await api.gql(query, {"p": gid("Individual", mover)}, subject="org-b")
    assert body["data"]["individual"]["displayName"]
    # A person who never belonged to B is not B's, in the database either.
    never = world.a.all_members[0]
    assert never not in seen_b["individual"]


async def test_raw_sql_in_a_request_sees_no_row_of_another_tenant(engine, app_engine, settings):
    world = await build_world(engine)
    ids = await _personal_rows(engine, world)
    seen = await _visible(app_engine, settings, "org-a")
    for table in PERSONAL:
        assert ids[table]["a"] <= seen[table], table  # A's own rows are there...
        assert not ids[table]["b"] & seen[table], table  # ...and not one of B's.
    # The employee of A who lives in B: A sees the person, not their home in B.
    assert world.employees_a[0] in seen["individual"]
    seen_b = await _visible(app_engine, settings, "org-b")
    for table in PERSONAL:
        assert ids[table]["b"] <= seen_b[table] and not ids[table]["a"] & seen_b[table], table


async def test_platform_admins_and_system_jobs_see_every_row(engine, app_engine, settings):
    world = await build_world(engine)
    ids = await _personal_rows(engine, world)
    seen = await _visible(app_engine, settings, "admin")
    for table in PERSONAL:
        assert ids[table]["a"] | ids[table]["b"] <= seen[table], table
    system = create_engine(settings, system=True, url=app_engine.url.render_as_string(False))
    try:
        async with system.connect() as conn:
            for table in PERSONAL:
                rows = set(
                    (await conn.execute(sa.text(f"SELECT {_key(table)} FROM {table}"))).scalars()
                )
                assert ids[table]["a"] | ids[table]["b"] <= rows, table
    finally:
        await system.dispose()


async def test_without_a_scope_nothing_personal_is_visible(engine, app_engine, settings):
    """A forgotten set_config fails closed: a bare connection, an anonymous request, and a
    principal without grants see no personal row at all."""
    world = await build_world(engine)
    await _personal_rows(engine, world)
    async with app_engine.connect() as conn:
        for table in PERSONAL:
            count = f"SELECT count(*) FROM {table}{_personal_only(table)}"
            assert await conn.scalar(sa.text(count)) == 0, table
    for subject in (None, "nobody"):
        seen = await _visible(app_engine, settings, subject)
        assert seen == {t: set() for t in PERSONAL}, subject
    # The scope is local to the transaction: the next one on the same connection starts empty.
    async with app_engine.connect() as conn:
        async with conn.begin():
            await conn.execute(sa.text("SELECT set_config('carbongraph.unrestricted', 'on', true)"))
            assert await conn.scalar(sa.text("SELECT count(*) FROM individual")) > 0
        async with conn.begin():
            assert await conn.scalar(sa.text("SELECT count(*) FROM individual")) == 0


async def test_writing_into_another_tenant_is_refused(engine, app_engine, settings):
    world = await build_world(engine)
    await _personal_rows(engine, world)
    b_person = next(p for p in world.b.all_members if p not in world.employees_a)
    b_home = world.b.all_households[-1]
    inserts = [
        sa.insert(_table("credit_entry")).values(
            individual_id=b_person, kind="GRANT", amount=1_000_000, created_at=utcnow()
        ),
        sa.insert(_table("household_membership")).values(
            individual_id=world.a.all_members[0],
            household_id=b_home,
            valid_from=date(2030, 1, 1),
            created_at=utcnow(),
        ),
    ]
    for statement in inserts:
        with pytest.raises(DBAPIError, match="row-level security"):
            async with request_db(app_engine, write=True) as db:
                await build_context(settings, db, Principal("org-a"))
                await db.execute(statement)
    # Updates and deletes of B's rows find nothing to change.
    async with request_db(app_engine, write=True) as db:
        await build_context(settings, db, Principal("org-a"))
        i = _table("individual")
        renamed = await db.execute(
            sa.update(i).where(i.c.id == b_person).values(display_name="Mallory")
        )
        deleted = await db.execute(sa.delete(_table("evidence")))
        assert renamed.rowcount == 0 and deleted.rowcount == 1  # A's own photo only
    async with engine.connect() as conn:
        name = await conn.scalar(sa.select(i.c.display_name).where(i.c.id == b_person))
        assert name != "Mallory"


async def test_the_credits_ledger_is_append_only_for_the_app(engine, app_engine, settings):
    world = await build_world(engine)
    await _personal_rows(engine, world)
    for statement in ("UPDATE credit_entry SET amount = amount * 2", "DELETE FROM credit_entry"):
        with pytest.raises(DBAPIError, match="permission denied"):
            async with request_db(app_engine, write=True) as db:
                await build_context(settings, db, Principal("admin"))
                await db.execute(sa.text(statement))


async def test_a_resolver_that_forgets_to_check_still_leaks_nothing(
    engine, api, monkeypatch: pytest.MonkeyPatch
):
    """Break the policy in Python (every viewer may read everything): the API still returns
    none of B's people to A's admin, because the database does not hand them out."""
    world = await build_world(engine)
    b_person = next(p for p in world.b.all_members if p not in world.employees_a)
    b_home = next(h for h, people in world.b.members.items() if b_person in people)
    monkeypatch.setattr(Viewer, "access", lambda self, target: Access.PERSONAL)
    monkeypatch.setattr(Viewer, "may_know_exists", lambda self, target: True)
    monkeypatch.setattr(Viewer, "member_filter", lambda self, *columns: None)
    monkeypatch.setattr(Viewer, "node_filter", lambda self, column: None)
    body = await api.gql(
        """query($p: ID!, $h: ID!) {
          individual(id: $p) { displayName }
          household(id: $h) { name members(first: 10) { totalCount edges { node { id } } } } }""",
        {"p": gid("Individual", b_person), "h": gid("Household", b_home)},
        subject="org-a",
        allow_errors=True,
    )
    assert body["data"]["individual"] is None
    # The household's name is personal too (registry, migration 0011): not handed out either
    # (before 0011 its name came back, with no members).
    assert body["data"]["household"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND", "NOT_FOUND"]
    # The same broken policy without the database's help (the platform's own scope) would
    # have shown them: the rows are there.
    body = await api.gql(
        "query($p: ID!) { individual(id: $p) { displayName } }",
        {"p": gid("Individual", b_person)},
        subject="admin",
    )
    assert body["data"]["individual"]["displayName"]


async def test_org_admin_creates_a_person_in_their_household(engine, api):
    """A new person is visible only once they join the household: creation must still work
    (and the person be readable in the same request) under row-level security."""
    world = await build_world(engine)
    home = gid("Household", world.a.all_households[0])
    body = await api.gql(
        """mutation($h: ID!) { createIndividual(input: {displayName: "New tenant",
        householdId: $h}) { individual { id displayName household { id } }
        userErrors { code } } }""",
        {"h": home},
        subject="org-a",
    )
    created = body["data"]["createIndividual"]
    assert created["userErrors"] == []
    assert created["individual"]["displayName"] == "New tenant"
    assert created["individual"]["household"]["id"] == home


async def test_an_identifier_taken_in_another_tenant_is_a_plain_duplicate(engine, api):
    """The look-up that checks a login subject is free cannot see B's people; the unique index
    can, and the mutation answers DUPLICATE, saying nothing about where, and writes nothing."""
    world = await build_world(engine)
    b_person = next(p for p in world.b.all_members if p not in world.employees_a)
    async with engine.begin() as conn:
        i = _table("individual")
        await conn.execute(sa.update(i).where(i.c.id == b_person).values(subject="taken@b"))
        before = await conn.scalar(sa.select(sa.func.count()).select_from(i))
    body = await api.gql(
        """mutation($h: ID!) { createIndividual(input: {displayName: "Copycat",
        householdId: $h, subject: "taken@b"}) { individual { id } userErrors { code } } }""",
        {"h": gid("Household", world.a.all_households[0])},
        subject="org-a",
    )
    assert body["data"]["createIndividual"] == {
        "individual": None,
        "userErrors": [{"code": "DUPLICATE"}],
    }
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(i)) == before


async def test_org_admin_creates_a_household_under_row_level_security(engine, api):
    """A household is personal (migration 0011): it is written with its real path at once, so
    the INSERT passes its policy (a placeholder path is in no tenant)."""
    world = await build_world(engine)
    body = await api.gql(
        """mutation($c: ID!) { createHousehold(input: {communityId: $c, name: "Flat 9",
        dwellingType: APARTMENT}) { household { id name } userErrors { code } } }""",
        {"c": gid("Community", world.a.communities[0])},
        subject="org-a",
    )
    created = body["data"]["createHousehold"]
    assert created["userErrors"] == [] and created["household"]["name"] == "Flat 9"
