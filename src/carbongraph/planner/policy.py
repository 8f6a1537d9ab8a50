"""The planner's one view of the field policy (``carbongraph.schema.policy``).

The planner compiles a field only when the policy says what it needs: the access level on the
node that carries it (``On.NODE``), nothing of its own (``On.PARENT``: a value inside a field
that already decided), and whether its figures are small-cell suppressed below PERSONAL. Root
fields (``On.ROOT``) give the level a root's node needs to be seen at all. A field the policy
declares otherwise (``MANAGE``, ``PLATFORM``), or another disclosure rule (pseudonyms), is not
compiled: the reference executor answers. Everything else in the planner reads the policy
through this module, so a change of the policy's shape is a change here.
"""

from __future__ import annotations

from dataclasses import dataclass

from carbongraph.authz import Access
from carbongraph.schema import policy as declared


@dataclass(frozen=True)
class Requirement:
    """What compiling one field needs: ``access`` on its node (``None``: the field is inside
    a value that already decided), and whether it discloses figures about people that are
    suppressed for viewers below PERSONAL."""

    access: Access | None
    small_cell: bool


class Undeclared(LookupError):
    """The policy has no declaration the planner can compile for this field."""


def requirement(type_name: str, field_name: str) -> Requirement:
    try:
        found = declared.policy_of(type_name, field_name)
    except LookupError as exc:
        raise Undeclared(f"{type_name}.{field_name}") from exc
    if found.disclosure not in (declared.Disclosure.NONE, declared.Disclosure.SMALL_CELL):
        raise Undeclared(f"{type_name}.{field_name} ({found.disclosure} disclosure)")
    small_cell = found.disclosure is declared.Disclosure.SMALL_CELL
    if found.on is declared.On.NODE:
        return Requirement(found.access, small_cell)
    if found.on in (declared.On.PARENT, declared.On.ROOT):
        # ROOT: the level the root's objects need; its handler restates the lookup.
        return Requirement(found.access if found.on is declared.On.ROOT else None, small_cell)
    raise Undeclared(f"{type_name}.{field_name} is decided by its resolver ({found.on})")


def node_level(type_name: str) -> Access:
    """Seeing a node of this type at all."""
    return declared.NODE_LEVEL[type_name]
