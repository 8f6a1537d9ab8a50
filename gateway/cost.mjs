// Hive Gateway's demand-control estimate for operations, against a supergraph: the numbers the
// gateway would charge (tests/test_cost.py compares them with carbongraph's own cost rule).
//
//   node cost.mjs [supergraph.graphql] < operations.json   ->  [cost, ...] on stdout
//
// operations.json: [{"query": "...", "variables": {...}}, ...]. The budget is set below every
// cost, so the plugin refuses each operation with its estimate before any subgraph is called.
import { readFileSync } from 'node:fs';
import { createGatewayRuntime } from '@graphql-hive/gateway-runtime';

const supergraph = process.argv[2] ?? new URL('./supergraph.graphql', import.meta.url).pathname;
const operations = JSON.parse(readFileSync(0, 'utf8'));
const gateway = createGatewayRuntime({
  supergraph: readFileSync(supergraph, 'utf8'),
  // The options gateway.config.mjs uses, with a budget that every operation exceeds.
  demandControl: { maxCost: -1, includeExtensionMetadata: true },
  logging: false,
});
const costs = [];
for (const operation of operations) {
  const response = await gateway.fetch('http://gateway/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(operation),
  });
  const body = await response.json();
  const error = (body.errors ?? []).find((e) => e.extensions?.code === 'COST_ESTIMATED_TOO_EXPENSIVE');
  costs.push(error ? error.extensions.cost.estimated : { unexpected: body });
}
await gateway.dispose();
process.stdout.write(JSON.stringify(costs));
