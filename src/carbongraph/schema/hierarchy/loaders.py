"""The hierarchy's DataLoaders: the parent → children relations of its connections
(``children()`` in types.py), over the node rows every domain reads (``NodeRows``)."""

from __future__ import annotations

import sqlalchemy as sa

from carbongraph.resolvers.dataloaders import (
    EM,
    C,
    E,
    H,
    I,
    M,
    NodeRows,
    Relation,
    current,
    member_record,
    visible,
)

ENTERPRISE_COMMUNITIES = Relation(
    build=lambda keys, viewer, _on: visible(
        sa.select(C).where(
            C.c.enterprise_id.in_(keys), C.c.parent_id.is_(None), C.c.archived_at.is_(None)
        ),
        viewer.node_filter(C.c.path),
    ),
    partition=C.c.enterprise_id,
    order_id=C.c.id,
)

SUB_COMMUNITIES = Relation(
    build=lambda keys, viewer, _on: visible(
        sa.select(C).where(C.c.parent_id.in_(keys), C.c.archived_at.is_(None)),
        viewer.node_filter(C.c.path),
    ),
    partition=C.c.parent_id,
    order_id=C.c.id,
)

COMMUNITY_HOUSEHOLDS = Relation(
    build=lambda keys, viewer, _on: visible(
        sa.select(H).where(H.c.community_id.in_(keys), H.c.archived_at.is_(None)),
        viewer.node_filter(H.c.path),
    ),
    partition=H.c.community_id,
    order_id=H.c.id,
)

HOUSEHOLD_MEMBERS = Relation(
    build=lambda keys, viewer, on: visible(
        sa.select(I, H.c.path.label("container_path"))
        .select_from(M.join(I, I.c.id == M.c.individual_id).join(H, H.c.id == M.c.household_id))
        .where(M.c.household_id.in_(keys), current(M, on), I.c.archived_at.is_(None)),
        viewer.member_filter(I.c.id, H.c.path),
    ),
    partition=M.c.household_id,
    order_id=I.c.id,
    to_record=member_record,
)

_SUBTREE = C.alias("subtree_root")
COMMUNITY_MEMBERS = Relation(
    build=lambda keys, viewer, on: visible(
        sa.select(I, H.c.path.label("container_path"))
        .select_from(
            M.join(I, I.c.id == M.c.individual_id)
            .join(H, H.c.id == M.c.household_id)
            .join(_SUBTREE, H.c.path.startswith(_SUBTREE.c.path, autoescape=False))
        )
        .where(_SUBTREE.c.id.in_(keys), current(M, on), I.c.archived_at.is_(None)),
        viewer.member_filter(I.c.id, H.c.path),
    ),
    partition=_SUBTREE.c.id,
    order_id=I.c.id,
    to_record=member_record,
)

ENTERPRISE_EMPLOYEES = Relation(
    build=lambda keys, viewer, on: visible(
        sa.select(I, E.c.path.label("container_path"))
        .select_from(EM.join(I, I.c.id == EM.c.individual_id).join(E, E.c.id == EM.c.enterprise_id))
        .where(EM.c.enterprise_id.in_(keys), current(EM, on), I.c.archived_at.is_(None)),
        viewer.member_filter(I.c.id, E.c.path),
    ),
    partition=EM.c.enterprise_id,
    order_id=I.c.id,
    to_record=member_record,
)


class HierarchyLoaders(NodeRows):
    """The node rows by id (``NodeRows``) and the relations above, paged by ``LoaderBase``."""
