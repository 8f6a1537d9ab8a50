"""A plan and one request (variables, viewer, settings, today) → one SQL statement and its
parameters. Every value from the request is a bound parameter; the SQL text depends only on
the plan and on the request's shape (page direction, the node types an ID names), so
PostgreSQL's prepared statements are reused across requests."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from graphql import Undefined, VariableNode, value_from_ast
from graphql.execution.values import VariableValues

from carbongraph.accounting.reads import SCOPE3_CATEGORIES, bucket_end, bucket_start
from carbongraph.authz import Access, Role, Viewer
from carbongraph.authz.policy import SCOPE_SETTINGS, grants_fingerprint_sql
from carbongraph.authz.roles import SUBTREE_ACCESS
from carbongraph.config import Settings
from carbongraph.errors import CodedError
from carbongraph.planner.compile import (
    LETTER,
    NODE_TYPES,
    TABLES,
    Item,
    Plan,
    Root,
    Sel,
    Unplannable,
)
from carbongraph.resolvers.pagination import PageArgs
from carbongraph.schema.accounting.types import PeriodInput
from carbongraph.schema.hierarchy.queries import MAX_NODES
from carbongraph.schema.relay import decode_global_id
from carbongraph.schema.security.types import SECURITY_NODE_TYPES

INT4_END = 2**31
_ONE_DAY = timedelta(days=1)


class UnknownId(Unplannable):
    """A malformed ID, or one of another type: NOT_FOUND by ID, null in place in ``nodes``."""


def canonical_id(raw: Any) -> tuple[str, int] | None:
    """(type, pk) of a global ID in the plain form (strict base64 of ``Type:digits``), which
    Strawberry's decoding reads the same way; else None: any other spelling is left to
    ``decode_global_id``, whose answer it then is."""
    if not isinstance(raw, str):
        return None
    try:
        type_name, _, pk = base64.b64decode(raw, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    if not pk.isdigit() or not pk.isascii():
        return None
    return type_name, int(pk)


# ``nodes(ids:)`` of up to MAX_NODES: the common case (every ID in the plain form of a node
# type) is checked and decoded in a few C-level passes over all of them instead of one Python
# decoding per ID, and handed to PostgreSQL as two comma-separated texts (1,000 IDs: 2.4 ms one
# by one, 0.45 ms decoded in bulk into lists, about 0.25 ms now; two arrays of 1,000 elements
# cost asyncpg another 0.2 ms to encode). Anything else goes the per-ID way.
_NODE_LINES = re.compile(rb"(?:(?:" + "|".join(NODE_TYPES).encode() + rb"):[0-9]{1,10}\n)*")
# Keys of at most nine digits fit a 32-bit integer: the common case, checked by the same pass.
_NODE_LINES_SHORT_KEYS = re.compile(
    rb"(?:(?:" + "|".join(NODE_TYPES).encode() + rb"):[0-9]{1,9}\n)*"
)
_TYPE_OF_LINE = re.compile(rb":[0-9]+\n")
_KEY_OF_LINE = re.compile(rb":([0-9]+)\n")
_LONG_KEY = re.compile(rb":([0-9]{10})\n")


@dataclass(frozen=True)
class NodeIds:
    """``nodes(ids:)`` decoded: types and keys each as one comma-separated text, in order."""

    types: str
    keys: str
    present: frozenset[str]

    def pairs(self) -> list[tuple[str, int]]:
        if not self.types:
            return []
        return list(zip(self.types.split(","), map(int, self.keys.split(",")), strict=True))


def plain_node_ids(raw_ids: list[Any]) -> NodeIds | None:
    """The IDs when every one is strict base64 of ``NodeType:digits`` with a 32-bit key
    (which ``canonical_id`` and the reference read the same way); else None."""
    if not raw_ids:
        return NodeIds("", "", frozenset())
    try:
        decoded = list(map(binascii.a2b_base64, raw_ids))  # lenient: checked next
        given = ("\n".join(raw_ids) + "\n").encode()
    except (TypeError, ValueError):  # not a string, not base64 at all
        return None
    # Each ID is the canonical base64 of what it decodes to (what strict decoding accepts,
    # or less: anything else goes the per-ID way).
    if b"".join(map(binascii.b2a_base64, decoded)) != given:
        return None
    lines = b"\n".join(decoded) + b"\n"
    # One line per ID (an ID decoding to a newline adds a line), every line matched whole.
    if lines.count(b"\n") != len(raw_ids):
        return None
    if not _NODE_LINES_SHORT_KEYS.fullmatch(lines):
        if not _NODE_LINES.fullmatch(lines):
            return None
        if any(int(key) >= INT4_END for key in _LONG_KEY.findall(lines)):
            return None
    first = lines[: lines.index(b":") + 1]  # the first ID's type, with its colon
    if lines.count(first) == len(raw_ids):  # one type (the usual case), read off in two passes
        only = first[:-1].decode()
        keys = lines.replace(first, b"").replace(b"\n", b",")[:-1].decode()
        return NodeIds(",".join([only] * len(raw_ids)), keys, frozenset({only}))
    present = frozenset(t for t in NODE_TYPES if f"{t}:".encode() in lines)
    types = _TYPE_OF_LINE.sub(b",", lines)[:-1].decode()
    keys = b",".join(_KEY_OF_LINE.findall(lines)).decode()
    return NodeIds(types, keys, present)


def _base64_sql(prefix: str, id_sql: str) -> str:
    """base64 of ``prefix`` followed by the digits of ``id_sql``, as a JSON string (text).
    The prefix's whole 3-byte groups are encoded here, once: base64 of a concatenation whose
    first part is a multiple of 3 bytes long is the concatenation of the two encodings; the
    rest (at most 12 bytes: under PostgreSQL's 76-character line breaks) is encoded per row.
    ``::bytea`` reads the text as bytes: letters, a colon and digits have no escapes."""
    head = len(prefix) // 3 * 3
    encoded = base64.b64encode(prefix[:head].encode()).decode()
    return f"""('"{encoded}' || encode(('{prefix[head:]}' || {id_sql})::bytea, 'base64') || '"')"""


def gid_sql(type_name: str, id_sql: str) -> str:
    """The global ID of ``type_name`` row ``id_sql`` (not null) as a JSON string."""
    return _base64_sql(f"{type_name}:", id_sql)


def cursor_sql(id_sql: str) -> str:
    """A connection cursor as a JSON string; null when ``id_sql`` is (an empty page)."""
    return f"coalesce({_base64_sql('cursor:', id_sql)}, 'null')"


def datetime_sql(column: str) -> str:
    """``datetime.isoformat()`` of an aware UTC timestamp (asyncpg's, which Strawberry prints):
    microseconds only when not zero, always six digits; as a JSON string, or null."""
    local = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"coalesce('\"' || to_char({local}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN "
        f"extract(microseconds FROM {column})::bigint % 1000000 <> 0 THEN to_char({local}, '.US') "
        f"ELSE '' END || '+00:00\"', 'null')"
    )


def half_even_sql(grams: str, members: str) -> str:
    """``reads.per_capita`` for members > 0: grams / members rounded half-even (PostgreSQL's
    ``round(numeric)`` rounds half away from zero)."""
    q = f"floor(({grams})::numeric / ({members}))"
    r = f"(({grams}) - {q} * ({members}))"
    return (
        f"(CASE WHEN 2 * {r} > ({members}) THEN {q} + 1 WHEN 2 * {r} < ({members}) THEN {q} "
        f"WHEN mod({q}, 2) = 0 THEN {q} ELSE {q} + 1 END)::bigint"
    )


# The totals' columns each figure reads (``Renderer.totals_sql``).
_GROSS = {"s1", "s2l", "s3"}
_WITHIN = {"r1", "r2", "r3"}
FOOTPRINT_COLUMNS = {
    "scope1": {"s1"},
    "scope2LocationBased": {"s2l"},
    "scope2MarketBased": {"s2m"},
    "scope3": {"s3"},
    "scope3Plus": {"r3p"},
    "gross": _GROSS,
    "cleanEnergyOffset": {"off"},
    "net": _GROSS | {"off"},
    "perCapita": _GROSS | {"off"},
    "recordCount": {"rc"},
}
REDUCTION_COLUMNS = {
    "scope1": {"r1"},
    "scope2": {"r2"},
    "scope3": {"r3"},
    "scope3Plus": {"r3p"},
    "totalWithinScopes": _WITHIN,
    "total": _WITHIN | {"r3p"},
    "perCapita": _WITHIN | {"r3p"},
}


def columns(kind: str, sel: Any) -> set[str]:
    """The totals' columns a footprint or reductions selection reads (at least one: the
    sub-select always yields its row)."""
    table = FOOTPRINT_COLUMNS if kind == "footprint" else REDUCTION_COLUMNS
    out = {"rc"}
    for _, item in sel.items:
        out |= table.get(item.name, set())
    return out


# The statement writes the response's JSON as text, not with json_build_object / json_agg:
# those look up how to print each argument's type on every row (a 1,000-object list: about
# a third of the statement's time), and the text is what is sent anyway. Every expression
# below is JSON text and never NULL ('null' instead), so that a concatenation never vanishes.


def literal(text: str) -> str:
    """An SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def jconst(value: Any) -> str:
    """A constant (``__typename``, a literal ``true``) as JSON text."""
    return literal(json.dumps(value, ensure_ascii=False))


def jvalue(sql: str) -> str:
    """A column or expression of any scalar type, printed by PostgreSQL's JSON rules."""
    return f"coalesce(to_json({sql})::text, 'null')"


def jnumber(sql: str) -> str:
    """An integer or numeric expression (an integral numeric prints without a fraction)."""
    return f"coalesce(({sql})::text, 'null')"


def jbool(sql: str) -> str:
    return f"CASE WHEN {sql} THEN 'true' WHEN NOT {sql} THEN 'false' ELSE 'null' END"


def jenum(sql: str, stored: tuple[tuple[str, str], ...]) -> str:
    """An enum column: each stored value's GraphQL name as a constant (to_json per row costs
    about a tenth of a 1,000-object list). Any other value prints as to_json would."""
    cases = " ".join(f"WHEN {literal(value)} THEN {jconst(name)}" for value, name in stored)
    return f"CASE {sql} {cases} ELSE {jvalue(sql)} END"


def jnull(sql: str) -> str:
    """A sub-select's object or list, null when it finds no row."""
    return f"coalesce({sql}, 'null')"


def obj(pairs: list[tuple[str, str]]) -> str:
    """An object of JSON-text values; keys are GraphQL names and aliases (no escapes)."""
    if not pairs:
        return "'{}'"
    parts = []
    for n, (key, value) in enumerate(pairs):
        parts.append(literal(("{" if n == 0 else ",") + json.dumps(key) + ":"))
        parts.append(value)
    parts.append("'}'")
    return "(" + " || ".join(parts) + ")"


def arr(element: str, order: str, where: str | None = None) -> str:
    """A list aggregate of ``element`` ordered by ``order`` (of the rows ``where`` holds)."""
    kept = f" FILTER (WHERE {where})" if where else ""
    return f"('[' || coalesce(string_agg({element}, ',' ORDER BY {order}){kept}, '') || ']')"


@dataclass(frozen=True)
class Grants:
    """The part of the viewer a statement depends on, for the level the plan needs."""

    admin: bool
    prefixes: tuple[str, ...]  # paths of grants at that level or above (subtrees)
    residents: tuple[int, ...]  # people the viewer is (PERSONAL on themselves)
    paths: tuple[str, ...] = ()  # paths of every grant (what lists show: Viewer.node_filter)

    @classmethod
    def of(cls, viewer: Viewer, level: Access) -> Grants:
        prefixes = []
        for grant in viewer.grants:
            if grant.path is None:
                continue
            granted = (
                Access.PERSONAL
                if grant.role is Role.RESIDENT
                else SUBTREE_ACCESS.get(grant.role, Access.NONE)
            )
            if granted >= level:
                prefixes.append(grant.path)
        return cls(
            viewer.is_platform_admin,
            tuple(sorted(set(prefixes))),
            tuple(sorted(viewer.resident_individual_ids)),
            tuple(sorted({g.path for g in viewer.grants if g.path is not None})),
        )

    @property
    def empty(self) -> bool:
        return not (self.admin or self.prefixes or self.residents)


class Renderer:
    def __init__(
        self,
        plan: Plan,
        variables: VariableValues,
        grants: Grants,
        settings: Settings,
        today: date,
    ) -> None:
        self.plan = plan
        self.variables = variables
        self.grants = grants
        self.settings = settings
        self.today = today
        self.params: list[Any] = []
        self._memo: dict[str, str] = {}
        self._alias = 0
        self.list_enterprise: str | None = None  # communities(enterpriseId:), bound

    # -- parameters and names ----------------------------------------------------------------
    def bind(self, value: Any, cast: str) -> str:
        self.params.append(value)
        return f"${len(self.params)}::{cast}"

    def shared(self, name: str, value: Any, cast: str) -> str:
        if name not in self._memo:
            self._memo[name] = self.bind(value, cast)
        return self._memo[name]

    def alias(self, stem: str) -> str:
        self._alias += 1
        return f"{stem}{self._alias}"

    def args(self, item_node: Any, field_def: Any) -> dict[str, Any]:
        """The field's arguments given in the document (validated: names and types are
        right), coerced; arguments left out are absent (their defaults are the resolvers')."""
        out: dict[str, Any] = {}
        coerced = self.variables.coerced
        for argument in item_node.arguments or ():
            name = argument.name.value
            value = argument.value
            if isinstance(value, VariableNode):
                if value.name.value not in coerced:
                    continue  # an optional variable left out: as if the argument were
                out[name] = coerced[value.name.value]
                continue
            found = value_from_ast(value, field_def.args[name].type, coerced)
            if found is Undefined:
                raise Unplannable("argument error")
            out[name] = found
        return out

    # -- the guard ---------------------------------------------------------------------------
    # A platform admin's checks are the literal true, not a parameter: PostgreSQL then drops
    # them from every plan, a generic plan of the prepared statement included (with a
    # parameter, a generic plan would still join 1,000 IDs to their rows to check each).
    def path_ok(self, path_sql: str) -> str:
        if self.grants.admin:
            return "true"
        prefixes = self.shared("prefixes", list(self.grants.prefixes), "text[]")
        return (
            f"EXISTS (SELECT 1 FROM unnest({prefixes}) AS gp(p) "
            f"WHERE starts_with({path_sql}, gp.p))"
        )

    def current(self, table: str) -> str:
        today = self.shared("today", self.today, "date")
        return (
            f"{table}.valid_from <= {today} AND "
            f"({table}.valid_to IS NULL OR {table}.valid_to > {today})"
        )

    def node_ok(self, alias: str, type_name: str) -> str:
        """The viewer's level on this node is at least the plan's (via a subtree grant)."""
        if type_name != "Individual":
            return self.path_ok(f"{alias}.path")
        residents = self.shared("residents", list(self.grants.residents), "bigint[]")
        m, h, em, e = self.alias("gm"), self.alias("gh"), self.alias("gem"), self.alias("ge")
        return (
            f"({alias}.id = ANY({residents}) "
            f"OR EXISTS (SELECT 1 FROM household_membership {m} JOIN household {h} ON {h}.id = "
            f"{m}.household_id WHERE {m}.individual_id = {alias}.id AND {self.current(m)} AND "
            f"{self.path_ok(f'{h}.path')}) "
            f"OR EXISTS (SELECT 1 FROM employment {em} JOIN enterprise {e} ON {e}.id = "
            f"{em}.enterprise_id WHERE {em}.individual_id = {alias}.id AND {self.current(em)} AND "
            f"{self.path_ok(f'{e}.path')}))"
        )

    # -- the statement -----------------------------------------------------------------------
    def statement(self, fresh: str = "true") -> str:
        """The statement: (ok, the response's data as JSON text when ok, fresh). ``fresh``: a
        condition that the statement runs under the scope its grants were read for (the
        planner's own connections, planner/pool.py); when it is false nothing else counts."""
        guards: list[str] = []
        data: list[tuple[str, str]] = []
        for root in self.plan.roots:
            value, guard = self.root(root)
            data.append((root.key, value))
            guards.extend(guard)
        ok = " AND ".join(guards) if guards else "true"
        # OFFSET 0 keeps each sub-select from being pulled up into the outer one, which would
        # copy its expression to every place that reads it: the freshness check ran three
        # times and the guard twice per statement.
        return (
            f"SELECT g.ok, CASE WHEN g.ok THEN {obj(data)} END, g.fresh FROM "
            f"(SELECT f.fresh, f.fresh AND {ok} AS ok "
            f"FROM (SELECT {fresh} AS fresh OFFSET 0) AS f OFFSET 0) AS g"
        )

    def fresh(self, subject: str, fingerprint: str, settings: tuple[str, str, str]) -> str:
        """The session's scope is the one derived from the viewer's grants today: the grant rows
        still have ``fingerprint``, and the session's settings are still ``settings`` (as set
        from those rows; anything else having changed them, a transaction-pooling proxy
        included, makes the statement answer nothing)."""
        today = self.shared("today", self.today, "date")
        subject_sql = self.bind(subject, "text")
        grants = grants_fingerprint_sql(subject_sql, today)
        checks = [f"{grants} = {self.bind(fingerprint, 'text')}"]
        for name, value in zip(SCOPE_SETTINGS, settings, strict=True):
            checks.append(f"current_setting('{name}', true) = {self.bind(value, 'text')}")
        return "(" + " AND ".join(checks) + ")"

    def decode(self, raw: Any, expected: list[str]) -> tuple[str, int]:
        canonical = canonical_id(raw)  # the usual form, 10x faster than Strawberry's decoding
        if canonical is not None and canonical[0] in expected:
            type_name, pk = canonical
        else:
            try:
                type_name, pk = decode_global_id(raw, expected)
            except CodedError as exc:
                raise UnknownId("an ID that is not found") from exc
        if not -INT4_END <= pk < INT4_END:
            # Keys are 32-bit: the reference executor's look-up fails on a larger one.
            raise Unplannable("an ID out of range")
        return type_name, pk

    def root(self, root: Root) -> tuple[str, list[str]]:
        if root.kind == "typename":
            return jconst(root.constant), []
        args = self.args(root.node, root.field_def)
        if root.kind in ("by_id", "node"):
            expected = (
                [root.type_name] if root.kind == "by_id" else [*NODE_TYPES, *SECURITY_NODE_TYPES]
            )
            type_name, pk = self.decode(args["id"], expected)
            if type_name not in NODE_TYPES:
                raise Unplannable(f"node of type {type_name}")
            key = self.bind(pk, "bigint")
            n, gn = self.alias("n"), self.alias("n")
            table = TABLES[type_name]
            node = self.node(n, type_name, root.subs[type_name])
            value = jnull(f"(SELECT {node} FROM {table} {n} WHERE {n}.id = {key})")
            ok = self.node_ok(gn, type_name)
            guard = f"EXISTS (SELECT 1 FROM {table} {gn} WHERE {gn}.id = {key} AND {ok})"
            return value, [guard]
        if root.kind == "list":
            return self.root_list(root)
        assert root.kind == "nodes"
        ids = args["ids"]
        if len(ids) > MAX_NODES:
            raise Unplannable("too many ids")
        plain = plain_node_ids(ids)
        if plain is None:
            types, keys = [], []
            for raw in ids:
                try:
                    type_name, pk = self.decode(raw, [*NODE_TYPES, *SECURITY_NODE_TYPES])
                except UnknownId:
                    type_name, pk = "-", 0  # null in place, as the reference answers
                if type_name in SECURITY_NODE_TYPES:
                    raise Unplannable(f"nodes of type {type_name}")
                types.append(type_name)
                keys.append(str(pk))
            plain = NodeIds(",".join(types), ",".join(keys), frozenset(types))
        present = plain.present
        t = self.bind(plain.types, "text")
        k = self.bind(plain.keys, "text")
        t, k = f"string_to_array({t}, ',')", f"string_to_array({k}, ',')::bigint[]"
        u = self.alias("u")
        joins = []
        branches = []
        guards = []
        for type_name in NODE_TYPES:
            if type_name not in present:
                continue
            n, gn = self.alias("n"), self.alias("n")
            table = TABLES[type_name]
            node = self.node(n, type_name, root.subs[type_name])
            # A join, not a sub-select per ID: one lookup each either way, without starting
            # a sub-plan 1,000 times. A row row-level security hides is not joined: null.
            joins.append(
                f"LEFT JOIN {table} {n} ON {u}.t = {literal(type_name)} AND {n}.id = {u}.k"
            )
            branches.append(f"WHEN {n}.id IS NOT NULL THEN {node}")
            gu = self.alias("u")
            guards.append(
                f"NOT EXISTS (SELECT 1 FROM unnest({t}, {k}) AS {gu}(t, k) JOIN {table} {gn} ON "
                f"{gn}.id = {gu}.k WHERE {gu}.t = {literal(type_name)} "
                f"AND NOT {self.node_ok(gn, type_name)})"
            )
        case = f"CASE {' '.join(branches)} ELSE 'null' END" if branches else "'null'"
        value = (
            f"(SELECT {arr(case, f'{u}.o')} "
            f"FROM unnest({t}, {k}) WITH ORDINALITY AS {u}(t, k, o) {' '.join(joins)})"
        )
        return value, guards

    def visible(self, path_sql: str) -> str:
        """``Viewer.node_filter``: a node inside a grant's subtree or above it (PUBLIC)."""
        if self.grants.admin:
            return "true"
        paths = self.shared("paths", list(self.grants.paths), "text[]")
        return (
            f"EXISTS (SELECT 1 FROM unnest({paths}) AS vp(p) WHERE "
            f"starts_with({path_sql}, vp.p) OR starts_with(vp.p, {path_sql}))"
        )

    def root_list(self, root: Root) -> tuple[str, list[str]]:
        """``enterprises`` / ``communities``: the visible rows, paged. Guard: every visible row
        (on this page or not) lies inside a grant of the plan's level, so none is shown at a
        lower level than its fields need."""
        args = self.args(root.node, root.field_def)
        self.list_enterprise = None
        if args.get("enterpriseId") is not None:
            self.list_enterprise = self.bind(
                self.decode(args["enterpriseId"], ["Enterprise"])[1], "bigint"
            )
        ((_, item),) = root.subs[""].items
        table = TABLES[root.type_name]
        g = self.alias("v")
        where = self.list_where(item.relation, g)
        ok = self.path_ok(f"{g}.path")
        guard = f"NOT EXISTS (SELECT 1 FROM {table} {g} WHERE {where} AND NOT {ok})"
        return self.connection("", item), [guard]

    def list_where(self, relation: str, x: str) -> str:
        where = f"{x}.archived_at IS NULL AND {self.visible(f'{x}.path')}"
        if relation == "visible_communities" and self.list_enterprise is not None:
            where += f" AND {x}.enterprise_id = {self.list_enterprise}"
        return where

    # -- objects -----------------------------------------------------------------------------
    def node(self, alias: str, type_name: str, sel: Sel) -> str:
        pairs = []
        for key, item in sel.items:
            pairs.append((key, self.node_item(alias, type_name, item)))
        return obj(pairs)

    def node_item(self, alias: str, type_name: str, item: Item) -> str:
        if item.kind == "typename":
            return jconst(item.constant)
        if item.kind == "id":
            return gid_sql(type_name, f"{alias}.id")
        if item.kind == "column":
            assert item.column is not None
            column, kind = item.column
            if kind == "datetime":
                return datetime_sql(f"{alias}.{column}")
            if kind == "boolean":  # to_json per row costs as much as the rest of the row
                return jbool(f"{alias}.{column}")
            if kind == "enum":
                return jenum(f"{alias}.{column}", item.enum)
            return jvalue(f"{alias}.{column}")
        if item.kind in ("footprint", "reductions"):
            return self.figures(alias, type_name, item)
        assert item.kind == "connection"
        return self.connection(alias, item)

    # -- footprints and reductions ------------------------------------------------------------
    def figures(self, alias: str, type_name: str, item: Item) -> str:
        args = self.args(item.node, item.field_def)
        raw = args.get("period")
        if isinstance(raw, dict):  # graphql-core's coerced input; Strawberry builds the object
            raw = PeriodInput(
                month=raw.get("month"),
                year=raw.get("year"),
                from_=raw.get("from"),
                to=raw.get("to"),
            )
        if not isinstance(raw, PeriodInput):
            raise Unplannable("period")
        try:
            span = raw.to_period()
        except CodedError as exc:
            raise Unplannable("invalid period") from exc
        via = ""
        if type_name == "Enterprise":
            via_arg = args.get("via")
            via = str(getattr(via_arg, "value", via_arg or "communities"))
        start = self.bind(span.start, "date")
        end = self.bind(span.end, "date")
        letter = LETTER[type_name]
        key = (letter, f"{alias}.id", self.bind(via, "text"))
        f, p = self.alias("f"), self.alias("p")
        sub = item.sub
        assert sub is not None
        needs_members = any(i.name in ("memberCount", "perCapita") for _, i in sub.items)
        totals = self.totals_sql(key, f"{start}", f"{end}", f, columns(item.kind, sub))
        members = f"{p}.m"
        sources = totals
        if needs_members:
            if letter == "I":
                sources += f", (SELECT 1 AS m) AS {p}"
            else:
                pc = self.alias("pc")
                sources += (
                    f", (SELECT coalesce(sum({pc}.delta), 0) AS m FROM population_change {pc} "
                    f"WHERE {pc}.node = '{letter}' AND {pc}.node_id = {key[1]} AND {pc}.via = "
                    f"{key[2]} AND {pc}.day <= {end}) AS {p}"
                )
        pairs = []
        for out_key, field in sub.items:
            pairs.append(
                (out_key, self.figure(item.kind, field, f, members, key, start, end, span))
            )
        return jnull(f"(SELECT {obj(pairs)} FROM {sources})")

    @staticmethod
    def totals_sql(
        key: tuple[str, str, str], start: str, end: str, f: str, needed: set[str] | None = None
    ) -> str:
        """The sums a footprint is made of, over the node's totals in the period; ``needed``:
        only these columns (every one by default)."""
        t = f + "t"
        loc = f"{t}.location_g"

        def total(column: str, condition: str) -> str:
            return f"coalesce(sum({column}) FILTER (WHERE {condition}), 0)"

        em = f"{t}.kind = 'emission'"
        red = f"{t}.kind = 'reduction'"
        cols = [
            (total(loc, f"{em} AND {t}.scope = '1'"), "s1"),
            (total(loc, f"{em} AND {t}.scope = '2'"), "s2l"),
            (total(f"{t}.market_g", f"{em} AND {t}.scope = '2'"), "s2m"),
            (total(loc, f"{em} AND {t}.scope = '3'"), "s3"),
            (total(loc, f"{t}.kind = 'offset'"), "off"),
            (total(f"{t}.record_count", f"{t}.kind IN ('emission', 'offset')"), "rc"),
            (total(loc, f"{red} AND {t}.scope = '1'"), "r1"),
            (total(loc, f"{red} AND {t}.scope = '2'"), "r2"),
            (total(loc, f"{red} AND {t}.scope = '3'"), "r3"),
            (total(loc, f"{red} AND {t}.scope = '3+'"), "r3p"),
        ]
        select = ", ".join(
            f"{expr} AS {name}" for expr, name in cols if needed is None or name in needed
        )
        return (
            f"(SELECT {select} FROM footprint_total {t} WHERE {t}.node = '{key[0]}' AND "
            f"{t}.node_id = {key[1]} AND {t}.via = {key[2]} "
            f"AND {t}.day BETWEEN {start} AND {end}) AS {f}"
        )

    def figure(
        self,
        kind: str,
        item: Item,
        f: str,
        members: str,
        key: tuple[str, str, str],
        start: str,
        end: str,
        span: Any,
    ) -> str:
        name = item.name
        if item.kind == "typename":
            return jconst(item.constant)
        gross = f"({f}.s1 + {f}.s2l + {f}.s3)"
        net = f"({gross} - {f}.off)"
        if name == "period":
            assert item.sub is not None
            return self.leaves(item.sub, {"from": jvalue(start), "to": jvalue(end)})
        if name == "suppressed":
            return "'false'"
        if name == "suppressionReason":
            return "'null'"
        if name == "memberCount":
            return jnumber(members)
        if kind == "footprint":
            plain = {
                "scope1": f"{f}.s1",
                "scope2LocationBased": f"{f}.s2l",
                "scope2MarketBased": f"{f}.s2m",
                "scope3": f"{f}.s3",
                "scope3Plus": f"{f}.r3p",
                "gross": gross,
                "cleanEnergyOffset": f"{f}.off",
                "net": net,
                "recordCount": f"{f}.rc",
            }
            if name in plain:
                return jnumber(plain[name])
            if name == "perCapita":
                return jnumber(f"CASE WHEN {members} > 0 THEN {half_even_sql(net, members)} END")
            if name == "scope3Categories":
                return self.categories(item, key, start, end)
            assert name == "series"
            return self.series(item, key, span)
        within = f"({f}.r1 + {f}.r2 + {f}.r3)"
        figures = {
            "scope1": f"{f}.r1",
            "scope2": f"{f}.r2",
            "scope3": f"{f}.r3",
            "scope3Plus": f"{f}.r3p",
            "totalWithinScopes": within,
            "total": f"({within} + {f}.r3p)",
        }
        if name in figures:
            return jnumber(figures[name])
        assert name == "perCapita" and item.sub is not None
        pairs = []
        for out_key, leaf in item.sub.items:
            if leaf.kind == "typename":
                pairs.append((out_key, jconst(leaf.constant)))
            else:
                pairs.append((out_key, jnumber(half_even_sql(figures[leaf.name], members))))
        return f"CASE WHEN {members} > 0 THEN {obj(pairs)} ELSE 'null' END"

    def leaves(self, sel: Sel, values: dict[str, str]) -> str:
        """An object of leaves; ``values``: each leaf's JSON text."""
        pairs = []
        for key, item in sel.items:
            pairs.append(
                (key, jconst(item.constant) if item.kind == "typename" else values[item.name])
            )
        return obj(pairs)

    def categories(self, item: Item, key: tuple[str, str, str], start: str, end: str) -> str:
        assert item.sub is not None
        x, t = self.alias("x"), self.alias("t")
        names = " ".join(f"WHEN {c} THEN {literal(n)}" for c, n in SCOPE3_CATEGORIES.items())
        entry = self.leaves(
            item.sub,
            {
                "category": jvalue(f"{x}.category"),
                "name": jvalue(f"(CASE {x}.category {names} ELSE 'Other' END)"),
                "grams": jnumber(f"{x}.g"),
            },
        )
        return (
            f"(SELECT {arr(entry, f'{x}.category')} FROM "
            f"(SELECT {t}.category, sum({t}.location_g) AS g FROM footprint_total {t} WHERE "
            f"{t}.node = '{key[0]}' AND {t}.node_id = {key[1]} AND {t}.via = {key[2]} AND "
            f"{t}.day BETWEEN {start} AND {end} AND {t}.kind = 'emission' AND {t}.scope = '3' "
            f"GROUP BY {t}.category) AS {x})"
        )

    def series(self, item: Item, key: tuple[str, str, str], span: Any) -> str:
        args = self.args(item.node, item.field_def)
        granularity = str(getattr(args["granularity"], "value", args["granularity"]))
        firsts: list[date] = []
        lasts: list[date] = []
        start = bucket_start(span.start, granularity)
        while start <= span.end:
            finish = bucket_end(start, granularity)
            firsts.append(max(start, span.start))
            lasts.append(min(finish, span.end))
            start = finish + _ONE_DAY
        b, f = self.alias("b"), self.alias("f")
        bf = self.bind(firsts, "date[]")
        bl = self.bind(lasts, "date[]")
        totals = self.totals_sql(key, f"{b}.f", f"{b}.l", f)
        gross = f"({f}.s1 + {f}.s2l + {f}.s3)"
        assert item.sub is not None
        point = self.leaves(
            item.sub,
            {
                "from": jvalue(f"{b}.f"),
                "to": jvalue(f"{b}.l"),
                "scope1": jnumber(f"{f}.s1"),
                "scope2LocationBased": jnumber(f"{f}.s2l"),
                "scope2MarketBased": jnumber(f"{f}.s2m"),
                "scope3": jnumber(f"{f}.s3"),
                "gross": jnumber(gross),
                "cleanEnergyOffset": jnumber(f"{f}.off"),
                "net": jnumber(f"({gross} - {f}.off)"),
            },
        )
        return (
            f"(SELECT {arr(point, f'{b}.o')} FROM "
            f"unnest({bf}, {bl}) WITH ORDINALITY AS {b}(f, l, o) CROSS JOIN LATERAL {totals})"
        )

    # -- connections -------------------------------------------------------------------------
    def relation(self, name: str, parent: str) -> tuple[str, str, str, str]:
        """(FROM, WHERE, the child row's alias, its id column) of a relation's rows for one
        parent row. People are keyed by their membership's (employment's) column: PostgreSQL
        then joins the person by primary key, after row-level security's checks."""
        x = self.alias("x")
        if name in ("visible_enterprises", "visible_communities"):
            table = "enterprise" if name == "visible_enterprises" else "community"
            return f"{table} {x}", self.list_where(name, x), x, f"{x}.id"
        if name == "community_households":
            where = f"{x}.community_id = {parent}.id AND {x}.archived_at IS NULL"
            return f"household {x}", where, x, f"{x}.id"
        if name == "sub_communities":
            where = f"{x}.parent_id = {parent}.id AND {x}.archived_at IS NULL"
            return f"community {x}", where, x, f"{x}.id"
        if name == "enterprise_communities":
            where = (
                f"{x}.enterprise_id = {parent}.id AND {x}.parent_id IS NULL "
                f"AND {x}.archived_at IS NULL"
            )
            return f"community {x}", where, x, f"{x}.id"
        m = self.alias("m")
        person = f"individual {x} ON {x}.id = {m}.individual_id"
        alive = f"{self.current(m)} AND {x}.archived_at IS NULL"
        if name == "household_members":
            source = f"household_membership {m} JOIN {person}"
            return source, f"{m}.household_id = {parent}.id AND {alive}", x, f"{m}.individual_id"
        if name == "community_members":
            h = self.alias("h")
            source = (
                f"household_membership {m} JOIN {person} JOIN household {h} ON {h}.id = "
                f"{m}.household_id"
            )
            where = f"{h}.path LIKE {parent}.path || '%' AND {alive}"
            return source, where, x, f"{m}.individual_id"
        assert name == "enterprise_employees"
        source = f"employment {m} JOIN {person}"
        return source, f"{m}.enterprise_id = {parent}.id AND {alive}", x, f"{m}.individual_id"

    def connection(self, parent: str, item: Item) -> str:
        args = self.args(item.node, item.field_def)
        try:
            page = PageArgs.parse(
                first=args.get("first"),
                after=args.get("after"),
                last=args.get("last"),
                before=args.get("before"),
                default_size=self.settings.default_page_size,
                max_size=self.settings.max_page_size,
            )
        except CodedError as exc:
            raise Unplannable("invalid page arguments") from exc
        for cursor in (page.after, page.before):
            if cursor is not None and not -INT4_END <= cursor < INT4_END:
                raise Unplannable("a cursor out of range")  # as for IDs
        sub = item.sub
        assert sub is not None
        s = self.alias("s")
        pairs = []
        uses_page = False
        limit = None
        for key, field in sub.items:
            if field.kind == "typename":
                pairs.append((key, jconst(field.constant)))
            elif field.name == "totalCount":
                source, where, _, _ = self.relation(item.relation, parent)
                pairs.append((key, jnumber(f"(SELECT count(*) FROM {source} WHERE {where})")))
            elif field.name == "edges":
                uses_page = True
                limit = limit or self.bind(page.limit, "bigint")
                assert field.sub is not None
                edge_pairs = []
                for edge_key, edge_item in field.sub.items:
                    if edge_item.kind == "typename":
                        edge_pairs.append((edge_key, jconst(edge_item.constant)))
                    elif edge_item.name == "cursor":
                        edge_pairs.append((edge_key, cursor_sql(f"{s}.id")))
                    else:
                        assert edge_item.sub is not None
                        edge_pairs.append((edge_key, self.node(s, item.child, edge_item.sub)))
                pairs.append(
                    (
                        key,
                        arr(obj(edge_pairs), f"{s}.id", f"{s}.cg_rn <= {limit}"),
                    )
                )
            else:
                assert field.name == "pageInfo" and field.sub is not None
                uses_page = True
                # The page size is bound only if a selected field reads it: a parameter the
                # statement never reads has no type, and PostgreSQL refuses the statement.
                selected = {leaf.name for _, leaf in field.sub.items}
                reads_limit = (
                    bool(selected & {"startCursor", "endCursor"})
                    or ("hasPreviousPage" if page.backward else "hasNextPage") in selected
                )
                if reads_limit:
                    limit = limit or self.bind(page.limit, "bigint")
                more = f"(count(*) > {limit})"
                kept = f"FILTER (WHERE {s}.cg_rn <= {limit})"
                # Literals, not parameters: whether a cursor was given is the request's shape.
                given_after = "'true'" if page.after is not None else "'false'"
                given_before = "'true'" if page.before is not None else "'false'"
                pairs.append(
                    (
                        key,
                        self.leaves(
                            field.sub,
                            {
                                "hasNextPage": given_before if page.backward else jbool(more),
                                "hasPreviousPage": jbool(more) if page.backward else given_after,
                                "startCursor": cursor_sql(f"min({s}.id) {kept}"),
                                "endCursor": cursor_sql(f"max({s}.id) {kept}"),
                            },
                        ),
                    )
                )
        if not uses_page:
            return obj(pairs)
        source, where, x, row_id = self.relation(item.relation, parent)
        order = "DESC" if page.backward else "ASC"
        if page.after is not None:
            where += f" AND {row_id} > {self.bind(page.after, 'bigint')}"
        if page.before is not None:
            where += f" AND {row_id} < {self.bind(page.before, 'bigint')}"
        fetch = self.bind(page.limit + 1, "bigint")
        # Ordered by an expression, not the column: ORDER BY id LIMIT n would tempt PostgreSQL
        # to walk the primary key over the whole table until n rows match the parent, once per
        # parent row; the parent's index finds its children, a top-n sort orders them.
        rows = (
            f"SELECT {x}.*, row_number() OVER (ORDER BY {row_id} + 0 {order}) AS cg_rn "
            f"FROM {source} WHERE {where} ORDER BY {row_id} + 0 {order} LIMIT {fetch}"
        )
        return jnull(f"(SELECT {obj(pairs)} FROM ({rows}) AS {s})")
