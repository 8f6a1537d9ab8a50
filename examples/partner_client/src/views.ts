// What a partner page makes of the three documents' results, typed by the generated types: a
// change in the API that breaks these lines fails `tsc` (and `make test`) before it ships.
import type {
  CommunityPageQuery,
  EsgInventoryQuery,
  HouseholdStatementQuery,
} from './gql/graphql.js';

type Statement = NonNullable<NonNullable<HouseholdStatementQuery['household']>['statement']>;

/** The dorm bill's daily electricity: one point per day of the period (0 without a reading). */
export function dailyElectricity(statement: Statement): Array<{ date: string; kWh: number }> {
  return statement.days.map((day) => ({
    date: day.date,
    kWh: Number(day.usage.find((u) => u.activityType === 'ELECTRICITY')?.quantity ?? '0'),
  }));
}

/** "3 / 6" on the campus-wide electricity ranking, or null when unranked. */
export function electricityStanding(statement: Statement): string | null {
  const ranking = statement.electricityRanking;
  if (ranking?.rank == null) return null;
  return `${ranking.rank} / ${ranking.peerCount}`;
}

/** Net emissions per person, kg, on the community page (null where withheld). */
export function communityPerCapitaKg(page: CommunityPageQuery): number | null {
  const grams = page.community?.footprint.perCapita;
  return grams == null ? null : grams / 1000;
}

/** The board's rows as a partner shows them: a pseudonym where the name is private. */
export function boardRows(
  page: CommunityPageQuery,
): Array<{ rank: number; label: string; kgPerPerson: number | null }> {
  return (page.community?.leaderboard?.edges ?? []).map(({ node }) => ({
    rank: node.rank,
    label: node.name,
    kgPerPerson: node.value == null ? null : node.value / 1000,
  }));
}

/** Scope totals of an inventory in tonnes, for an ESG report's summary line. */
export function inventoryTonnes(
  result: EsgInventoryQuery,
): { scope1: number; scope2: number; scope3: number; net: number } | null {
  const inventory = result.ghgInventory;
  if (inventory == null) return null;
  const t = (grams: number) => grams / 1_000_000;
  return {
    scope1: t(inventory.scope1),
    scope2: t(inventory.scope2LocationBased),
    scope3: t(inventory.scope3),
    net: t(inventory.net),
  };
}
