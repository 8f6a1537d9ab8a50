"""The planner's one view of the field policy (``carbongraph.schema.policy``).

The planner compiles a field only when the policy says what it needs: the access level on the
node that carries it (``On.NODE``), nothing of its own (``On.PARENT``: a value inside a field
that already decided), and whether its figures are small-cell suppressed below PERSONAL. A
field the policy does not know, or declares in a way the planner cannot compile, falls back
to the reference executor. Everything else in the planner reads the policy through
``requirement`` only, so a change of the policy's shape is a change here.
"""

from __future__ import annotations

from dataclasses import dataclass

from carbongraph.authz import Access


@dataclass(frozen=True)
class Requirement:
    """What compiling one field needs to know: ``access`` on its node (``None``: the field
    is inside a value that already decided), and whether it discloses figures about people
    that are suppressed for viewers below PERSONAL."""

    access: Access | None
    small_cell: bool


class Undeclared(LookupError):
    """The policy has no declaration the planner can compile for this field."""


def requirement(type_name: str, field_name: str) -> Requirement:
    try:
        from carbongraph.schema import policy as declared
    except ImportError:  # the declarations have not landed on this branch: the table below
        return _builtin(type_name, field_name)
    try:
        found = declared.policy_of(type_name, field_name)
    except (KeyError, LookupError) as exc:
        raise Undeclared(f"{type_name}.{field_name}") from exc
    on = getattr(found.on, "name", str(found.on))
    small_cell = getattr(found.disclosure, "name", str(found.disclosure)) == "SMALL_CELL"
    if on == "NODE":
        return Requirement(Access(int(found.access)), small_cell)
    if on == "PARENT":
        return Requirement(None, small_cell)
    # On.VIEWER (root fields, viewer-relative): the planner's root handlers restate the rule.
    raise Undeclared(f"{type_name}.{field_name} is decided by its resolver ({on})")


# -- until carbongraph.schema.policy lands: the rules the resolvers apply today ---------------
_NODE = {"Enterprise": Access.PUBLIC, "Community": Access.PUBLIC}
_PERSONAL = {("Household", "name"), ("Individual", "displayName"), ("Individual", "email")}
_AGGREGATES = {"footprint", "reductions"}
_INSIDE = {
    "Footprint",
    "Reductions",
    "ReductionsPerCapita",
    "PeriodRange",
    "Scope3Category",
    "FootprintPoint",
    "PageInfo",
}


def _builtin(type_name: str, field_name: str) -> Requirement:
    if type_name in _INSIDE or type_name.endswith(("Connection", "Edge")):
        return Requirement(None, type_name in {"Footprint", "Reductions"})
    if type_name in {"Enterprise", "Community", "Household", "Individual"}:
        if (type_name, field_name) in _PERSONAL:
            return Requirement(Access.PERSONAL, False)
        if field_name in _AGGREGATES:
            return Requirement(Access.AGGREGATE, True)
        return Requirement(_NODE.get(type_name, Access.AGGREGATE), False)
    raise Undeclared(f"{type_name}.{field_name}")
