"""Statements and leaderboards in the graph."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from urllib.parse import quote, urlencode

import strawberry
from strawberry import relay
from strawberry.federation.schema_directives import Cost

from carbongraph import privacy
from carbongraph.accounting.activities import ACTIVITY_TYPES
from carbongraph.accounting.reads import Period
from carbongraph.authz import Access, Target
from carbongraph.engagement import keys
from carbongraph.engagement import leaderboards as lb
from carbongraph.engagement import statements as st
from carbongraph.errors import BadUserInput
from carbongraph.resolvers.context import Info
from carbongraph.schema import policy
from carbongraph.schema.accounting.types import (
    Grams,
    PeriodInput,
    PeriodRange,
    SuppressionReason,
    require_shown,
)
from carbongraph.schema.common import MAX_PAGE, list_size, sized_field
from carbongraph.schema.enums import LeaderboardMetric
from carbongraph.schema.relay import to_global_id


def resolve_period(info: Info, period: PeriodInput | None) -> Period:
    return period.to_period() if period is not None else lb.default_period(info.context.today)


def _quantity(milli: int) -> Decimal:
    return (Decimal(milli) / 1000).normalize()


# -- statements -------------------------------------------------------------------------------


# A statement covers about a month: at most six partial weeks.
STATEMENT_WEEKS = 6


@strawberry.type(description="Use of one utility (activity type) over a week or a period.")
class UtilityUsage:
    activity_type: str
    unit: str
    quantity: Decimal = strawberry.field(description="In `unit`.")
    emissions: Grams = strawberry.field(description="Location-based CO2e of this use.")
    clean_energy_offset: Grams

    @classmethod
    def build(cls, usage: st.Usage) -> UtilityUsage:
        return cls(
            activity_type=usage.activity_type,
            unit=usage.unit,
            quantity=_quantity(usage.quantity_milli),
            emissions=usage.emissions_g,
            clean_energy_offset=usage.offset_g,
        )


@strawberry.type(description="Seven days of a statement, counted from the period's first day.")
class StatementWeek:
    from_: date = strawberry.field(name="from")
    to: date
    usage: list[UtilityUsage] = sized_field(len(ACTIVITY_TYPES))
    gross: Grams
    clean_energy_offset: Grams
    net: Grams


@strawberry.type(description="One day of a statement.")
class StatementDay:
    date: date
    usage: list[UtilityUsage] = sized_field(
        len(ACTIVITY_TYPES), description="Use recorded by the records that start on this day."
    )
    gross: Grams
    clean_energy_offset: Grams
    net: Grams


@strawberry.type(
    description="Where a statement's account stands among its peers (dorm rooms of the same "
    "campus, or homes of the same community; people of those), by net emissions per capita, "
    "lowest first. Ties share a rank."
)
class StatementRanking:
    peers: str = strawberry.field(description='Who is compared, e.g. "dorm rooms of X".')
    peer_community: str = strawberry.field(
        description="The name of the community whose homes (or dorm rooms) are the peers."
    )
    rank: int | None = strawberry.field(description="Null when the account has no data.")
    percentile: float | None = strawberry.field(
        description="Share of the peers ranked at or below this one: 100 is the best."
    )
    peer_count: int = strawberry.field(description="Peers with data in the period.")
    peer_average_net: Grams | None = strawberry.field(
        description="Mean net emissions per peer; null when suppressed."
    )
    peer_average_per_capita: Grams | None = strawberry.field(
        description="The peers' net emissions per person; null when suppressed."
    )
    suppressed: bool = strawberry.field(
        description="The peers' averages are withheld (small-cell rule)."
    )
    suppression_reason: SuppressionReason | None


@strawberry.type(
    description="Where a statement's account stands among the same peers as `ranking` by one "
    "utility's use per person in the period (records that start in it), lowest first. Ties "
    "share a rank. Quantities are decimals in `unit`, rounded to thousandths."
)
class StatementUsageRanking:
    activity_type: str
    unit: str
    peers: str = strawberry.field(description='Who is compared, e.g. "dorm rooms of X".')
    peer_community: str = strawberry.field(
        description="The name of the community whose homes (or dorm rooms) are the peers."
    )
    rank: int | None = strawberry.field(description="Null when the account has no such use.")
    percentile: float | None = strawberry.field(
        description="Share of the peers ranked at or below this one: 100 is the best."
    )
    peer_count: int = strawberry.field(description="Peers with such use in the period.")
    per_capita: Decimal | None = strawberry.field(
        description="This account's use per person; null when it has none."
    )
    peer_average_per_capita: Decimal | None = strawberry.field(
        description="The peers' use per person; null when suppressed."
    )
    suppressed: bool = strawberry.field(
        description="The peers' average is withheld (small-cell rule)."
    )
    suppression_reason: SuppressionReason | None


@strawberry.type(
    description="A period at a glance: daily and weekly use and emissions, credits, and the "
    "standing among peers, compared with the period before. Periods without data have no "
    "days or weeks."
)
class Statement:
    period: PeriodRange
    previous_period: PeriodRange
    weeks: list[StatementWeek] = sized_field(STATEMENT_WEEKS)
    days: list[StatementDay] = sized_field(
        STATEMENT_WEEKS * 7, description="Every day of the period."
    )
    usage: list[UtilityUsage] = sized_field(
        len(ACTIVITY_TYPES), description="Totals over the period."
    )
    gross: Grams
    clean_energy_offset: Grams
    net: Grams
    member_count: int
    per_capita: Grams | None
    previous_net: Grams = strawberry.field(description="Net emissions of the previous period.")
    net_change: Grams = strawberry.field(description="net − previousNet.")
    net_change_percent: float | None = strawberry.field(
        description="Relative to the previous period; null when it had no net emissions."
    )
    credits_earned: int = strawberry.field(
        description="Credits granted (less reversals) for actions that occurred in the period."
    )
    ranking: StatementRanking | None
    data: strawberry.Private[st.StatementData]

    @strawberry.field(
        description="The standing among the same peers by electricity use per person (the "
        "campus-wide electricity ranking of a dorm room); null without peers or their use."
    )
    async def electricity_ranking(self, info: Info) -> StatementUsageRanking | None:
        ranking = await st.electricity_ranking(info.context.db, self.data)
        return await _usage_ranking(info, ranking, self.data.period)


async def _standing(info: Info, standing: st.Standing, span: Period) -> dict[str, Any]:
    """The fields both ranking types share. The peers' averages are figures over part of the
    peers' community (homes with data, of one dwelling type): withheld like a footprint of that
    part (docs/privacy.md); the same rule for the net and the usage ranking."""
    ctx = info.context
    scope_path = standing.peer_scope_path
    decision = await privacy.part_of_node(
        ctx.loaders.cell_groups,
        policy.level(info, Target((scope_path,))),
        ctx.settings.small_cell_k,
        scope_path,
        span.end,
        standing.population,
    )
    return {
        "peers": standing.peers,
        "peer_community": standing.peer_community,
        "rank": standing.rank,
        "percentile": standing.percentile,
        "peer_count": standing.entry_count,
        "suppressed": decision.part is not None,
        "suppression_reason": decision.part,
    }


async def _usage_ranking(
    info: Info, ranking: st.UsageRanking | None, span: Period
) -> StatementUsageRanking | None:
    if ranking is None:
        return None
    shared = await _standing(info, ranking.standing, span)
    suppressed = shared["suppressed"]
    own, average = ranking.per_capita_milli, ranking.average_per_capita_milli
    return StatementUsageRanking(
        activity_type=ranking.activity_type,
        unit=ranking.unit,
        per_capita=None if own is None else _quantity(own),
        peer_average_per_capita=None if suppressed or average is None else _quantity(average),
        **shared,
    )


async def _ranking(info: Info, ranking: st.Ranking | None, span: Period) -> StatementRanking | None:
    if ranking is None:
        return None
    shared = await _standing(info, ranking.standing, span)
    suppressed = shared["suppressed"]
    return StatementRanking(
        peer_average_net=None if suppressed else ranking.average_net_g,
        peer_average_per_capita=None if suppressed else ranking.average_per_capita_g,
        **shared,
    )


async def statement_of(
    info: Info,
    node: str,
    pk: int,
    period: PeriodInput | None,
    household: tuple[int, str, str] | None = None,
) -> Statement:
    """``household``: (id, path, dwelling type) of the household the account ranks through;
    for a person, the one they live in at the period's end."""
    span = resolve_period(info, period)
    db = info.context.db
    if node == "H" and household is not None:
        # A household's totals are its footprint's figures: withheld whole (like a GHG
        # inventory) where the footprint would be, i.e. small cells for viewers without
        # personal access (docs/privacy.md). Every field of a statement is such a figure.
        await require_shown(info, ("H", pk, ""), Target((household[1],)), span)
    if node == "I":
        row = await st.household_of(db, pk, span.end)
        # The ranking names the household's community and ranks among its homes: only where
        # the viewer may see that household (an employer's admin of someone living in another
        # tenant may not; row-level security hides it on PostgreSQL anyway).
        seen = row is not None and policy.visible(info, "Household", Target((row.path,)))
        household = (row.id, row.path, row.dwelling_type) if seen else None
    subject = st.Subject(node, pk, *(household or (None, None, None)))
    data = await st.build(db, subject, span)
    return Statement(
        period=PeriodRange(from_=data.period.start, to=data.period.end),
        previous_period=PeriodRange(from_=data.previous.start, to=data.previous.end),
        weeks=[
            StatementWeek(
                from_=w.start,
                to=w.end,
                usage=[UtilityUsage.build(u) for _, u in sorted(w.usage.items())],
                gross=w.gross_g,
                clean_energy_offset=w.offset_g,
                net=w.net_g,
            )
            for w in data.weeks
        ],
        days=[
            StatementDay(
                date=d.day,
                usage=[UtilityUsage.build(u) for _, u in sorted(d.usage.items())],
                gross=d.gross_g,
                clean_energy_offset=d.offset_g,
                net=d.net_g,
            )
            for d in data.days
        ],
        usage=[UtilityUsage.build(u) for u in data.usage],
        gross=data.gross_g,
        clean_energy_offset=data.offset_g,
        net=data.net_g,
        member_count=data.member_count,
        per_capita=data.per_capita_g,
        previous_net=data.previous_net_g,
        net_change=data.net_change_g,
        net_change_percent=data.net_change_percent,
        credits_earned=data.credits,
        ranking=await _ranking(info, data.ranking, data.period),
        data=data,
    )


# -- leaderboards -----------------------------------------------------------------------------


@strawberry.enum(description="Who competes on a community's leaderboard.")
class LeaderboardMembers(Enum):
    HOUSEHOLDS = "H"
    INDIVIDUALS = "I"


@strawberry.type(description="One place on a leaderboard. Ties share a rank.")
class LeaderboardEntry:
    rank: int
    percentile: float = strawberry.field(
        description="Share of the board ranked at or below this entry: 100 is the best."
    )
    name: str = strawberry.field(
        description="The member's name, or a pseudonym (stable on this board) for viewers "
        "who may not see it."
    )
    pseudonymous: bool
    member_id: strawberry.ID | None = strawberry.field(
        description="The Household, Individual or Community; null behind a pseudonym."
    )
    value: Grams | None = strawberry.field(
        description="The metric's value (grams, or grams per person); null when suppressed."
    )
    member_count: int | None = strawberry.field(
        description="People the entry covers at the period's end; null when suppressed."
    )
    suppressed: bool
    suppression_reason: SuppressionReason | None


@strawberry.type
class LeaderboardEdge:
    cursor: str
    node: LeaderboardEntry


@strawberry.type(
    description="Members of a scope ranked by a metric over a period, best first: most "
    "reductions, or lowest net emissions per person. Only members with data in the period "
    "are ranked."
)
class Leaderboard:
    metric: LeaderboardMetric
    period: PeriodRange
    total_count: int = strawberry.field(description="Ranked entries; 0 when suppressed.")
    population: int | None = strawberry.field(
        description="People the ranked entries cover; null when suppressed, or when the "
        "people of the scope left off the board are fewer than k (docs/privacy.md)."
    )
    suppressed: bool = strawberry.field(
        description="The whole board is withheld: it covers too few people for this viewer."
    )
    suppression_reason: SuppressionReason | None
    edges: list[LeaderboardEdge]
    page_info: relay.PageInfo


def board_field(description: str) -> Any:
    """A leaderboard: one ranked statement over the totals, priced like a page of a list."""
    return strawberry.federation.field(
        description=description,
        directives=[
            Cost(weight=20),
            list_size(MAX_PAGE, slicing=("first",), sized=("edges",)),
        ],
    )


async def community_board(
    info: Info,
    scope_path: str,
    members: LeaderboardMembers,
    metric: LeaderboardMetric,
    dwelling_type: str | None,
    period: PeriodInput | None,
    first: int | None,
    after: str | None,
) -> Leaderboard:
    board = lb.Board(
        members.value,
        metric.value,
        resolve_period(info, period),
        scope_path,
        dwelling_type=dwelling_type,
    )
    return await leaderboard_of(info, board, first, after)


async def enterprise_board(
    info: Info,
    enterprise_pk: int,
    scope_path: str,
    metric: LeaderboardMetric,
    period: PeriodInput | None,
    first: int | None,
    after: str | None,
) -> Leaderboard:
    board = lb.Board(
        lb.COMMUNITIES,
        metric.value,
        resolve_period(info, period),
        scope_path,
        enterprise_id=enterprise_pk,
    )
    return await leaderboard_of(info, board, first, after)


LABELS = {lb.HOUSEHOLDS: ("Household", "Home"), lb.INDIVIDUALS: ("Individual", "Member")}


async def leaderboard_of(
    info: Info, board: lb.Board, first: int | None, after: str | None
) -> Leaderboard:
    """The viewer must already be allowed to see the scope (PUBLIC); names and values are
    decided per entry."""
    settings = info.context.settings
    size = settings.default_page_size if first is None else first
    if not 0 <= size <= settings.max_page_size:
        raise BadUserInput(
            f"`first` must be between 0 and {settings.max_page_size}.", argument="first"
        )
    position = lb.decode_cursor(after)
    result = await lb.page(info.context.db, board, size, position)
    k = settings.small_cell_k
    span = PeriodRange(from_=board.period.start, to=board.period.end)
    metric = LeaderboardMetric(board.metric)
    # The board's head count is a figure over part of its scope's people (those with data, of
    # one dwelling type; docs/privacy.md). The whole board goes when that part is a small cell
    # or the scope itself is withheld; when only the rest of the scope is small, the entries
    # (cells decided on their own below) stand and just the head count is withheld.
    scope_access = policy.level(info, Target((board.scope_path,)))
    if not privacy.exempt(scope_access, k) and board.level != lb.INDIVIDUALS:
        # The scope's groups and the entries' in one statement.
        paths = [board.scope_path, *(e.path for e in result.entries)]
        await info.context.loaders.cell_groups.groups(paths, "communities", board.period.end)
    decision = await privacy.part_of_node(
        info.context.loaders.cell_groups,
        scope_access,
        k,
        board.scope_path,
        board.period.end,
        result.population,
    )
    whole = (
        decision.part
        if decision.scope is not None or decision.part is privacy.SuppressionReason.SMALL_CELL
        else None
    )
    if whole is not None:
        return Leaderboard(
            metric=metric,
            period=span,
            total_count=0,
            population=None,
            suppressed=True,
            suppression_reason=whole,
            edges=[],
            page_info=relay.PageInfo(
                has_next_page=False, has_previous_page=False, start_cursor=None, end_cursor=None
            ),
        )
    type_name, label = LABELS.get(board.level, ("Community", "Community"))
    targets = [
        Target(
            (entry.path,), individual_id=entry.member_id if board.level == lb.INDIVIDUALS else None
        )
        for entry in result.entries
    ]
    # Households and communities are withheld exactly as their footprints are (small cells
    # and their complements, docs/privacy.md), so a board and a footprint never combine into
    # more than either shows; a person is always a small cell.
    accesses = [policy.level(info, t) for t in targets]
    reasons = await privacy.node_cells(
        info.context.loaders.cell_groups,
        k,
        [
            (entry.path, access, board.level == lb.INDIVIDUALS)
            for entry, access in zip(result.entries, accesses, strict=True)
        ],
        board.period.end,
    )
    edges = []
    for entry, access, reason in zip(result.entries, accesses, reasons, strict=True):
        named = access >= (Access.PUBLIC if board.level == lb.COMMUNITIES else Access.PERSONAL)
        hidden = reason is not None
        node = LeaderboardEntry(
            rank=entry.rank,
            percentile=entry.percentile,
            name=entry.name
            if named
            else keys.pseudonym(settings, board.key, f"{type_name}:{entry.member_id}", label),
            pseudonymous=not named,
            member_id=strawberry.ID(to_global_id(type_name, entry.member_id)) if named else None,
            value=None if hidden else entry.value(board.metric),
            member_count=None if hidden else entry.population,
            suppressed=hidden,
            suppression_reason=reason,
        )
        edges.append(LeaderboardEdge(cursor=lb.encode_cursor(entry.position), node=node))
    return Leaderboard(
        metric=metric,
        period=span,
        total_count=result.entry_count,
        population=None if decision.part else result.population,
        suppressed=False,
        suppression_reason=None,
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=result.has_next_page,
            has_previous_page=position > 0,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )


# -- statement links --------------------------------------------------------------------------


@strawberry.type(description="A short-lived link to a household's printable statement page.")
class StatementLink:
    url: str = strawberry.field(
        description="Relative to this API's origin. Opening it sets a cookie scoped to "
        "/statements and redirects to the page without the token; it works until `expiresAt`."
    )
    expires_at: datetime


def period_param(period: PeriodInput | None) -> str | None:
    """The page's ``period`` parameter: 2026-10, 2026, or 2026-10-01..2026-10-28."""
    if period is None:
        return None
    span = period.to_period()
    if period.month is not None:
        return span.start.strftime("%Y-%m")
    if period.year is not None:
        return str(span.start.year)
    return f"{span.start.isoformat()}..{span.end.isoformat()}"


def parse_period_param(raw: str | None) -> PeriodInput | None:
    """The inverse of ``period_param``; the result is validated by ``to_period``."""
    if raw is None or raw == "":
        return None
    try:
        if ".." in raw:
            start, _, end = raw.partition("..")
            return PeriodInput(from_=date.fromisoformat(start), to=date.fromisoformat(end))
        if raw.isdigit():
            return PeriodInput(year=int(raw))
        return PeriodInput(month=raw)
    except ValueError as exc:
        raise BadUserInput(f"Invalid period {raw!r}.", argument="period") from exc


def statement_link_of(info: Info, household_pk: int, period: PeriodInput | None) -> StatementLink:
    token, expires = keys.mint_statement_link(
        info.context.settings, info.context.viewer.subject or "", household_pk
    )
    query = {"token": token}
    if (param := period_param(period)) is not None:
        query["period"] = param
    household_id = quote(to_global_id("Household", household_pk), safe="")
    return StatementLink(url=f"/statements/{household_id}?{urlencode(query)}", expires_at=expires)
