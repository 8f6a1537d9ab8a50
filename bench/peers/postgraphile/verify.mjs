// Checks a running peer against PostgreSQL directly: POSTs request.json and compares every
// household, member and figure with sums computed here from carbongraph's tables (not through
// the bench_peer functions). Exit status 0 when all match.
// Usage: node verify.mjs [--url http://127.0.0.1:5678/graphql] [--request request.json]
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import pg from "pg";
import { databaseUrl } from "./config.mjs";

const { values: args } = parseArgs({
  options: {
    url: { type: "string", default: "http://127.0.0.1:5678/graphql" },
    request: { type: "string", default: "request.json" },
  },
});
const request = JSON.parse(readFileSync(args.request, "utf8"));
const [, communityId] = JSON.parse(Buffer.from(request.variables.c, "base64").toString());
const month = request.variables.month;

const response = await fetch(args.url, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(request),
});
const answer = await response.json();
if (answer.errors) throw new Error(JSON.stringify(answer.errors));

const client = new pg.Client({ connectionString: databaseUrl() });
await client.connect();
const sums = `
  select node_id,
    coalesce(sum(location_g) filter (where kind = 'emission' and scope = '1'), 0)::text as scope1,
    coalesce(sum(location_g) filter (where kind = 'emission' and scope = '2'), 0)::text as scope2,
    coalesce(sum(location_g) filter (where kind = 'emission' and scope = '3'), 0)::text as scope3,
    coalesce(sum(location_g) filter (where kind = 'offset'), 0)::text as offset_g
  from footprint_total
  where node = $1 and via = '' and node_id = any($2::int[])
    and day between date_trunc('month', $3::date)::date
                and (date_trunc('month', $3::date) + interval '1 month - 1 day')::date
  group by node_id`;
const figures = async (node, ids) => {
  const out = new Map(ids.map((id) => [id, { scope1: 0n, scope2: 0n, scope3: 0n, offset: 0n }]));
  for (const r of (await client.query(sums, [node, ids, month])).rows) {
    out.set(r.node_id, {
      scope1: BigInt(r.scope1), scope2: BigInt(r.scope2), scope3: BigInt(r.scope3), offset: BigInt(r.offset_g),
    });
  }
  return out;
};
const community = (await client.query("select name from community where id = $1", [communityId])).rows[0];
const households = (
  await client.query(
    `select id, dwelling_type from household where community_id = $1 and archived_at is null
     order by id limit 50`,
    [communityId],
  )
).rows;
const members = (
  await client.query(
    `select household_id, id, display_name from (
       select m.household_id, i.id, i.display_name,
              row_number() over (partition by m.household_id order by i.id) as n
       from household_membership m join individual i on i.id = m.individual_id
       where m.household_id = any($1::int[]) and i.archived_at is null
         and m.valid_from <= (now() at time zone 'UTC')::date
         and (m.valid_to is null or m.valid_to > (now() at time zone 'UTC')::date)) x
     where n <= 10 order by household_id, id`,
    [households.map((h) => h.id)],
  )
).rows;
const hFig = await figures("H", households.map((h) => h.id));
const iFig = await figures("I", members.map((m) => m.id));
await client.end();

const problems = [];
const expect = (what, got, want) => {
  if (String(got) !== String(want)) problems.push(`${what}: got ${got}, want ${want}`);
};
const nodeId = (type, id) => Buffer.from(JSON.stringify([type, id])).toString("base64");
const c = answer.data.community;
expect("community.name", c.name, community.name);
expect("households", c.households.edges.length, households.length);
let memberCount = 0;
let grossTotal = 0n;
households.forEach((h, k) => {
  const node = c.households.edges[k]?.node ?? {};
  const f = hFig.get(h.id);
  const gross = f.scope1 + f.scope2 + f.scope3;
  grossTotal += gross;
  expect(`household ${h.id} id`, node.id, nodeId("Household", h.id));
  expect(`household ${h.id} dwellingType`, node.dwellingType, h.dwelling_type);
  const fp = node.footprint ?? {};
  expect(`household ${h.id} scope1`, fp.scope1, f.scope1);
  expect(`household ${h.id} scope2LocationBased`, fp.scope2LocationBased, f.scope2);
  expect(`household ${h.id} scope3`, fp.scope3, f.scope3);
  expect(`household ${h.id} gross`, fp.gross, gross);
  expect(`household ${h.id} cleanEnergyOffset`, fp.cleanEnergyOffset, f.offset);
  expect(`household ${h.id} net`, fp.net, gross - f.offset);
  const want = members.filter((m) => m.household_id === h.id);
  const got = node.members?.edges ?? [];
  expect(`household ${h.id} members`, got.length, want.length);
  want.forEach((m, j) => {
    const p = got[j]?.node ?? {};
    const g = iFig.get(m.id);
    const pGross = g.scope1 + g.scope2 + g.scope3;
    memberCount += 1;
    expect(`member ${m.id} id`, p.id, nodeId("HouseholdMember", m.id));
    expect(`member ${m.id} displayName`, p.displayName, m.display_name);
    expect(`member ${m.id} gross`, p.footprint?.gross, pGross);
    expect(`member ${m.id} net`, p.footprint?.net, pGross - g.offset);
  });
});
if (problems.length) {
  console.error(problems.slice(0, 20).join("\n"));
  console.error(`${problems.length} mismatches`);
  process.exit(1);
}
console.log(
  `ok: community ${communityId} (${community.name}), ${households.length} households, ` +
    `${memberCount} members, month of ${month}; households' gross total ${grossTotal} g`,
);
