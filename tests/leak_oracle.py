"""The leak matrix's oracle: who may read and change what, written from docs/authorization.md.

Deliberately independent of ``carbongraph.authz``: it knows the fixture world as a tree of place
names (``a`` → ``a1`` → ``a1x`` → ``a1x.p``), not database paths, and restates the documented
rules in a few lines. If policy.py and this file disagree, one of them is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

NONE, PUBLIC, AGGREGATE, PERSONAL = range(4)
ORGANISATIONS = ("Enterprise", "Community")
PERSONAL_FIELDS = {"Household": ("name",), "Individual": ("displayName", "email")}

# Every field of the four node types and the level it needs on its node, restated from
# docs/authorization.md ("Access levels", "Suggestions", "Statements", "Inventories"): a new
# field fails the guard in test_leak_matrix until it is classified here.
_ORG = ("id externalRef createdAt updatedAt archivedAt name kind leaderboard", PUBLIC)
FIELD_LEVELS: dict[str, dict[str, int]] = {
    kind: {field: lvl for names, lvl in groups for field in names.split()}
    for kind, groups in {
        "Enterprise": [
            _ORG,
            ("communities employees", PUBLIC),
            ("footprint reductions inventory", AGGREGATE),
        ],
        "Community": [
            _ORG,
            ("regionCode timezone enterprise parent subCommunities households members", PUBLIC),
            ("footprint reductions inventory", AGGREGATE),
        ],
        "Household": [
            (
                "id externalRef createdAt updatedAt archivedAt dwellingType "
                "hasRooftopSolar community regionCode members footprint reductions "
                "statement statementLink",
                AGGREGATE,
            ),
            ("name suggestions", PERSONAL),
        ],
        "Individual": [
            (
                "id externalRef createdAt updatedAt archivedAt household footprint reductions",
                AGGREGATE,
            ),
            ("displayName email credits householdHistory suggestions statement", PERSONAL),
        ],
    }.items()
}


@dataclass(frozen=True)
class Place:
    name: str
    kind: str  # Enterprise, Community, Household or Individual
    parent: str | None = None  # for a person: the current household
    employers: tuple[str, ...] = ()


def _places() -> dict[str, Place]:
    places: dict[str, Place] = {}
    for t in "ab":
        places[t] = Place(t, "Enterprise")
        for c in (f"{t}1", f"{t}2"):
            places[c] = Place(c, "Community", t)
        for home, community in ((f"{t}1x", f"{t}1"), (f"{t}1y", f"{t}1"), (f"{t}2x", f"{t}2")):
            places[home] = Place(home, "Household", community)
        for person in (f"{t}1x.p", f"{t}1x.q", f"{t}1y.p", f"{t}2x.p"):
            places[person] = Place(person, "Individual", person.split(".")[0])
    # A's employees: the resident's housemate, and someone living in B (a second tenant path).
    places["a1x.q"] = replace(places["a1x.q"], employers=("a",))
    places["b1y.p"] = replace(places["b1y.p"], employers=("a",))
    return places


PLACES = _places()
KINDS = ("Enterprise", "Community", "Household", "Individual")


def relation(name: str) -> str:
    """The place relative to the viewers, who all hold grants in enterprise A / community a1."""
    if name.startswith("b"):
        return "foreign"
    return "sibling" if name.startswith("a2") else "own"


def chain(name: str) -> list[str]:
    out: list[str] = []
    current: str | None = name
    while current is not None:
        out.append(current)
        current = PLACES[current].parent
    return out


def containers(name: str) -> list[str]:
    """Where a person is reached from: their current household and their current employers."""
    place = PLACES[name]
    return [c for c in (place.parent, *place.employers) if c is not None]


def within(name: str, anchor: str, via: list[str] | None = None) -> bool:
    if PLACES[name].kind == "Individual":
        return any(anchor in chain(c) for c in (via if via is not None else containers(name)))
    return anchor in chain(name)


def tenants_of(name: str) -> set[str]:
    if PLACES[name].kind == "Individual":
        return {chain(c)[-1] for c in containers(name)}
    return {chain(name)[-1]}


@dataclass(frozen=True)
class ViewerSpec:
    subject: str
    grants: tuple[tuple[str, str | None], ...]  # (role, place); None for the platform
    api_key: bool = False  # the grants are an API key's scopes, sent as ``Bearer cgk_...``

    @property
    def is_admin(self) -> bool:
        return any(role == "PLATFORM_ADMIN" for role, _ in self.grants)

    @property
    def resident_of(self) -> str | None:
        return next((p for role, p in self.grants if role == "RESIDENT"), None)

    @property
    def tenants(self) -> set[str]:
        out: set[str] = set()
        for role, anchor in self.grants:
            if anchor is not None:
                out |= tenants_of(anchor) if role != "RESIDENT" else {chain(anchor)[-1]}
        return out


VIEWERS = (
    ViewerSpec("admin", (("PLATFORM_ADMIN", None),)),
    ViewerSpec("org-a", (("ORG_ADMIN", "a"),)),
    ViewerSpec("esg-a", (("ESG_ANALYST", "a"),)),
    ViewerSpec("esg-a1", (("ESG_ANALYST", "a1"),)),
    ViewerSpec("cm-a1", (("COMMUNITY_MANAGER", "a1"),)),
    ViewerSpec("resident-a1", (("RESIDENT", "a1x.p"),)),
    ViewerSpec("partner-a", (("PARTNER_SERVICE", "a"),)),
    ViewerSpec("partner-a1", (("PARTNER_SERVICE", "a1"),)),
    ViewerSpec("nobody", ()),  # authenticated, no grants
    # API keys: exactly what the same role grants show (docs/authorization.md).
    ViewerSpec("key-partner-a", (("PARTNER_SERVICE", "a"),), api_key=True),
    ViewerSpec("key-esg-a1", (("ESG_ANALYST", "a1"),), api_key=True),
)

# docs/authorization.md, "Levels": what a subtree grant shows on its subtree.
SUBTREE_LEVEL = {
    "ORG_ADMIN": PERSONAL,
    "COMMUNITY_MANAGER": PERSONAL,
    "ESG_ANALYST": AGGREGATE,
    "PARTNER_SERVICE": AGGREGATE,
}
MANAGERS = ("ORG_ADMIN", "COMMUNITY_MANAGER")
REPORTERS = ("ORG_ADMIN", "ESG_ANALYST", "COMMUNITY_MANAGER")  # who may read GHG inventories
K = 10  # docs/privacy.md: the smallest cell whose figures aggregate-level viewers may see
MAY_GRANT = {
    "ORG_ADMIN": {"ORG_ADMIN", "ESG_ANALYST", "COMMUNITY_MANAGER", "RESIDENT", "PARTNER_SERVICE"},
    "COMMUNITY_MANAGER": {"RESIDENT", "COMMUNITY_MANAGER"},
}


def level(viewer: ViewerSpec, name: str, via: list[str] | None = None) -> int:
    """How much of ``name`` the viewer may read; ``via`` limits the containers a person is
    reached through (lists reach people through the one they list)."""
    place = PLACES[name]
    best = NONE
    for role, anchor in viewer.grants:
        if role == "PLATFORM_ADMIN":
            return PERSONAL
        assert anchor is not None
        if role == "RESIDENT":
            home = PLACES[anchor].parent
            assert home is not None
            reach = via if via is not None else containers(name)
            if name in (anchor, home) or (place.kind == "Individual" and home in reach):
                best = max(best, PERSONAL)
            elif place.kind in ORGANISATIONS and name in chain(home):
                best = max(best, PUBLIC)
        elif within(name, anchor, via):
            best = max(best, SUBTREE_LEVEL[role])
        elif place.kind in ORGANISATIONS and name in chain(anchor):
            best = max(best, PUBLIC)
    return best


def minimum(kind: str) -> int:
    """Seeing a node at all: organisations at PUBLIC, households and people at AGGREGATE."""
    return PUBLIC if kind in ORGANISATIONS else AGGREGATE


def visible(viewer: ViewerSpec, name: str, via: list[str] | None = None) -> bool:
    return level(viewer, name, via) >= minimum(PLACES[name].kind)


def read_refusal(viewer: ViewerSpec, name: str) -> str:
    """FORBIDDEN inside one of the viewer's tenants, else NOT_FOUND (like a missing ID)."""
    return "FORBIDDEN" if viewer.is_admin or tenants_of(name) & viewer.tenants else "NOT_FOUND"


def seen(viewer: ViewerSpec, name: str) -> bool:
    """A mutation target the viewer knows (any level): refusing it says FORBIDDEN."""
    return level(viewer, name) > NONE


def manages(viewer: ViewerSpec, name: str) -> bool:
    return viewer.is_admin or any(
        role in MANAGERS and anchor is not None and within(name, anchor)
        for role, anchor in viewer.grants
    )


def records_for(viewer: ViewerSpec, account: str) -> bool:
    """Activity data and actions: managers and partner services in their subtree, a resident
    for themselves and their own household's meters."""
    if manages(viewer, account):
        return True
    for role, anchor in viewer.grants:
        if role == "PARTNER_SERVICE" and anchor is not None and within(account, anchor):
            return True
        if role == "RESIDENT" and anchor is not None and account in (anchor, PLACES[anchor].parent):
            return True
    return False


def verifies_for(viewer: ViewerSpec, person: str) -> bool:
    """Partner verification (recordVerifiedActions): only a PARTNER_SERVICE grant or API-key
    scope that covers the person's household (on the action's date; the fixture's people have
    not moved). No other role verifies, a platform admin included, and a partner grant elsewhere
    does not make its holder's own or managed people's actions verified."""
    home = PLACES[person].parent
    return any(
        role == "PARTNER_SERVICE" and anchor is not None and within(person, anchor, via=[home])
        for role, anchor in viewer.grants
        if home is not None
    )


def edits_profile(viewer: ViewerSpec, person: str) -> bool:
    return manages(viewer, person) or viewer.resident_of == person


def may_grant(viewer: ViewerSpec, role: str, name: str | None) -> bool:
    if viewer.is_admin:
        return True
    if name is None:
        return False
    return any(
        role in MAY_GRANT.get(held, set()) and anchor is not None and within(name, anchor)
        for held, anchor in viewer.grants
    )


def children(kind: str, parent: str) -> list[str]:
    return [p.name for p in PLACES.values() if p.kind == kind and p.parent == parent]


def expected_list(viewer: ViewerSpec, parent: str, relation_name: str) -> set[str]:
    """The places a connection of ``parent`` shows the viewer (lists filter, never refuse)."""
    if relation_name == "communities":
        return {c for c in children("Community", parent) if visible(viewer, c)}
    if relation_name == "subCommunities":
        return set()  # the world has no nested communities; the field must still answer []
    if relation_name == "households":
        return {h for h in children("Household", parent) if visible(viewer, h)}
    if relation_name == "employees":
        people = [p.name for p in PLACES.values() if parent in p.employers]
        return {p for p in people if visible(viewer, p, via=[parent])}
    if relation_name == "members":
        homes = [parent] if PLACES[parent].kind == "Household" else children("Household", parent)
        people = [p.name for p in PLACES.values() if p.kind == "Individual" and p.parent in homes]
        return {p for p in people if visible(viewer, p, via=[PLACES[p].parent or ""])}
    raise AssertionError(relation_name)


def people_in(name: str) -> int:
    """A cell's size: the people living in it (an enterprise counts its communities')."""
    if PLACES[name].kind == "Individual":
        return 1
    return sum(
        1 for p in PLACES.values() if p.kind == "Individual" and name in chain(p.parent or "")
    )


def shows_figures(viewer: ViewerSpec, name: str) -> bool | None:
    """docs/privacy.md: True: figures shown; False: withheld; None: the rule leaves it to the
    complementary-suppression of siblings (never the case in this world of small cells)."""
    if level(viewer, name) >= PERSONAL:
        return True
    return False if people_in(name) < K else None


def reports(viewer: ViewerSpec, name: str) -> bool:
    """GHG inventories: AGGREGATE access and a reporting role on the subtree."""
    if level(viewer, name) < AGGREGATE:
        return False
    return viewer.is_admin or any(
        role in REPORTERS and anchor is not None and within(name, anchor)
        for role, anchor in viewer.grants
    )


def manages_key(viewer: ViewerSpec, scopes: list[str]) -> bool:
    """API keys are seen, listed and revoked by the managers of every scope's node."""
    return all(manages(viewer, s) for s in scopes)


# -- complementary suppression (docs/privacy.md), restated for a given k -----------------------
SMALL, COMPLEMENT = "SMALL_CELL", "COMPLEMENTARY"


def children_of(name: str | None) -> list[str]:
    """A sibling group: the platform's enterprises, or a node's direct children (not people)."""
    return sorted(p.name for p in PLACES.values() if p.parent == name and p.kind != "Individual")


def _withhold(group: list[str], size: dict[str, int], k: int, forced: bool) -> dict[str, str]:
    """Rules 1 and 2 in one group (``forced``: rule 3 arriving from a complementary parent)."""
    by_size = sorted(group, key=lambda n: (size[n], n))
    out = {n: SMALL for n in by_size if size[n] < k}
    if forced and not out and by_size:
        out[by_size[0]] = COMPLEMENT
    if not out:
        return out
    for n in by_size:
        if len(out) >= 2 and sum(size[x] for x in out) >= k:
            break
        out.setdefault(n, COMPLEMENT)
    return out


def withheld_cells(
    k: int, size: dict[str, int] | None = None, root: str | None = None
) -> dict[str, str | None]:
    """Every node's decision, top-down from ``root`` (the platform by default); ``size``: the
    people a node covers (default: who lives there). A descendant of a small cell is small."""
    size = size if size is not None else {n: people_in(n) for n in PLACES}
    out: dict[str, str | None] = {}

    def walk(parent: str | None, forced: bool) -> None:
        group = [n for n in children_of(parent) if size[n] > 0 or root is None]
        decided = _withhold(group, size, k, forced)
        for n in group:
            out[n] = decided.get(n)
            if out[n] == SMALL:
                for below in PLACES:
                    if below != n and n in chain(below) and PLACES[below].kind != "Individual":
                        out[below] = SMALL
            else:
                walk(n, out[n] == COMPLEMENT)

    if root is None:
        walk(None, False)
    else:
        out[root] = SMALL if size[root] < k else None
        if out[root] is None:
            walk(root, False)
    return out


def part_withheld(scope: str, part: int, k: int) -> tuple[str | None, str | None]:
    """Figures over ``part`` people of ``scope`` (a board, a statement's peers): (the whole
    board's reason, the figures' reason)."""
    scope_reason = withheld_cells(k).get(scope)
    if part < k:
        return SMALL, SMALL
    if scope_reason:
        return scope_reason, scope_reason
    rest = people_in(scope) - part
    return None, (COMPLEMENT if 0 < rest < k else None)


def campaign_withheld(owner: str, owners: list[str], k: int) -> str | None:
    """A campaign whose participants are everyone living under ``owner``; campaigns of the
    same window are run by ``owners``, so its figures are decided from the top-most of them
    above it."""
    root = next(n for n in reversed(chain(owner)) if n in owners)
    return withheld_cells(k, root=root).get(owner)
