"""A validated query operation → a plan tree (once per document) → one SQL statement (per
request, from the plan, the variables and the viewer's grants as bound parameters).

The statement returns ``(ok, data)``: ``data`` is the response's ``data`` as JSON text, built
with ``json_build_object`` / ``json_agg`` and one correlated sub-select per connection and per
footprint; ``ok`` is the guard. The plan never produces an error: it is only right when no
field of the answer can be refused or suppressed for this viewer, which the guard checks (see
``guard_level``). When ``ok`` is false the data is not built and the reference executor
answers instead.

Why one guard on the roots is enough: every node the plan reaches lies in the subtree of a
root (connections only go down the hierarchy: children, members, employees), and a viewer's
level on a node inside a grant's subtree is at least that grant's level. So when each root
lies inside the subtree of a grant whose level covers every field selected anywhere in the
operation (PERSONAL when a small-cell figure is selected and k > 1), no field below can be
refused, no figure suppressed, and the lists' visibility filters keep every row: the
statement leaves them out and answers exactly what the reference executor answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)
from graphql.type.definition import get_named_type

from carbongraph.authz import Access
from carbongraph.planner.policy import Undeclared, node_level, requirement


class Unplannable(Exception):
    """This operation (or this request of it) goes to the reference executor; the message
    says why (development responses show it)."""


NODE_TYPES = ("Enterprise", "Community", "Household", "Individual")
TABLES = {
    "Enterprise": "enterprise",
    "Community": "community",
    "Household": "household",
    "Individual": "individual",
}
LETTER = {"Enterprise": "E", "Community": "C", "Household": "H", "Individual": "I"}

# Plain columns of the node types: GraphQL field → (column, kind).
_COMMON = {
    "externalRef": ("external_ref", "value"),
    "createdAt": ("created_at", "datetime"),
    "updatedAt": ("updated_at", "datetime"),
    "archivedAt": ("archived_at", "datetime"),
}
COLUMNS: dict[str, dict[str, tuple[str, str]]] = {
    "Enterprise": {**_COMMON, "name": ("name", "value"), "kind": ("kind", "enum")},
    "Community": {
        **_COMMON,
        "name": ("name", "value"),
        "kind": ("kind", "enum"),
        "regionCode": ("region_code", "value"),
        "timezone": ("timezone", "value"),
    },
    "Household": {
        **_COMMON,
        "name": ("name", "value"),
        "dwellingType": ("dwelling_type", "enum"),
        "hasRooftopSolar": ("has_rooftop_solar", "boolean"),
    },
    "Individual": {
        **_COMMON,
        "displayName": ("display_name", "value"),
        "email": ("email", "value"),
    },
}

# Connections down the hierarchy: (parent type, field) → relation name, child type.
CONNECTIONS = {
    ("Enterprise", "communities"): ("enterprise_communities", "Community"),
    ("Enterprise", "employees"): ("enterprise_employees", "Individual"),
    ("Community", "subCommunities"): ("sub_communities", "Community"),
    ("Community", "households"): ("community_households", "Household"),
    ("Community", "members"): ("community_members", "Individual"),
    ("Household", "members"): ("household_members", "Individual"),
}

FOOTPRINT_FIELDS = {
    "period",
    "suppressed",
    "suppressionReason",
    "scope1",
    "scope2LocationBased",
    "scope2MarketBased",
    "scope3",
    "scope3Categories",
    "scope3Plus",
    "gross",
    "cleanEnergyOffset",
    "net",
    "recordCount",
    "memberCount",
    "perCapita",
    "series",
}
POINT_FIELDS = {
    "from",
    "to",
    "scope1",
    "scope2LocationBased",
    "scope2MarketBased",
    "scope3",
    "gross",
    "cleanEnergyOffset",
    "net",
}
REDUCTION_FIELDS = {
    "period",
    "suppressed",
    "suppressionReason",
    "scope1",
    "scope2",
    "scope3",
    "scope3Plus",
    "totalWithinScopes",
    "total",
    "memberCount",
    "perCapita",
}
PER_CAPITA_FIELDS = {"scope1", "scope2", "scope3", "scope3Plus", "totalWithinScopes", "total"}

# json_build_object takes at most 100 arguments.
MAX_KEYS = 50


# -- the plan tree -------------------------------------------------------------------------
@dataclass
class Sel:
    """A selection on an object: response key → item, in response order."""

    type_name: str
    items: list[tuple[str, Item]] = field(default_factory=list)


@dataclass
class Item:
    kind: (
        str  # typename | column | id | footprint | reductions | connection | value | object | list
    )
    name: str = ""  # the GraphQL field name
    node: FieldNode | None = None  # for arguments, evaluated per request
    field_def: Any = None
    column: tuple[str, str] | None = None
    sub: Sel | None = None  # footprint / reductions / connection / object selections
    relation: str = ""
    child: str = ""  # a connection's node type
    constant: str = ""  # __typename
    enum: tuple[tuple[str, str], ...] = ()  # an enum column's (stored value, GraphQL name)


@dataclass
class Root:
    key: str
    kind: str  # by_id | node | nodes | list | typename
    type_name: str = ""  # by_id: the type; node/nodes: ""
    node: FieldNode | None = None
    field_def: Any = None
    subs: dict[str, Sel] = field(default_factory=dict)  # node type → selection
    constant: str = ""


@dataclass
class Plan:
    roots: list[Root]
    level: Access  # the guard: each root inside a grant of at least this level
    small_cell: bool  # a figure about people is selected (PERSONAL unless k = 1)
    operation_name: str | None
    variable_definitions: Any

    def guard_level(self, k: int) -> Access:
        return max(self.level, Access.PERSONAL) if self.small_cell and k > 1 else self.level


# -- AST → plan ------------------------------------------------------------------------------
class Compiler:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode) -> None:
        self.schema = schema
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.level = Access.NONE
        self.small_cell = False

    def collect(
        self,
        type_name: str,
        selection_sets: list[SelectionSetNode],
        seen: frozenset[str] = frozenset(),
    ) -> dict[str, list[FieldNode]]:
        """Fields by response key for an object type (fragments applied, same keys merged)."""
        out: dict[str, list[FieldNode]] = {}
        gtype = self.schema.type_map[type_name]
        for selection_set in selection_sets:
            for selection in selection_set.selections:
                if selection.directives:
                    raise Unplannable("@skip / @include")
                if isinstance(selection, FieldNode):
                    key = selection.alias.value if selection.alias else selection.name.value
                    out.setdefault(key, []).append(selection)
                    continue
                if isinstance(selection, InlineFragmentNode):
                    condition = selection.type_condition
                    fragment_set = selection.selection_set
                else:
                    assert isinstance(selection, FragmentSpreadNode)
                    name = selection.name.value
                    if name in seen:
                        raise Unplannable("fragment cycle")
                    fragment = self.fragments[name]
                    condition = fragment.type_condition
                    fragment_set = fragment.selection_set
                inner_seen = seen | {name} if isinstance(selection, FragmentSpreadNode) else seen
                if condition is not None and not self._applies(condition.name.value, gtype):
                    continue
                for key, nodes in self.collect(type_name, [fragment_set], inner_seen).items():
                    out.setdefault(key, []).extend(nodes)
        if len(out) > MAX_KEYS:
            raise Unplannable("more than 50 fields in one object")
        return out

    def _applies(self, condition: str, gtype: Any) -> bool:
        if condition == gtype.name:
            return True
        return any(i.name == condition for i in getattr(gtype, "interfaces", ()))

    def need(self, type_name: str, field_name: str) -> None:
        try:
            found = requirement(type_name, field_name)
        except Undeclared as exc:
            raise Unplannable(f"no plannable policy for {exc}") from exc
        if found.access is not None:
            self.level = max(self.level, found.access)
        self.small_cell = self.small_cell or found.small_cell

    # -- operation ---------------------------------------------------------------------------
    def operation(self, op: OperationDefinitionNode) -> Plan:
        if op.operation is not OperationType.QUERY:
            raise Unplannable("not a query")
        if op.directives:
            raise Unplannable("operation directives")
        roots = []
        for key, nodes in self.collect("Query", [op.selection_set]).items():
            roots.append(self.root(key, nodes))
        return Plan(
            roots,
            self.level,
            self.small_cell,
            op.name.value if op.name else None,
            op.variable_definitions,
        )

    def root(self, key: str, nodes: list[FieldNode]) -> Root:
        name = nodes[0].name.value
        if name == "__typename":
            return Root(key, "typename", constant="Query")
        query_type = self.schema.query_type
        assert query_type is not None
        field_def = query_type.fields.get(name)
        sets = [n.selection_set for n in nodes if n.selection_set]
        if name in ("enterprise", "community", "household", "individual"):
            type_name = name.capitalize()
            self.need("Query", name)
            self.level = max(self.level, node_level(type_name))
            return Root(
                key, "by_id", type_name, nodes[0], field_def, {type_name: self.sel(type_name, sets)}
            )
        if name in ("node", "nodes"):
            self.need("Query", name)
            subs = {}
            for type_name in NODE_TYPES:
                self.level = max(self.level, node_level(type_name))
                subs[type_name] = self.sel(type_name, sets)
            return Root(key, name, "", nodes[0], field_def, subs)
        if name in ("enterprises", "communities"):
            # Lists of what the viewer can see: the guard covers every visible row (render.py).
            self.need("Query", name)
            type_name = "Enterprise" if name == "enterprises" else "Community"
            self.level = max(self.level, node_level(type_name))
            item = Item(
                "connection",
                name,
                nodes[0],
                field_def,
                sub=self.connection(get_named_type(field_def.type).name, type_name, sets),
                relation=f"visible_{name}",
                child=type_name,
            )
            return Root(
                key, "list", type_name, nodes[0], field_def, {"": Sel("Query", [(key, item)])}
            )
        raise Unplannable(f"Query.{name} is not plannable")

    # -- objects -----------------------------------------------------------------------------
    def sel(self, type_name: str, sets: list[SelectionSetNode]) -> Sel:
        out = Sel(type_name)
        gtype = self.schema.type_map[type_name]
        assert isinstance(gtype, GraphQLObjectType)
        for key, nodes in self.collect(type_name, sets).items():
            name = nodes[0].name.value
            if name == "__typename":
                out.items.append((key, Item("typename", constant=type_name)))
                continue
            field_def = gtype.fields[name]
            sub_sets = [n.selection_set for n in nodes if n.selection_set]
            out.items.append((key, self.item(type_name, name, nodes[0], field_def, sub_sets)))
        return out

    def item(
        self,
        type_name: str,
        name: str,
        node: FieldNode,
        field_def: Any,
        sets: list[SelectionSetNode],
    ) -> Item:
        if type_name in NODE_TYPES:
            self.need(type_name, name)
            if name == "id":
                return Item("id", name)
            if name in COLUMNS[type_name]:
                column = COLUMNS[type_name][name]
                if column[1] == "enum":  # stored values → the names GraphQL prints
                    enum = get_named_type(field_def.type)
                    assert isinstance(enum, GraphQLEnumType)
                    stored = tuple((str(v.value), n) for n, v in enum.values.items())
                    return Item("column", name, column=column, enum=stored)
                return Item("column", name, column=column)
            if name in ("footprint", "reductions"):
                target = "Footprint" if name == "footprint" else "Reductions"
                return Item(name, name, node, field_def, sub=self.figures(target, sets))
            if (type_name, name) in CONNECTIONS:
                relation, child = CONNECTIONS[(type_name, name)]
                sub = self.connection(get_named_type(field_def.type).name, child, sets)
                return Item(
                    "connection", name, node, field_def, sub=sub, relation=relation, child=child
                )
        raise Unplannable(f"{type_name}.{name} is not plannable")

    def figures(self, type_name: str, sets: list[SelectionSetNode]) -> Sel:
        allowed = FOOTPRINT_FIELDS if type_name == "Footprint" else REDUCTION_FIELDS
        out = Sel(type_name)
        gtype = self.schema.type_map[type_name]
        assert isinstance(gtype, GraphQLObjectType)
        for key, nodes in self.collect(type_name, sets).items():
            name = nodes[0].name.value
            if name == "__typename":
                out.items.append((key, Item("typename", constant=type_name)))
                continue
            if name not in allowed:
                raise Unplannable(f"{type_name}.{name} is not plannable")
            self.need(type_name, name)
            field_def = gtype.fields[name]
            sub_sets = [n.selection_set for n in nodes if n.selection_set]
            inner = get_named_type(field_def.type).name
            if name == "period":
                out.items.append(
                    (key, Item("object", name, sub=self.leaves(inner, sub_sets, {"from", "to"})))
                )
            elif name == "scope3Categories":
                leaves = self.leaves(inner, sub_sets, {"category", "name", "grams"})
                out.items.append((key, Item("list", name, sub=leaves)))
            elif name == "series":
                leaves = self.leaves(inner, sub_sets, POINT_FIELDS)
                out.items.append((key, Item("list", name, nodes[0], field_def, sub=leaves)))
            elif name == "perCapita" and type_name == "Reductions":
                leaves = self.leaves(inner, sub_sets, PER_CAPITA_FIELDS)
                out.items.append((key, Item("object", name, sub=leaves)))
            else:
                out.items.append((key, Item("value", name)))
        return out

    def leaves(self, type_name: str, sets: list[SelectionSetNode], allowed: set[str]) -> Sel:
        out = Sel(type_name)
        for key, nodes in self.collect(type_name, sets).items():
            name = nodes[0].name.value
            if name == "__typename":
                out.items.append((key, Item("typename", constant=type_name)))
            elif name in allowed:
                self.need(type_name, name)
                out.items.append((key, Item("value", name)))
            else:
                raise Unplannable(f"{type_name}.{name} is not plannable")
        return out

    def connection(self, type_name: str, child: str, sets: list[SelectionSetNode]) -> Sel:
        out = Sel(type_name)
        gtype = self.schema.type_map[type_name]
        assert isinstance(gtype, GraphQLObjectType)
        for key, nodes in self.collect(type_name, sets).items():
            name = nodes[0].name.value
            sub_sets = [n.selection_set for n in nodes if n.selection_set]
            if name == "__typename":
                out.items.append((key, Item("typename", constant=type_name)))
            elif name == "totalCount":
                self.need(type_name, name)
                out.items.append((key, Item("value", name)))
            elif name == "pageInfo":
                self.need(type_name, name)
                leaves = self.leaves(
                    "PageInfo",
                    sub_sets,
                    {"hasNextPage", "hasPreviousPage", "startCursor", "endCursor"},
                )
                out.items.append((key, Item("object", name, sub=leaves)))
            elif name == "edges":
                self.need(type_name, name)
                edge_type = get_named_type(gtype.fields[name].type).name
                edge = Sel(edge_type)
                for edge_key, edge_nodes in self.collect(edge_type, sub_sets).items():
                    edge_name = edge_nodes[0].name.value
                    if edge_name == "__typename":
                        edge.items.append((edge_key, Item("typename", constant=edge_type)))
                    elif edge_name == "cursor":
                        self.need(edge_type, edge_name)
                        edge.items.append((edge_key, Item("value", edge_name)))
                    elif edge_name == "node":
                        self.need(edge_type, edge_name)
                        node_sets = [n.selection_set for n in edge_nodes if n.selection_set]
                        edge.items.append(
                            (edge_key, Item("object", "node", sub=self.sel(child, node_sets)))
                        )
                    else:
                        raise Unplannable(f"{edge_type}.{edge_name} is not plannable")
                out.items.append((key, Item("list", name, sub=edge)))
            else:
                raise Unplannable(f"{type_name}.{name} is not plannable")
        return out


def compile_operation(
    schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode
) -> Plan:
    return Compiler(schema, document).operation(operation)
