"""The field policy (src/carbongraph/schema/policy.py): declared for every field, read by every
layer, fail closed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from graphql import GraphQLObjectType
from strawberry.annotation import StrawberryAnnotation
from strawberry.federation.schema_directives import Tag
from strawberry.types.field import StrawberryField

from carbongraph.schema import policy
from carbongraph.schema.hierarchy.types import IndividualNode
from carbongraph.schema.schema import build_schema, schema
from tests import leak_oracle

SRC = Path(__file__).resolve().parents[1] / "src" / "carbongraph"


def test_an_undeclared_field_fails_schema_build() -> None:
    definition = IndividualNode.__strawberry_definition__  # type: ignore[attr-defined]
    leaky = StrawberryField(
        python_name="nickname",
        graphql_name=None,
        type_annotation=StrawberryAnnotation(str),
        default="x",
    )
    definition.fields.append(leaky)
    try:
        with pytest.raises(policy.UndeclaredField, match=r"Individual\.nickname"):
            build_schema()
    finally:
        definition.fields.remove(leaky)
    build_schema()  # and the schema builds again without it


def test_a_personal_tag_without_a_personal_declaration_fails_schema_build() -> None:
    field = next(
        f
        for f in IndividualNode.__strawberry_definition__.fields  # type: ignore[attr-defined]
        if f.python_name == "external_ref"
    )
    saved = field.directives
    field.directives = [*saved, Tag(name=policy.PERSONAL_TAG)]
    try:
        with pytest.raises(policy.UndeclaredField, match=r"Individual\.externalRef"):
            build_schema()
    finally:
        field.directives = saved


def test_every_declaration_names_a_field_of_the_schema() -> None:
    assert policy.undeclared(schema) == []
    assert policy.stale(schema) == []


# Decisions by hand: `require(info, …)` and `viewer.access(…)` comparisons. Allowed in the
# policy module itself; services ask `Viewer.sees` / the managing rules of authz.policy.
HAND_DECISION = re.compile(r"(?<![\w.])require\(|\bviewer\.access\(|\.viewer\.access\(")


def test_no_access_decisions_by_hand_in_schema_or_services() -> None:
    offenders = []
    for package in ("schema", "services"):
        for path in sorted((SRC / package).rglob("*.py")):
            if path == SRC / "schema" / "policy.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if HAND_DECISION.search(line):
                    offenders.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_lint_rule_catches_a_hand_decision() -> None:
    assert HAND_DECISION.search("    require(info, target, Access.PERSONAL)")
    assert HAND_DECISION.search("if ctx.viewer.access(target) >= Access.AGGREGATE:")
    assert not HAND_DECISION.search("policy.require_field(info, 'Individual', 'credits', t)")


def test_node_levels_agree_with_the_leak_oracle() -> None:
    """The oracle restates docs/authorization.md independently; the two must agree."""
    for kind, fields in leak_oracle.FIELD_LEVELS.items():
        declared = {
            name: int(p.access) for name, p in policy.FIELD_POLICY[kind].items() if p.on == "NODE"
        }
        assert declared == fields, kind
    assert {k: int(v) for k, v in policy.NODE_LEVEL.items()} == {
        k: leak_oracle.minimum(k) for k in leak_oracle.KINDS
    }


def test_the_personal_tag_is_exactly_the_personal_declarations() -> None:
    tagged = set()
    for type_name, gql_type in schema._schema.type_map.items():
        if not isinstance(gql_type, GraphQLObjectType) or type_name.startswith("__"):
            continue
        for name, gql_field in gql_type.fields.items():
            field = (gql_field.extensions or {}).get("strawberry-definition")
            if isinstance(field, StrawberryField) and any(
                isinstance(d, Tag) and d.name == policy.PERSONAL_TAG for d in field.directives
            ):
                tagged.add(f"{type_name}.{name}")
    declared = {f"{t}.{f}" for t, f, p in policy.declared_fields() if p.personal}
    assert tagged == declared
    assert {"Individual.displayName", "Individual.email", "Household.name"} <= declared


def test_every_checked_field_carries_the_policy_extension() -> None:
    for type_name, gql_type in schema._schema.type_map.items():
        if not isinstance(gql_type, GraphQLObjectType) or type_name.startswith("__"):
            continue
        for name, gql_field in gql_type.fields.items():
            declared = policy.policy_of(type_name, name)
            field = gql_field.extensions["strawberry-definition"]
            attached = [e for e in field.extensions if isinstance(e, policy.PolicyExtension)]
            checked = (
                declared.on is policy.On.NODE and declared.access > policy.NODE_LEVEL[type_name]
            )
            assert len(attached) == (1 if checked else 0), f"{type_name}.{name}"
            if checked:
                assert attached[0].policy == declared


def test_building_twice_attaches_once() -> None:
    build_schema()
    again = build_schema()
    field = again._schema.type_map["Individual"].fields["email"]  # type: ignore[union-attr]
    extensions = field.extensions["strawberry-definition"].extensions
    assert sum(isinstance(e, policy.PolicyExtension) for e in extensions) == 1
