-- Benchmark peer B3-peer: what PostGraphile needs, beyond carbongraph's own tables, to answer the
-- same nested query as carbongraph (see README.md). Everything lives in the schema `bench_peer`;
-- carbongraph's `public` schema is only read: no objects, comments, indexes or grants are added
-- to it. The indexes used are carbongraph's own (ix_household_community_id,
-- ix_household_membership_household_period, pk_individual, pk_footprint_total).
--
-- Idempotent: `node setup.mjs` runs this file in one transaction; it drops and recreates the
-- schema, so the database always matches this file exactly.

drop schema if exists bench_peer cascade;
create schema bench_peer;

-- Footprint figures of one node over one calendar month, in integer grams of CO2e.
-- GraphQL: type Footprint { scope1 scope2LocationBased scope3 gross cleanEnergyOffset net }.
create type bench_peer.footprint as (
  scope1 bigint,
  scope2_location_based bigint,
  scope3 bigint,
  gross bigint,
  clean_energy_offset bigint,
  net bigint
);

comment on type bench_peer.footprint is
  E'@name Footprint\nEmissions of one node over one calendar month, in grams of CO2e.';

-- The one place the sums are written, as carbongraph's load_footprints() reads them: rows of
-- the pre-aggregated footprint_total for the key (node, node_id, via = '') and the local days of
-- the month (a range on the primary key pk_footprint_total); scope 1/2/3 = emission rows of that
-- scope, location-based; gross = scope 1 + scope 2 (location-based) + scope 3;
-- cleanEnergyOffset = offset rows, location-based; net = gross - cleanEnergyOffset
-- (docs/methodology.md). No rows give zeros, as in carbongraph. Hidden from GraphQL.
create function bench_peer.footprint_of(node text, node_id integer, month date)
returns bench_peer.footprint
language sql stable parallel safe
as $$
  select
    s.scope1,
    s.scope2,
    s.scope3,
    s.scope1 + s.scope2 + s.scope3,
    s.offset_g,
    s.scope1 + s.scope2 + s.scope3 - s.offset_g
  from (
    select
      coalesce(sum(t.location_g) filter (where t.kind = 'emission' and t.scope = '1'), 0)::bigint as scope1,
      coalesce(sum(t.location_g) filter (where t.kind = 'emission' and t.scope = '2'), 0)::bigint as scope2,
      coalesce(sum(t.location_g) filter (where t.kind = 'emission' and t.scope = '3'), 0)::bigint as scope3,
      coalesce(sum(t.location_g) filter (where t.kind = 'offset'), 0)::bigint as offset_g
    from public.footprint_total t
    where t.node = footprint_of.node
      and t.node_id = footprint_of.node_id
      and t.via = ''
      and t.day >= date_trunc('month', footprint_of.month)::date
      and t.day < (date_trunc('month', footprint_of.month) + interval '1 month')::date
  ) s
$$;

comment on function bench_peer.footprint_of(text, integer, date) is E'@behavior -*';

-- Computed column Household.footprint(month: Date!): the household's own totals (node 'H').
create function bench_peer.household_footprint(h public.household, month date)
returns bench_peer.footprint
language sql stable parallel safe
as $$ select bench_peer.footprint_of('H', h.id, month) $$;

comment on function bench_peer.household_footprint(public.household, date) is
  E'@notNull\nEmissions over the calendar month that contains `month`, split by scope.';

-- carbongraph's Household.members: people whose membership is in force today
-- (valid_from <= today, and valid_to null or after today; "today" is the UTC date, as in
-- carbongraph) and who are not archived. One row per (household, person); a person lives in
-- at most one household at a time, so `id` (the individual's id) is unique.
-- GraphQL: Household.currentMembers(first, after, orderBy, ...): HouseholdMemberConnection,
-- a real relation (smart tags below), so PostGraphile plans the whole query as one statement.
create view bench_peer.household_member as
  select
    i.id,
    m.household_id,
    i.display_name,
    i.email,
    i.subject,
    i.external_ref,
    i.created_at,
    i.updated_at
  from public.household_membership m
  join public.individual i on i.id = m.individual_id
  where m.valid_from <= (now() at time zone 'UTC')::date
    and (m.valid_to is null or m.valid_to > (now() at time zone 'UTC')::date)
    and i.archived_at is null;

comment on view bench_peer.household_member is E'@name HouseholdMember\n@primaryKey id\n@foreignKey (household_id) references public.household (id)|@fieldName household|@foreignFieldName currentMembers\n@behavior -insert -update -delete\nA person living in a household today.';

-- Computed column HouseholdMember.footprint(month: Date!): the person's own totals (node 'I').
create function bench_peer.household_member_footprint(p bench_peer.household_member, month date)
returns bench_peer.footprint
language sql stable parallel safe
as $$ select bench_peer.footprint_of('I', p.id, month) $$;

comment on function bench_peer.household_member_footprint(bench_peer.household_member, date) is
  E'@notNull\nEmissions over the calendar month that contains `month`, split by scope.';
